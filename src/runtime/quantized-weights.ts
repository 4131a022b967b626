/**
 * GPTQ checkpoints (AutoGPTQ v1 "gptq" and GPTQModel "gptq_v2" layouts) as ONNX Runtime int-N kernels.
 *
 * Each quantized linear is converted once at load from AutoGPTQ's layout
 *   qweight int32 [in·bits/32, out] · qzeros int32 [groups, out·bits/32] · scales [groups, out] · g_idx int32 [in]
 * to com.microsoft.MatMulNBits
 *   B uint8 [N=out, k_blocks, block·bits/8] · scales float [N, k_blocks] · zero_points uint8 [N·ceil(k_blocks·bits/8)].
 *
 * What ORT 1.30's CPU MatMulNBits does (measured on the 2-core dev machine; exactness in test/quantized.test.ts):
 * - 4-bit has the fast fp32-activation kernel; 2-bit and 8-bit run a dequantize-every-call path at accuracy_level < 4
 *   (~10× slower than an fp32 Gemm of the same size at m = 1). So 2- and 3-bit codes are repacked losslessly to 4-bit
 *   codes, and 8-bit runs natively only at accuracy_level 4 (int8 activations, the user's opt-in); at lower
 *   levels 8-bit modules are dequantized to fp32 at load (same math as the kernel, 4× the memory), logged.
 * - The deprecated g_idx input gives wrong results except 4-bit without zero points, so act-order is handled by
 *   permuting the weight's input rows so that every group is contiguous and gathering the activations once per
 *   distinct permutation (q/k/v share theirs).
 * - Float zero points work for 2/4-bit but are slow (and fail for 8-bit); v1 checkpoints whose stored zero−1
 *   underflowed (real zero 2^bits) are widened instead: 2/3-bit → 4-bit codes (exact, fast); 4-bit → 8-bit codes
 *   at accuracy_level 4, else that module is dequantized to fp32 (logged).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { gemmLinear, InitializerWeights, type TensorLookup } from '../graph/weights.ts';
import { matMulNBits, packCodesRow, packZeroPoints } from '../graph/matmul-nbits.ts';
import { lookupBaseModelName } from '../io/safetensors.ts';
import type { LinearSpec, WeightSource } from '../models/types.ts';
import type { Bits } from '../quant/quantize-config.ts';
import { dequantize, unpackQweightRows, unpackQzeros } from '../quant/pack.ts';
import { fail } from '../errors.ts';

export type AccuracyLevel = 0 | 1 | 2 | 3 | 4;

/** One GPTQ linear as stored (tensors already read), with its resolved settings. */
export interface GptqLinear {
  name: string; inFeatures: number; outFeatures: number; bits: Bits;
  /** −1 = one group over all inputs. */
  groupSize: number; groups: number;
  qweight: Int32Array; qzeros: Int32Array; scales: Float32Array; gIdx?: Int32Array; bias?: Float32Array;
  format: 'gptq' | 'gptq_v2';
}

/** How a quantized linear enters the graph. */
export type PreparedLinear =
  | {
    kind: 'nbits'; name: string; K: number; N: number; bits: 4 | 8; block: number; sourceBits: Bits;
    B: Uint8Array; scales: Float32Array; zeroPoints?: Uint8Array;
    /** Input permutation (act-order), shared by identity with every linear that has the same one. */
    perm?: { id: number; idx: BigInt64Array };
    bias?: Float32Array;
  }
  /** sourceBits: the stored code width (AQLM: bits per weight of its codes, e.g. 2). */
  | { kind: 'dense'; name: string; K: number; N: number; sourceBits: number; weight: Float32Array; bias?: Float32Array; reason: string };

export interface PrepareOptions { accuracyLevel?: AccuracyLevel }

/** Largest power of two ≤ 128 dividing n (0 when n is odd). */
function blockFor(n: number): number {
  let b = 1;
  while (b < 128 && n % (b * 2) === 0) b *= 2;
  return n % b === 0 ? b : 0;
}

/** Stable argsort of g_idx, or undefined when it is already the identity. */
function sortByGroup(gIdx: Int32Array): Int32Array | undefined {
  let sorted = true;
  for (let k = 1; k < gIdx.length && sorted; k++) if (gIdx[k]! < gIdx[k - 1]!) sorted = false;
  if (sorted) return undefined;
  const idx = Int32Array.from({ length: gIdx.length }, (_, k) => k);
  return idx.sort((a, b) => gIdx[a]! - gIdx[b]! || a - b);
}

