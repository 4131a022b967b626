/**
 * Worker thread of the GPTQ solve (src/platform/workers.ts pool, used by gptq.ts solveParallel): takes a row slice
 * (SolveTask) and Hinv, replies with solveRows' result (its codes' buffer transferred) or an error message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setLinalgThreads, type Operand } from '../graph/linalg.ts';
import { solveRows, type SolveTask } from './gptq.ts';

setLinalgThreads((workerData as { threads: number }).threads);
parentPort!.on('message', async ({ task, U }: { task: SolveTask; U: Operand }) => {
  try {
    const r = await solveRows(task, U);
    parentPort!.postMessage({ ok: r }, [r.intCodes.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ error: (e as Error).message });
  }
});
