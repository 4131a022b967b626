/**
 * Browser side of src/platform/fs.ts: node:fs's API (the subset gptqjs uses) over the virtual folders of ./vfs.ts, with
 * node's error codes (ENOENT, EEXIST, ENOTDIR, ENOTEMPTY). Reads work on mounted URLs, picked files and written
 * files; writes create in-memory files (a saved checkpoint, then zipFolder). Functions gptqjs uses only for Node
 * features (work-dir locks, dataset files) fail with one clear line.
 */
import type * as nodeFs from 'node:fs';
import { fail } from '../../errors.ts';
import { dirname } from './path.ts';
import { appendChunk, blobOf, children, deleteNode, fsError, lookup, mkdirp, moveNode, norm, readNode, setNode, sizeOf, type MemNode } from './vfs.ts';

type Data = string | Uint8Array;
const bytesOf = (d: Data | ArrayBufferView): Uint8Array =>
  typeof d === 'string' ? new TextEncoder().encode(d) : d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
const encodingOf = (o: unknown): string | undefined => (typeof o === 'string' ? o : (o as { encoding?: string } | undefined)?.encoding ?? undefined);

function statOf(p: string, syscall = 'stat') {
  const n = lookup(p);
  if (!n) throw fsError('ENOENT', syscall, norm(p));
  const size = sizeOf(n);
  return {
    size, mtimeMs: n.mtimeMs, mtime: new Date(n.mtimeMs), isFile: () => n.kind !== 'dir', isDirectory: () => n.kind === 'dir',
    isSymbolicLink: () => false,
  };
}

function parentDir(p: string, syscall: string): void {
  const d = lookup(dirname(norm(p)));
  if (!d) throw fsError('ENOENT', syscall, norm(p));
  if (d.kind !== 'dir') throw fsError('ENOTDIR', syscall, norm(p));
}

function fileNode(p: string, syscall: string) {
  const n = lookup(p);
  if (!n) throw fsError('ENOENT', syscall, norm(p));
  if (n.kind === 'dir') throw fsError('EISDIR', syscall, norm(p));
  return n;
}

/** A new in-memory file at `p` (replacing a file there). */
function createMem(p: string, exclusive: boolean, syscall: string) {
  parentDir(p, syscall);
  const old = lookup(p);
  if (old && (exclusive || old.kind === 'dir')) throw fsError(old.kind === 'dir' ? 'EISDIR' : 'EEXIST', syscall, norm(p));
  const n: MemNode = { kind: 'mem', chunks: [], size: 0, mtimeMs: Date.now() };
  setNode(p, n);
  return n;
}

async function open(p: string, flags: string = 'r') {
  if (flags === 'r') {
    const n = fileNode(p, 'open');
    return {
      async read(buf: Uint8Array, offset = 0, length = buf.length - offset, position = 0) {
        const b = await readNode(n, position, length);
        buf.set(b, offset);
        return { bytesRead: b.length, buffer: buf };
      },
      async readFile(o?: unknown) { const b = await readNode(n, 0, sizeOf(n)); return encodingOf(o) ? new TextDecoder().decode(b) : b; },
      stat: async () => statOf(p, 'fstat'),
      close: async () => {},
    };
  }
  if (flags !== 'w' && flags !== 'wx') fail(`open(${JSON.stringify(p)}, ${JSON.stringify(flags)}): flag not supported by the browser file system`);
  const n = createMem(p, flags === 'wx', 'open');
  const append = (b: Uint8Array) => appendChunk(n, b);
  return {
    async write(buf: Data | ArrayBufferView, offset = 0, length?: number) {
      const b = bytesOf(buf), part = b.subarray(offset, length === undefined ? b.length : offset + length);
      append(part);
      return { bytesWritten: part.length, buffer: buf };
    },
    async writeFile(data: Data) { append(bytesOf(data)); },
    stat: async () => statOf(p, 'fstat'),
    sync: async () => {}, datasync: async () => {}, close: async () => {},
  };
}

async function readFile(p: string, o?: unknown) {
  const n = fileNode(p, 'open'), b = await readNode(n, 0, sizeOf(n));
  return encodingOf(o) ? new TextDecoder().decode(b) : b;
}