/**
 * Convert one GPTQ linear for MatMulNBits (exact: the kernel computes Σ x·scale·(code − zero) with the same
 * codes, scales and zeros), or to fp32 weights where no exact fast kernel exists (reason given).
 */
export function prepareLinear(l: GptqLinear, o: PrepareOptions = {}): PreparedLinear {
  const { name, inFeatures: K, outFeatures: N, bits, groups } = l;
  const dense = (reason: string): PreparedLinear => ({
    kind: 'dense', name, K, N, sourceBits: bits, reason, bias: l.bias,
    weight: dequantize({ qweight: l.qweight, qzeros: l.qzeros, scales: l.scales, gIdx: l.gIdx ?? trivialGIdx(K, l.groupSize), bits, inFeatures: K, outFeatures: N, format: l.format }),
  });
  const gs = groups === 1 ? K : l.groupSize;
  const gIdx = l.gIdx;
  if (gIdx) for (let k = 0; k < K; k++) {
    const g = gIdx[k]!;
    if (!(g >= 0 && g < groups)) fail(`tensor "${name}.g_idx": entry ${k} is ${g}, outside [0, ${groups}) (groups = ceil(in_features ${K} / group_size ${l.groupSize}))`);
  }
  // Act-order: sort input channels by group; the sorted order must give group_size-long contiguous runs.
  const order = gIdx ? sortByGroup(gIdx) : undefined;
  if (gIdx) {
    for (let k = 0; k < K; k++) if (gIdx[order ? order[k]! : k]! !== Math.floor(k / gs)) {
      return dense(`g_idx groups are not ${gs} input channels each, so no block layout fits`);
    }
  }
  const block = blockFor(gs);
  if (block < 16) return dense(`group_size ${gs} is not a multiple of 16 (MatMulNBits blocks are powers of two ≥ 16)`);
  const zeros = unpackQzeros(l.qzeros, bits, groups, N, l.format); // [groups, N], v1 underflow reads as 2^bits
  let maxZero = 0;
  for (let i = 0; i < zeros.length; i++) if (zeros[i]! > maxZero) maxZero = zeros[i]!;
  const tb: 4 | 8 | 0 = bits <= 4 && maxZero <= 15 ? 4 : maxZero <= 255 ? 8 : 0;
  if (tb === 0) return dense(`a v1 zero point underflowed to ${maxZero} (stored zero−1 = −1), which no 8-bit zero point holds`);
  if (tb === 8 && (o.accuracyLevel ?? 0) !== 4) {
    return dense(bits === 8
      ? '8-bit: ORT CPU MatMulNBits only has a fast 8-bit kernel at accuracy_level 4 (int8 activations); fp32 weights are exact and faster here'
      : `a v1 zero point underflowed to ${maxZero} (needs 8-bit zero points; the 8-bit kernel is only fast at accuracy_level 4)`);
  }
  const kBlocks = Math.ceil(K / block), blob = (block * tb) / 8, rowBytes = kBlocks * blob;
  const B = new Uint8Array(N * rowBytes);
  if (!order && tb === bits) {
    // Same code width, no permutation: each int32 of qweight column n holds 32/bits consecutive codes, low bits
    // first — byte for byte the MatMulNBits row layout (blocks are contiguous along K; the last one zero-padded).
    // Whole words are copied (rowBytes is a multiple of 4: blob = block·tb/8 ≥ 8), in bands of rows for locality.
    const B32 = new Int32Array(B.buffer), rowWords = rowBytes / 4, words = (K * bits) / 32;
    for (let n0 = 0; n0 < N; n0 += 64) {
      const n1 = Math.min(n0 + 64, N);
      for (let w = 0; w < words; w++) for (let n = n0, s = w * N + n0, d = n0 * rowWords + w; n < n1; n++, s++, d += rowWords) B32[d] = l.qweight[s]!;
    }
  } else {
    // Unpack a band of output rows at a time (small scratch), then write each row's codes in kernel order:
    // byte index within the row = block·blob + (k mod block)/per = k/per (all blocks but the last are full).
    const T = 32, band = new Uint8Array(T * K);
    for (let n0 = 0; n0 < N; n0 += T) {
      const n1 = Math.min(n0 + T, N);
      unpackQweightRows(l.qweight, bits, K, N, n0, n1, band);
      for (let n = n0; n < n1; n++) packCodesRow(band, (n - n0) * K, K, tb, B, n * rowBytes, order);
    }
  }
  const scales = new Float32Array(N * kBlocks);
  const zp = new Uint8Array(N * kBlocks);
  let allDefault = true;
  const dflt = 1 << (tb - 1);
  for (let n = 0; n < N; n++) for (let b = 0; b < kBlocks; b++) {
    const g = Math.floor((b * block) / gs);
    scales[n * kBlocks + b] = l.scales[g * N + n]!;
    const z = zeros[g * N + n]!;
    zp[n * kBlocks + b] = z;
    if (z !== dflt) allDefault = false;
  }
  const zeroPoints = allDefault ? undefined : packZeroPoints(zp, N, kBlocks, tb);
  return {
    kind: 'nbits', name, K, N, bits: tb, block, sourceBits: bits, B, scales, zeroPoints, bias: l.bias,
    perm: order ? { id: -1, idx: BigInt64Array.from(order, (v) => BigInt(v)) } : undefined,
  };
}

