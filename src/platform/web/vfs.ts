/**
 * The browser's file system for gptqjs: a tree of virtual folders whose files are byte sources —
 *  - a URL (read with HTTP Range requests, or downloaded once into the Cache API and read from there),
 *  - a Blob / File (a user-picked file or folder; read with Blob.slice, nothing is copied up front),
 *  - bytes in memory (what the library writes: a quantized checkpoint saved to "/out" ends up here).
 * ./fs.ts exposes it with node:fs's API (the subset the library uses) so that the io code runs unchanged; mountUrl,
 * mountFiles and zipFolder are the browser entry's public functions (src/browser.ts).
 */
import { Zip, ZipPassThrough } from 'fflate';
import { fail } from '../../errors.ts';
import { basename, dirname, join, resolve } from './path.ts';

type BlobPart = NonNullable<ConstructorParameters<typeof Blob>[0]>[number];

/** Random access to the bytes of one file. */
export interface ByteSource {
  readonly size: number;
  /** `length` bytes from `position` (fewer only at the end of the file). */
  read(position: number, length: number): Promise<Uint8Array>;
  /** The whole file as a Blob (zip output, copies). */
  blob(): Promise<Blob>;
}

interface DirNode { kind: 'dir'; mtimeMs: number }
interface FileNode { kind: 'file'; src: ByteSource; mtimeMs: number }
/**
 * A file written in this page: chunks appended by writes. Once 16 MiB of bytes are pending they are moved into a
 * Blob (appendChunk): the browser keeps Blob data outside the page's JS heap (and may page it to disk), so a written
 * multi-GB checkpoint does not sit in the tab's memory; small files (configs) stay plain bytes.
 */
export interface MemNode { kind: 'mem'; chunks: (Uint8Array | Blob)[]; size: number; mtimeMs: number }
type VNode = DirNode | FileNode | MemNode;

const nodes = new Map<string, VNode>([['/', { kind: 'dir', mtimeMs: Date.now() }]]);

/** An error shaped like node:fs's (code, syscall, path), so callers' ENOENT/EEXIST handling works unchanged. */
export function fsError(code: 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL', syscall: string, path: string): Error {
  const text: Record<string, string> = {
    ENOENT: 'no such file or directory', EEXIST: 'file already exists', ENOTDIR: 'not a directory',
    EISDIR: 'illegal operation on a directory', ENOTEMPTY: 'directory not empty', EINVAL: 'invalid argument',
  };
  return Object.assign(new Error(`${code}: ${text[code]}, ${syscall} '${path}'`), { code, syscall, path, errno: -1 });
}

export const norm = (p: string): string => resolve(String(p));
export function lookup(p: string): VNode | undefined { return nodes.get(norm(p)); }
export function children(dir: string): string[] {
  const d = norm(dir), pre = d === '/' ? '/' : `${d}/`, out: string[] = [];
  for (const k of nodes.keys()) if (k !== d && k.startsWith(pre) && !k.slice(pre.length).includes('/')) out.push(k.slice(pre.length));
  return out;
}

export function mkdirp(p: string): void {
  const d = norm(p);
  if (d === '/') return;
  mkdirp(dirname(d));
  const n = nodes.get(d);
  if (n && n.kind !== 'dir') throw fsError('ENOTDIR', 'mkdir', d);
  if (!n) nodes.set(d, { kind: 'dir', mtimeMs: Date.now() });
}

export function setNode(p: string, n: VNode): void { nodes.set(norm(p), n); }
export function deleteNode(p: string): void {
  const d = norm(p), pre = `${d}/`;
  for (const k of [...nodes.keys()]) if (k === d || k.startsWith(pre)) nodes.delete(k);
}
/** Move a file or a whole folder. */
export function moveNode(from: string, to: string): void {
  const a = norm(from), b = norm(to), pre = `${a}/`;
  for (const [k, n] of [...nodes]) if (k === a || k.startsWith(pre)) { nodes.delete(k); nodes.set(b + k.slice(a.length), n); }
}

const SEAL_BYTES = 1 << 24;

/** Append a copy of `b` to a written file; pending bytes of 16 MiB or more are moved into one Blob. */
export function appendChunk(n: MemNode, b: Uint8Array): void {
  n.chunks.push(b.slice());
  n.size += b.length;
  n.mtimeMs = Date.now();
  let i = n.chunks.length, pending = 0;
  while (i > 0 && n.chunks[i - 1] instanceof Uint8Array) pending += (n.chunks[--i] as Uint8Array).length;
  if (pending >= SEAL_BYTES) n.chunks.splice(i, n.chunks.length - i, new Blob(n.chunks.slice(i) as BlobPart[]));
}

