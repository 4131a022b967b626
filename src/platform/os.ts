/** Platform seam: process and host facts (node:os and process in Node; ./web/os.ts in browsers). */
export { homedir, hostname, availableParallelism } from 'node:os';

/** Id of this process (names of temp files and locks). */
export const processId = (): number => process.pid;

/** Where the library's notices go when the caller gives no onLog: stderr, one "[gptqjs] …" line each. */
export function logLine(msg: string): void { process.stderr.write(`[gptqjs] ${msg}\n`); }
