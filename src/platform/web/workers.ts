/** Browser side of src/platform/workers.ts: no worker pool (callers run in their own thread). */
export interface WorkerPool { run<T>(msg: unknown, transfer?: ArrayBuffer[]): Promise<T> }
export function workerPool(_entry: string, _size: number, _threads: number): WorkerPool | null { return null; }
export function shared<T extends Float32Array | Float64Array>(a: T): T { return a; }
export class WorkerDiedError extends Error {}
