/**
 * Quantized output head (LoadOptions.lmHeadBits; on by default for GPTQ checkpoints at accuracy level 4). The head [vocab, hidden] is usually the largest matrix of
 * a small model and GPTQ checkpoints keep it in fp16/fp32: at vocab 32000 × hidden 2048 fp32 it is 262 MB read per
 * generated token, more than all 4-bit decoder layers of a 1B model together. This module round-to-nearest quantizes
 * it at load (no calibration: it is not GPTQ) and runs it on com.microsoft.MatMulNBits:
 *   8 → int8, symmetric, per 32 inputs (like llama.cpp Q8_0), at accuracy_level 4: ORT's CPU MatMulNBits has no fast
 *       8-bit kernel with fp32 activations (measured ~100× slower than level 4), so this choice also quantizes the
 *       head's input activations to int8;
 *   4 → int4, asymmetric (min/max with a zero point), per 32 inputs (like Q4_1), at the model's accuracy level.
 * Not exact (perplexity cost measured in README "Inference speed"); callers log `lmHeadNote`. The embedding table used by Gather stays fp32 (tied heads are quantized as a
 * separate copy).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite } from '../io/safetensors.ts';
import { openModelCheckpoint } from './model-checkpoint.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import { fail } from '../errors.ts';
import type { AccuracyLevel, QuantizedLoadInfo } from './quantized-weights.ts';

export type LmHeadBits = 4 | 8;

export const LM_HEAD_BLOCK = 32;

export function checkLmHeadBits(v: unknown): LmHeadBits | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  if (v !== 4 && v !== 8) fail(`lmHeadBits must be 8, 4 or 0 (0: the checkpoint's head; absent: 8 for GPTQ checkpoints, else 0), got ${JSON.stringify(v)}`);
  return v;
}

export function lmHeadNote(bits: LmHeadBits, accuracyLevel: AccuracyLevel, byDefault = false): string {
  return `lm-head: output head round-to-nearest quantized to ${bits === 8 ? 'int8 (symmetric' : 'int4 (asymmetric'}, block ${LM_HEAD_BLOCK}) at load and run on MatMulNBits at accuracy_level ${accuracyLevel}${accuracyLevel === 4 ? ' (int8 activations)' : ''}: faster, not exact (${byDefault ? 'the default for GPTQ checkpoints at accuracy level 4; lmHeadBits 0 / --lm-head-bits 0 keeps the checkpoint\'s head' : 'asked for'})`;
}

export interface QuantizedHead {
  bits: LmHeadBits; block: number; N: number; K: number;
  /** MatMulNBits B [N, kBlocks, block·bits/8] */
  B: Uint8Array;
  scales: Float32Array;
  /** 4-bit: packed uint8 zero points [N · ceil(kBlocks/2)]; 8-bit: absent (symmetric, default zero point 128) */
  zeroPoints?: Uint8Array;
}

/** Round-to-nearest quantization of W [N, K] (row-major, nn.Linear layout) for MatMulNBits. */
export function quantizeHead(w: Float32Array, N: number, K: number, bits: LmHeadBits, block = LM_HEAD_BLOCK): QuantizedHead {
  if (w.length !== N * K) fail(`lm-head: weight has ${w.length} elements, expected ${N}×${K}`);
  const kBlocks = Math.ceil(K / block), blob = (block * bits) / 8, rowBytes = kBlocks * blob;
  const B = new Uint8Array(N * rowBytes), scales = new Float32Array(N * kBlocks);
  const zRow = Math.ceil(kBlocks / 2);
  const zeroPoints = bits === 4 ? new Uint8Array(N * zRow) : undefined;
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * block, k1 = Math.min(K, k0 + block);
      let lo = 0, hi = 0; // the range always holds 0, so zero (and the padding) is exact
      for (let k = k0; k < k1; k++) { const v = w[row + k]!; if (v < lo) lo = v; if (v > hi) hi = v; }
      const out = n * rowBytes + b * blob;
      if (bits === 8) {
        const amax = Math.max(-lo, hi), scale = amax > 0 ? amax / 127 : 1;
        scales[n * kBlocks + b] = scale;
        for (let k = k0; k < k0 + block; k++) {
          const q = k < k1 ? Math.max(-127, Math.min(127, Math.round(w[row + k]! / scale))) : 0;
          B[out + (k - k0)] = q + 128;
        }
      } else {
        const scale = hi > lo ? (hi - lo) / 15 : 1;
        const zp = Math.max(0, Math.min(15, Math.round(-lo / scale)));
        scales[n * kBlocks + b] = scale;
        zeroPoints![n * zRow + (b >> 1)]! |= zp << ((b & 1) * 4);
        for (let k = k0; k < k0 + block; k++) {
          const q = k < k1 ? Math.max(0, Math.min(15, Math.round(w[row + k]! / scale) + zp)) : zp;
          B[out + ((k - k0) >> 1)]! |= q << (((k - k0) & 1) * 4);
        }
      }
    }
  }
  return { bits, block, N, K, B, scales, zeroPoints };
}

