/** Tiny argv helpers over node:util parseArgs. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { fail } from '../errors.ts';
import { resolveModelDir } from '../io/hub.ts';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The embedded default model (llama2.c stories260K). */
export const DEFAULT_MODEL = resolve(PACKAGE_ROOT, 'assets', 'stories260K');

type Opts = NonNullable<ParseArgsConfig['options']>;
export function parse<O extends Opts>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } } as O & { help: { type: 'boolean'; short: 'h' } }, allowPositionals: true, strict: true });
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
