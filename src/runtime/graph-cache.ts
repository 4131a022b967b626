/**
 * On-disk cache of compiled model graphs (the ONNX models CausalLM.load builds), so that a second load of the same
 * checkpoint with the same options reads no weights in JS, converts nothing (GPTQ repacking, lm-head quantization)
 * and encodes nothing: ONNX Runtime loads `<key>-<graph>.onnx` directly and memory-maps its weights
 * (`.onnx.data`, 64 KiB-aligned external data). A first load writes the entry, then loads it the same way.
 *
 * Location: `graphCache: true` → $GPTQJS_CACHE/graphs or ~/.cache/gptqjs/graphs; a string → that directory;
 * false → off (env GPTQJS_GRAPH_CACHE=0 turns the default location off). The default location skips checkpoints
 * under 32 MB (GPTQJS_GRAPH_CACHE_MIN_MB). Size cap: GPTQJS_GRAPH_CACHE_MAX_GB (default 16); least recently used
 * entries are deleted first.
 *
 * Key (sha256): the checkpoint directory's absolute path; config.json, quantize_config.json and the safetensors index
 * verbatim; every safetensors file's name, size, mtime and JSON header (tensor names, dtypes, shapes, offsets —
 * hashing all weight bytes of a multi-GB model would cost seconds per load); the load options that change graphs;
 * the gptqjs version plus a hash of its own sources (graph code changes invalidate entries); ORT's version; the host
 * platform. A checkpoint rewritten in place gets a new mtime, hence a new key.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../graph/builder.ts';
import { writeModelWithExternalData } from '../graph/external-data.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { CODE_ROOT as SRC_ROOT, packageVersion } from '../paths.ts';

export type GraphCacheOption = boolean | string;

/** Names of cache entries: `<32-hex key>[-graph].onnx`, its `.onnx.data`, `.json` info, `.unsupported` marker. */
const CACHE_ENTRY = /^[0-9a-f]{32}(-[\w.-]+)?\.(onnx|onnx\.data|json|unsupported)$/;

let codeHash: string | undefined;
/** gptqjs version + hash of the running code: every .ts under src/ (clone) or .js/.d.ts under dist/ (installed). Memoized. */
function codeVersion(): string {
  if (codeHash) return codeHash;
  const h = createHash('sha256');
  h.update(packageVersion());
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|js)$/.test(e.name)) { h.update(p.slice(SRC_ROOT.length)); h.update(readFileSync(p)); }
    }
  };
  try { walk(SRC_ROOT); } catch { h.update(String(Date.now())); } // unreadable sources: never reuse
  return (codeHash = h.digest('hex'));
}

/** Cache key of `dir` loaded with `options` (only options that change the compiled graphs). */
export async function graphCacheKey(dir: string, options: Record<string, unknown>): Promise<string> {
  const h = createHash('sha256');
  const abs = resolve(dir);
  h.update(JSON.stringify({ dir: abs, options, code: codeVersion(), ort: ort.env.versions?.common ?? '', platform: `${process.platform}-${process.arch}`, format: 1 }));
  const files = (await fs.readdir(abs)).sort();
  for (const f of files) {
    const p = join(abs, f);
    if (f === 'config.json' || f === 'quantize_config.json' || f.endsWith('.safetensors.index.json')) {
      h.update(`\0${f}\0`); h.update(await fs.readFile(p));
    } else if (f.endsWith('.safetensors')) {
      const st = await fs.stat(p);
      h.update(`\0${f}\0${st.size}\0${st.mtimeMs}\0`);
      const fh = await fs.open(p, 'r');
      try {
        const len = Buffer.alloc(8);
        await fh.read(len, 0, 8, 0);
        const n = Number(len.readBigUInt64LE(0));
        if (n > 0 && n < 100 * 1024 * 1024) { const hdr = Buffer.alloc(n); await fh.read(hdr, 0, n, 8); h.update(hdr); }
      } finally { await fh.close(); }
    }
  }
  return h.digest('hex').slice(0, 32);
}


export class GraphCache {
  private constructor(readonly dir: string, private readonly maxBytes: number) {}

