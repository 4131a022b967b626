/**
 * Durable quantization state, so a crashed or killed run resumes where it stopped:
 *   manifest.json            run key: source checkpoint hash + quantize config + calibration hash
 *   layer-00003.safetensors  packed tensors of finished layer 3 (metadata: skipped modules, losses)
 *   acts.safetensors         inputs of the next unfinished layer (metadata: layer index)
 *   lock.json                the run using the work dir: pid, hostname, start time (created with O_EXCL)
 * Every file is written atomically; a layer file is written before the activations that follow it, so
 * acts.layer = n implies layers 0..n−1 are complete.
 *
 * Safety: a work dir is locked by one process at a time (a second run refuses at once, naming the other process; the
 * lock of a killed run — pid no longer alive on this host — is taken over with a note). A folder holding files that
 * are not a work dir's is never adopted, and removing a work dir deletes only the files named above.
 */
import { createHash } from '../platform/crypto.ts';
import { existsSync, promises as fs, readFileSync, unlinkSync } from '../platform/fs.ts';
import { hostname } from '../platform/os.ts';
import { join } from '../platform/path.ts';
import { fail, option } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { SafetensorsFile, lazyFrom, writeSafetensors, type LazyTensor } from '../io/safetensors.ts';
import type { Tensor } from '../tensor.ts';

export interface RunKey { source: string; config: string; calibration: string }

