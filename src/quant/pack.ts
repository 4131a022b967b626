/**
 * AutoGPTQ v1 ("gptq") tensor packing, byte-compatible with QuantLinear.pack in qlinear_cuda_old / qlinear_cuda:
 *   qweight [in·bits/32, out] int32: 32/bits codes per word along the input dim, lowest bits first;
 *   qzeros  [groups, out·bits/32] int32: (zero − 1) packed the same way along the output dim;
 *   scales  [groups, out] fp16;  g_idx [in] int32.
 * 3-bit packs 32 values into 3 words, two of them straddling word boundaries (value 10: bits 30–31 of word 0 +
 * bit 0 of word 1; value 21: bit 31 of word 1 + bits 0–1 of word 2).
 * gptq_v2 (GPTQModel) differs only in qzeros storing zero itself.
 */
import { fail } from '../errors.ts';
import { f16ToF32, toF16Bits } from '../tensor.ts';

export type PackBits = 2 | 3 | 4 | 8;

/** Why AutoGPTQ can't pack this linear (its buffers use in // 32 * bits and out // 32 * bits), or null. */
export function packable(inFeatures: number, outFeatures: number, bits: number): string | null {
  if (![2, 3, 4, 8].includes(bits)) return `bits must be 2, 3, 4 or 8, got ${bits}`;
  if (inFeatures <= 0 || inFeatures % 32 !== 0) return `in_features ${inFeatures} is not a multiple of 32 (qweight packs 32 input rows per ${bits} int32 rows)`;
  if (outFeatures <= 0 || outFeatures % 32 !== 0) return `out_features ${outFeatures} is not a multiple of 32 (qzeros packs 32 output columns per ${bits} int32 columns)`;
  return null;
}

function check(inF: number, outF: number, bits: number): void {
  const why = packable(inF, outF, bits);
  if (why) fail(`cannot pack ${outF}x${inF} linear: ${why}`);
}

/**
 * Pack 32·k values v(t) (t = 0..32k−1, each in [0, 2^bits)) into k·bits words, exactly like AutoGPTQ's numpy loop
 * (|=, uint32 shifts).
 */
function packRun(get: (t: number) => number, put: (w: number, word: number) => void, nValues: number, bits: number): void {
  if (bits !== 3) {
    for (let w = 0, t = 0; t < nValues; w++) {
      let word = 0;
      for (let s = 0; s < 32; s += bits) word |= get(t++) << s;
      put(w, word);
    }
    return;
  }
  for (let w = 0, t = 0; t < nValues; w += 3) {
    let a = 0, b = 0, c = 0;
    for (let j = 0; j < 10; j++) a |= get(t++) << (3 * j);
    const v10 = get(t++);
    a |= v10 << 30; b |= (v10 >>> 2) & 1;
    for (let j = 0; j < 10; j++) b |= get(t++) << (3 * j + 1);
    const v21 = get(t++);
    b |= v21 << 31; c |= (v21 >>> 1) & 3;
    for (let j = 0; j < 10; j++) c |= get(t++) << (3 * j + 2);
    put(w, a); put(w + 1, b); put(w + 2, c);
  }
}

/** Inverse of packRun: value t of a run of words (masked to `bits`). */
function unpackRun(word: (w: number) => number, put: (t: number, v: number) => void, nValues: number, bits: number): void {
  const mask = (1 << bits) - 1;
  if (bits !== 3) {
    for (let w = 0, t = 0; t < nValues; w++) {
      const x = word(w);
      for (let s = 0; s < 32; s += bits) put(t++, (x >>> s) & mask);
    }
    return;
  }
  for (let w = 0, t = 0; t < nValues; w += 3) {
    const a = word(w), b = word(w + 1), c = word(w + 2);
    for (let j = 0; j < 10; j++) put(t++, (a >>> (3 * j)) & 7);
    put(t++, ((a >>> 30) & 3) | ((b & 1) << 2));
    for (let j = 0; j < 10; j++) put(t++, (b >>> (3 * j + 1)) & 7);
    put(t++, ((b >>> 31) & 1) | ((c & 3) << 1));
    for (let j = 0; j < 10; j++) put(t++, (c >>> (3 * j + 2)) & 7);
  }
}

/** codes [out, in] (torch Linear layout, values 0..2^bits−1) → qweight Int32Array [in·bits/32, out]. */
export function packQweight(codes: Uint8Array, bits: PackBits, inFeatures: number, outFeatures: number): Int32Array {
  check(inFeatures, outFeatures, bits);
  if (codes.length !== inFeatures * outFeatures) fail(`packQweight: codes has ${codes.length} elements, expected ${outFeatures}x${inFeatures}`);
  const q = new Int32Array((inFeatures / 32) * bits * outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    const base = o * inFeatures;
    packRun((t) => codes[base + t]!, (w, word) => { q[w * outFeatures + o] = word; }, inFeatures, bits);
  }
  return q;
}