export function sizeOf(n: VNode): number { return n.kind === 'dir' ? 0 : n.kind === 'mem' ? n.size : n.src.size; }

/** Bytes [position, position + length) of a file node. */
export async function readNode(n: FileNode | MemNode, position: number, length: number): Promise<Uint8Array> {
  const size = sizeOf(n), end = Math.min(size, position + length);
  if (position >= end) return new Uint8Array(0);
  if (n.kind === 'file') return n.src.read(position, end - position);
  const out = new Uint8Array(end - position);
  let off = 0;
  for (const c of n.chunks) {
    const len = c instanceof Uint8Array ? c.length : c.size, s = Math.max(position - off, 0), e = Math.min(end - off, len);
    if (s < e) out.set(c instanceof Uint8Array ? c.subarray(s, e) : new Uint8Array(await c.slice(s, e).arrayBuffer()), off + s - position);
    off += len;
    if (off >= end) break;
  }
  return out;
}

export async function blobOf(n: FileNode | MemNode): Promise<Blob> {
  return n.kind === 'file' ? n.src.blob() : new Blob(n.chunks as BlobPart[]);
}

// ---------------------------------------------------------------- byte sources

/** A Blob or File (user-picked): slices read on demand. */
export function blobSource(b: Blob): ByteSource {
  return { size: b.size, read: async (pos, len) => new Uint8Array(await b.slice(pos, pos + len).arrayBuffer()), blob: async () => b };
}

export function bytesSource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, read: async (pos, len) => bytes.slice(pos, pos + len), blob: async () => new Blob([bytes as BlobPart]) };
}

export interface MountUrlOptions {
  /** Where the folder appears (default: "/" + the URL's last path segment, e.g. "/stories260K"). */
  at?: string;
  /**
   * The file names to mount (default: the standard Hugging Face model file names that exist at the URL, found with
   * HEAD requests, plus the shards a model.safetensors.index.json names). A web server cannot list a folder.
   */
  files?: string[];
  /**
   * Cache API cache name (default "gptqjs-models"): each file is downloaded once, whole, into the browser's cache
   * and read from there (also across page reloads). false: no cache; files are read with HTTP Range requests,
   * only the bytes needed (the server must answer Range with 206).
   */
  cache?: string | false;
  /** Injectable fetch (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization for private Hub repos). */
  headers?: Record<string, string>;
}

/** File names mountUrl looks for when not told (transformers' model files; shards come from the index). */
export const MODEL_FILE_NAMES = [
  'config.json', 'generation_config.json', 'model.safetensors', 'model.safetensors.index.json', 'quantize_config.json',
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'chat_template.jinja',
  'chat_template.json', 'vocab.json', 'merges.txt',
];

/** The Cache API (window/worker `caches`; typed here, the library is compiled without the DOM lib). */
interface CacheLike { match(url: string): Promise<Response | undefined>; put(url: string, r: Response): Promise<void> }
const caches = () => (globalThis as { caches?: { open(name: string): Promise<CacheLike> } }).caches;

async function checked(r: Response, url: string): Promise<Response> {
  if (!r.ok) fail(`${url}: HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ''}`);
  return r;
}

/** A file behind a URL: size from HEAD (or the cached copy); reads by Range, or from the Cache API copy. */
async function urlSource(url: string, o: MountUrlOptions): Promise<ByteSource | undefined> {
  const f = o.fetch ?? globalThis.fetch.bind(globalThis), headers = o.headers ?? {};
  const cacheName = o.cache === undefined ? 'gptqjs-models' : o.cache;
  const store = cacheName !== false && caches() ? await caches()!.open(cacheName) : undefined;
  let cached = store ? await store.match(url) : undefined;
  let size: number;
  if (cached) size = Number(cached.headers.get('content-length') ?? (await cached.clone().blob()).size);
  else {
    const r = await f(url, { method: 'HEAD', headers });
    if (r.status === 404) return undefined;
    await checked(r, url);
    const len = r.headers.get('content-length');
    size = len === null ? (await (await checked(await f(url, { headers }), url)).blob()).size : Number(len);
  }
  let blob: Promise<Blob> | undefined;
  /** The whole file: from the cache, or downloaded into it first. */
  const whole = () => (blob ??= (async () => {
    if (!cached) {
      const r = await checked(await f(url, { headers }), url);
      await store!.put(url, r);
      cached = await store!.match(url);
      if (!cached) fail(`${url}: the browser did not keep the download in the Cache API (storage full?)`);
    }
    return cached.clone().blob();
  })().catch((e) => { blob = undefined; throw e; }));
  return {
    size,
    read: async (pos, len) => {
      if (store) return new Uint8Array(await (await whole()).slice(pos, pos + len).arrayBuffer());
      const r = await checked(await f(url, { headers: { ...headers, Range: `bytes=${pos}-${pos + len - 1}` } }), url);
      const bytes = new Uint8Array(await r.arrayBuffer());
      if (r.status === 206) return bytes;
      return bytes.slice(pos, pos + len); // the server ignored Range and sent the whole file
    },
    blob: () => (store ? whole() : f(url, { headers }).then((r) => checked(r, url)).then((r) => r.blob())),
  };
}

