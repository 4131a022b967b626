/** Shared pieces of the commands: the embedded model, the model positional, legacy argv helpers. */
import { existsSync } from 'node:fs';
import { DEFAULT_MODEL_DIR } from '../paths.ts';
import { fail } from '../errors.ts';
import { isHubId, resolveModelDir } from '../io/hub.ts';
import type { ProgressCallback } from '../progress.ts';
import { parseCommand, type Flag } from './flags.ts';

export { fmtSeconds } from './output.ts';

export { PACKAGE_ROOT } from '../paths.ts';
/** The embedded default model (llama2.c stories260K). */
export const DEFAULT_MODEL = DEFAULT_MODEL_DIR;

/** Help of the model positional, the same in every command. */
export const MODEL_ARG = { name: 'model', help: 'a local model directory or a Hub id owner/name (downloaded to ~/.cache/gptqjs); default: the embedded stories260K' } as const;

/**
 * The model positional: a local directory or a Hub id (downloaded to the cache, progress to `onProgress`); default:
 * the embedded stories260K. Text that is neither (e.g. a prompt typed where the model goes) fails with a line saying
 * how to pass it; `promptHint` is how this command takes a prompt.
 */
export async function modelDir(arg: string | undefined, o: { command?: string; promptHint?: string; onProgress?: ProgressCallback } = {}): Promise<string> {
  if (arg === undefined) return DEFAULT_MODEL;
  if (!existsSync(arg) && !isHubId(arg)) {
    const cmd = o.command ? `${o.command}: ` : '';
    if (/\s/.test(arg.trim()) || (o.promptHint && !/[/\\]|^\.|^~/.test(arg)))
      fail(`${cmd}${JSON.stringify(arg)} is not a model directory or a Hub id (owner/name)${o.promptHint ? `; to pass a prompt: ${o.promptHint}` : ''}`);
    fail(`${cmd}model directory ${arg} does not exist (and is not a Hub id owner/name)`);
  }
  return resolveModelDir(arg, { onProgress: o.onProgress });
}

/**
 * Legacy helper for commands that declare node:util-style options ({ type: 'string' | 'boolean', multiple, short });
 * parsed by flags.ts (negative values, --x=v, did-you-mean). New commands should declare a CommandSpec instead.
 */
export function parse<O extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>>(argv: string[], options: O, name = 'command') {
  const flags: Flag[] = Object.entries(options).map(([n, d]) => ({ name: n, type: d.type, multiple: d.multiple, short: d.short, help: '' }));
  const r = parseCommand({ name, description: '', positionals: [], anyPositionals: true, flags }, argv);
  const values: Record<string, unknown> = { help: r.help };
  for (const [k, v] of Object.entries(r.values as Record<string, unknown>)) if (!(options[k]?.type === 'boolean' && !r.given.has(k)) && !(options[k]?.multiple && !r.given.has(k))) values[k] = v;
  return { values: values as { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string } & { help?: boolean }, positionals: r.positionals };
}

/** Legacy: a numeric option value (string) or the default. */
export function num(v: string | boolean | undefined, name: string, dflt: number): number;
export function num(v: string | boolean | undefined, name: string, dflt?: number): number | undefined;
export function num(v: string | boolean | undefined, name: string, dflt?: number): number | undefined {
  if (v === undefined || typeof v === 'boolean') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name}: "${v}" is not a number`);
  return n;
}
