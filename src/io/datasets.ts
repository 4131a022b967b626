/**
 * Text loading, perplexity text and calibration sampling by the GPTQ reference recipes (IST-DASLab gptq
 * datautils.py get_wikitext2 / get_c4 / get_c4_new, which AutoGPTQ's examples copy); the recipes are stated in the
 * README ("Perplexity and datasets").
 */
import { promises as fs, createReadStream, existsSync } from '../platform/fs.ts';
import { createHash } from '../platform/crypto.ts';
import { createInterface } from '../platform/readline.ts';
import { createGunzip } from '../platform/zlib.ts';
import { join, extname, basename } from '../platform/path.ts';
import { fail } from '../errors.ts';
import { ASSETS_DIR } from '../paths.ts';
import { PythonRandom } from './random.ts';
import { resolveDataset, type HubOptions } from './hub.ts';
import { readTextColumn } from './tables.ts';

export type DatasetName = 'wikitext2' | 'c4';
export type Split = 'train' | 'validation' | 'test';
const NAMES: Record<string, DatasetName> = { wikitext2: 'wikitext2', 'wikitext-2': 'wikitext2', wikitext: 'wikitext2', c4: 'c4' };
/** The embedded 300-document C4 sample: the stand-in for c4 when no shard is at hand. */
export const EMBEDDED_C4 = join(ASSETS_DIR, 'c4_demo.jsonl');
/** How a run that used the embedded sample records its dataset (quantize_config.json meta.calibration, model card). */
export const EMBEDDED_C4_DATASET = 'c4 (embedded c4_demo.jsonl sample, 300 docs)';
/** Start of the note said when c4 resolves to the embedded sample. */
export const EMBEDDED_C4_NOTE = 'c4: using the embedded ';

export interface LoadTextOptions extends HubOptions {
  /** A file, or a directory searched like GPTQJS_DATASETS (must then hold the dataset). */
  datasetPath?: string;
  /** Try the Hub before the embedded assets/c4_demo.jsonl (c4 only). */
  preferHub?: boolean;
  /** Keep at most this many documents. */
  limit?: number;
  /** The split a dataset name stands for; default "test" for wikitext2, "train" for c4 (the calibration split). */
  split?: Split;
  /**
   * Without a dataset name (gptq ppl with no --dataset), the Hub's wikitext2 is only worth a short try before the
   * embedded C4 sample: the Hub must answer (headers) within this many ms (default 5000), so that an unreachable
   * network (slow DNS failures, a silent proxy) costs seconds, not the system's connect timeout. HF_HUB_OFFLINE /
   * GPTQJS_OFFLINE skip the try.
   */
  probeTimeoutMs?: number;
  /** Told what was loaded when it is not simply the named file (reconstructed rows, a stand-in sample). */
  onNote?: (message: string) => void;
}

/** Known dataset name → canonical name, or undefined for a path. */
export function datasetName(s: string): DatasetName | undefined {
  return NAMES[s.toLowerCase()];
}

const WIKI_FILES: Record<Split, string> = { test: 'wiki.test.raw', train: 'wiki.train.raw', validation: 'wiki.valid.raw' };
const defaultSplit = (name: DatasetName): Split => (name === 'wikitext2' ? 'test' : 'train');

function lookedFor(name: DatasetName, split: Split): string {
  if (name === 'wikitext2') return `wikitext-2-raw/${WIKI_FILES[split]}, ${WIKI_FILES[split]}`;
  return split === 'validation' ? 'c4/c4-validation*.json[l][.gz], c4-validation*' : 'c4/c4_demo.jsonl, c4*.jsonl, c4-train*.json[l][.gz]';
}

