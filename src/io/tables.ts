/**
 * Rows of a dataset table: local JSON / JSON Lines / CSV / TSV / Parquet files, a folder of split files, or a Hugging
 * Face Hub dataset repo (whose data files are Parquet). Parquet is read with hyparquet (+ hyparquet-compressors for
 * zstd/gzip/brotli/lz4 pages), CSV with csv-parse. Rows are plain objects keyed by column name, as 🤗 datasets gives
 * them: nested Parquet structs and lists become objects and arrays, int64 values become numbers (exact up to 2^53).
 */
import { promises as fs, createReadStream } from '../platform/fs.ts';
import { createInterface } from '../platform/readline.ts';
import { basename, extname, join, relative } from '../platform/path.ts';
import { parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { parse as parseCsv } from 'csv-parse/browser/esm/sync'; // the browser build (own Buffer polyfill) runs in Node and in pages
import { fail } from '../errors.ts';
import { isHubId, resolveDatasetFiles, type HubOptions } from './hub.ts';

export type Row = Record<string, unknown>;

/** File extensions readTable understands. */
export const TABLE_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv', '.tsv', '.parquet'] as const;
const isTable = (p: string) => (TABLE_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase());

/** int64 → number (hyparquet returns BigInt), recursively through structs and lists. */
function plain(v: unknown, where: string): unknown {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail(`${where}: integer ${v} does not fit a JavaScript number exactly`);
    return Number(v);
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, where));
  if (v && typeof v === 'object' && !(v instanceof Date) && !(v instanceof Uint8Array)) {
    const o: Row = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x, where);
    return o;
  }
  return v;
}

const isRow = (v: unknown): v is Row => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Rows of one file, chosen by extension: .jsonl/.ndjson (one JSON object per line, streamed), .json (an array of
 * objects, or JSON Lines as 🤗 datasets' json loader also accepts), .csv/.tsv (header row; numeric cells become numbers,
 * as pandas infers them for 🤗 datasets' csv loader), .parquet. `limit`: keep the first N rows.
 * Throws GptqError naming the file (and line/row) for a missing file, bad JSON, a row that is not an object, or an
 * unreadable Parquet file.
 */
export async function readTable(path: string, o: { limit?: number } = {}): Promise<Row[]> {
  const limit = o.limit ?? Infinity;
  const st = await fs.stat(path).catch(() => null);
  if (!st?.isFile()) fail(`table ${path} does not exist`);
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return readJsonLines(path, limit);
  if (ext === '.json') {
    const text = await fs.readFile(path, 'utf8');
    let v: unknown;
    try { v = JSON.parse(text); } catch (e) {
      if (text.trimStart().startsWith('{')) return readJsonLines(path, limit); // JSON Lines in a .json file
      fail(`${path}: not valid JSON (${String((e as Error).message).split('\n')[0]})`);
    }
    if (!Array.isArray(v)) fail(`${path}: expected a JSON array of objects (or JSON Lines)`);
    v.forEach((r, i) => { if (!isRow(r)) fail(`${path}: item ${i} is not an object`); });
    return (v as Row[]).slice(0, limit);
  }
  if (ext === '.csv' || ext === '.tsv') {
    try {
      const rows = parseCsv(await fs.readFile(path, 'utf8'), {
        columns: true, delimiter: ext === '.tsv' ? '\t' : ',', bom: true, skip_empty_lines: true, cast: (v, c) => (c.quoting || v.trim() === '' || !Number.isFinite(Number(v)) ? v : Number(v)),
        ...(Number.isFinite(limit) ? { to: limit } : {}),
      }) as Row[];
      return rows;
    } catch (e) { fail(`${path}: cannot parse ${ext.slice(1).toUpperCase()} (${String((e as Error).message).split('\n')[0]})`); }
  }
  if (ext === '.parquet') {
    try {
      const bytes = await fs.readFile(path); // the whole file: an ArrayBuffer is hyparquet's AsyncBuffer (Node and browser)
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      const metadata = await parquetMetadataAsync(file);
      const n = Number(metadata.num_rows);
      const rows = await parquetReadObjects({ file, metadata, compressors, rowStart: 0, rowEnd: Math.min(n, limit) });
      return rows.map((r, i) => plain(r, `${path} row ${i}`) as Row);
    } catch (e) {
      if ((e as Error).name === 'GptqError') throw e;
      fail(`${path}: cannot read Parquet (${String((e as Error).message).split('\n')[0]})`);
    }
  }
  fail(`table ${path}: unknown format ${ext || '(no extension)'} (expected ${TABLE_EXTENSIONS.join(', ')})`);
}

async function readJsonLines(path: string, limit: number): Promise<Row[]> {
  // Streamed line by line: a large shard does not fit one JavaScript string.
  const rl = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  const rows: Row[] = [];
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (rows.length >= limit) break;
      if (!line.trim()) continue;
      let v: unknown;
      try { v = JSON.parse(line); } catch { fail(`${path}:${n}: not valid JSON`); }
      if (!isRow(v)) fail(`${path}:${n}: expected a JSON object`);
      rows.push(v);
    }
  } finally { rl.close(); }
  return rows;
}

