import { promises as fs } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** Temp path next to `path` (same filesystem, so rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Write a file atomically: temp file, fsync, rename. Nothing half-written is ever visible at `path`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Build a directory atomically: `fill(tmpDir)` writes everything, then tmpDir is renamed onto `dir`
 * (an existing `dir` is replaced only after the new one is complete).
 */
export async function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(dir.replace(/\/+$/, ''));
  await fs.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    const old = `${tmp}.old`;
    let moved = false;
    try { await fs.rename(dir, old); moved = true; } catch (e: any) { if (e.code !== 'ENOENT') throw e; }
    await fs.rename(tmp, dir);
    if (moved) await fs.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
