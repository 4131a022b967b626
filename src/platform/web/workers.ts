/** Browser side of src/platform/workers.ts: no worker pool (callers run in their own thread). */
export interface WorkerPool { run<T>(msg: unknown, transfer?: ArrayBuffer[]): Promise<T> }
export function workerPool(_entry: string, _size: number, _threads: number): WorkerPool | null { return null; }
export function isShared(a: ArrayBufferView): boolean { return typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer; }
export function shared<T extends Float32Array | Float64Array>(a: T): T { return a; }
export function sharedZeros(f64: true, len: number): Float64Array;
export function sharedZeros(f64: false, len: number): Float32Array;
export function sharedZeros(f64: boolean, len: number): Float32Array | Float64Array;
export function sharedZeros(f64: boolean, len: number): Float32Array | Float64Array { return f64 ? new Float64Array(len) : new Float32Array(len); }
export class WorkerDiedError extends Error {}