export function trivialGIdx(inFeatures: number, groupSize: number): Int32Array {
  return Int32Array.from({ length: inFeatures }, (_, k) => (groupSize > 0 ? Math.floor(k / groupSize) : 0));
}

/** Give identical permutations one shared id (so the graph gathers each input once per distinct permutation). */
export function sharePermutations(linears: Iterable<PreparedLinear>): number {
  const seen = new Map<string, { id: number; idx: BigInt64Array }>();
  for (const p of linears) {
    if (p.kind !== 'nbits' || !p.perm) continue;
    const key = p.perm.idx.join(',');
    const prev = seen.get(key);
    if (prev) p.perm = prev;
    else { p.perm.id = seen.size; seen.set(key, p.perm); }
  }
  return seen.size;
}

/**
 * WeightSource for a GPTQ checkpoint: quantized linears as MatMulNBits (or their fp32 fallback), everything else
 * (norms, embeddings, kept fp linears) as fp32 initializers. One instance per graph; the prepared data is shared.
 */
export class QuantizedWeights implements WeightSource {
  private readonly fp: InitializerWeights;
  private readonly gathered = new Map<string, string>();
  private readonly emitted = new Set<string>();
  constructor(get: TensorLookup, private readonly linears: ReadonlyMap<string, PreparedLinear>,
    private readonly o: { accuracyLevel?: AccuracyLevel; tiedTo?: string; where?: string } = {}) {
    this.fp = new InitializerWeights(get, o.tiedTo, o.where);
  }

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string { return this.fp.tensor(g, name, shape); }

  private find(name: string): PreparedLinear | undefined { return lookupBaseModelName((n) => this.linears.get(n), name); }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    const p = this.find(s.name);
    if (!p) return this.fp.linear(g, x, s);
    if (p.K !== s.inFeatures || p.N !== s.outFeatures) fail(`quantized module "${s.name}" is ${p.N}x${p.K} (out x in) but the model config needs ${s.outFeatures}x${s.inFeatures}`);
    // A bias the config doesn't mention is kept (some GPTQ exports store zero biases); a missing one is an error.
    if (s.bias && !p.bias) fail(`${this.o.where ?? 'checkpoint'}: quantized module "${s.name}" has no "${s.name}.bias" but the model config needs one`);
    if (this.emitted.has(p.name)) fail(`linear "${s.name}" used twice in one graph`);
    this.emitted.add(p.name);
    const bias = p.bias ? g.init(`${p.name}.bias`, 'float32', [p.N], p.bias) : undefined;
    if (p.kind === 'dense') return gemmLinear(g, x, g.init(`${p.name}.weight`, 'float32', [p.N, p.K], p.weight), bias, p.N);
    let a = x;
    if (p.perm) {
      const key = `${x}|${p.perm.id}`;
      let v = this.gathered.get(key);
      if (!v) {
        const idx = g.init(`act_order_perm_${p.perm.id}_${this.gathered.size}`, 'int64', [p.K], p.perm.idx);
        v = g.op('Gather', [x, idx], { axis: -1 });
        this.gathered.set(key, v);
      }
      a = v;
    }
    return matMulNBits(g, a, p.name, p, this.o.accuracyLevel ?? 0, bias);
  }
}

export function checkAccuracyLevel(v: unknown): AccuracyLevel {
  if (v === undefined) return 0;
  if (![0, 1, 2, 3, 4].includes(v as number)) fail(`accuracyLevel must be 0 (fp32 activations), 1, 2, 3 or 4 (int8 activations), got ${JSON.stringify(v)}`);
  return v as AccuracyLevel;
}
