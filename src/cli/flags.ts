/**
 * The one place where command-line flags are declared, parsed, validated and documented. Each command declares
 * its flags as data (name, type, allowed range, default, help text); `parseCommand` turns argv into typed values
 * and `commandHelp` renders `--help` from the same declarations, so the help text cannot drift from what is
 * accepted.
 *
 * Parsing rules (what users type):
 *   --name value, --name=value; a value may start with '-' (`--group-size -1`, `--temperature=-1`);
 *   boolean flags take no value (`--json`), or `--json=true|false`; `--` ends the flags;
 *   an unknown flag fails with a "did you mean --x?" suggestion (Levenshtein distance, fastest-levenshtein).
 * Every error is one GptqError line naming the flag and the allowed values.
 */
import { closest, distance } from 'fastest-levenshtein';
import { fail } from '../errors.ts';
import { parseSize } from '../io/safetensors.ts';

export type FlagType = 'int' | 'number' | 'string' | 'boolean' | 'size';

export interface Flag {
  /** Long name without the dashes: `group-size`. */
  readonly name: string;
  readonly type: FlagType;
  /** One-letter alias: `o` for `-o`. */
  readonly short?: string;
  /** Placeholder of the value in help: `N`, `DIR`. */
  readonly metavar?: string;
  readonly help: string;
  /** Used when the flag is absent (booleans: false; `multiple`: []). Shown in help. */
  readonly default?: number | string;
  /** Shown in help instead of the default value (e.g. a default that depends on the model). */
  readonly defaultText?: string;
  /** int/number bounds: inclusive (min/max) or exclusive (gt/lt). */
  readonly min?: number; readonly max?: number; readonly gt?: number; readonly lt?: number;
  /** int/number: accepted in addition to the range (`-1` for per-channel group size). */
  readonly also?: readonly number[];
  /** int/number: the only accepted values; string: the only accepted words. */
  readonly oneOf?: readonly (number | string)[];
  /** string: other spellings of an accepted word (`float16` → `fp16`). */
  readonly aliases?: Readonly<Record<string, string>>;
  /** Meaning of special values, appended to the range in help and errors: `0 = greedy`. */
  readonly note?: string;
  /** May be given several times (string values, collected in order). */
  readonly multiple?: boolean;
  /** Heading under which help lists the flag. */
  readonly group?: string;
}

export interface Positional { readonly name: string; readonly help: string; readonly required?: boolean }

export interface CommandSpec<F extends readonly Flag[] = readonly Flag[]> {
  readonly name: string;
  /** Paragraph(s) under the usage line. */
  readonly description: string;
  readonly positionals: readonly Positional[];
  readonly flags: F;
  /** Accept any number of positionals (no "unexpected argument" check). */
  readonly anyPositionals?: boolean;
  /** Extra text at the end of the help (examples, notes). */
  readonly epilog?: string;
}

type ValueOf<F extends Flag> = F extends { type: 'boolean' } ? boolean
  : F extends { type: 'int' | 'number' | 'size' } ? number
  : F extends { multiple: true } ? string[] : string;
type Present<F extends Flag> = F extends { type: 'boolean' } | { multiple: true } | { default: number | string } ? true : false;
/** Typed values of a flag list: `--group-size` → `values['group-size']: number`. */
export type FlagValues<Fs extends readonly Flag[]> = {
  [F in Fs[number] as F['name']]: Present<F> extends true ? ValueOf<F> : ValueOf<F> | undefined;
};

export interface Parsed<Fs extends readonly Flag[]> {
  values: FlagValues<Fs>;
  positionals: string[];
  /** Flags the user gave explicitly (so that a command can tell a default from a choice). */
  given: Set<string>;
  help: boolean;
}

const fmtNum = (n: number) => String(n);