function freePath(at: string): string {
  let p = norm(at), i = 1;
  while (nodes.has(p) && children(p).length) p = `${norm(at)}-${++i}`;
  return p;
}

/**
 * Mount the model folder at `url` (ending in "/" or not; e.g. "/models/stories260K/", or a Hub
 * "https://huggingface.co/<id>/resolve/main/") as a virtual folder; returns its path, which every path-taking API
 * accepts (CausalLM.load, GPTQModel.fromPretrained, Checkpoint.open, loadModelConfig, TextTokenizer.fromDir).
 * Throws GptqError when the URL has no config.json or a request fails.
 */
export async function mountUrl(url: string, o: MountUrlOptions = {}): Promise<string> {
  const base = new URL(url.endsWith('/') ? url : `${url}/`, (globalThis as { location?: { href: string } }).location?.href);
  const at = freePath(o.at ?? `/${decodeURIComponent(base.pathname.split('/').filter(Boolean).pop() ?? 'model')}`);
  // With the Cache API, the listing found by the first mount is kept too, so a later mount sends no request at all.
  const cacheName = o.cache === undefined ? 'gptqjs-models' : o.cache;
  const store = cacheName !== false && caches() ? await caches()!.open(cacheName) : undefined;
  const listingKey = new URL('.gptqjs-listing.json', base).href;
  const listed = !o.files && store ? await store.match(listingKey).then((r) => r?.json() as Promise<string[]> | undefined) : undefined;
  const names = new Set(o.files ?? listed ?? MODEL_FILE_NAMES);
  const found = new Map<string, ByteSource>();
  const add = async (name: string) => {
    if (found.has(name)) return;
    const s = await urlSource(new URL(name, base).href, o);
    if (s) found.set(name, s);
  };
  await Promise.all([...names].map(add));
  const index = found.get('model.safetensors.index.json');
  if (index && !found.has('model.safetensors')) {
    const j = JSON.parse(new TextDecoder().decode(await index.read(0, index.size)));
    const shards = [...new Set(Object.values((j?.weight_map ?? {}) as Record<string, string>))].filter((s) => typeof s === 'string' && !s.includes('/'));
    await Promise.all(shards.map(add));
  }
  if (!found.has('config.json')) fail(`${base.href}: no config.json there (a model folder URL is needed, e.g. https://huggingface.co/<id>/resolve/main/)`);
  if (store && !o.files && !listed) await store.put(listingKey, new Response(JSON.stringify([...found.keys()]), { headers: { 'content-type': 'application/json' } }));
  mkdirp(at);
  for (const [n, s] of found) nodes.set(join(at, n), { kind: 'file', src: s, mtimeMs: Date.now() });
  return at;
}

/** A picked file: a File from <input type=file webkitdirectory> (webkitRelativePath "folder/name") or any Blob with a name. */
export type PickedFile = Blob & { name?: string; webkitRelativePath?: string };

/**
 * Mount user-picked files as a virtual folder; returns its path. A `webkitdirectory` pick keeps its sub-folders below
 * the picked folder's name (which is the default mount point, "/" + folder name); plain picks land in `at`
 * (default "/picked"). Files are read lazily with Blob.slice (a multi-GB safetensors file is never copied whole).
 * A record { name: Blob | Uint8Array | string } mounts in-memory contents.
 */
