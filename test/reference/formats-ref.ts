/**
 * Independent float64 dequantizers for the AWQ, bitsandbytes (4-bit NF4/FP4 with double quantization, 8-bit LLM.int8)
 * and AQLM checkpoint formats, plus a raw safetensors reader.
 *
 * TEST ORACLE ONLY: shares no code with src/ (not even the safetensors reader or the fp16 decoder). Written from each
 * format's public definition; the source file of every rule:
 *  - AWQ: AutoAWQ awq/utils/packing_utils.py (unpack_awq, reverse_awq_order with AWQ_REVERSE_ORDER [0,4,1,5,2,6,3,7],
 *    dequantize_gemm: W = (q − z)·s, zero NOT offset by 1), awq/modules/linear/gemm.py (qweight [in, out/8],
 *    qzeros [in/g, out/8], scales [in/g, out]) and gemv.py (qweight [out, in/8] in plain nibble order, qzeros [out, W],
 *    scales [out, 8W], W = calculate_zeros_width).
 *  - bitsandbytes 4-bit: bitsandbytes/functional.py QuantState.from_dict / dequantize_4bit / dequantize_blockwise and
 *    backends/default/ops.py _dequantize_4bit_compute: byte j holds values 2j (high nibble) and 2j+1 (low nibble) of
 *    the row-major flattened [out, in] weight; W = quant_map[q]·absmax[block]; nested: absmax = nested_quant_map[qa]·
 *    nested_absmax[qa-block of nested_blocksize] + nested_offset. Non-tensor items from the JSON in
 *    weight.quant_state.bitsandbytes__<type> (bitsandbytes/utils.py unpack_tensor_to_dict).
 *  - bitsandbytes 8-bit: W = weight·SCB/127 per row (bitsandbytes/autograd/_functions.py).
 *  - AQLM: inference_lib/src/aqlm/utils.py _dequantize_weight and unpack_int_data (codes mod 2^nbits).
 */
import { readFileSync } from 'node:fs';

export interface RawTensor { dtype: string; shape: number[]; bytes: Uint8Array }

/** Every tensor of a safetensors file, as raw little-endian bytes. */
export function readRawSafetensors(path: string): Map<string, RawTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const out = new Map<string, RawTensor>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets as [number, number];
    out.set(name, { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(buf.buffer, buf.byteOffset + 8 + n + a, b - a) });
  }
  return out;
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Any float or integer tensor as float64 values (integers as their signed/unsigned value by dtype). */
export function values(t: RawTensor): Float64Array {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const size: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1 };
  const w = size[t.dtype];
  if (!w) throw new Error(`reference: dtype ${t.dtype}`);
  const n = t.bytes.byteLength / w, o = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = i * w;
    switch (t.dtype) {
      case 'F64': o[i] = dv.getFloat64(p, true); break;
      case 'F32': o[i] = dv.getFloat32(p, true); break;
      case 'F16': o[i] = halfToNumber(dv.getUint16(p, true)); break;
      case 'BF16': o[i] = new Float32Array(new Uint32Array([dv.getUint16(p, true) << 16]).buffer)[0]!; break;
      case 'I64': o[i] = Number(dv.getBigInt64(p, true)); break;
      case 'I32': o[i] = dv.getInt32(p, true); break;
      case 'I16': o[i] = dv.getInt16(p, true); break;
      case 'I8': o[i] = dv.getInt8(p); break;
      case 'U8': o[i] = dv.getUint8(p); break;
    }
  }
  return o;
}

const get = (t: Map<string, RawTensor>, name: string): RawTensor => {
  const x = t.get(name);
  if (!x) throw new Error(`reference: no tensor ${name}`);
  return x;
};

/** Nibble k (bits 4k..4k+3) of a 32-bit word given as a signed int. */
const nib = (word: number, k: number) => (word >>> (4 * k)) & 15;

/** AWQ module → W [out, in] float64. `version` gemm | gemv; groupSize −1 = one group. */
export function awqDequantize(t: Map<string, RawTensor>, m: string, version: string, groupSize: number, inF: number, outF: number): Float64Array {
  const g = groupSize === -1 ? inF : groupSize;
  const qw = values(get(t, `${m}.qweight`)), qz = values(get(t, `${m}.qzeros`)), sc = values(get(t, `${m}.scales`));
  const W = new Float64Array(outF * inF);
  const REVERSE = [0, 4, 1, 5, 2, 6, 3, 7]; // output column 8c + j sits in nibble REVERSE[j]
  if (version === 'gemm') {
    for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) {
      const c = Math.floor(o / 8), j = o % 8, grp = Math.floor(i / g);
      const q = nib(qw[i * (outF / 8) + c]!, REVERSE[j]!), z = nib(qz[grp * (outF / 8) + c]!, REVERSE[j]!);
      W[o * inF + i] = (q - z) * sc[grp * outF + o]!;
    }
  } else {
    const zw = get(t, `${m}.qzeros`).shape[1]!, sw = get(t, `${m}.scales`).shape[1]!;
    for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) {
      const grp = Math.floor(i / g);
      const q = nib(qw[o * (inF / 8) + Math.floor(i / 8)]!, i % 8), z = nib(qz[o * zw + Math.floor(grp / 8)]!, grp % 8);
      W[o * inF + i] = (q - z) * sc[o * sw + grp]!;
    }
  }
  return W;
}