/** The dequantized weight [N, K] of a QuantizedHead (for error measurements and tests). */
export function dequantizeHead(h: QuantizedHead): Float32Array {
  const { N, K, block, bits } = h, kBlocks = Math.ceil(K / block), blob = (block * bits) / 8, zRow = Math.ceil(kBlocks / 2);
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    const b = Math.floor(k / block), i = k - b * block, off = n * kBlocks * blob + b * blob;
    const s = h.scales[n * kBlocks + b]!;
    if (bits === 8) w[n * K + k] = (h.B[off + i]! - 128) * s;
    else {
      const q = (h.B[off + (i >> 1)]! >> ((i & 1) * 4)) & 15;
      const zp = (h.zeroPoints![n * zRow + (b >> 1)]! >> ((b & 1) * 4)) & 15;
      w[n * K + k] = (q - zp) * s;
    }
  }
  return w;
}

const stripFirst = (n: string) => { const d = n.indexOf('.'); return d > 0 && n.indexOf('.', d + 1) > 0 ? n.slice(d + 1) : n; };

/** Whether module `name` (or its base-model-prefixless form) is among a GPTQ checkpoint's quantized modules. */
export function isQuantizedModule(q: QuantizedLoadInfo | undefined, name: string): boolean {
  return !!q?.modules.some((m) => m.name === name || m.name === stripFirst(name));
}

/**
 * The fp head weight [vocab, hidden] of a checkpoint (its own `<lmHead>.weight` or the tied embedding), or undefined
 * when the checkpoint stores the head GPTQ-quantized (`<lmHead>.qweight`).
 */
export async function readHeadWeight(dir: string, arch: ArchDefinition, cfg: ModelConfig): Promise<Float32Array | undefined> {
  const head = arch.lmHead;
  const ck = await openModelCheckpoint(dir, cfg, arch); // the tied embedding, if tied, is an alias of the head
  try {
    if (ck.has(ck.resolve(`${head}.qweight`))) return undefined;
    const n = ck.resolve(`${head}.weight`);
    const w = await ck.readFloat32(n);
    if (w.length !== cfg.vocabSize * cfg.hiddenSize) fail(`lm-head: tensor "${n}" has ${w.length} elements, expected vocab ${cfg.vocabSize} × hidden ${cfg.hiddenSize}`);
    checkFinite(w, n, ck.location, [cfg.vocabSize, cfg.hiddenSize]);
    return w;
  } finally { await ck.dispose(); }
}

/** A WeightSource that runs the linear named `headName` on MatMulNBits with `head`; everything else from `inner`. */
export class HeadQuantizedWeights implements WeightSource {
  /** Set once the head was emitted (the architecture called linear(headName)). */
  used = false;
  constructor(private readonly inner: WeightSource, private readonly headName: string, private readonly head: QuantizedHead,
    private readonly accuracyLevel: AccuracyLevel) {}

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string { return this.inner.tensor(g, name, shape); }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    if (s.name !== this.headName) return this.inner.linear(g, x, s);
    const h = this.head;
    if (s.inFeatures !== h.K || s.outFeatures !== h.N) fail(`lm-head: "${s.name}" is ${s.outFeatures}×${s.inFeatures}, the quantized head ${h.N}×${h.K}`);
    this.used = true;
    const kBlocks = Math.ceil(h.K / h.block);
    const bias = s.bias ? this.inner.tensor(g, `${s.name}.bias`, [h.N]) : '';
    const inputs = [
      x,
      g.init(`${s.name}.qB`, 'uint8', [h.N, kBlocks, (h.block * h.bits) / 8], h.B),
      g.init(`${s.name}.qscales`, 'float32', [h.N, kBlocks], h.scales),
      h.zeroPoints ? g.init(`${s.name}.qzero_points`, 'uint8', [h.zeroPoints.length], h.zeroPoints) : '',
      '', // g_idx
      bias,
    ];
    while (inputs[inputs.length - 1] === '') inputs.pop();
    return g.ms('MatMulNBits', inputs, { K: h.K, N: h.N, bits: h.bits, block_size: h.block, accuracy_level: this.accuracyLevel })[0]!;
  }
}