export function mountFiles(files: Iterable<PickedFile> | ArrayLike<PickedFile> | Record<string, Blob | Uint8Array | string>, o: { at?: string } = {}): string {
  const list: [string, ByteSource][] = [];
  let root: string | undefined;
  if (Symbol.iterator in Object(files) || typeof (files as ArrayLike<unknown>).length === 'number') {
    for (const f of Array.from(files as ArrayLike<PickedFile>)) {
      const rel = f.webkitRelativePath || f.name;
      if (!rel) fail('mountFiles: a file has no name');
      const parts = rel.split('/');
      if (parts.length > 1) { root ??= parts[0]; if (root === parts[0]) parts.shift(); }
      list.push([parts.join('/'), blobSource(f)]);
    }
  } else {
    for (const [name, v] of Object.entries(files as Record<string, Blob | Uint8Array | string>))
      list.push([name, typeof v === 'string' ? bytesSource(new TextEncoder().encode(v)) : v instanceof Uint8Array ? bytesSource(v) : blobSource(v)]);
  }
  const at = freePath(o.at ?? `/${root ?? 'picked'}`);
  mkdirp(at);
  for (const [rel, s] of list) {
    const p = join(at, rel);
    mkdirp(dirname(p));
    nodes.set(p, { kind: 'file', src: s, mtimeMs: Date.now() });
  }
  return at;
}

/** Remove a virtual folder (mounted or written) and everything below it. Nothing outside the page is touched. */
export function unmount(path: string): void { deleteNode(path); }

/** Names of the files below `dir` (relative, "/"-separated), in creation order. */
export function listFiles(dir: string): string[] {
  const d = norm(dir), pre = d === '/' ? '/' : `${d}/`;
  return [...nodes].filter(([k, n]) => n.kind !== 'dir' && k.startsWith(pre)).map(([k]) => k.slice(pre.length));
}

/** The bytes of one virtual file. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  const n = lookup(path);
  if (!n || n.kind === 'dir') throw fsError(n ? 'EISDIR' : 'ENOENT', 'open', norm(path));
  return readNode(n, 0, sizeOf(n));
}

/** One virtual file as a Blob (e.g. for a download link). */
export async function fileBlob(path: string): Promise<Blob> {
  const n = lookup(path);
  if (!n || n.kind === 'dir') throw fsError(n ? 'EISDIR' : 'ENOENT', 'open', norm(path));
  return blobOf(n);
}

/**
 * A .zip (stored, not compressed: safetensors hardly compress) of every file below `dir`, paths inside the zip
 * relative to it, under a top folder named like `dir` (e.g. "stories260K-gptq/config.json"). Built with fflate.
 * Limit: fflate writes no ZIP64, so the archive must stay under 4 GiB (larger: GptqError before anything is zipped).
 * Memory: the zip's bytes are handed to Blobs as they are made, 16 MiB at a time (the browser keeps Blob data outside
 * the page's JS heap and may page it to disk), so the page does not hold a second copy of the archive.
 */
export async function zipFolder(dir: string, o: { topFolder?: string | false } = {}): Promise<Blob> {
  const d = norm(dir), files = listFiles(d);
  if (!lookup(d) || lookup(d)!.kind !== 'dir') throw fsError('ENOENT', 'scandir', d);
  const top = o.topFolder === false ? '' : `${o.topFolder ?? basename(d)}/`;
  // stored entries: local header 30 + name + data descriptor 16, central header 46 + name, end record 22
  const enc = new TextEncoder();
  const total = files.reduce((a, rel) => a + sizeOf(lookup(join(d, rel))!) + 92 + 2 * enc.encode(top + rel).length, 22);
  if (total > 0xffffffff) fail(`zipFolder ${d}: the archive would be ${total} bytes; over 4 GiB needs ZIP64, which the zip writer (fflate) does not write — download the files one by one (fileBlob) instead`);
  const blobs: Blob[] = [];
  let parts: Uint8Array[] = [];
  let error: Error | undefined;
  const zip = new Zip((err, chunk) => { if (err) error = err; else parts.push(chunk); });
  const flush = () => { if (parts.length) { blobs.push(new Blob(parts as BlobPart[])); parts = []; } };
  for (const rel of files) {
    const n = lookup(join(d, rel)) as FileNode | MemNode, entry = new ZipPassThrough(top + rel);
    zip.add(entry);
    const size = sizeOf(n), step = 1 << 24;
    if (size === 0) entry.push(new Uint8Array(0), true);
    for (let pos = 0; pos < size; pos += step) { entry.push(await readNode(n, pos, step), pos + step >= size); flush(); }
  }
  zip.end();
  if (error) throw error;
  flush();
  return new Blob(blobs, { type: 'application/zip' });
}