/** "an integer ≥ 1", "a number in (0, 1)", "one of 2, 3, 4, 8", "-1 or an integer ≥ 1". */
export function describeRange(f: Flag): string {
  if (f.type === 'boolean') return 'no value';
  if (f.type === 'size') return 'a size such as 5GB, 500MB, 2GiB or a byte count';
  if (f.oneOf) return `one of ${f.oneOf.join(', ')}`;
  if (f.type === 'string') return f.metavar ? `a ${f.metavar.toLowerCase()}` : 'text';
  const kind = f.type === 'int' ? 'an integer' : 'a number';
  const lo = f.min !== undefined ? [f.min, '['] as const : f.gt !== undefined ? [f.gt, '('] as const : undefined;
  const hi = f.max !== undefined ? [f.max, ']'] as const : f.lt !== undefined ? [f.lt, ')'] as const : undefined;
  let r: string;
  if (lo && hi) r = `${kind} in ${lo[1]}${fmtNum(lo[0])}, ${fmtNum(hi[0])}${hi[1]}`;
  else if (lo) r = `${kind} ${lo[1] === '[' ? '≥' : '>'} ${fmtNum(lo[0])}`;
  else if (hi) r = `${kind} ${hi[1] === ']' ? '≤' : '<'} ${fmtNum(hi[0])}`;
  else r = kind;
  if (f.also?.length) r = `${f.also.join(' or ')} or ${r}`;
  return r;
}

const allowed = (f: Flag) => `allowed: ${describeRange(f)}${f.note ? `; ${f.note}` : ''}`;

function convert(f: Flag, raw: string): number | string {
  const bad = (why: string): never => fail(`--${f.name} ${JSON.stringify(raw)}: ${why} (${allowed(f)})`);
  if (f.type === 'string') {
    const v = f.aliases?.[raw] ?? raw;
    if (f.oneOf && !f.oneOf.includes(v)) bad('not a choice');
    return v;
  }
  if (f.type === 'size') {
    try { return parseSize(raw); } catch { return bad('not a size'); }
  }
  const s = raw.trim();
  const n = s === '' ? NaN : Number(s);
  if (!Number.isFinite(n)) bad(f.type === 'int' ? 'not an integer' : 'not a number');
  if (f.type === 'int' && !Number.isInteger(n)) bad('not an integer');
  if (f.also?.includes(n)) return n;
  if (f.oneOf) { if (!f.oneOf.includes(n)) bad('not allowed'); return n; }
  if ((f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max) || (f.gt !== undefined && n <= f.gt) || (f.lt !== undefined && n >= f.lt)) bad('out of range');
  return n;
}

/** Closest flag name within a small edit distance, for "did you mean". */
function suggest(name: string, names: string[]): string | undefined {
  if (!names.length) return undefined;
  const c = closest(name, names);
  const d = distance(name, c);
  return d <= Math.max(2, Math.floor(name.length / 3)) || c.startsWith(name) ? c : undefined;
}

/** The closest of `candidates` to `word` within a small edit distance ("did you mean"), or undefined. */
export function didYouMean(word: string, candidates: string[]): string | undefined { return suggest(word, candidates); }

const BOOL_WORDS: Record<string, boolean> = { true: true, '1': true, yes: true, false: false, '0': false, no: false };

/** Parse argv (after the command name) by the command's flag declarations. A flag given twice: the last wins. */
export function parseCommand<Fs extends readonly Flag[]>(spec: CommandSpec<Fs>, argv: readonly string[]): Parsed<Fs> {
  const byName = new Map<string, Flag>(spec.flags.map((f) => [f.name, f]));
  const byShort = new Map<string, Flag>(spec.flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const raw = new Map<string, string[]>();
  const bools = new Map<string, boolean>();
  const positionals: string[] = [];
  let help = false;
  const where = spec.name;
  const unknown = (tok: string): never => {
    const name = tok.replace(/^-+/, '').split('=')[0]!;
    const s = suggest(name, [...byName.keys()]);
    fail(`${where}: unknown flag ${tok.split('=')[0]}${s ? `; did you mean --${s}?` : ''} (gptq ${spec.name} --help lists the flags)`);
  };
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (tok === '--help' || tok === '-h') { help = true; continue; }
    let f: Flag | undefined, inline: string | undefined;
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      const name = eq < 0 ? tok.slice(2) : tok.slice(2, eq);
      inline = eq < 0 ? undefined : tok.slice(eq + 1);
      f = byName.get(name);
      if (!f) unknown(tok);
    } else if (/^-[A-Za-z]/.test(tok)) {
      const eq = tok.indexOf('=');
      f = byShort.get(tok.slice(1, eq < 0 ? undefined : eq));
      inline = eq < 0 ? undefined : tok.slice(eq + 1);
      if (!f) unknown(tok);
    } else { positionals.push(tok); continue; }
    if (f!.type === 'boolean') {
      if (inline === undefined) { bools.set(f!.name, true); continue; }
      const b = BOOL_WORDS[inline.toLowerCase()];
      if (b === undefined) fail(`--${f!.name}=${inline}: a switch takes no value (or true/false)`);
      bools.set(f!.name, b);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // The next word is this flag's value even when it starts with '-' (negative numbers), unless it is a flag.
      if (next === undefined || (next.startsWith('--') && next.length > 2) || next === '-h')
        fail(`--${f!.name} needs a value${f!.metavar ? ` (${f!.metavar})` : ''}: ${allowed(f!)}${next?.startsWith('--') ? `; write --${f!.name}=${next} if that is the value` : ''}`);
      value = next;
      i++;
    }
    const list = raw.get(f!.name) ?? [];
    list.push(value);
    raw.set(f!.name, list);
  }
  if (!help) {
    const maxPos = spec.positionals.length;
    if (!spec.anyPositionals && positionals.length > maxPos) {
      const names = spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ') || 'no arguments';
      fail(`${where}: unexpected argument ${JSON.stringify(positionals[maxPos])} (takes ${names}${spec.positionals.some((p) => p.name === 'prompt') ? '; quote a prompt that has spaces: "Once upon a time"' : ''})`);
    }
    const missing = spec.positionals.slice(positionals.length).find((p) => p.required);
    if (missing) fail(`${where}: missing <${missing.name}> (gptq ${spec.name} --help)`);
  }
  const values: Record<string, unknown> = {};
  const given = new Set<string>([...raw.keys(), ...bools.keys()]);
  for (const f of spec.flags) {
    if (f.type === 'boolean') { values[f.name] = bools.get(f.name) ?? false; continue; }
    const r = raw.get(f.name);
    if (f.multiple) { values[f.name] = (r ?? []).map((x) => convert(f, x)); continue; }
    values[f.name] = r ? convert(f, r[r.length - 1]!) : f.default;
  }
  return { values: values as FlagValues<Fs>, positionals, given, help };
}

