/** Hugging Face Hub downloads (model files, the C4 calibration shard) into a local cache. */
import { promises as fs, createWriteStream, existsSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { listFiles, fileDownloadInfo, type RepoDesignation } from '@huggingface/hub';
import { fail } from '../errors.ts';
import { tempPathFor, writeFileAtomic } from './atomic.ts';
import { etaSeconds, type DownloadProgress, type ProgressCallback } from '../progress.ts';
import { findHfToken } from './hf-token.ts';

export interface HubOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Default $GPTQJS_CACHE or ~/.cache/gptqjs. */
  cacheDir?: string;
  /** Default from env HF_HUB_OFFLINE=1 / GPTQJS_OFFLINE=1. */
  offline?: boolean;
  /** Injectable fetch (tests, proxies). */
  fetch?: typeof fetch;
  hubUrl?: string;
  /** Default: env HF_TOKEN, else the token file huggingface_hub uses (src/io/hf-token.ts). */
  accessToken?: string;
  /** Download progress (task 'download': bytes per file and over all files); called a few times a second at most. */
  onProgress?: ProgressCallback;
}

const MANIFEST = '.gptqjs-complete.json';
/** Top-level repo files a model needs (weights must be safetensors). */
const MODEL_FILES = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|chat_template\.jinja|chat_template\.json|quantize_config\.json|quant_config\.json|[^/]+\.safetensors\.index\.json|[^/]+\.safetensors)$/;
/** The C4 shards GPTQ's get_c4 reads (IST-DASLab gptq datautils.py): train for calibration, validation for perplexity. */
const C4 = {
  repo: 'allenai/c4',
  train: { path: 'en/c4-train.00000-of-01024.json.gz', file: 'c4-train.00000-of-01024.jsonl' },
  validation: { path: 'en/c4-validation.00000-of-00008.json.gz', file: 'c4-validation.00000-of-00008.jsonl' },
};
const WIKITEXT_FILE = { train: 'wiki.train.raw', validation: 'wiki.valid.raw', test: 'wiki.test.raw' } as const;

const truthy = (v: string | undefined) => !!v && /^(1|true|yes|on)$/i.test(v);
export const envOffline = () => truthy(process.env.HF_HUB_OFFLINE) || truthy(process.env.GPTQJS_OFFLINE);
export const defaultCacheDir = () => process.env.GPTQJS_CACHE || join(homedir(), '.cache', 'gptqjs');
/** "owner/name" (not an existing path). */
export const isHubId = (s: string) => /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.includes('..');

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0]!;

const NET_CODES: Record<string, string> = {
  ENOTFOUND: 'DNS lookup failed', EAI_AGAIN: 'DNS lookup failed (temporary)', ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset', ETIMEDOUT: 'connection timed out', UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  ENETUNREACH: 'network unreachable', EHOSTUNREACH: 'host unreachable', CERT_HAS_EXPIRED: 'TLS certificate expired',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted', SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate not trusted',
};

/**
 * A request that never got an HTTP answer (DNS, connection, TLS): "cannot reach https://huggingface.co (ENOTFOUND:
 * DNS lookup failed); check the network or proxy (HTTPS_PROXY)…", else undefined. `upload`: no local-cache hint
 * (push has nothing to fall back on). Shared by downloads (describeHubError) and push (src/io/push.ts).
 */
export function networkCause(e: unknown, hubUrl: string, o: { upload?: boolean } = {}): string | undefined {
  const err = e as { statusCode?: number; cause?: { code?: string; message?: string }; code?: string };
  if (err?.statusCode !== undefined) return undefined;
  const code = err?.cause?.code ?? err?.code;
  const offline = o.upload ? '' : ', or set HF_HUB_OFFLINE=1 to use only the local cache';
  if (code) return `cannot reach ${hubUrl} (${code}: ${NET_CODES[code] ?? oneLine(err.cause ?? e)}); check the network or proxy (HTTPS_PROXY)${offline}`;
  if (e instanceof TypeError && /fetch failed/i.test(oneLine(e))) return `cannot reach ${hubUrl} (${oneLine(err.cause ?? e)}); check the network or proxy (HTTPS_PROXY)${offline}`;
  return undefined;
}

/**
 * Why a Hub request failed, in words that point at the real cause: the network (DNS, connection: nothing to do with
 * HF_TOKEN), authentication (401: private/gated repo without or with a refused token), permission (403: gated repo
 * whose terms were not accepted), or absence (404). HTTP status from @huggingface/hub's HubApiError or a Response.
 */
