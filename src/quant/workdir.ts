/**
 * Durable quantization state, so a crashed or killed run resumes where it stopped:
 *   manifest.json            run key: source checkpoint hash + quantize config + calibration hash
 *   layer-00003.safetensors  packed tensors of finished layer 3 (metadata: skipped modules, losses)
 *   acts.safetensors         inputs of the next unfinished layer (metadata: layer index)
 * Every file is written atomically; a layer file is written before the activations that follow it, so
 * acts.layer = n implies layers 0..n−1 are complete.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../errors.ts';
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

export class WorkDir {
  private constructor(readonly dir: string, readonly key: RunKey) {}

  /** Open (or create) a work dir for this run; a work dir of a different run is refused, never mixed. */
  static async open(dir: string, key: RunKey): Promise<WorkDir> {
    await fs.mkdir(dir, { recursive: true });
    const mpath = join(dir, 'manifest.json');
    if (existsSync(mpath)) {
      let m: RunKey;
      try { m = JSON.parse(await fs.readFile(mpath, 'utf8')); } catch { fail(`${mpath}: not valid JSON; delete the work dir ${dir} to start over`); }
      for (const k of ['source', 'config', 'calibration'] as const)
        if (m[k] !== key[k]) fail(`work dir ${dir} belongs to a different run (${k === 'source' ? 'source checkpoint' : k === 'config' ? 'quantize config' : 'calibration data'} differs); delete it or choose another --work-dir`);
    } else {
      await writeFileAtomic(mpath, JSON.stringify(key, null, 2) + '\n');
    }
    return new WorkDir(dir, key);
  }

  /** Index of the first unfinished layer (0 when nothing is saved yet). */
  async layersDone(): Promise<number> {
    const p = join(this.dir, 'acts.safetensors');
    if (!existsSync(p)) return 0;
    const f = await SafetensorsFile.open(p);
    const n = Number(f.metadata.layer);
    await f.close();
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
    } finally { await f.close(); }
  }

  /** Packed tensors (lazy: each load opens, reads and closes the layer file) and record of a finished layer. */
  async layer(i: number): Promise<{ tensors: Map<string, LazyTensor>; record: LayerRecord }> {
    const path = join(this.dir, layerFile(i));
    const file = await SafetensorsFile.open(path);
    const reader = { info: (n: string) => file.info(n), read: async (n: string) => { const f = await SafetensorsFile.open(path); try { return await f.read(n); } finally { await f.close(); } } };
    const tensors = new Map(file.names().map((n) => [n, lazyFrom(reader, n)]));
    const record: LayerRecord = JSON.parse(file.metadata.record ?? '{"skipped":[],"losses":{}}');
    await file.close();
    return { tensors, record };
  }

  async remove(): Promise<void> { await fs.rm(this.dir, { recursive: true, force: true }); }
}
