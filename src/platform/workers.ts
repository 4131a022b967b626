/**
 * Platform seam: worker threads for CPU work that splits into independent parts (Node: node:worker_threads; browsers
 * get ./web/workers.ts, which has none, and the callers run in their own thread).
 *
 * A pool per worker module, created on first use and kept: each worker runs one message at a time (`run`), replies
 * with its result (or an error, re-thrown here with the worker's message). Idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads';

export interface WorkerPool {
  /** Posts `msg` (structured clone; `transfer` lists buffers handed over) to a free worker; resolves with its reply. */
  run<T>(msg: unknown, transfer?: ArrayBuffer[]): Promise<T>;
}

interface Slot { w: Worker; busy: boolean; pending?: { resolve: (v: any) => void; reject: (e: Error) => void } }
const pools = new Map<string, { slots: Slot[]; queue: (() => void)[] }>();

/**
 * The pool running `entry` (a module path under src/ or dist/ without extension, e.g. 'quant/solve-worker'), grown to
 * at least `size` workers; `threads`: what each new worker gets as workerData.threads (its ORT intra-op threads).
 * Under tsx (running from .ts sources) workers load tsx's loader first.
 */
export function workerPool(entry: string, size: number, threads: number): WorkerPool | null {
  const key = `${entry}:${threads}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = { slots: [], queue: [] }));
  const p = pool;
  while (p.slots.length < size) p.slots.push(spawn(entry, threads, p));
  return {
    run<T>(msg: unknown, transfer: ArrayBuffer[] = []): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const go = (): void => {
          const slot = p.slots.find((s) => !s.busy)!;
          slot.busy = true;
          slot.pending = { resolve, reject };
          slot.w.ref(); // keep the process alive while a job runs
          slot.w.postMessage(msg, transfer);
        };
        if (p.slots.some((s) => !s.busy)) go();
        else p.queue.push(go);
      });
    },
  };
}

function spawn(entry: string, threads: number, p: { slots: Slot[]; queue: (() => void)[] }): Slot {
  const fromTs = import.meta.url.endsWith('.ts');
  const url = new URL(`../${entry}${fromTs ? '.ts' : '.js'}`, import.meta.url);
  const w = fromTs
    ? new Worker(`const { workerData } = require('node:worker_threads');
import(workerData.tsx).then((m) => { m.register(); return import(workerData.entry); });`, { eval: true, workerData: { threads, entry: url.href, tsx: import.meta.resolve('tsx/esm/api') } })
    : new Worker(url, { workerData: { threads } });
  w.unref();
  const slot: Slot = { w, busy: false };
  const done = (): void => {
    slot.busy = false;
    slot.pending = undefined;
    w.unref();
    p.queue.shift()?.();
  };
  w.on('message', (m: { ok?: unknown; error?: string }) => {
    const pend = slot.pending!;
    done();
    if (m.error !== undefined) pend.reject(new Error(m.error));
    else pend.resolve(m.ok);
  });
  w.on('error', (e) => { // the worker died: fail its job, replace it
    const pend = slot.pending;
    p.slots.splice(p.slots.indexOf(slot), 1, spawn(entry, threads, p));
    pend?.reject(e instanceof Error ? e : new Error(String(e)));
  });
  return slot;
}

/** A copy of `a` in shared memory (workers read it without each getting a copy); `a` itself when it is already. */
export function shared<T extends Float32Array | Float64Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const C = a.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
  const out = new C(new SharedArrayBuffer(a.length * C.BYTES_PER_ELEMENT));
  out.set(a);
  return out;
}