export function describeHubError(e: unknown, s: { hubUrl: string; accessToken?: string }): string {
  const net = networkCause(e, s.hubUrl);
  if (net) return net;
  const err = e as { statusCode?: number };
  const tok = s.accessToken ? 'HF_TOKEN is set but was not accepted for this repo' : 'no HF_TOKEN is set';
  switch (err?.statusCode) {
    case 401: return `HTTP 401: not found, or private/gated and needs authentication (${tok})`;
    case 403: return `HTTP 403: access denied (a gated repo: accept its terms on its Hub page with the account of HF_TOKEN; ${tok})`;
    case 404: return `HTTP 404: not found on the Hub (check the id and revision; a private repo also needs HF_TOKEN: ${tok})`;
    case 429: return 'HTTP 429: rate limited by the Hub; wait and retry (an HF_TOKEN raises the limit)';
    default: return err?.statusCode ? `HTTP ${err.statusCode}: ${oneLine(e)}` : oneLine(e);
  }
}

/** Throttled DownloadProgress for one download of several files. */
function downloadReporter(repo: string, files: { path: string; size: number }[], cb: ProgressCallback | undefined) {
  let total = files.reduce((a, f) => a + f.size, 0), before = 0, last = 0;
  const t0 = performance.now();
  return {
    file(index: number) {
      const f = files[index]!;
      return (fileBytes: number, fileDone: boolean, size?: number) => {
        if (!cb) return;
        if (!f.size && size) { f.size = size; total += size; } // size known only from the file's download info
        const now = performance.now();
        if (!fileDone && now - last < 250) return;
        last = now;
        const done = before + fileBytes, elapsed = (now - t0) / 1000;
        const e: DownloadProgress = { task: 'download', repo, file: f.path, fileBytes, fileSize: f.size, fileIndex: index + 1, files: files.length, fileDone, done, total, elapsed, eta: etaSeconds(elapsed, done, total) };
        cb(e);
        if (fileDone) before += fileBytes;
      };
    },
  };
}

function settings(opts: HubOptions) {
  return {
    revision: opts.revision ?? 'main',
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    offline: opts.offline ?? envOffline(),
    fetch: opts.fetch ?? globalThis.fetch,
    hubUrl: opts.hubUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co',
    accessToken: opts.accessToken ?? findHfToken()?.token,
  };
}

/** Cache folder of a model id at a revision. */
export function modelCacheDir(id: string, opts: HubOptions = {}): string {
  const s = settings(opts);
  return join(s.cacheDir, 'models', id.replace('/', '--'), encodeURIComponent(s.revision));
}