async function writeFile(p: string, data: Data) {
  appendChunk(createMem(p, false, 'open'), bytesOf(data));
}

async function copyFile(from: string, to: string) {
  const n = fileNode(from, 'copyfile');
  parentDir(to, 'copyfile');
  if (n.kind === 'file') setNode(to, { ...n, mtimeMs: Date.now() }); // the same source: nothing is read
  else setNode(to, { kind: 'mem', chunks: [...n.chunks], size: n.size, mtimeMs: Date.now() });
}

async function mkdir(p: string, o?: { recursive?: boolean }) {
  if (o?.recursive) { mkdirp(p); return undefined; }
  if (lookup(p)) throw fsError('EEXIST', 'mkdir', norm(p));
  parentDir(p, 'mkdir');
  setNode(p, { kind: 'dir', mtimeMs: Date.now() });
  return undefined;
}

async function readdir(p: string) {
  const n = lookup(p);
  if (!n) throw fsError('ENOENT', 'scandir', norm(p));
  if (n.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', norm(p));
  return children(p);
}

async function rename(from: string, to: string) {
  const a = lookup(from);
  if (!a) throw fsError('ENOENT', 'rename', norm(from));
  parentDir(to, 'rename');
  const b = lookup(to);
  if (b) {
    if (b.kind === 'dir' && (a.kind !== 'dir' || children(to).length)) throw fsError(a.kind === 'dir' ? 'ENOTEMPTY' : 'EISDIR', 'rename', norm(to));
    if (b.kind !== 'dir' && a.kind === 'dir') throw fsError('ENOTDIR', 'rename', norm(to));
    deleteNode(to);
  }
  moveNode(from, to);
}

async function rm(p: string, o?: { recursive?: boolean; force?: boolean }) {
  const n = lookup(p);
  if (!n) { if (o?.force) return; throw fsError('ENOENT', 'rm', norm(p)); }
  if (n.kind === 'dir' && !o?.recursive) throw fsError('EISDIR', 'rm', norm(p));
  deleteNode(p);
}

async function rmdir(p: string) {
  const n = lookup(p);
  if (!n) throw fsError('ENOENT', 'rmdir', norm(p));
  if (n.kind !== 'dir') throw fsError('ENOTDIR', 'rmdir', norm(p));
  if (children(p).length) throw fsError('ENOTEMPTY', 'rmdir', norm(p));
  deleteNode(p);
}

async function unlink(p: string) { fileNode(p, 'unlink'); deleteNode(p); }

/** The node:fs promises API over the virtual folders (the functions gptqjs calls). */
export const promises = {
  open, readFile, writeFile, copyFile, mkdir, readdir, rename, rm, rmdir, unlink,
  stat: async (p: string) => statOf(p), lstat: async (p: string) => statOf(p, 'lstat'),
  realpath: async (p: string) => { statOf(p, 'realpath'); return norm(p); },
  access: async (p: string) => { statOf(p, 'access'); },
  /** A file's whole contents as a Blob (browser only). */
  blob: async (p: string) => blobOf(fileNode(p, 'open')),
} as unknown as typeof nodeFs.promises;

export function existsSync(p: string): boolean { return !!lookup(p); }

export function realpathSync(p: string): string {
  statOf(p, 'realpath');
  return norm(p);
}

/** Synchronous reads exist only for files written in this page (mounted sources are read asynchronously). */
export function readFileSync(p: string, o?: unknown): string | Uint8Array {
  const n = fileNode(p, 'open');
  if (n.kind !== 'mem' || n.chunks.some((c) => !(c instanceof Uint8Array))) fail(`${p}: mounted files and written files over 16 MiB are read asynchronously in the browser`);
  const b = new Uint8Array(n.size);
  let off = 0;
  for (const c of n.chunks as Uint8Array[]) { b.set(c, off); off += c.length; }
  return encodingOf(o) ? new TextDecoder().decode(b) : b;
}

export function unlinkSync(p: string): void { fileNode(p, 'unlink'); deleteNode(p); }

export function createReadStream(p: string): never {
  return fail(`${p}: file streams are not available in the browser build of gptqjs`);
}