  /**
   * The cache for a LoadOptions.graphCache value, or undefined when caching is off. The default location (`true`)
   * skips checkpoints under GPTQJS_GRAPH_CACHE_MIN_MB (default 32) of safetensors: they build in milliseconds, and
   * test suites would litter the cache with them. An explicit directory caches every size.
   */
  static async forCheckpoint(opt: GraphCacheOption, dir: string): Promise<GraphCache | undefined> {
    if (opt === true) {
      const min = Number(process.env.GPTQJS_GRAPH_CACHE_MIN_MB ?? 32) * 1024 ** 2;
      let bytes = 0;
      try { for (const f of await fs.readdir(dir)) if (f.endsWith('.safetensors')) bytes += (await fs.stat(join(dir, f))).size; } catch { /* the loader reports it */ }
      if (bytes < min) return undefined;
    }
    return GraphCache.open(opt);
  }

  /** The cache for a LoadOptions.graphCache value, or undefined when caching is off. */
  static open(opt: GraphCacheOption): GraphCache | undefined {
    if (opt === false || (opt === true && process.env.GPTQJS_GRAPH_CACHE === '0')) return undefined;
    const dir = typeof opt === 'string' ? resolve(opt) : join(process.env.GPTQJS_CACHE || join(homedir(), '.cache', 'gptqjs'), 'graphs');
    const gb = Number(process.env.GPTQJS_GRAPH_CACHE_MAX_GB ?? 16);
    return new GraphCache(dir, (Number.isFinite(gb) && gb > 0 ? gb : 16) * 1024 ** 3);
  }

  private path(key: string, ext = '.onnx'): string { return join(this.dir, `${key}${ext}`); }

  /** Path of the cached graph (its weights in `<path>.data`), or undefined. A hit refreshes the entry's mtime (LRU). */
  lookup(key: string): string | undefined {
    const p = this.path(key);
    if (!existsSync(p) || !existsSync(`${p}.data`)) return undefined;
    try { const now = new Date(); utimesSync(p, now, now); utimesSync(`${p}.data`, now, now); } catch { /* read-only cache: fine */ }
    return p;
  }

  /**
   * Store a graph (weights as external data, streamed from the builder's arrays); returns its path, or undefined when
   * it could not be written (disk full, read-only): the caller then uses the graph from memory.
   */
  async save(key: string, g: GraphBuilder): Promise<string | undefined> {
    const bytes = g.initializers.reduce((a, t) => a + t.raw.byteLength, 0);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await this.evict(bytes);
      await writeModelWithExternalData(g, this.path(key));
      return this.path(key);
    } catch {
      await fs.rm(this.path(key), { force: true }); await fs.rm(`${this.path(key)}.data`, { force: true });
      return undefined;
    }
  }

  isUnsupported(key: string): boolean { return existsSync(this.path(key, '.unsupported')); }
  async markUnsupported(key: string, why: string): Promise<void> {
    try { await fs.mkdir(this.dir, { recursive: true }); await writeFileAtomic(this.path(key, '.unsupported'), why + '\n'); } catch { /* ignore */ }
  }

  async readInfo<T>(key: string): Promise<T | undefined> {
    try { return JSON.parse(await fs.readFile(this.path(key, '.json'), 'utf8')) as T; } catch { return undefined; }
  }
  async writeInfo(key: string, info: unknown): Promise<void> {
    try { await fs.mkdir(this.dir, { recursive: true }); await writeFileAtomic(this.path(key, '.json'), JSON.stringify(info)); } catch { /* ignore */ }
  }

  /** Delete whole entries (all files of one checkpoint key), least recently used first, until `incoming` fits. */
  private async evict(incoming: number): Promise<void> {
    const groups = new Map<string, { files: string[]; size: number; t: number }>();
    for (const f of readdirSync(this.dir)) {
      // Only the cache's own entries (never temp files of writes in progress, nor anything else in the folder: an
      // explicit graphCache directory may be shared with other files).
      if (!CACHE_ENTRY.test(f)) continue;
      const p = join(this.dir, f), id = f.slice(0, 32);
      let st; try { st = statSync(p); } catch { continue; }
      const e = groups.get(id) ?? { files: [], size: 0, t: 0 };
      e.files.push(p); e.size += st.size; e.t = Math.max(e.t, st.mtimeMs);
      groups.set(id, e);
    }
    let total = [...groups.values()].reduce((a, e) => a + e.size, 0) + incoming;
    for (const e of [...groups.values()].sort((a, b) => a.t - b.t)) {
      if (total <= this.maxBytes) break;
      for (const f of e.files) await fs.rm(f, { force: true });
      total -= e.size;
    }
  }
}
