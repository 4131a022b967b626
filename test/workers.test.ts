/**
 * The worker-thread pool (src/platform/workers.ts) when a worker cannot start: the job and the queued ones reject with
 * WorkerDiedError, the pool is given up (workerPool returns null, so callers work in-thread) and nothing respawns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workerPool, WorkerDiedError } from '../src/platform/workers.ts';

test('a worker module that cannot load: jobs reject with WorkerDiedError, the pool is given up, no respawn loop', async () => {
  const pool = workerPool('quant/no-such-worker', 2, 1);
  assert.ok(pool, 'a pool is made');
  const jobs = [1, 2, 3].map((i) => pool.run({ i }).then(() => 'resolved', (e: Error) => e));
  const out = await Promise.all(jobs);
  for (const e of out) assert.ok(e instanceof WorkerDiedError, `job rejected with WorkerDiedError, got ${String(e)}`);
  assert.match((out[0] as Error).message, /worker thread died/);
  assert.equal(workerPool('quant/no-such-worker', 2, 1), null, 'the pool is given up: callers work in their own thread');
});
