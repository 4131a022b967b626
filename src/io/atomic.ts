/**
 * Writes that never leave anything half-written and never touch a file they were not asked to write:
 * temp file + fsync + rename for files; for folders, a staged copy installed only when complete, into a new folder
 * or — only where the caller allows it — over the files it owns in an existing one.
 */
import { promises as fs, realpathSync } from '../platform/fs.ts';
import { dirname, basename, join, resolve } from '../platform/path.ts';
import { fail } from '../errors.ts';
import { processId } from '../platform/os.ts';

/** Real path of `p` (symlinks resolved), or of its nearest existing parent joined with the rest: `p` need not exist. */
export function realPath(p: string): string {
  const abs = resolve(p);
  try { return realpathSync(abs); } catch { return abs === dirname(abs) ? abs : join(realPath(dirname(abs)), basename(abs)); }
}

const rand = () => Math.random().toString(36).slice(2, 8);

/** Temp path next to `path` (same filesystem, so rename is atomic). Open it with 'wx': it never replaces a file. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${processId()}-${rand()}`);
}

export type FileHandle = Awaited<ReturnType<typeof fs.open>>;

/** Write all of `buf` at the handle's position (one write call moves at most 256 MiB). */
export async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const { bytesWritten } = await fh.write(buf, off, Math.min(1 << 28, buf.length - off));
    off += bytesWritten;
  }
}

/** Write a file atomically: temp file (created exclusively), fsync, rename. Nothing half-written is ever visible at `path`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomicWith(path, (fh) => fh.writeFile(data));
}

/**
 * writeFileAtomic for content written piece by piece: `write(fh)` fills the temp file (e.g. streaming tensors), then
 * fsync and rename. On any error the temp file is removed and the error rethrown; `path` is untouched.
 */
export async function writeFileAtomicWith(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const fh = await fs.open(tmp, 'wx');
    created = true;
    try {
      await write(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (e) {
    if (created) await fs.rm(tmp, { force: true });
    throw e;
  }
}

export interface WriteDirOptions {
  /** The names this writer produces: in an existing folder, exactly these may be replaced (or removed as stale). */
  owns?: (name: string) => boolean;
  /** Replace the owned files of a non-empty folder; every other file in it is kept. */
  overwrite?: boolean;
  /** Without `overwrite`: may this non-empty folder be written (e.g. it holds this very run's earlier output)? */
  replaceable?: (dir: string, entries: string[]) => boolean | Promise<boolean>;
  /** The refusal of a non-empty folder (one line); default names the folder and its first entries. */
  refuse?: (dir: string, entries: string[]) => string;
}

/**
 * Build a directory atomically: `fill(tmpDir)` writes everything into a staging folder, which is installed only when
 * complete.
 *  - `dir` missing: its missing parent folders are created, and the staging folder (a sibling) is renamed to `dir`.
 *  - `dir` exists and is empty, or non-empty and allowed (`overwrite`, or `replaceable` says yes): the staged files
 *    are moved in one by one (the staging folder is inside `dir`, same filesystem); owned files already there are
 *    first moved to a backup folder inside `dir` and deleted only after every new file is in place (on failure they
 *    are moved back). Files `owns` does not claim are never touched.
 *  - otherwise: refused (GptqError) before anything is written.
 */
export async function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>, o: WriteDirOptions = {}): Promise<void> {
  const target = dir.replace(/\/+$/, '') || dir;
  const st = await fs.stat(target).catch(() => null);
  if (st && !st.isDirectory()) fail(`${target} exists and is not a directory`);
  const entries = st ? await fs.readdir(target) : [];
  if (entries.length && !o.overwrite && !(await o.replaceable?.(target, entries)))
    fail(o.refuse?.(target, entries) ?? `${target} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); refusing to write into it`);

  if (!st) {
    const tmp = tempPathFor(target);
    await fs.mkdir(dirname(target), { recursive: true }); // missing parent folders are created, as `mkdir -p` (and save_pretrained) do
    await fs.mkdir(tmp);
    try {
      await fill(tmp);
      await fs.rename(tmp, target);
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return;
  }

  const tag = `${processId()}-${rand()}`;
  const stage = join(target, `.gptqjs-new-${tag}`), backup = join(target, `.gptqjs-old-${tag}`);
  await fs.mkdir(stage);
  try { await fill(stage); } catch (e) { await fs.rm(stage, { recursive: true, force: true }); throw e; }
  const fresh = await fs.readdir(stage);
  const owns = o.owns ?? (() => false);
  const old = entries.filter((n) => owns(n) || fresh.includes(n));
  const moved: string[] = [], installed: string[] = [];
  try {
    if (old.length) await fs.mkdir(backup);
    for (const n of old) { await fs.rename(join(target, n), join(backup, n)); moved.push(n); }
    for (const n of fresh) { await fs.rename(join(stage, n), join(target, n)); installed.push(n); }
  } catch (e) {
    for (const n of installed) await fs.rename(join(target, n), join(stage, n)).catch(() => {});
    for (const n of moved) await fs.rename(join(backup, n), join(target, n)).catch(() => {});
    await fs.rm(stage, { recursive: true, force: true });
    await fs.rmdir(backup).catch(() => {});
    throw e;
  }
  // The backup holds only the replaced owned files; the staging folder is empty now.
  await fs.rm(backup, { recursive: true, force: true });
  await fs.rmdir(stage).catch(() => {});
}