/** The JSON of `<m>.weight.quant_state.bitsandbytes__*`. */
export function bnbQuantState(t: Map<string, RawTensor>, m: string): Record<string, any> {
  const key = [...t.keys()].find((k) => k.startsWith(`${m}.weight.quant_state.bitsandbytes__`));
  if (!key) throw new Error(`reference: no quant_state for ${m}`);
  return JSON.parse(Buffer.from(get(t, key).bytes).toString('utf8'));
}

/** bitsandbytes 4-bit module → W [out, in] float64 (shape from the quant state). */
export function bnb4Dequantize(t: Map<string, RawTensor>, m: string): { W: Float64Array; shape: number[]; absmax: Float64Array } {
  const qs = bnbQuantState(t, m);
  const shape = qs.shape as number[], n = shape.reduce((a, b) => a * b, 1), bs = qs.blocksize as number;
  const bytes = get(t, `${m}.weight`).bytes; // any storage dtype: the packed bytes
  const code = values(get(t, `${m}.weight.quant_map`));
  let absmax = values(get(t, `${m}.weight.absmax`));
  if (t.has(`${m}.weight.nested_absmax`)) {
    const a2 = values(get(t, `${m}.weight.nested_absmax`)), code2 = values(get(t, `${m}.weight.nested_quant_map`));
    const nbs = qs.nested_blocksize as number, off = qs.nested_offset as number;
    absmax = absmax.map((q, i) => code2[q]! * a2[Math.floor(i / nbs)]! + off);
  }
  const W = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const byte = bytes[k >> 1]!, q = k % 2 === 0 ? byte >> 4 : byte & 15;
    W[k] = code[q]! * absmax[Math.floor(k / bs)]!;
  }
  return { W, shape, absmax };
}

/** bitsandbytes LLM.int8 module → W [out, in] float64. */
export function bnb8Dequantize(t: Map<string, RawTensor>, m: string): Float64Array {
  const w = get(t, `${m}.weight`), q = values(w), scb = values(get(t, `${m}.SCB`));
  const [outF, inF] = w.shape as [number, number];
  const W = new Float64Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) W[o * inF + i] = (q[o * inF + i]! * scb[o]!) / 127;
  return W;
}

/** AQLM module → W [out, in] float64. */
export function aqlmDequantize(t: Map<string, RawTensor>, m: string): { W: Float64Array; outF: number; inF: number } {
  const codesT = get(t, `${m}.codes`), cbT = get(t, `${m}.codebooks`);
  const [no, ni, C] = codesT.shape as [number, number, number];
  const [, K, og, ig] = cbT.shape as [number, number, number, number];
  const nbits = Math.log2(K);
  const codes = values(codesT), cb = values(cbT), sc = values(get(t, `${m}.scales`));
  const outF = no * og, inF = ni * ig, W = new Float64Array(outF * inF);
  for (let o = 0; o < no; o++) for (let i = 0; i < ni; i++) {
    for (let a = 0; a < og; a++) for (let b = 0; b < ig; b++) {
      let s = 0;
      for (let c = 0; c < C; c++) {
        const code = ((codes[(o * ni + i) * C + c]! % 2 ** nbits) + 2 ** nbits) % 2 ** nbits;
        s += cb[((c * K + code) * og + a) * ig + b]!;
      }
      W[(o * og + a) * inF + i * ig + b] = s * sc[o]!;
    }
  }
  return { W, outF, inF };
}

/**
 * AutoGPTQ 4-bit module → W [out, in] float64 (AutoGPTQ qlinear_cuda_old.py QuantLinear: qweight [in/8, out] with input
 * 8r + j in nibble j of row r; qzeros [groups, out/8] with output 8c + j in nibble j; v1 ('gptq') stores zero − 1,
 * GPTQModel's gptq_v2 the zero; W[o, i] = (q − z)·scales[g_idx[i], o]).
 */
export function gptq4Dequantize(t: Map<string, RawTensor>, m: string, format: string, inF: number, outF: number): Float64Array {
  const qw = values(get(t, `${m}.qweight`)), qz = values(get(t, `${m}.qzeros`)), sc = values(get(t, `${m}.scales`)), gi = values(get(t, `${m}.g_idx`));
  const W = new Float64Array(outF * inF);
  for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) {
    const g = gi[i]!;
    const q = nib(qw[Math.floor(i / 8) * outF + o]!, i % 8);
    const z = ((nib(qz[g * (outF / 8) + Math.floor(o / 8)]!, o % 8) + (format === 'gptq' ? 1 : 0)) & 0x1f);
    W[o * inF + i] = (q - z) * sc[g * outF + o]!;
  }
  return W;
}
