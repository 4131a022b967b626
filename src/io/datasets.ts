/** Text loading and calibration sampling (IST-DASLab gptq datautils.py get_wikitext2/get_c4, AutoGPTQ examples). */
import { promises as fs, createReadStream, existsSync } from '../platform/fs.ts';
import { createInterface } from '../platform/readline.ts';
import { join, extname } from '../platform/path.ts';
import { fail } from '../errors.ts';
import { ASSETS_DIR } from '../paths.ts';
import { mulberry32, randint } from './random.ts';
import { resolveDataset, type HubOptions } from './hub.ts';
import { readTextColumn } from './tables.ts';

export type DatasetName = 'wikitext2' | 'c4';
const NAMES: Record<string, DatasetName> = { wikitext2: 'wikitext2', 'wikitext-2': 'wikitext2', wikitext: 'wikitext2', c4: 'c4' };

export interface LoadTextOptions extends HubOptions {
  /** A file, or a directory searched like GPTQJS_DATASETS (must then hold the dataset). */
  datasetPath?: string;
  /** Try the Hub before the embedded assets/c4_demo.jsonl (c4 only). */
  preferHub?: boolean;
  /** Keep at most this many documents. */
  limit?: number;
}

/** Known dataset name → canonical name, or undefined for a path. */
export function datasetName(s: string): DatasetName | undefined {
  return NAMES[s.toLowerCase()];
}

async function findIn(dir: string, name: DatasetName): Promise<string | undefined> {
  const fixed = name === 'wikitext2' ? ['wikitext-2-raw/wiki.test.raw', 'wiki.test.raw'] : ['c4/c4_demo.jsonl'];
  for (const f of fixed) if (existsSync(join(dir, f))) return join(dir, f);
  if (name === 'c4') {
    for (const sub of [dir, join(dir, 'c4')]) {
      const files = await fs.readdir(sub).catch(() => [] as string[]);
      const hit = files.filter((f) => /^c4.*\.jsonl$/.test(f)).sort()[0];
      if (hit) return join(sub, hit);
    }
  }
  return undefined;
}

/**
 * Where a dataset name resolves: opts.datasetPath (file or dir), $GPTQJS_DATASETS dir, embedded
 * assets/c4_demo.jsonl (c4), then the Hub cache/download (src/io/hub.ts).
 */
export async function resolveDatasetPath(name: DatasetName, opts: LoadTextOptions = {}): Promise<string> {
  if (opts.datasetPath) {
    // An explicit path must hold the data: no silent fallback.
    const p = opts.datasetPath;
    const st = await fs.stat(p).catch(() => null);
    if (st?.isFile()) return p;
    if (!st) fail(`dataset path ${p} does not exist`);
    const f = await findIn(p, name);
    if (f) return f;
    fail(`dataset ${name}: not found in ${p} (looked for ${name === 'c4' ? 'c4/c4_demo.jsonl, c4*.jsonl' : 'wikitext-2-raw/wiki.test.raw, wiki.test.raw'})`);
  }
  const envDir = process.env.GPTQJS_DATASETS;
  if (envDir) { const f = await findIn(envDir, name); if (f) return f; }
  const embedded = join(ASSETS_DIR, 'c4_demo.jsonl');
  if (name === 'c4' && !opts.preferHub && existsSync(embedded)) return embedded;
  try {
    return await resolveDataset(name, opts);
  } catch (e) {
    if (name === 'c4' && existsSync(embedded)) return embedded;
    if (envDir) fail(`dataset ${name}: not found under GPTQJS_DATASETS=${envDir}; ${(e as Error).message}`);
    throw e;
  }
}