/** qweight [in·bits/32, out] → codes Uint8Array [out, in]. */
export function unpackQweight(qweight: Int32Array, bits: PackBits, inFeatures: number, outFeatures: number): Uint8Array {
  return unpackQweightRows(qweight, bits, inFeatures, outFeatures, 0, outFeatures, new Uint8Array(inFeatures * outFeatures));
}

/**
 * Codes of outputs [o0, o1) → `out` [o1 − o0, in] (unpackQweight of a band of rows, so a caller can convert a big
 * linear through a small scratch). Reads qweight row by row (contiguous within the band).
 */
export function unpackQweightRows(qweight: Int32Array, bits: PackBits, inFeatures: number, outFeatures: number, o0: number, o1: number, out: Uint8Array): Uint8Array {
  check(inFeatures, outFeatures, bits);
  if (qweight.length !== (inFeatures / 32) * bits * outFeatures) fail(`unpackQweight: qweight has ${qweight.length} elements, expected ${(inFeatures / 32) * bits}x${outFeatures}`);
  if (!(0 <= o0 && o0 <= o1 && o1 <= outFeatures) || out.length < (o1 - o0) * inFeatures) fail(`unpackQweightRows: rows [${o0}, ${o1}) do not fit ${outFeatures} outputs / an output of ${out.length}`);
  const K = inFeatures, N = outFeatures, words = (K / 32) * bits, mask = (1 << bits) - 1;
  if (bits === 4) { // the common case, unrolled
    for (let w = 0; w < words; w++) {
      const src = w * N;
      for (let o = o0, d = w * 8; o < o1; o++, d += K) {
        const x = qweight[src + o]!;
        out[d] = x & 15; out[d + 1] = (x >>> 4) & 15; out[d + 2] = (x >>> 8) & 15; out[d + 3] = (x >>> 12) & 15;
        out[d + 4] = (x >>> 16) & 15; out[d + 5] = (x >>> 20) & 15; out[d + 6] = (x >>> 24) & 15; out[d + 7] = x >>> 28;
      }
    }
    return out;
  }
  if (bits !== 3) {
    const per = 32 / bits;
    for (let w = 0; w < words; w++) {
      const src = w * N;
      for (let o = o0, d = w * per; o < o1; o++, d += K) {
        const x = qweight[src + o]!;
        for (let s = 0; s < per; s++) out[d + s] = (x >>> (s * bits)) & mask;
      }
    }
    return out;
  }
  for (let w = 0; w < words; w += 3) { // 32 codes per 3 words: 10 + straddle + 10 + straddle + 10
    for (let o = o0, d = (w / 3) * 32; o < o1; o++, d += K) {
      const a = qweight[w * N + o]!, b = qweight[(w + 1) * N + o]!, c = qweight[(w + 2) * N + o]!;
      for (let j = 0; j < 10; j++) out[d + j] = (a >>> (3 * j)) & 7;
      out[d + 10] = ((a >>> 30) & 3) | ((b & 1) << 2);
      for (let j = 0; j < 10; j++) out[d + 11 + j] = (b >>> (3 * j + 1)) & 7;
      out[d + 21] = ((b >>> 31) & 1) | ((c & 3) << 1);
      for (let j = 0; j < 10; j++) out[d + 22 + j] = (c >>> (3 * j + 2)) & 7;
    }
  }
  return out;
}

/**
 * zeros [groups, out] → qzeros Int32Array [groups, out·bits/32]. v1 ('gptq') stores zero − 1 (AutoGPTQ
 * QuantLinear.pack), gptq_v2 stores zero (GPTQModel), each in a bits-wide field. A zero point the field cannot hold
 * is refused (one line): v1 holds zero ∈ [1, 2^bits − 1] — zero 0 would be uint32(−1), which AutoGPTQ's numpy packer
 * ORs into every higher field of its word and readers turn into 2^bits (exllama, AutoGPTQ CUDA) or 0 (AutoGPTQ torch);
 * zero 2^bits is read as 2^bits or 0 depending on the reader. gptq_v2 holds [0, 2^bits − 1].
 */
export function packQzeros(zeros: ArrayLike<number>, bits: PackBits, groups: number, outFeatures: number, format: 'gptq' | 'gptq_v2' = 'gptq'): Int32Array {
  check(32, outFeatures, bits);
  if (zeros.length !== groups * outFeatures) fail(`packQzeros: zeros has ${zeros.length} elements, expected ${groups}x${outFeatures}`);
  const cols = (outFeatures / 32) * bits, d = format === 'gptq' ? 1 : 0, maxq = (1 << bits) - 1;
  for (let i = 0; i < zeros.length; i++) {
    const z = zeros[i]!;
    if (!(Number.isInteger(z) && z >= d && z <= maxq)) {
      fail(`packQzeros: zero point ${z} (group ${Math.floor(i / outFeatures)}, output ${i % outFeatures}) cannot be stored in the ${format} format, which holds ${d}..${maxq}${d ? ' (qzeros store zero − 1)' : ''}`);
    }
  }
  const q = new Int32Array(groups * cols);
  for (let g = 0; g < groups; g++) {
    const zb = g * outFeatures, qb = g * cols;
    packRun((t) => zeros[zb + t]! - d, (w, word) => { q[qb + w] = word; }, outFeatures, bits);
  }
  return q;
}