async function findIn(dir: string, name: DatasetName, split: Split): Promise<string | undefined> {
  if (name === 'wikitext2') {
    for (const f of [`wikitext-2-raw/${WIKI_FILES[split]}`, WIKI_FILES[split]]) if (existsSync(join(dir, f))) return join(dir, f);
    return undefined;
  }
  if (split === 'test') return undefined;
  if (split === 'train' && existsSync(join(dir, 'c4', 'c4_demo.jsonl'))) return join(dir, 'c4', 'c4_demo.jsonl');
  const re = split === 'validation' ? /^c4-validation.*\.json(l)?(\.gz)?$/ : /^(c4-train.*\.json(l)?(\.gz)?|c4(?!-validation).*\.jsonl)$/;
  for (const sub of [dir, join(dir, 'c4')]) {
    const files = await fs.readdir(sub).catch(() => [] as string[]);
    const hit = files.filter((f) => re.test(f)).sort()[0];
    if (hit) return join(sub, hit);
  }
  return undefined;
}

/**
 * Where a dataset name resolves: opts.datasetPath (file or dir), $GPTQJS_DATASETS dir, the cache
 * (src/io/hub.ts resolveDataset, which downloads the c4 shards and the Hub's wikitext2 parquet), with the embedded
 * assets/c4_demo.jsonl as c4's stand-in: tried before the Hub unless preferHub, and used (with a note) when nothing
 * else is found.
 */
export async function resolveDatasetPath(name: DatasetName, opts: LoadTextOptions = {}): Promise<string> {
  const split = opts.split ?? defaultSplit(name);
  if (opts.datasetPath) {
    // An explicit path must hold the data: no silent fallback.
    const p = opts.datasetPath;
    const st = await fs.stat(p).catch(() => null);
    if (st?.isFile()) return p;
    if (!st) fail(`dataset path ${p} does not exist`);
    const f = await findIn(p, name, split);
    if (f) return f;
    const what = split === defaultSplit(name) ? name : `${name} (${split} split${name === 'wikitext2' && split === 'train' ? ', which GPTQ calibrates on' : ''})`;
    fail(`dataset ${what}: not found in ${p} (looked for ${lookedFor(name, split)})`);
  }
  const envDir = process.env.GPTQJS_DATASETS;
  if (envDir) { const f = await findIn(envDir, name, split); if (f) return f; }
  const standIn = () => {
    opts.onNote?.(`${EMBEDDED_C4_NOTE}${basename(EMBEDDED_C4)} (300 C4 documents) as a stand-in for ${split === 'validation' ? 'en/c4-validation.00000-of-00008.json.gz' : 'en/c4-train.00000-of-01024.json.gz'}`);
    return EMBEDDED_C4;
  };
  // the calibration default stays offline and fast: the embedded sample before the 300 MB train shard
  if (name === 'c4' && split === 'train' && !opts.preferHub && existsSync(EMBEDDED_C4)) return standIn();
  try {
    if (name === 'c4' && split === 'validation' && !opts.preferHub) return await resolveDataset(name, { ...opts, offline: true }, split);
    return await resolveDataset(name, opts, split);
  } catch (e) {
    if (name === 'c4' && existsSync(EMBEDDED_C4)) return standIn();
    if (envDir) fail(`dataset ${name}: not found under GPTQJS_DATASETS=${envDir}; ${(e as Error).message}`);
    throw e;
  }
}

/**
 * Documents of a text file: .jsonl / .json / .json.gz with one {"text"} object per line (the C4 shards), .json
 * holding an array of strings or {text}, .parquet (the "text" column: the Hub's dataset copies, src/io/tables.ts),
 * else plain-text lines (CRLF → LF, without their newline).
 */