/** Documents of a text file: .jsonl ({text} per line), .json (array of strings or {text}), .parquet ("text" column), else plain-text lines. */
export async function readTextFile(path: string, limit = Infinity): Promise<string[]> {
  const st = await fs.stat(path).catch(() => null);
  if (!st?.isFile()) fail(`dataset file ${path} does not exist`);
  const ext = extname(path).toLowerCase();
  let docs: string[] = [];
  if (ext === '.parquet') docs = await readTextColumn(path, 'text', limit); // Hub datasets (src/io/tables.ts)
  else if (ext === '.jsonl') {
    // Streamed line by line: a C4 shard is larger than V8's maximum string length.
    const rl = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of rl) {
      n++;
      if (!line.trim()) continue;
      let o: any;
      try { o = JSON.parse(line); } catch { rl.close(); fail(`${path}:${n}: not valid JSON`); }
      if (typeof o?.text !== 'string') { rl.close(); fail(`${path}:${n}: expected an object with a string "text" field`); }
      docs.push(o.text);
      if (docs.length >= limit) { rl.close(); break; }
    }
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
    // Plain text: one document per line, like datasets' "text" loader and the wikitext rows (CRLF → LF).
    const text = (await fs.readFile(path, 'utf8')).replace(/\r\n/g, '\n');
    docs = text.split('\n');
    if (docs.length && docs[docs.length - 1] === '') docs.pop();
  }
  if (docs.length > limit) docs = docs.slice(0, limit);
  if (!docs.some((d) => d.trim() !== '')) fail(`dataset file ${path} contains no text`);
  return docs;
}

/** Load documents from a file path or a dataset name ("wikitext2", "c4"). */
export async function loadText(pathOrName: string, opts: LoadTextOptions = {}): Promise<string[]> {
  const name = existsSync(pathOrName) ? undefined : datasetName(pathOrName);
  if (!name && !existsSync(pathOrName)) fail(`dataset ${pathOrName}: no such file (known names: wikitext2, c4)`);
  return readTextFile(name ? await resolveDatasetPath(name, opts) : pathOrName, opts.limit);
}

export type Tokenize = ((s: string) => ArrayLike<number>) | { encode(s: string): ArrayLike<number> };
const asFn = (t: Tokenize) => (typeof t === 'function' ? t : (s: string) => t.encode(s));

/**
 * Token stream for perplexity. "wikitext2"/"text": "\n\n".join(docs) tokenized once (gptq get_wikitext2);
 * "c4": " ".join(first 1100 docs) (gptq get_c4 validation set; the caller truncates to 256*seqlen).
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
  /** For string lists: "random" (default) = gptq C4 windows; "examples" = each string is one sample (AutoGPTQ). */
  mode?: 'random' | 'examples';
}
export interface CalibrationSet {
  inputIds: Int32Array[];
  /** One mask per sample (all ones for random windows). */
  attentionMask: Uint8Array[];
  /** True when no single document exceeded seqlen tokens and windows came from "\n\n"-joined documents. */
  concatenated: boolean;
}

/**
 * Calibration samples. Strings (mode "random"): gptq get_c4 — pick a random document, retry while its
 * token length <= seqlen, take a random seqlen window (start in [0, len-seqlen-1]). If no document is long
 * enough, windows come from all documents joined with "\n\n". Pre-tokenized examples and strings in
 * mode "examples" are used as given (all of them), truncated to seqlen.
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
  const r = mulberry32(seed);
  const cache = new Map<number, ArrayLike<number>>();
  const short = new Set<number>();
  let totalShort = 0;
  const pick = (): ArrayLike<number> | undefined => {
    for (;;) {
      if (short.size === docs.length) return undefined;
      const i = randint(r, 0, docs.length - 1);
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
    const a = randint(r, 0, ids.length - seqlen - 1);
    out.inputIds.push(Int32Array.from({ length: seqlen }, (_, k) => ids[a + k]!));
  }
  if (out.concatenated) {
    const all = tok(docs.join('\n\n'));
    if (all.length < seqlen)
      fail(`calibration: ${docs.length} documents give only ${all.length} tokens (${totalShort} tokenized separately), fewer than seqlen ${seqlen}`);
    for (let s = 0; s < nsamples; s++) {
      const a = randint(r, 0, all.length - seqlen);
      out.inputIds.push(Int32Array.from({ length: seqlen }, (_, k) => all[a + k]!));
    }
  }
  out.attentionMask = out.inputIds.map((x) => new Uint8Array(x.length).fill(1));
  return out;
}
