/**
 * The weights of the decoder layer being quantized, by name relative to the layer ("self_attn.q_proj.weight"): source
 * tensors are read from the checkpoint when a graph or GPTQ needs them (small ones cached); a quantized linear is kept
 * as GPTQ's integer codes + scales/zeros and enters later graphs either as those (dequantized in-graph by
 * DequantizeLinear, InputWeights' `.codes/.scales/.zeros` inputs) or materialized in fp32 (exactly GPTQ's
 * Q = scale·(q − zero)) only for the duration of a graph run.
 */
import type { Tensor as OrtTensor } from 'onnxruntime-node';
import { f32, u8 } from '../graph/session.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { LayerLinear } from '../models/types.ts';
import { fail } from '../errors.ts';
import { allFinite, transpose } from '../tensor.ts';
import { dequantizeCodes } from './quantizer.ts';
import { sharedZeros } from '../platform/workers.ts';

/** GPTQ's result for one linear: codes [out, in], scales/zeros [groups, out], g_idx [in]. */
export interface QuantizedCodes { intCodes: Uint8Array; scales: Float32Array; zeros: Int32Array; gIdx: Int32Array }

export class LayerWeights {
  private codes = new Map<string, { l: LayerLinear; r: QuantizedCodes; dq?: { scales: Float32Array; zeros: Uint8Array } }>();
  private small = new Map<string, Float32Array>();
  /** `prefix`: the layer's name prefix in the checkpoint, e.g. "model.layers.3.". */
  constructor(private readonly ck: Checkpoint, private readonly prefix: string) {}

  /**
   * The source (unquantized) tensor; NaN/Inf is refused (one line naming the tensor). `forWorkers`: read into shared
   * memory (not cached), for GPTQ's solve, whose worker threads then read it in place instead of each getting a copy
   * of its rows (a small tensor may come from the cache as it is). Not for ORT feeds: onnxruntime-node refuses shared
   * buffers.
   */
  async source(rel: string, forWorkers = false): Promise<Float32Array> {
    const hit = this.small.get(rel);
    if (hit) return hit;
    const name = this.ck.resolve(this.prefix + rel);
    const w = await this.ck.readFloat32(name, forWorkers ? (len) => sharedZeros(false, len) : undefined);
    if (!allFinite(w)) fail(`${this.ck.dir}: tensor "${name}" contains NaN or Inf; the source checkpoint is corrupt`);
    if (!forWorkers && w.length <= 1 << 20) this.small.set(rel, w);
    return w;
  }

  /** Replace a source tensor for the rest of the layer (a bias rounded to what is saved). */
  setSource(rel: string, w: Float32Array): void { this.small.set(rel, w); }

  /** From now on module `m`'s weight is GPTQ's result `r`. */
  setQuantized(m: string, l: LayerLinear, r: QuantizedCodes): void {
    this.codes.set(`${m}.weight`, { l, r: { intCodes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx } });
  }

  /** fp32 tensor: the source, or a quantized weight dequantized ([out, in], or [in, out] for Conv1D). */
  async get(rel: string): Promise<Float32Array> {
    const q = this.codes.get(rel);
    if (!q) return this.source(rel);
    const { l, r } = q;
    return dequantizeCodes(r.intCodes, r.scales, r.zeros, r.gIdx, l.outFeatures, l.inFeatures, l.conv1d);
  }

  /** ORT feeds for a graph's weight inputs (InputWeights.inputs): fp32 tensors, or `<w>.codes/.scales/.zeros`. */
  async feeds(inputs: { rel: string; shape: number[] }[]): Promise<Record<string, OrtTensor>> {
    const f: Record<string, OrtTensor> = {};
    for (const i of inputs) {
      const m = /^(.*\.weight)\.(codes|scales|zeros)$/.exec(i.rel);
      if (!m) { f[i.rel] = f32(await this.get(i.rel), i.shape); continue; }
      const q = this.codes.get(m[1]!);
      if (!q) fail(`internal: ${this.prefix}${m[1]} is not quantized yet`);
      // GPTQ's scales/zeros [groups, rows] → DequantizeLinear's [rows, groups] (zeros as uint8)
      q.dq ??= { scales: transpose(q.r.scales, q.r.scales.length / q.l.outFeatures, q.l.outFeatures, new Float32Array(q.r.scales.length)),
        zeros: transpose(q.r.zeros, q.r.zeros.length / q.l.outFeatures, q.l.outFeatures, new Uint8Array(q.r.zeros.length)) };
      f[i.rel] = m[2] === 'codes' ? u8(q.r.intCodes, i.shape) : m[2] === 'scales' ? f32(q.dq.scales, i.shape) : u8(q.dq.zeros, i.shape);
    }
    return f;
  }
}
