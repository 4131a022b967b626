/**
 * Platform seam: worker threads for CPU work that splits into independent parts (Node: node:worker_threads; browsers
 * get ./web/workers.ts, which has none, and the callers run in their own thread).
 *
 * A pool per worker module, created on first use and kept: each worker runs one message at a time (`run`), replies
 * with its result (or an error, re-thrown here with the worker's message). Idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads';

export interface WorkerPool {
  /** Posts `msg` (structured clone; `transfer` lists buffers handed over) to a free worker; resolves with its reply.
   *  Rejects with the worker's error message, or with WorkerDiedError when a worker could not start or crashed. */
  run<T>(msg: unknown, transfer?: ArrayBuffer[]): Promise<T>;
}

/** A worker of the pool could not start (e.g. its module is missing from a bundle) or died; the pool is given up. */
export class WorkerDiedError extends Error {
  constructor(cause: unknown) {
    super(`worker thread died: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'WorkerDiedError';
  }
}

interface Job { msg: unknown; transfer: ArrayBuffer[]; resolve: (v: any) => void; reject: (e: Error) => void }
interface Slot { w: Worker; job?: Job }
interface Pool { slots: Slot[]; queue: Job[]; broken: boolean }
const pools = new Map<string, Pool>();

/**
 * The pool running `entry` (a module path under src/ or dist/ without extension, e.g. 'quant/solve-worker'), grown to
 * at least `size` workers; `threads`: what each new worker gets as workerData.threads (its ORT intra-op threads).
 * Under tsx (running from .ts sources) workers load tsx's loader first. null once a worker of this pool has died
 * (callers then do the work in their own thread): a pool is never respawned in a loop.
 */
export function workerPool(entry: string, size: number, threads: number): WorkerPool | null {
  const key = `${entry}:${threads}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = { slots: [], queue: [], broken: false }));
  const p = pool;
  if (p.broken) return null;
  while (p.slots.length < size) p.slots.push(spawn(entry, threads, p));
  return {
    run<T>(msg: unknown, transfer: ArrayBuffer[] = []): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        if (p.broken) { reject(new WorkerDiedError('the pool was given up')); return; }
        p.queue.push({ msg, transfer, resolve, reject });
        dispatch(p);
      });
    },
  };
}

/** Hands queued jobs to idle workers. */
function dispatch(p: Pool): void {
  for (const slot of p.slots) {
    if (slot.job || !p.queue.length) continue;
    const job = p.queue.shift()!;
    slot.job = job;
    slot.w.ref(); // keep the process alive while a job runs
    slot.w.postMessage(job.msg, job.transfer);
  }
}

function spawn(entry: string, threads: number, p: Pool): Slot {
  const fromTs = import.meta.url.endsWith('.ts');
  const url = new URL(`../${entry}${fromTs ? '.ts' : '.js'}`, import.meta.url);
  const w = fromTs
    ? new Worker(`const { workerData } = require('node:worker_threads');
import(workerData.tsx).then((m) => { m.register(); return import(workerData.entry); });`, { eval: true, workerData: { threads, entry: url.href, tsx: import.meta.resolve('tsx/esm/api') } })
    : new Worker(url, { workerData: { threads } });
  w.unref();
  const slot: Slot = { w };
  w.on('message', (m: { ok?: unknown; error?: string }) => {
    const job = slot.job!;
    slot.job = undefined;
    w.unref();
    if (m.error !== undefined) job.reject(new Error(m.error));
    else job.resolve(m.ok);
    dispatch(p);
  });
  const died = (cause: unknown): void => { // give the pool up: fail this worker's job and every queued one
    p.broken = true;
    p.slots.splice(p.slots.indexOf(slot), 1);
    const err = new WorkerDiedError(cause);
    slot.job?.reject(err);
    slot.job = undefined;
    for (const job of p.queue.splice(0)) job.reject(err);
  };
  w.on('error', died);
  w.on('exit', (code) => { if (p.slots.includes(slot)) died(`exited with code ${code}`); });
  return slot;
}

/**
 * A zeroed float32 (float64 when `f64`) array of `len` elements in shared memory, so that worker threads read it
 * without a copy (shared() returns it as it is). Not for ORT tensors: onnxruntime-node rejects shared buffers
 * ("Invalid argument"), so only arrays that reach ORT through copies may live there.
 */
export function sharedZeros(f64: true, len: number): Float64Array;
export function sharedZeros(f64: false, len: number): Float32Array;
export function sharedZeros(f64: boolean, len: number): Float32Array | Float64Array;
export function sharedZeros(f64: boolean, len: number): Float32Array | Float64Array {
  return f64 ? new Float64Array(new SharedArrayBuffer(8 * len)) : new Float32Array(new SharedArrayBuffer(4 * len));
}

/** `a` lives in shared memory (worker threads read it in place). */
export function isShared(a: ArrayBufferView): boolean { return a.buffer instanceof SharedArrayBuffer; }

/** A copy of `a` in shared memory (workers read it without each getting a copy); `a` itself when it is already. */
export function shared<T extends Float32Array | Float64Array>(a: T): T {
  if (isShared(a)) return a;
  const C = a.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
  const out = new C(new SharedArrayBuffer(a.length * C.BYTES_PER_ELEMENT));
  out.set(a);
  return out;
}