/** Stream url into dest atomically (temp file, fsync, rename); optional gunzip; checks the byte count. */
export async function downloadToFile(url: string, dest: string, o: { fetch?: typeof fetch; accessToken?: string; expectedSize?: number; gunzip?: boolean; onBytes?: (bytes: number, done: boolean) => void } = {}): Promise<number> {
  let resp: Response;
  const where = { hubUrl: new URL(url).origin, accessToken: o.accessToken };
  try {
    resp = await (o.fetch ?? globalThis.fetch)(url, o.accessToken ? { headers: { Authorization: `Bearer ${o.accessToken}` } } : {});
  } catch (e) { fail(`download ${url}: ${describeHubError(e, where)}`); }
  if (!resp.ok || !resp.body) fail(`download ${url}: ${resp.ok ? 'empty response' : describeHubError({ statusCode: resp.status, message: resp.statusText }, where)}`);
  await fs.mkdir(dirname(dest), { recursive: true });
  const tmp = tempPathFor(dest);
  let n = 0;
  const count = new Transform({ transform(chunk: Buffer, _e, cb) { n += chunk.length; o.onBytes?.(n, false); cb(null, chunk); } });
  try {
    const src = Readable.fromWeb(resp.body as any);
    if (o.gunzip) await pipeline(src, count, createGunzip(), createWriteStream(tmp, { flags: 'wx' }));
    else await pipeline(src, count, createWriteStream(tmp, { flags: 'wx' }));
    if (o.expectedSize !== undefined && n !== o.expectedSize) fail(`download ${url}: got ${n} of ${o.expectedSize} bytes`);
    const fh = await fs.open(tmp, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    if ((e as Error).name === 'GptqError') throw e;
    fail(`download ${url}: ${describeHubError(e, where)}`);
  }
  o.onBytes?.(n, true);
  return n;
}

async function hubFile(repo: RepoDesignation, path: string, dest: string, s: ReturnType<typeof settings>, gunzip = false, onBytes?: (bytes: number, done: boolean, size?: number) => void): Promise<void> {
  const name = typeof repo === 'string' ? repo : repo.name;
  let info;
  try {
    info = await fileDownloadInfo({ repo, path, revision: s.revision, hubUrl: s.hubUrl, fetch: s.fetch, accessToken: s.accessToken });
  } catch (e) { fail(`${name}/${path}: Hub request failed: ${describeHubError(e, s)}`); }
  if (!info) fail(`${name}/${path}: not found on the Hub (revision ${s.revision})`);
  // Plain GET of the resolve URL (the Hub redirects to the CDN, also for Xet-backed files).
  const size = info.size;
  await downloadToFile(info.url, dest, { fetch: s.fetch, accessToken: s.accessToken, expectedSize: size, gunzip, onBytes: onBytes && ((b, d) => onBytes(b, d, size)) });
}

/**
 * A local model directory as is; otherwise a Hub id "owner/name" downloaded (config, tokenizer, safetensors)
 * into <cache>/models/owner--name/<revision>/, or taken from there when complete.
 */
export async function resolveModelDir(idOrPath: string, opts: HubOptions = {}): Promise<string> {
  const st = await fs.stat(idOrPath).catch(() => null);
  if (st?.isDirectory()) return idOrPath;
  if (st) fail(`${idOrPath} is a file; expected a model directory or a Hub id (owner/name)`);
  if (!isHubId(idOrPath)) fail(`model directory ${idOrPath} does not exist (and is not a Hub id owner/name)`);
  const s = settings(opts);
  const dir = modelCacheDir(idOrPath, opts);
  if (existsSync(join(dir, MANIFEST))) return dir;
  if (s.offline) fail(`model ${idOrPath} (revision ${s.revision}) is not in cache ${dir} and offline (HF_HUB_OFFLINE/GPTQJS_OFFLINE)`);

  const files: { path: string; size: number }[] = [];
  try {
    for await (const e of listFiles({ repo: idOrPath, revision: s.revision, hubUrl: s.hubUrl, fetch: s.fetch, accessToken: s.accessToken }))
      if (e.type === 'file' && MODEL_FILES.test(e.path)) files.push({ path: e.path, size: e.lfs?.size ?? e.size });
  } catch (e) {
    fail(`model ${idOrPath}: cannot list files on the Hub (${describeHubError(e, s)})`);
  }
  if (!files.some((f) => f.path === 'config.json')) fail(`model ${idOrPath}: repo has no config.json`);
  if (!files.some((f) => f.path.endsWith('.safetensors'))) fail(`model ${idOrPath}: repo has no .safetensors weights (pytorch .bin is not supported)`);

  await fs.mkdir(dir, { recursive: true });
  const todo: typeof files = [];
  for (const f of files) {
    const have = await fs.stat(join(dir, f.path)).catch(() => null);
    if (!(have?.isFile() && have.size === f.size)) todo.push(f); // else: resumed download
  }
  const progress = downloadReporter(idOrPath, todo, opts.onProgress);
  for (let i = 0; i < todo.length; i++) await hubFile(idOrPath, todo[i]!.path, join(dir, todo[i]!.path), s, false, progress.file(i));
  await writeFileAtomic(join(dir, MANIFEST), JSON.stringify({ id: idOrPath, revision: s.revision, files }, null, 1));
  return dir;
}

/** The Hub's WikiText-2 (raw) splits: one parquet file each, whose rows are HF's rows (the lines of wiki.*.raw). */
const WIKITEXT2 = { repo: 'Salesforce/wikitext', path: (split: string) => `wikitext-2-raw-v1/${split}-00000-of-00001.parquet` };

/**
 * A dataset file in the cache, downloading when possible: "c4" → allenai/c4 en/c4-train.00000-of-01024.json.gz
 * (split "train", default) or en/c4-validation.00000-of-00008.json.gz (split "validation"), gunzipped to JSON lines.
 * "wikitext2" → <cache>/datasets/wikitext2/wiki.{test,train,valid}.raw when present, else the Hub's
 * Salesforce/wikitext wikitext-2-raw-v1 parquet of the split (split "test" default; read by src/io/tables.ts, its
 * rows are HF's rows).
 */
export async function resolveDataset(name: string, opts: HubOptions = {}, split: 'train' | 'validation' | 'test' = name === 'wikitext2' ? 'test' : 'train'): Promise<string> {
  const s = settings(opts);
  const root = resolve(s.cacheDir, 'datasets');
  if (name === 'wikitext2') {
    const file = WIKITEXT_FILE[split];
    const p = join(root, 'wikitext2', file);
    if (existsSync(p)) return p;
    try {
      return (await resolveDatasetFiles(WIKITEXT2.repo, (f) => f === WIKITEXT2.path(split), `wikitext-2-raw-v1 ${split}`, opts))[0]!;
    } catch (e) {
      fail(`dataset wikitext2: ${file} not found (pass a file path or --dataset-path, set GPTQJS_DATASETS, or put it at ${p}), and the Hub copy failed: ${(e as Error).message}`);
    }
  }
  if (name !== 'c4') fail(`dataset ${name}: unknown (known: wikitext2, c4)`);
  if (split === 'test') fail('dataset c4 has no test split (GPTQ evaluates on validation)');
  const shard = C4[split];
  const dest = join(root, C4.repo.replace('/', '--'), shard.file);
  if (existsSync(dest)) return dest;
  if (s.offline) fail(`dataset c4 is not in cache ${dest} and offline (HF_HUB_OFFLINE/GPTQJS_OFFLINE)`);
  // The size of the gzipped shard comes with its download info (bytes counted before gunzip).
  const progress = downloadReporter(`dataset ${C4.repo}`, [{ path: shard.path, size: 0 }], opts.onProgress);
  await hubFile({ type: 'dataset', name: C4.repo }, shard.path, dest, s, true, progress.file(0));
  return dest;
}

/** Cached listing of a dataset repo (written after a complete listing, read offline). */
const DATASET_LISTING = '.gptqjs-listing.json';

/**
 * Files of a Hub dataset repo chosen by `select(path)` (e.g. the parquet files of one config and split), downloaded
 * into <cache>/datasets/owner--name/<revision>/<path> and returned as local paths, sorted by repo path. The repo
 * listing is kept in the cache, so a later call whose files are all there needs no network (also offline).
 * Throws GptqError when no file matches, or offline with the files not in the cache.
 */
export async function resolveDatasetFiles(repo: string, select: (path: string) => boolean, what: string, opts: HubOptions = {}): Promise<string[]> {
  if (!isHubId(repo)) fail(`dataset ${repo}: not a Hub id owner/name`);
  const s = settings(opts);
  const dir = resolve(s.cacheDir, 'datasets', repo.replace('/', '--'), s.revision.replace(/[\\/]/g, '--'));
  const listingPath = join(dir, DATASET_LISTING);
  type Listed = { path: string; size: number };
  const have = async (f: Listed) => (await fs.stat(join(dir, f.path)).catch(() => null))?.size === f.size;
  let listed: Listed[] | undefined;
  try { listed = JSON.parse(await fs.readFile(listingPath, 'utf8')).files; } catch { /* not cached yet */ }
  if (listed) {
    const chosen = listed.filter((f) => select(f.path));
    if (chosen.length && (await Promise.all(chosen.map(have))).every(Boolean)) return chosen.map((f) => join(dir, f.path));
  }
  if (s.offline) fail(`dataset ${repo} (${what}, revision ${s.revision}) is not in cache ${dir} and offline (HF_HUB_OFFLINE/GPTQJS_OFFLINE)`);
  listed = [];
  try {
    for await (const e of listFiles({ repo: { type: 'dataset', name: repo }, revision: s.revision, recursive: true, hubUrl: s.hubUrl, fetch: s.fetch, accessToken: s.accessToken }))
      if (e.type === 'file') listed.push({ path: e.path, size: e.lfs?.size ?? e.size });
  } catch (e) { fail(`dataset ${repo}: cannot list files on the Hub (${describeHubError(e, s)})`); }
  const chosen = listed.filter((f) => select(f.path)).sort((a, b) => a.path.localeCompare(b.path));
  if (!chosen.length) fail(`dataset ${repo}: no file for ${what} on the Hub (revision ${s.revision}; ${listed.length} files listed)`);
  const todo: Listed[] = [];
  for (const f of chosen) if (!(await have(f))) todo.push(f);
  const progress = downloadReporter(`dataset ${repo}`, todo.map((f) => ({ ...f })), opts.onProgress);
  for (let i = 0; i < todo.length; i++) await hubFile({ type: 'dataset', name: repo }, todo[i]!.path, join(dir, todo[i]!.path), s, false, progress.file(i));
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(listingPath, JSON.stringify({ repo, revision: s.revision, files: listed }));
  return chosen.map((f) => join(dir, f.path));
}