export async function readTextFile(path: string, limit = Infinity): Promise<string[]> {
  const st = await fs.stat(path).catch(() => null);
  if (!st?.isFile()) fail(`dataset file ${path} does not exist`);
  const gz = path.toLowerCase().endsWith('.gz');
  const ext = extname(gz ? path.slice(0, -3) : path).toLowerCase();
  let docs: string[] = [];
  const jsonArray = ext === '.json' && !gz && /^\s*\[/.test(await firstChars(path));
  if (ext === '.parquet') docs = await readTextColumn(path, 'text', limit); // Hub datasets (src/io/tables.ts)
  else if (ext === '.jsonl' || (ext === '.json' && !jsonArray)) {
    // Streamed line by line: a C4 shard is larger than V8's maximum string length.
    const input = gz ? createReadStream(path).pipe(createGunzip()) : createReadStream(path);
    const rl = createInterface({ input, crlfDelay: Infinity });
    let n = 0;
    try {
      for await (const line of rl) {
        n++;
        if (!line.trim()) continue;
        let o: any;
        try { o = JSON.parse(line); } catch { fail(`${path}:${n}: not valid JSON`); }
        if (typeof o?.text !== 'string') fail(`${path}:${n}: expected an object with a string "text" field`);
        docs.push(o.text);
        if (docs.length >= limit) break;
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'Z_DATA_ERROR') fail(`${path}: not a valid gzip file`);
      throw e;
    } finally { rl.close(); input.destroy(); }
  } else if (ext === '.json') {
    let v: unknown;
    try { v = JSON.parse(await fs.readFile(path, 'utf8')); } catch (e: any) { fail(`${path}: not valid JSON (${String(e.message).split('\n')[0]})`); }
    if (!Array.isArray(v)) fail(`${path}: expected a JSON array of strings or of {"text": …} objects`);
    docs = v.map((x, i) => {
      const t = typeof x === 'string' ? x : x && typeof x === 'object' ? (x as any).text : undefined;
      if (typeof t !== 'string') fail(`${path}: item ${i} is neither a string nor an object with a string "text" field`);
      return t;
    });
  } else {
    // Plain text: one document per line, like datasets' "text" loader (CRLF → LF).
    const text = (await fs.readFile(path, 'utf8')).replace(/\r\n/g, '\n');
    docs = text.split('\n');
    if (docs.length && docs[docs.length - 1] === '') docs.pop();
  }
  if (docs.length > limit) docs = docs.slice(0, limit);
  if (!docs.some((d) => d.trim() !== '')) fail(`dataset file ${path} contains no text`);
  return docs;
}

async function firstChars(path: string): Promise<string> {
  const h = await fs.open(path, 'r');
  try { const b = new Uint8Array(64); const { bytesRead } = await h.read(b, 0, 64, 0); return new TextDecoder().decode(b.subarray(0, bytesRead)); } finally { await h.close(); }
}

/**
 * The published facts of HF `wikitext` wikitext-2-raw-v1 (datasets' dataset_infos.json: num_examples, num_bytes =
 * UTF-8 text bytes + 4·(rows + 1) Arrow offsets) and of the original test file wiki.test.raw (1,290,590 bytes,
 * sha256 173c87a5…, as distributed in wikitext-2-raw-v1.zip and mirrored by llama.cpp's CI data).
 */
export const WIKITEXT2_RAW = {
  test: { rows: 4358, textBytes: 1305092 - 4 * 4359, fileBytes: 1290590, sha256: '173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08' },
  train: { rows: 36718, textBytes: 11061733 - 4 * 36719 },
  validation: { rows: 3760, textBytes: 1159292 - 4 * 3761 },
} as const;

/** Python's str.isspace() characters (str.strip() in datasets' wikitext builder). */
const PY_BLANK = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;
const HEADING = /^ (=(?: =)*) (?:.*) \1 $/;
/** wiki.test.raw lines that look like headings but sit inside a paragraph (an equation split over lines). */
const NOT_HEADINGS = new Set([' = 1 rad / s and a nominal impedance k = ', ' = 1 henry and capacitance C = ']);
/** The one article title of wiki.test.raw preceded by a single blank line instead of two. */
const ONE_BLANK_BEFORE = new Set([' = The Hustler ( film ) = ']);

export interface WikitextRows {
  /** HF rows: each line of the raw file with its "\n", whitespace-only lines as "". */
  rows: string[];
  /** The file had no blank lines (e.g. ../shared's CRLF copy) and they were put back by WikiText's layout. */
  reconstructed: boolean;
  /** The rows are byte-for-byte the published split (test: sha256 of the original file; train/validation: row count and text bytes). */
  verified: boolean;
}

/**
 * The rows `load_dataset("wikitext", "wikitext-2-raw-v1", split)` yields for a wiki.*.raw file (datasets'
 * wikitext.py: Python text-mode lines, so CRLF → LF, each kept with its "\n"; a line that is only whitespace becomes
 * ""). A copy without blank lines gets them back: WikiText puts one blank line before and after every heading
 * " = … = " (" = = … = = " for sections), a second one before each article title but the first, one at the start
 * and one at the end; three lines of wiki.test.raw break the pattern and are listed above. Checked: this rebuilds
 * wiki.test.raw byte-for-byte (sha256) from ../shared/data/wikitext-2-raw/wiki.test.raw; for other splits the rule
 * is unverified (verified is then true only if the row count and byte count match the published ones).
 */
export function wikitextRows(raw: string, split: Split = 'test'): WikitextRows {
  const text = raw.replace(/\r\n?/g, '\n');
  const lines = text.split('\n');
  const trailingNewline = lines[lines.length - 1] === '';
  if (trailingNewline) lines.pop();
  const withNl = (i: number) => (i < lines.length - 1 || trailingNewline ? '\n' : '');
  let rows: string[];
  const reconstructed = lines.length > 0 && !lines.some((l) => PY_BLANK.test(l));
  if (!reconstructed) rows = lines.map((l, i) => (PY_BLANK.test(l) ? '' : l + withNl(i)));
  else {
    rows = [];
    let afterHeading = false;
    lines.forEach((l, i) => {
      const m = NOT_HEADINGS.has(l) ? null : HEADING.exec(l);
      let blanks = afterHeading ? 1 : 0;
      if (m) blanks += i === 0 ? 1 : m[1] === '=' && !ONE_BLANK_BEFORE.has(l) ? 2 : 1;
      for (let k = 0; k < blanks; k++) rows.push('');
      rows.push(l + '\n');
      afterHeading = !!m;
    });
    rows.push('');
  }
  const known = WIKITEXT2_RAW[split];
  let verified = rows.length === known.rows && new TextEncoder().encode(rows.join('')).length === known.textBytes;
  if (verified && 'sha256' in known) verified = createHash('sha256').update(wikitextFileText(rows), 'utf8').digest('hex') === known.sha256;
  return { rows, reconstructed, verified };
}

/** The raw file the rows come from (blank rows as " \n"), as AutoGPTQ's/GPTQModel's Perplexity class rebuilds it. */
export function wikitextFileText(rows: string[]): string {
  return rows.map((r) => r || ' \n').join('');
}

const WIKI_FILE = /^wiki\.(test|train|valid)\.raw$/;
const splitOfWikiFile = (path: string): Split | undefined => {
  const m = WIKI_FILE.exec(basename(path));
  return m ? (m[1] === 'valid' ? 'validation' : (m[1] as Split)) : undefined;
};

async function readWikitext(path: string, split: Split, onNote?: (m: string) => void): Promise<string[]> {
  const st = await fs.stat(path).catch(() => null);
  if (!st?.isFile()) fail(`dataset file ${path} does not exist`);
  const r = wikitextRows(await fs.readFile(path, 'utf8'), split);
  if (!r.rows.some((x) => x !== '')) fail(`dataset file ${path} contains no text`);
  const what = `wikitext2 ${split}: ${path}`;
  if (r.reconstructed && r.verified) onNote?.(`${what} has no blank lines; put back the ${r.rows.length - r.rows.filter(Boolean).length} blank rows: the ${r.rows.length} rows are exactly HF wikitext-2-raw-v1 ${split} (checked against the original file's sha256)`);
  else if (r.reconstructed) onNote?.(`${what} has no blank lines; put them back by WikiText's heading layout (${r.rows.length} rows, unverified: not the published ${split} split byte for byte, so perplexity may differ slightly from the reference)`);
  else if (!r.verified) onNote?.(`${what}: ${r.rows.length} rows, not byte-identical to the published ${split} split`);
  return r.rows;
}

/**
 * Documents from a file path or a dataset name ("wikitext2", "c4"). wikitext2 (and any file named wiki.*.raw)
 * gives HF wikitext-2-raw-v1 rows (see wikitextRows: lines with their "\n", blank rows ""), so "\n\n".join(rows)
 * is GPTQ's text; c4 gives the documents of the split's shard (or the embedded stand-in, with a note).
 */
export async function loadText(pathOrName: string, opts: LoadTextOptions = {}): Promise<string[]> {
  const name = existsSync(pathOrName) ? undefined : datasetName(pathOrName);
  if (!name && !existsSync(pathOrName)) fail(`dataset ${pathOrName}: no such file (known names: wikitext2, c4)`);
  const path = name ? await resolveDatasetPath(name, opts) : pathOrName;
  // a raw file's lines become rows here; a table (the Hub's parquet copy) holds the rows already
  const raw = !/\.(parquet|jsonl?|gz)$/i.test(path);
  const wikiSplit = name === 'wikitext2' && raw ? (opts.split ?? 'test') : splitOfWikiFile(path);
  if (wikiSplit) {
    const rows = await readWikitext(path, wikiSplit, opts.onNote);
    return opts.limit !== undefined && rows.length > opts.limit ? rows.slice(0, opts.limit) : rows;
  }
  return readTextFile(path, opts.limit);
}

/** What perplexity is measured on, as its recipe builds it. */
export interface EvalText {
  /** "wikitext2", "c4", or "file". */
  kind: DatasetName | 'file';
  /** The text tokenized once. */
  text: string;
  /** Where it came from (a path). */
  source: string;
  /** c4 keeps the first 256·seqlen tokens (gptq datautils get_c4_new). */
  maxTokens?: (seqlen: number) => number;
}

/**
 * The perplexity text of a dataset name or file, by the GPTQ recipe (IST-DASLab gptq datautils.py):
 * - wikitext2: "\n\n".join(rows of HF wikitext-2-raw-v1 test) (get_wikitext2), also for a file named wiki.*.raw;
 * - c4: " ".join(first 1100 documents of en/c4-validation.00000-of-00008.json.gz), first 256·seqlen tokens
 *   (get_c4_new, the "c4-new" of gptq's llama.py --new-eval; the embedded 300-document sample stands in, with a note);
 * - another .jsonl/.json file: its documents joined with "\n\n"; another text file: its text (CRLF → LF).
 * With no name, wikitext2 if a copy is found (datasetPath, GPTQJS_DATASETS, cache), else the embedded C4 sample
 * by the c4 recipe, with a note.
 */
/** fetch that gives up when no response (status + headers) came within `ms`; the body then streams unlimited. */
function answerWithin(ms: number, f: typeof fetch): typeof fetch {
  return async (input, init) => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms / 1000} s`)), ms);
    try {
      return await f(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, ac.signal]) : ac.signal });
    } finally { clearTimeout(timer); }
  };
}

export async function loadEvalText(pathOrName: string | undefined, opts: LoadTextOptions = {}): Promise<EvalText> {
  if (pathOrName === undefined) {
    try {
      return await loadEvalText('wikitext2', { ...opts, fetch: answerWithin(opts.probeTimeoutMs ?? 5000, opts.fetch ?? fetch) });
    } catch (e) {
      if (opts.datasetPath || !existsSync(EMBEDDED_C4)) throw e;
      opts.onNote?.(`no local wikitext2 (${(e as Error).message.replace(/^dataset wikitext2: /, '')}); measuring the embedded C4 sample instead — not comparable with published wikitext2 numbers`);
      const docs = await readTextFile(EMBEDDED_C4);
      return { kind: 'c4', text: docs.slice(0, 1100).join(' '), source: EMBEDDED_C4, maxTokens: (n) => 256 * n };
    }
  }
  const name = existsSync(pathOrName) ? undefined : datasetName(pathOrName);
  const o: LoadTextOptions = { ...opts, split: name === 'c4' ? 'validation' : name === 'wikitext2' ? 'test' : opts.split };
  const source = name ? await resolveDatasetPath(name, o) : pathOrName;
  if (!name && !existsSync(source)) fail(`dataset ${pathOrName}: no such file (known names: wikitext2, c4)`);
  if (name === 'wikitext2' || splitOfWikiFile(source)) {
    const rows = await loadText(name ?? source, { ...o, split: splitOfWikiFile(source) ?? 'test' });
    return { kind: 'wikitext2', text: rows.join('\n\n'), source };
  }
  if (name === 'c4') return { kind: 'c4', text: (await readTextFile(source, 1100)).join(' '), source, maxTokens: (n) => 256 * n };
  const ext = extname(source.replace(/\.gz$/i, '')).toLowerCase();
  if (ext === '.jsonl' || ext === '.json') return { kind: 'file', text: (await readTextFile(source)).join('\n\n'), source };
  const st = await fs.stat(source);
  if (!st.isFile()) fail(`dataset ${source} is not a file`);
  const text = (await fs.readFile(source, 'utf8')).replace(/\r\n/g, '\n');
  if (!text.trim()) fail(`dataset file ${source} contains no text`);
  return { kind: 'file', text, source };
}

export type Tokenize = ((s: string) => ArrayLike<number>) | { encode(s: string): ArrayLike<number> };
const asFn = (t: Tokenize) => (typeof t === 'function' ? t : (s: string) => t.encode(s));

/**
 * Token stream for perplexity from documents. "wikitext2"/"text": "\n\n".join(docs) tokenized once (gptq
 * get_wikitext2; exact when docs are HF rows that keep their "\n", as loadText("wikitext2") returns them);
 * "c4": " ".join(first 1100 docs) (gptq get_c4_new; the caller keeps the first 256·seqlen tokens). loadEvalText
 * does this from a name or file.
 */
export function evalTokens(tokenizer: Tokenize, texts: string[], kind: DatasetName | 'text' = 'text'): Int32Array {
  if (!texts.length) fail('evalTokens: no documents');
  const joined = kind === 'c4' ? texts.slice(0, 1100).join(' ') : texts.join('\n\n');
  return Int32Array.from(asFn(tokenizer)(joined));
}

export interface TokenizedExample { inputIds: ArrayLike<number>; attentionMask?: ArrayLike<number> }
export interface CalibrationOptions {
  nsamples?: number;
  seqlen?: number;
  seed?: number;
  /**
   * For string lists: "random" (default) = gptq get_c4 windows of random documents; "joined" = gptq get_wikitext2:
   * windows of "\n\n".join(strings); "examples" = each string is one sample (AutoGPTQ).
   */
  mode?: 'random' | 'joined' | 'examples';
}
export interface CalibrationSet {
  inputIds: Int32Array[];
  /** One mask per sample (all ones for random windows). */
  attentionMask: Uint8Array[];
  /** True when no single document exceeded seqlen tokens and windows came from "\n\n"-joined documents. */
  concatenated: boolean;
}

/**
 * Calibration samples, with Python's random seeded like the GPTQ scripts (random.seed(seed); PythonRandom), so the
 * same documents and tokenizer give the same windows as gptq datautils.py. Strings, mode "random": get_c4 — per
 * sample, randint(0, docs−1) until a document has more than seqlen tokens (gptq: ≥, which then fails in randint
 * for exactly seqlen), then a window starting at randint(0, len−seqlen−1); if no document is long enough, windows
 * of all documents joined with "\n\n". Mode "joined": get_wikitext2 — "\n\n".join(strings) tokenized once, each
 * window at randint(0, len−seqlen−1). Pre-tokenized examples and strings in mode "examples" are used as given (all
 * of them), truncated to seqlen.
 */
export function calibrationSamples(tokenize: Tokenize, source: string[] | TokenizedExample[],
                                   { nsamples = 128, seqlen = 2048, seed = 0, mode = 'random' }: CalibrationOptions = {}): CalibrationSet {
  if (!(Number.isInteger(seqlen) && seqlen > 0)) fail(`calibration: seqlen must be a positive integer, got ${seqlen}`);
  if (!(Number.isInteger(nsamples) && nsamples > 0)) fail(`calibration: nsamples must be a positive integer, got ${nsamples}`);
  if (!source.length) fail('calibration: no calibration data (0 documents)');
  const tok = asFn(tokenize);
  if (typeof source[0] !== 'string' || mode === 'examples') {
    const out: CalibrationSet = { inputIds: [], attentionMask: [], concatenated: false };
    source.forEach((ex, i) => {
      const e: TokenizedExample = typeof ex === 'string' ? { inputIds: tok(ex) } : ex;
      if (!e || !e.inputIds) fail(`calibration: example ${i} has no inputIds`);
      const n = Math.min(e.inputIds.length, seqlen);
      if (n === 0) fail(`calibration: example ${i} is empty`);
      if (e.attentionMask && e.attentionMask.length !== e.inputIds.length)
        fail(`calibration: example ${i} attentionMask length ${e.attentionMask.length} != inputIds length ${e.inputIds.length}`);
      out.inputIds.push(Int32Array.from({ length: n }, (_, k) => e.inputIds[k]!));
      out.attentionMask.push(e.attentionMask ? Uint8Array.from({ length: n }, (_, k) => (e.attentionMask![k] ? 1 : 0)) : new Uint8Array(n).fill(1));
    });
    return out;
  }
  const docs = source as string[];
  const r = new PythonRandom(seed);
  if (mode === 'joined') {
    const all = tok(docs.join('\n\n'));
    if (all.length <= seqlen) fail(`calibration: the joined text has ${all.length} tokens, not more than seqlen ${seqlen}`);
    const out: CalibrationSet = { inputIds: [], attentionMask: [], concatenated: true };
    for (let s = 0; s < nsamples; s++) {
      const a = r.randint(0, all.length - seqlen - 1);
      out.inputIds.push(Int32Array.from({ length: seqlen }, (_, k) => all[a + k]!));
      out.attentionMask.push(new Uint8Array(seqlen).fill(1));
    }
    return out;
  }
  const cache = new Map<number, ArrayLike<number>>();
  const short = new Set<number>();
  let totalShort = 0;
  const pick = (): ArrayLike<number> | undefined => {
    for (;;) {
      if (short.size === docs.length) return undefined;
      const i = r.randint(0, docs.length - 1);
      if (short.has(i)) continue;
      let ids = cache.get(i);
      if (!ids) {
        ids = tok(docs[i]!);
        if (ids.length <= seqlen) { short.add(i); totalShort += ids.length; continue; }
        cache.set(i, ids);
      }
      return ids;
    }
  };
  const out: CalibrationSet = { inputIds: [], attentionMask: [], concatenated: false };
  for (let s = 0; s < nsamples; s++) {
    const ids = pick();
    if (!ids) { out.concatenated = true; break; }
    const a = r.randint(0, ids.length - seqlen - 1);
    out.inputIds.push(Int32Array.from({ length: seqlen }, (_, k) => ids[a + k]!));
  }
  if (out.concatenated) {
    const all = tok(docs.join('\n\n'));
    if (all.length < seqlen)
      fail(`calibration: ${docs.length} documents give only ${all.length} tokens (${totalShort} tokenized separately), fewer than seqlen ${seqlen}`);
    for (let s = 0; s < nsamples; s++) {
      const a = r.randint(0, all.length - seqlen);
      out.inputIds.push(Int32Array.from({ length: seqlen }, (_, k) => all[a + k]!));
    }
  }
  out.attentionMask = out.inputIds.map((x) => new Uint8Array(x.length).fill(1));
  return out;
}

/**
 * Calibration windows of a dataset name or file by the GPTQ recipe: "c4" → get_c4 (random documents of the train
 * shard en/c4-train.00000-of-01024.json.gz, by default the embedded 300-document sample); "wikitext2" (or a
 * wiki.*.raw file) → get_wikitext2 (windows of "\n\n".join(train rows), wiki.train.raw — never the test split);
 * other files → get_c4 over their documents.
 */
export async function calibrationData(tokenize: Tokenize, pathOrName: string, o: LoadTextOptions & CalibrationOptions = {}): Promise<CalibrationSet> {
  const name = existsSync(pathOrName) ? undefined : datasetName(pathOrName);
  const wiki = name === 'wikitext2' || (!name && splitOfWikiFile(pathOrName) !== undefined);
  const docs = await loadText(pathOrName, { ...o, split: name ? 'train' : o.split });
  return calibrationSamples(tokenize, docs, { nsamples: o.nsamples, seqlen: o.seqlen, seed: o.seed, mode: wiki ? 'joined' : 'random' });
}
