/**
 * com.microsoft.MatMulNBits (ONNX Runtime contrib op, docs/ContribOperators.md): y = x·Wᵀ (+ bias) for W [N, K] stored
 * as `bits`-wide unsigned codes in blocks of `block` inputs, W[n, k] = scale[n, b]·(code[n, k] − zero[n, b]),
 * b = ⌊k / block⌋. Layouts (both packers of the project write them here):
 *   B           uint8 [N, kBlocks, block·bits/8]: a row's codes in input order, lowest bits first (4-bit: code k in
 *               the low nibble of byte k/2 when k is even); the last block is zero-padded;
 *   scales      float [N, kBlocks];
 *   zero_points uint8 [N · ⌈kBlocks·bits/8⌉]: a row's zero points packed the same way; absent = 2^(bits−1).
 */
import type { GraphBuilder } from './builder.ts';

export type NBits = 4 | 8;

/** A weight in MatMulNBits layout. */
export interface NBitsWeight {
  N: number; K: number; bits: NBits; block: number;
  /** [N, kBlocks, block·bits/8] */
  B: Uint8Array;
  /** [N, kBlocks] */
  scales: Float32Array;
  /** [N · ⌈kBlocks·bits/8⌉]; absent: every zero point is 2^(bits−1) */
  zeroPoints?: Uint8Array;
}

/**
 * One output row's codes into B: kernel input k gets `codes[src + (order ? order[k] : k)]` (order: an act-order
 * permutation), written from `dst` on. K must be even for 4-bit (K is a multiple of 32 for GPTQ checkpoints, of the
 * block for the head).
 */
export function packCodesRow(codes: Uint8Array, src: number, K: number, bits: NBits, B: Uint8Array, dst: number, order?: ArrayLike<number>): void {
  if (bits === 4 && order) for (let k = 0; k < K; k += 2) B[dst + (k >>> 1)] = codes[src + order[k]!]! | (codes[src + order[k + 1]!]! << 4);
  else if (bits === 4) for (let k = 0; k < K; k += 2) B[dst + (k >>> 1)] = codes[src + k]! | (codes[src + k + 1]! << 4);
  else if (order) for (let k = 0; k < K; k++) B[dst + k] = codes[src + order[k]!]!;
  else B.set(codes.subarray(src, src + K), dst);
}

/** zero_points from one zero point per (row, block) `zp` [N, kBlocks]: packed `bits` wide, lowest first, per row. */
export function packZeroPoints(zp: Uint8Array, N: number, kBlocks: number, bits: NBits): Uint8Array {
  const zRow = Math.ceil((kBlocks * bits) / 8), per = 8 / bits, out = new Uint8Array(N * zRow);
  for (let n = 0; n < N; n++) for (let b = 0; b < kBlocks; b++) out[n * zRow + Math.floor(b / per)]! |= zp[n * kBlocks + b]! << ((b % per) * bits);
  return out;
}

/** W [N, K] = scale·(code − zero) of a weight in this layout (for checks and error measurements). */
export function dequantizeNBits(w: NBitsWeight): Float32Array {
  const { N, K, bits, block } = w, kBlocks = w.scales.length / N, rowBytes = (kBlocks * block * bits) / 8;
  const zRow = Math.ceil((kBlocks * bits) / 8), per = 8 / bits, mask = (1 << bits) - 1, out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    const b = Math.floor(k / block), code = (w.B[n * rowBytes + Math.floor(k / per)]! >>> ((k % per) * bits)) & mask;
    const zero = w.zeroPoints ? (w.zeroPoints[n * zRow + Math.floor(b / per)]! >>> ((b % per) * bits)) & mask : 1 << (bits - 1);
    out[n * K + k] = w.scales[n * kBlocks + b]! * (code - zero);
  }
  return out;
}

/**
 * The MatMulNBits node of linear `name` on input `x`: initializers `<name>.qB`, `.qscales`, `.qzero_points`; `bias`
 * a value already in the graph. Returns the output [.., N].
 */
export function matMulNBits(g: GraphBuilder, x: string, name: string, w: NBitsWeight, accuracyLevel: number, bias?: string): string {
  const kBlocks = w.scales.length / w.N;
  const inputs = [
    x,
    g.init(`${name}.qB`, 'uint8', [w.N, kBlocks, (w.block * w.bits) / 8], w.B),
    g.init(`${name}.qscales`, 'float32', [w.N, kBlocks], w.scales),
    w.zeroPoints ? g.init(`${name}.qzero_points`, 'uint8', [w.zeroPoints.length], w.zeroPoints) : '',
    '', // g_idx: deprecated and wrong on CPU except 4-bit without zero points; act-order is a Gather of x instead
    bias ?? '',
  ];
  while (inputs[inputs.length - 1] === '') inputs.pop();
  return g.ms('MatMulNBits', inputs, { K: w.K, N: w.N, bits: w.bits, block_size: w.block, accuracy_level: accuracyLevel })[0]!;
}
