/**
 * Quantized output head (LoadOptions.lmHeadBits; on by default for quantized checkpoints — GPTQ, AWQ, bitsandbytes, AQLM — at accuracy level 4). The head [vocab, hidden] is usually the largest matrix of
 * a small model and GPTQ checkpoints keep it in fp16/fp32: at vocab 32000 × hidden 2048 fp32 it is 262 MB read per
 * generated token, more than all 4-bit decoder layers of a 1B model together. This module round-to-nearest quantizes
 * it at load (no calibration: it is not GPTQ) and runs it on com.microsoft.MatMulNBits:
 *   8 → int8, symmetric (±max|w| on the grid: scale max|w|/127, zero point 128, like llama.cpp Q8_0), per 32 inputs,
 *       at accuracy_level 4: ORT's CPU MatMulNBits has no fast 8-bit kernel with fp32 activations (measured ~100×
 *       slower than level 4), so this choice also quantizes the head's input activations to int8;
 *   4 → int4, asymmetric (min/max with a zero point), per 32 inputs (like Q4_1), at the model's accuracy level.
 * The grids and the rounding are those of src/quant/quantizer.ts (AutoGPTQ's Quantizer), as for GPTQ and RTN.
 * Not exact (perplexity cost measured in README "Inference speed"); callers log `lmHeadNote`. The embedding table used by Gather stays fp32 (tied heads are quantized as a
 * separate copy).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite, withoutBasePrefix, type Checkpoint } from '../io/safetensors.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import { fail, option } from '../errors.ts';
import { dequantizeNBits, matMulNBits, packCodesRow, packZeroPoints, type NBitsWeight } from '../graph/matmul-nbits.ts';
import { findParams, quantizeCode } from '../quant/quantizer.ts';
import type { AccuracyLevel } from './quantized-weights.ts';
import type { QuantizedLoadInfo } from './gptq-checkpoint.ts';

export type LmHeadBits = 4 | 8;

export const LM_HEAD_BLOCK = 32;

export function checkLmHeadBits(v: unknown): LmHeadBits | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  if (v !== 4 && v !== 8) fail(`lmHeadBits must be 8, 4 or 0 (0: the checkpoint's head; absent: 8 for quantized checkpoints at accuracy level 4, else 0), got ${JSON.stringify(v)}`);
  return v;
}

export function lmHeadNote(bits: LmHeadBits, accuracyLevel: AccuracyLevel, byDefault = false): string {
  return `lm-head: output head round-to-nearest quantized to ${bits === 8 ? 'int8 (symmetric' : 'int4 (asymmetric'}, block ${LM_HEAD_BLOCK}) at load and run on MatMulNBits at accuracy_level ${accuracyLevel}${accuracyLevel === 4 ? ' (int8 activations)' : ''}: faster, not exact (${byDefault ? `the default for quantized checkpoints at accuracy level 4; ${option('lmHeadBits: 0', '--lm-head-bits 0')} keeps the checkpoint's head` : 'asked for'})`;
}

/** The head in MatMulNBits layout (src/graph/matmul-nbits.ts). */
export type QuantizedHead = NBitsWeight & { bits: LmHeadBits };

/**
 * Round-to-nearest quantization of W [N, K] (row-major, nn.Linear layout) for MatMulNBits, with AutoGPTQ's Quantizer
 * (quantizer.ts findParams / quantizeCode: float32 min-max params, round half to even) on each row's blocks of `block`
 * inputs: 8-bit symmetric with ±max on the grid (symFullRange; zero point 128, MatMulNBits' default), 4-bit asymmetric.
 * Memory: B, scales and one row.
 */
export function quantizeHead(w: Float32Array, N: number, K: number, bits: LmHeadBits, block = LM_HEAD_BLOCK): QuantizedHead {
  if (w.length !== N * K) fail(`lm-head: weight has ${w.length} elements, expected ${N}×${K}`);
  const kBlocks = Math.ceil(K / block), kPad = kBlocks * block, rowBytes = (kPad * bits) / 8;
  const scales = new Float32Array(N * kBlocks), zp = new Uint8Array(N * kBlocks);
  const o = { bits, sym: bits === 8, symFullRange: true };
  for (let b = 0; b < kBlocks; b++) {
    const k0 = b * block, p = findParams(w, N, Math.min(K, k0 + block) - k0, o, { offset: k0, rowStride: K, colStride: 1 });
    for (let n = 0; n < N; n++) { scales[n * kBlocks + b] = p.scale[n]!; zp[n * kBlocks + b] = p.zero[n]!; }
  }
  const B = new Uint8Array(N * rowBytes), row = new Uint8Array(kPad), maxq = 2 ** bits - 1;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) { const g = n * kBlocks + Math.floor(k / block); row[k] = quantizeCode(w[n * K + k]!, scales[g]!, zp[g]!, maxq); }
    packCodesRow(row, 0, kPad, bits, B, n * rowBytes);
  }
  // symmetric 8-bit: every zero point is 128, the kernel's default
  return { bits, block, N, K, B, scales, zeroPoints: bits === 4 ? packZeroPoints(zp, N, kBlocks, bits) : undefined };
}

/** The dequantized weight [N, K] of a QuantizedHead (for error measurements and tests). */
export function dequantizeHead(h: QuantizedHead): Float32Array {
  return dequantizeNBits(h);
}

/** Whether module `name` (or its base-model-prefixless form) is among a GPTQ checkpoint's quantized modules. */
export function isQuantizedModule(q: QuantizedLoadInfo | undefined, name: string): boolean {
  const short = withoutBasePrefix(name);
  return !!q?.modules.some((m) => m.name === name || m.name === short);
}

/**
 * The fp head weight [vocab, hidden] of a checkpoint opened with the model's loading rules (openModelCheckpoint): its
 * own `<lmHead>.weight` or the tied embedding; undefined when the checkpoint stores the head GPTQ-quantized
 * (`<lmHead>.qweight`).
 */
export async function readHeadWeight(ck: Checkpoint, arch: ArchDefinition, cfg: ModelConfig): Promise<Float32Array | undefined> {
  const head = arch.lmHead;
  if (ck.has(ck.resolve(`${head}.qweight`))) return undefined;
  const n = ck.resolve(`${head}.weight`); // the tied embedding, if tied, is an alias of the head (bindModel)
  const w = await ck.readFloat32(n);
  if (w.length !== cfg.vocabSize * cfg.hiddenSize) fail(`lm-head: tensor "${n}" has ${w.length} elements, expected vocab ${cfg.vocabSize} × hidden ${cfg.hiddenSize}`);
  checkFinite(w, n, ck.location, [cfg.vocabSize, cfg.hiddenSize]);
  return w;
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
    const bias = s.bias ? this.inner.tensor(g, `${s.name}.bias`, [h.N]) : undefined;
    return matMulNBits(g, x, s.name, h, this.accuracyLevel, bias);
  }
}
