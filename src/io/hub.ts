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
  /** Default env HF_TOKEN. */
  accessToken?: string;
}

const MANIFEST = '.gptqjs-complete.json';
/** Top-level repo files a model needs (weights must be safetensors). */
const MODEL_FILES = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|chat_template\.jinja|chat_template\.json|quantize_config\.json|quant_config\.json|model\.safetensors\.index\.json|[^/]+\.safetensors)$/;
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

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

function settings(opts: HubOptions) {
  return {
    revision: opts.revision ?? 'main',
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    offline: opts.offline ?? envOffline(),
    fetch: opts.fetch ?? globalThis.fetch,
    hubUrl: opts.hubUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co',
    accessToken: opts.accessToken ?? process.env.HF_TOKEN ?? undefined,
  };
}

/** Cache folder of a model id at a revision. */
export function modelCacheDir(id: string, opts: HubOptions = {}): string {
  const s = settings(opts);
  return join(s.cacheDir, 'models', id.replace('/', '--'), encodeURIComponent(s.revision));
}

/** Stream url into dest atomically (temp file, fsync, rename); optional gunzip; checks the byte count. */
export async function downloadToFile(url: string, dest: string, o: { fetch?: typeof fetch; accessToken?: string; expectedSize?: number; gunzip?: boolean } = {}): Promise<number> {
  let resp: Response;
  try {
    resp = await (o.fetch ?? globalThis.fetch)(url, o.accessToken ? { headers: { Authorization: `Bearer ${o.accessToken}` } } : {});
  } catch (e) { fail(`download ${url}: ${oneLine(e)}`); }
  if (!resp.ok || !resp.body) fail(`download ${url}: HTTP ${resp.status} ${resp.statusText}`.trim());
  await fs.mkdir(dirname(dest), { recursive: true });
  const tmp = tempPathFor(dest);
  let n = 0;
  const count = new Transform({ transform(chunk: Buffer, _e, cb) { n += chunk.length; cb(null, chunk); } });
  try {
    const src = Readable.fromWeb(resp.body as any);
    if (o.gunzip) await pipeline(src, count, createGunzip(), createWriteStream(tmp));
    else await pipeline(src, count, createWriteStream(tmp));
    if (o.expectedSize !== undefined && n !== o.expectedSize) fail(`download ${url}: got ${n} of ${o.expectedSize} bytes`);
    const fh = await fs.open(tmp, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    if ((e as Error).name === 'GptqError') throw e;
    fail(`download ${url}: ${oneLine(e)}`);
  }
  return n;
}

async function hubFile(repo: RepoDesignation, path: string, dest: string, s: ReturnType<typeof settings>, gunzip = false): Promise<void> {
  const name = typeof repo === 'string' ? repo : repo.name;
  let info;
  try {
    info = await fileDownloadInfo({ repo, path, revision: s.revision, hubUrl: s.hubUrl, fetch: s.fetch, accessToken: s.accessToken });
  } catch (e) { fail(`${name}/${path}: Hub request failed: ${oneLine(e)}`); }
  if (!info) fail(`${name}/${path}: not found on the Hub (revision ${s.revision})`);
  // Plain GET of the resolve URL (the Hub redirects to the CDN, also for Xet-backed files).
  await downloadToFile(info.url, dest, { fetch: s.fetch, accessToken: s.accessToken, expectedSize: info.size, gunzip });
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
    fail(`model ${idOrPath}: cannot list files on the Hub (${oneLine(e)}); private/gated repos need HF_TOKEN`);
  }
  if (!files.some((f) => f.path === 'config.json')) fail(`model ${idOrPath}: repo has no config.json`);
  if (!files.some((f) => f.path.endsWith('.safetensors'))) fail(`model ${idOrPath}: repo has no .safetensors weights (pytorch .bin is not supported)`);

  await fs.mkdir(dir, { recursive: true });
  for (const f of files) {
    const dest = join(dir, f.path);
    const have = await fs.stat(dest).catch(() => null);
    if (have?.isFile() && have.size === f.size) continue; // resumed download
    await hubFile(idOrPath, f.path, dest, s);
  }
  await writeFileAtomic(join(dir, MANIFEST), JSON.stringify({ id: idOrPath, revision: s.revision, files }, null, 1));
  return dir;
}

/**
 * A dataset file in the cache, downloading when possible: "c4" → allenai/c4 en/c4-train.00000-of-01024.json.gz
 * (split "train", default) or en/c4-validation.00000-of-00008.json.gz (split "validation"), gunzipped to JSON lines.
 * "wikitext2" is only taken from <cache>/datasets/wikitext2/wiki.{test,train,valid}.raw (the Hub copy is parquet,
 * which gptqjs does not read).
 */
export async function resolveDataset(name: string, opts: HubOptions = {}, split: 'train' | 'validation' | 'test' = name === 'wikitext2' ? 'test' : 'train'): Promise<string> {
  const s = settings(opts);
  const root = resolve(s.cacheDir, 'datasets');
  if (name === 'wikitext2') {
    const file = WIKITEXT_FILE[split];
    const p = join(root, 'wikitext2', file);
    if (existsSync(p)) return p;
    fail(`dataset wikitext2: ${file} not found (pass a file path or --dataset-path, set GPTQJS_DATASETS, or put it at ${p}; the Hub copy is parquet, not supported)`);
  }
  if (name !== 'c4') fail(`dataset ${name}: unknown (known: wikitext2, c4)`);
  if (split === 'test') fail('dataset c4 has no test split (GPTQ evaluates on validation)');
  const shard = C4[split];
  const dest = join(root, C4.repo.replace('/', '--'), shard.file);
  if (existsSync(dest)) return dest;
  if (s.offline) fail(`dataset c4 is not in cache ${dest} and offline (HF_HUB_OFFLINE/GPTQJS_OFFLINE)`);
  await hubFile({ type: 'dataset', name: C4.repo }, shard.path, dest, s, true);
  return dest;
}
