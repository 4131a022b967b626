/** Tiny argv helpers over node:util parseArgs. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_MODEL_DIR } from '../paths.ts';
import { fail } from '../errors.ts';
import { resolveModelDir } from '../io/hub.ts';

export { PACKAGE_ROOT } from '../paths.ts';
/** The embedded default model (llama2.c stories260K). */
export const DEFAULT_MODEL = DEFAULT_MODEL_DIR;

type Opts = NonNullable<ParseArgsConfig['options']>;
type HelpOpt = { help: { type: 'boolean'; short: 'h' } };
/** parseArgs' result type for `options` (named here: @types/node does not export it, and the .d.ts build needs a name). */
type Parsed<O extends Opts> = ReturnType<typeof parseArgs<{ args: string[]; options: O & HelpOpt; allowPositionals: true; strict: true }>>;
export function parse<O extends Opts>(argv: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } } as O & HelpOpt, allowPositionals: true, strict: true });
  } catch (e) {
    fail((e as Error).message.split('\n')[0]!);
  }
}

export function num(v: string | boolean | undefined, name: string, dflt: number): number;
export function num(v: string | boolean | undefined, name: string, dflt?: number): number | undefined;
export function num(v: string | boolean | undefined, name: string, dflt?: number): number | undefined {
  if (v === undefined || typeof v === 'boolean') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name}: "${v}" is not a number`);
  return n;
}

/** Progress line on stderr (rewritten in place on a TTY). */
export function progress(line: string, done = false): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}${done ? '\n' : ''}`);
  else process.stderr.write(line + '\n');
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

/** The model positional: a local directory or a Hub id (downloaded to the cache); default: embedded stories260K. */
export async function modelDir(arg: string | undefined): Promise<string> {
  return arg === undefined ? DEFAULT_MODEL : resolveModelDir(arg);
}