/** qzeros [groups, out·bits/32] → zeros Int32Array [groups, out] (v1: stored + 1). */
export function unpackQzeros(qzeros: Int32Array, bits: PackBits, groups: number, outFeatures: number, format: 'gptq' | 'gptq_v2' = 'gptq'): Int32Array {
  check(32, outFeatures, bits);
  const cols = (outFeatures / 32) * bits, d = format === 'gptq' ? 1 : 0;
  if (qzeros.length !== groups * cols) fail(`unpackQzeros: qzeros has ${qzeros.length} elements, expected ${groups}x${cols}`);
  const z = new Int32Array(groups * outFeatures);
  for (let g = 0; g < groups; g++) {
    const zb = g * outFeatures, qb = g * cols;
    unpackRun((w) => qzeros[qb + w]!, (t, v) => { z[zb + t] = v + d; }, outFeatures, bits);
  }
  return z;
}

/** gptq_v2 qzeros → v1 (GPTQModel's convert_gptq_v2_to_v1_format: zero − 1). */
export function convertV2ToV1Zeros(qzeros: Int32Array, bits: PackBits, groups: number, outFeatures: number): Int32Array {
  return packQzeros(unpackQzeros(qzeros, bits, groups, outFeatures, 'gptq_v2'), bits, groups, outFeatures, 'gptq');
}

/** v1 qzeros → gptq_v2 (zero + 1). A v1 field that underflowed (read as 2^bits) has no v2 value: refused by packQzeros. */
export function convertV1ToV2Zeros(qzeros: Int32Array, bits: PackBits, groups: number, outFeatures: number): Int32Array {
  return packQzeros(unpackQzeros(qzeros, bits, groups, outFeatures, 'gptq'), bits, groups, outFeatures, 'gptq_v2');
}

export interface PackedLinear {
  qweight: Int32Array; // [in·bits/32, out]
  qzeros: Int32Array;  // [groups, out·bits/32]
  scales: Uint16Array; // [groups, out] fp16 bits
  gIdx: Int32Array;    // [in]
}

/**
 * Pack GPTQ output (codes [out,in], scales/zeros [groups,out], g_idx [in]) into AutoGPTQ tensors of `format`
 * (default v1 'gptq'). Scales become fp16 (exact when GPTQ ran with GridStorage.scaleF16).
 */
export function packLinear(p: {
  codes: Uint8Array; scales: Float32Array; zeros: ArrayLike<number>; gIdx: Int32Array; bits: PackBits; inFeatures: number; outFeatures: number;
  format?: 'gptq' | 'gptq_v2';
}): PackedLinear {
  const groups = p.scales.length / p.outFeatures;
  if (!Number.isInteger(groups) || p.zeros.length !== p.scales.length) fail(`packLinear: scales/zeros must both be [groups, ${p.outFeatures}]`);
  if (p.gIdx.length !== p.inFeatures) fail(`packLinear: g_idx has ${p.gIdx.length} entries, expected ${p.inFeatures}`);
  return {
    qweight: packQweight(p.codes, p.bits, p.inFeatures, p.outFeatures),
    qzeros: packQzeros(p.zeros, p.bits, groups, p.outFeatures, p.format ?? 'gptq'),
    scales: toF16Bits(p.scales),
    gIdx: p.gIdx,
  };
}

/** Dequantize packed tensors → Float32Array [out, in]: W[o, j] = scale[g, o]·(q[j, o] − zero[g, o]), g = g_idx[j]. */
export function dequantize(p: {
  qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array | Float32Array; gIdx: Int32Array; bits: PackBits;
  inFeatures: number; outFeatures: number; format?: 'gptq' | 'gptq_v2';
}): Float32Array {
  const { inFeatures: inF, outFeatures: outF, bits } = p;
  const groups = p.scales.length / outF;
  if (!Number.isInteger(groups)) fail(`dequantize: scales length ${p.scales.length} is not a multiple of out_features ${outF}`);
  if (p.gIdx.length !== inF) fail(`dequantize: g_idx has ${p.gIdx.length} entries, expected ${inF}`);
  const codes = unpackQweight(p.qweight, bits, inF, outF);
  const zeros = unpackQzeros(p.qzeros, bits, groups, outF, p.format ?? 'gptq');
  const scales = p.scales instanceof Uint16Array ? Float32Array.from(p.scales, f16ToF32) : p.scales;
  const out = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let j = 0; j < inF; j++) {
      const g = p.gIdx[j]!;
      if (g < 0 || g >= groups) fail(`dequantize: g_idx[${j}] = ${g} is out of range [0, ${groups})`);
      out[o * inF + j] = scales[g * outF + o]! * (codes[o * inF + j]! - zeros[g * outF + o]!);
    }
  }
  return out;
}
