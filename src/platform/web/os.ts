/** Browser side of src/platform/os.ts. */

/** Virtual folders have no home; "/" keeps paths built from it inside the virtual root. */
export const homedir = (): string => '/';
export const hostname = (): string => 'browser';
/** navigator.hardwareConcurrency (logical cores the browser reports), at least 1. */
export const availableParallelism = (): number => Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
/** One page or worker: there is no process id; temp names still get a random part (src/io/atomic.ts). */
export const processId = (): number => 0;
/** Library notices without an onLog callback go to the console. */
export function logLine(msg: string): void { console.warn(`[gptqjs] ${msg}`); }