/** Column-aligned help of a command, generated from its declarations. */
export function commandHelp(spec: CommandSpec): string {
  const usagePos = spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ');
  const L: string[] = [`usage: gptq ${spec.name}${usagePos ? ` ${usagePos}` : ''} [flags]`, '', ...spec.description.split('\n').map((l) => (l ? `  ${l}` : ''))];
  if (spec.positionals.length) {
    L.push('', 'arguments:');
    for (const p of spec.positionals) L.push(...row(p.name, p.help));
  }
  const groups = new Map<string, Flag[]>();
  for (const f of spec.flags) groups.set(f.group ?? 'flags', [...(groups.get(f.group ?? 'flags') ?? []), f]);
  for (const [g, fs] of groups) {
    L.push('', `${g}:`);
    for (const f of fs) {
      const name = `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.type === 'boolean' ? '' : ` ${f.oneOf ? f.oneOf.join('|') : f.metavar ?? 'N'}`}`;
      const extra: string[] = [];
      if (f.type !== 'boolean' && f.type !== 'string' && !f.oneOf) extra.push(describeRange(f));
      if (f.note) extra.push(f.note);
      if (f.defaultText ?? f.default !== undefined) extra.push(`default ${f.defaultText ?? f.default}`);
      if (f.multiple) extra.push('repeatable');
      L.push(...row(name, `${f.help}${extra.length ? ` [${extra.join('; ')}]` : ''}`));
    }
  }
  L.push('', 'other:', ...row('-h, --help', 'this help'));
  if (spec.epilog) L.push('', ...spec.epilog.split('\n'));
  return L.join('\n');
}

const COL = 30, WIDTH = 118;
/** "  name   text" with the text wrapped at WIDTH and indented under the text column. */
function row(name: string, text: string): string[] {
  const words = text.split(/\s+/);
  const out: string[] = [];
  let line = `  ${name}`.padEnd(COL);
  if (`  ${name}`.length >= COL) { out.push(line.trimEnd()); line = ' '.repeat(COL); } // no space left before the text
  let empty = true;
  for (const w of words) {
    if (!empty && line.length + 1 + w.length > WIDTH) { out.push(line); line = ' '.repeat(COL); empty = true; }
    line += (empty ? '' : ' ') + w;
    empty = false;
  }
  out.push(line);
  return out;
}

/** Why a JSON output flag is in every spec that has one: the same text everywhere. */
export const JSON_FLAG = {
  name: 'json', type: 'boolean', group: 'output',
  help: 'print one JSON object on stdout at the end (nothing else on stdout); progress and notes go to stderr as JSON lines',
} as const satisfies Flag;