/** sha256 of config.json and every weight file of a checkpoint directory (read through one reused 4 MB buffer). */
export async function hashCheckpoint(dir: string, files: string[]): Promise<string> {
  const h = createHash('sha256'), buf = Buffer.allocUnsafe(1 << 22);
  for (const f of [join(dir, 'config.json'), ...[...files].sort()]) {
    h.update(f.slice(f.lastIndexOf('/') + 1) + '\0');
    const fh = await fs.open(f, 'r');
    try {
      for (let pos = 0; ;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (!bytesRead) break;
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    } finally { await fh.close(); }
  }
  return h.digest('hex');
}

export function hashCalibration(rows: ArrayLike<number>[]): string {
  const h = createHash('sha256');
  for (const r of rows) h.update(Int32Array.from(r as ArrayLike<number>)).update('|');
  return h.digest('hex');
}

export interface LayerRecord {
  skipped: { name: string; reason: string }[]; losses: Record<string, number>;
  /** sha256 of each quantized module's packed tensors after verification (absent in work dirs of older versions). */
  digests?: Record<string, string>;
}

const layerFile = (i: number) => `layer-${String(i).padStart(5, '0')}.safetensors`;
const LOCK = 'lock.json';
/** Present when gptqjs created the folder itself: only then is the folder removed with its files (a folder the user
 *  made and named as the work dir stays, emptied). */
const CREATED = 'created-by-gptqjs';
/** Names a work dir holds (and temp files of their atomic writes: ".<name>.tmp-<pid>-<rand>"). */
const isWorkDirFile = (n: string) => /^(manifest\.json|acts\.safetensors|layer-\d{5}\.safetensors|lock\.json|created-by-gptqjs)$/.test(n)
  || /^\.(manifest\.json|acts\.safetensors|layer-\d{5}\.safetensors)\.tmp-\d+-[a-z0-9]+$/.test(n) || /^lock\.json\.stale-\d+$/.test(n);

export interface LockInfo { pid: number; hostname: string; started: string; startedMs: number; command: string }

/** Locks this process holds (path → holders), removed at exit even when the run fails. */
const held = new Map<string, number>();
let exitHook = false;

/** Is `l`'s process still running on this host? (kill 0; on Linux a reused pid is told apart by its start time.) */
function lockAlive(l: LockInfo): boolean {
  try { process.kill(l.pid, 0); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false; }
  try {
    // /proc/<pid>/stat field 22: start time in clock ticks since boot (USER_HZ 100 on Linux); /proc/stat btime: boot.
    const stat = readFileSync(`/proc/${l.pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (Number.isFinite(ticks) && Number.isFinite(btime) && btime * 1000 + ticks * 10 > l.startedMs + 5000) return false; // pid reused
  } catch { /* no /proc: trust kill(0) */ }
  return true;
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    const l = JSON.parse(await fs.readFile(path, 'utf8'));
    return typeof l?.pid === 'number' && typeof l?.hostname === 'string' ? l : undefined;
  } catch { return undefined; }
}

/**
 * Take `dir`'s lock (lock.json created with O_EXCL). Another live process holding it: fails at once naming its pid;
 * a lock left by a dead process on this host: taken over (onLog says so); a lock from another host: fails.
 */
async function acquireLock(dir: string, onLog: (msg: string) => void): Promise<string> {
  const path = join(dir, LOCK);
  if (held.has(path)) { held.set(path, held.get(path)! + 1); return path; }
  const me: LockInfo = { pid: process.pid, hostname: hostname(), started: new Date().toISOString(), startedMs: Date.now(), command: process.argv.slice(1).join(' ') };
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const fh = await fs.open(path, 'wx');
      try { await fh.writeFile(JSON.stringify(me) + '\n'); await fh.sync(); } finally { await fh.close(); }
      held.set(path, 1);
      if (!exitHook) { exitHook = true; process.on('exit', () => { for (const p of held.keys()) try { unlinkSync(p); } catch { /* gone */ } }); }
      return path;
    } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail(`work dir ${dir}: cannot create its lock ${path}: ${(e as Error).message}`); }
    const other = await readLock(path);
    if (!other) {
      // Being written by its owner right now, or left empty by a crash: wait a little, then treat an old one as stale.
      const st = await fs.stat(path).catch(() => null);
      if (st && Date.now() - st.mtimeMs < 10_000) { await new Promise((r) => setTimeout(r, 100)); continue; }
    } else if (other.hostname !== me.hostname) {
      fail(`work dir ${dir} is locked by process ${other.pid} on host ${other.hostname} (since ${other.started}); if that run is gone, delete ${path}`);
    } else if (lockAlive(other)) {
      fail(`work dir ${dir} is in use by another gptq quantize run (pid ${other.pid}, started ${other.started}); wait for it to finish or stop it, or use another ${option('workDir', '--work-dir or --out')}`);
    }
    // Stale: move it aside (one process wins the rename), check that it is the one judged stale, take the lock.
    const aside = `${path}.stale-${process.pid}`;
    try { await fs.rename(path, aside); } catch { continue; }
    const moved = await readLock(aside);
    if (other && moved && (moved.pid !== other.pid || moved.startedMs !== other.startedMs)) {
      await fs.rename(aside, path).catch(() => {}); // a fresh lock was taken meanwhile: put it back
      continue;
    }
    await fs.rm(aside, { force: true });
    onLog(other ? `work dir ${dir}: taking over the lock of process ${other.pid} (started ${other.started}), which is no longer running`
      : `work dir ${dir}: replacing an unreadable lock file`);
  }
  fail(`work dir ${dir}: could not take its lock ${path}`);
}

function releaseLock(path: string): void {
  const n = held.get(path);
  if (n === undefined) return;
  if (n > 1) { held.set(path, n - 1); return; }
  held.delete(path);
  try { unlinkSync(path); } catch { /* gone */ }
}

/** sha256 of a run key: what a checkpoint records as the run that wrote it. */
export const runIdOf = (key: RunKey) => createHash('sha256').update(JSON.stringify([key.source, key.config, key.calibration])).digest('hex');

export class WorkDir {
  private key?: RunKey;
  private constructor(readonly dir: string, private lockPath: string | undefined) {}

  /**
   * Lock a work dir for this process (created when missing). Fails at once when another live run holds it, or when
   * the folder holds files that are not a work dir's (it would otherwise be adopted and later deleted).
   */
  static async acquire(dir: string, o: { onLog?: (msg: string) => void } = {}): Promise<WorkDir> {
    const st = await fs.stat(dir).catch(() => null);
    if (st && !st.isDirectory()) fail(`work dir ${dir} exists and is not a directory; choose another ${option('workDir', '--work-dir')}`);
    if (st) {
      const foreign = (await fs.readdir(dir)).filter((n) => !isWorkDirFile(n));
      if (foreign.length) fail(`work dir ${dir} holds files that are not gptqjs's (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}); gptqjs deletes its work dir when done, so it never adopts a folder like this: choose another ${option('workDir', '--work-dir')}`);
    }
    if (!st) {
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(join(dir, CREATED), '');
    }
    return new WorkDir(dir, await acquireLock(dir, o.onLog ?? (() => {})));
  }

  /** Open (or create) a locked work dir for this run; a work dir of a different run is refused, never mixed. */
  static async open(dir: string, key: RunKey, o: { onLog?: (msg: string) => void } = {}): Promise<WorkDir> {
    const w = await WorkDir.acquire(dir, o);
    try { await w.bind(key); } catch (e) { w.release(); throw e; }
    return w;
  }

  /** Check (or record) the run this work dir belongs to. */
  async bind(key: RunKey): Promise<void> {
    const dir = this.dir, mpath = join(dir, 'manifest.json');
    if (existsSync(mpath)) {
      let m: RunKey;
      try { m = JSON.parse(await fs.readFile(mpath, 'utf8')); } catch { fail(`${mpath}: not valid JSON; delete the work dir ${dir} to start over`); }
      for (const k of ['source', 'config', 'calibration'] as const)
        if (m[k] !== key[k]) fail(`work dir ${dir} belongs to a different run (${k === 'source' ? 'source checkpoint' : k === 'config' ? 'quantize config' : 'calibration data'} differs); delete it or choose another ${option('workDir', '--work-dir')}`);
    } else {
      await writeFileAtomic(mpath, JSON.stringify(key, null, 2) + '\n');
    }
    this.key = key;
  }

  /** The run key bound to this work dir. */
  get runKey(): RunKey { return this.key ?? fail(`work dir ${this.dir}: no run bound yet`); }

  /** Give up the lock (the files stay, for a later resume). Idempotent. */
  release(): void { if (this.lockPath) { releaseLock(this.lockPath); this.lockPath = undefined; } }

  /** Index of the first unfinished layer (0 when nothing is saved yet). */
  async layersDone(): Promise<number> {
    const p = join(this.dir, 'acts.safetensors');
    if (!existsSync(p)) return 0;
    const f = await SafetensorsFile.open(p);
    const n = Number(f.metadata.layer);
    await f.dispose();
    for (let i = 0; i < n; i++) if (!existsSync(join(this.dir, layerFile(i)))) fail(`work dir ${this.dir}: ${layerFile(i)} is missing although layer ${n} was reached; delete the work dir to start over`);
    return n;
  }

  /** nextInputs: fp32, or fp16 bits (Uint16Array). */
  async saveLayer(i: number, tensors: Record<string, Tensor>, rec: LayerRecord, nextInputs: (Float32Array | Uint16Array)[], shapes: number[][]): Promise<void> {
    await writeSafetensors(join(this.dir, layerFile(i)), tensors, { format: 'pt', record: JSON.stringify(rec) });
    const acts: Record<string, Tensor> = {};
    nextInputs.forEach((a, k) => { acts[`batch.${String(k).padStart(5, '0')}`] = { dtype: a instanceof Uint16Array ? 'F16' : 'F32', shape: shapes[k]!, data: a }; });
    await writeSafetensors(join(this.dir, 'acts.safetensors'), acts, { layer: String(i + 1) });
  }

  /** Read the activations saved for the next unfinished layer into `into` (one array per batch, in order). */
  async loadActivations(into: (Float32Array | Uint16Array)[]): Promise<void> {
    const path = join(this.dir, 'acts.safetensors');
    const f = await SafetensorsFile.open(path);
    try {
      const names = f.names().sort();
      const bad = names.length !== into.length ? `${names.length} batches saved, ${into.length} expected`
        : names.map((n, k) => (f.info(n).dtype !== (into[k] instanceof Uint16Array ? 'F16' : 'F32') || f.info(n).shape.reduce((a, b) => a * b, 1) !== into[k]!.length ? n : '')).find((x) => x);
      if (bad) fail(`work dir ${this.dir}: saved activations do not match the calibration batches (${bad}); delete the work dir to start over`);
      for (let k = 0; k < names.length; k++) await f.readInto(names[k]!, into[k]!);
    } finally { await f.dispose(); }
  }

  /** Packed tensors (lazy: each load opens, reads and closes the layer file) and record of a finished layer. */
  async layer(i: number): Promise<{ tensors: Map<string, LazyTensor>; record: LayerRecord }> {
    const path = join(this.dir, layerFile(i));
    const file = await SafetensorsFile.open(path);
    const reader = { info: (n: string) => file.info(n), read: async (n: string) => { const f = await SafetensorsFile.open(path); try { return await f.read(n); } finally { await f.dispose(); } } };
    const tensors = new Map(file.names().map((n) => [n, lazyFrom(reader, n)]));
    const record: LayerRecord = JSON.parse(file.metadata.record ?? '{"skipped":[],"losses":{}}');
    await file.dispose();
    return { tensors, record };
  }

  /**
   * Delete the work dir's own files (manifest, layer files, activations, temp files), release the lock, and remove
   * the folder if gptqjs created it and that left it empty. Files someone else put there are kept (and so is the
   * folder), and so is a folder the user made.
   */
  async remove(): Promise<void> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    for (const n of names) if (isWorkDirFile(n) && n !== LOCK && n !== CREATED) await fs.rm(join(this.dir, n), { force: true });
    this.release();
    if (!names.includes(CREATED)) return;
    await fs.rm(join(this.dir, CREATED), { force: true });
    await fs.rmdir(this.dir).catch(() => {});
  }
}