/**
 * The string column `column` of a table file (e.g. the "text" of a wikitext/c4 parquet), first `limit` rows.
 * Throws GptqError when a row's value is not a string.
 */
export async function readTextColumn(path: string, column = 'text', limit?: number): Promise<string[]> {
  const rows = await readTable(path, { limit });
  return rows.map((r, i) => {
    const t = r[column];
    if (typeof t !== 'string') fail(`${path}: row ${i} has no string "${column}" column (columns: ${Object.keys(r).join(', ') || 'none'})`);
    return t;
  });
}

/** Does repo-relative `path` hold split `split` (of config `config`)? Hub layouts: `[config/]split[-NNNNN-of-NNNNN].ext`, `data/split-…`, `config/split/…`. */
export function isSplitFile(path: string, split: string, config?: string): boolean {
  if (!isTable(path)) return false;
  const parts = path.split(/[\\/]/);
  const file = parts[parts.length - 1]!, dirs = parts.slice(0, -1);
  const stem = file.slice(0, file.length - extname(file).length);
  const named = stem === split || stem.startsWith(`${split}-`) || stem.startsWith(`${split}.`) || dirs.at(-1) === split;
  if (!named) return false;
  if (config) return dirs.includes(config);
  return true;
}

export interface SplitSource extends HubOptions {
  /** Hub dataset config (subset) name, e.g. "ARC-Easy"; also a subfolder of a local dataset folder. */
  config?: string;
  /** Keep the first N rows. */
  limit?: number;
}

/**
 * Rows of one split of a dataset given as (1) a table file: the file itself, whatever the split; (2) a folder: its
 * files of that split (`test.jsonl`, `test-00000-of-00001.parquet`, `ARC-Easy/test-….parquet`, recursively); (3) a Hub
 * dataset id `owner/name`: the repo's files of that split (and config), downloaded to the cache (src/io/hub.ts;
 * offline from the cache). Several files of a split are concatenated in path order. `split` may list fallbacks
 * (`['test', 'validation']`): the first split found is used and returned.
 * Throws GptqError when nothing matches.
 */
export async function loadSplit(source: string, split: string | readonly string[], o: SplitSource = {}): Promise<{ rows: Row[]; split: string; files: string[] }> {
  const splits = typeof split === 'string' ? [split] : split;
  const st = await fs.stat(source).catch(() => null);
  const want = `split ${splits.join(' or ')}${o.config ? ` of config ${o.config}` : ''}`;
  let files: string[] = [], found = splits[0]!;
  if (st?.isFile()) files = [source];
  else if (st?.isDirectory()) {
    const all = (await fs.readdir(source, { recursive: true })).map(String).filter(isTable).sort();
    for (const s of splits) {
      files = all.filter((f) => isSplitFile(f, s, o.config)).map((f) => join(source, f));
      if (files.length) { found = s; break; }
    }
    if (!files.length) fail(`dataset folder ${source}: no file for ${want} (looked for ${splits.map((s) => `${o.config ? `${o.config}/` : ''}${s}.jsonl|.json|.csv|.parquet or ${s}-*.parquet`).join(', ')}; found ${all.slice(0, 8).join(', ') || 'no table files'})`);
  } else if (isHubId(source)) {
    let first: unknown;
    for (const s of splits) {
      try { files = await resolveDatasetFiles(source, (p) => isSplitFile(p, s, o.config), `split ${s}${o.config ? ` of config ${o.config}` : ''}`, o); found = s; break; } catch (e) { first ??= e; }
    }
    if (!files.length) throw first; // the error of the preferred split
  } else fail(`dataset ${source}: no such file or folder (and not a Hub id owner/name)`);
  const rows: Row[] = [];
  for (const f of files) {
    rows.push(...await readTable(f, { limit: o.limit === undefined ? undefined : o.limit - rows.length }));
    if (o.limit !== undefined && rows.length >= o.limit) break;
  }
  return { rows, split: found, files: files.map((f) => (st?.isDirectory() ? relative(source, f).split(/[\\/]/).join('/') : basename(f))) };
}
