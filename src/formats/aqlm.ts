/**
 * AQLM checkpoints (`quant_method: "aqlm"`; Vahe1994/AQLM inference_lib, loaded by transformers/integrations/aqlm.py
 * replace_with_aqlm_linear → aqlm.QuantizedLinear).
 *
 * Per quantized linear (inference_lib/src/aqlm/inference.py QuantizedLinear):
 *   codes      [out/og, in/ig, C]  int8 (nbits ≤ 8) / int16 (≤ 16) / int32: stored signed, read unsigned
 *              (aqlm/utils.py pack_int_data / unpack_int_data: code mod 2^nbits)
 *   codebooks  [C, 2^nbits, og, ig] (model dtype)
 *   scales     [out/og, 1, 1, 1]
 *   bias       [out] (optional)
 * W[o·og + a, i·ig + b] = scales[o]·Σ_c codebooks[c, codes[o, i, c], a, b]   (aqlm/utils.py _dequantize_weight)
 * with og = out_group_size, ig = in_group_size, C = num_codebooks, nbits = nbits_per_codebook from the config.
 *
 * In the graph (src/formats/kernels.ts) the weight is rebuilt exactly this way on every call — a Gather of the code
 * vectors, a sum over codebooks, the per-output scale — so the codes stay at their stored width.
 */
import type { Checkpoint } from '../io/safetensors.ts';
import { fail } from '../errors.ts';
import { expectTensor, field, fileOf, listField, readFinite, type FormatSource } from './common.ts';

export interface AqlmConfig {
  inGroupSize: number; outGroupSize: number; numCodebooks: number; nbitsPerCodebook: number;
  /** Full parameter names left unquantized (transformers AqlmConfig.linear_weights_not_to_quantize). */
  notQuantized: string[];
  from: string;
}

export function parseAqlmConfig(src: FormatSource): AqlmConfig {
  const { raw, from } = src;
  const int = (name: string, dflt: number, max: number) => {
    const v = field(raw, name) ?? dflt;
    if (!(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max)) fail(`${from}: AQLM ${name} must be an integer in [1, ${max}], got ${JSON.stringify(v)}`);
    return v as number;
  };
  return {
    inGroupSize: int('in_group_size', 8, 4096), outGroupSize: int('out_group_size', 1, 4096),
    numCodebooks: int('num_codebooks', 1, 64), nbitsPerCodebook: int('nbits_per_codebook', 16, 16),
    notQuantized: listField(raw, from, 'linear_weights_not_to_quantize'), from,
  };
}

/** Stored bits per weight of the codes: num_codebooks·nbits / (in_group_size·out_group_size). */
export const aqlmBits = (c: AqlmConfig) => (c.numCodebooks * c.nbitsPerCodebook) / (c.inGroupSize * c.outGroupSize);
export const aqlmSummary = (c: AqlmConfig) =>
  `AQLM ${c.numCodebooks}x${c.nbitsPerCodebook}, in_group_size ${c.inGroupSize}, out_group_size ${c.outGroupSize} (${aqlmBits(c)} bits/weight in codes)`;

/** Modules stored as AQLM tensors (having `<module>.codes`). */
export function aqlmModuleNames(ck: Checkpoint): string[] {
  return ck.names().filter((n) => n.endsWith('.codes')).map((n) => n.slice(0, -'.codes'.length)).sort();
}

/** One AQLM linear: codes as unsigned integers [out/og, in/ig, C], codebooks float32 [C, 2^nbits, og, ig], scales [out/og]. */
export interface AqlmLinear {
  name: string; K: number; N: number; C: number; nbits: number; og: number; ig: number;
  codes: Uint8Array | Uint16Array; codebooks: Float32Array; scales: Float32Array; bias?: Float32Array;
}

/** Headers of one AQLM module against the config and the architecture's linear (one-line errors). */
export function checkAqlmModule(ck: Checkpoint, c: AqlmConfig, m: string, spec: { inFeatures: number; outFeatures: number }): void {
  const where = fileOf(ck), K = spec.inFeatures, N = spec.outFeatures;
  const { inGroupSize: ig, outGroupSize: og, numCodebooks: C, nbitsPerCodebook: nbits } = c;
  if (K % ig !== 0 || N % og !== 0) fail(`${where}: module "${m}" is ${N}x${K} (out x in), not divisible into ${og}x${ig} groups (out_group_size ${og}, in_group_size ${ig}, ${c.from})`);
  for (const t of ['codebooks', 'scales']) if (!ck.has(`${m}.${t}`)) fail(`${where}: AQLM module "${m}" has no "${m}.${t}" tensor`);
  const no = N / og, ni = K / ig, size = 2 ** nbits;
  const ct = expectTensor(ck, `${m}.codes`, ['I8', 'I16', 'I32', 'U8'], [no, ni, C], `AQLM codes of a ${N}x${K} linear ([out/out_group_size, in/in_group_size, num_codebooks], ${c.from})`);
  const minBits = { I8: 8, U8: 8, I16: 16, I32: 32 }[ct.dtype as 'I8'];
  if (nbits > minBits!) fail(`${where}: tensor "${m}.codes" is ${ct.dtype} but nbits_per_codebook ${nbits} (${c.from}) needs ${nbits <= 16 ? 'int16' : 'int32'}`);
  expectTensor(ck, `${m}.codebooks`, ['F16', 'BF16', 'F32'], [C, size, og, ig], `num_codebooks ${C}, nbits_per_codebook ${nbits}, out_group_size ${og}, in_group_size ${ig}`);
  expectTensor(ck, `${m}.scales`, ['F16', 'BF16', 'F32'], [no, 1, 1, 1], `one scale per output group ([out/out_group_size, 1, 1, 1])`);
  if (ck.has(`${m}.bias`)) expectTensor(ck, `${m}.bias`, ['F16', 'BF16', 'F32'], [N], `out_features ${N}`);
}

export async function readAqlmLinear(ck: Checkpoint, c: AqlmConfig, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<AqlmLinear> {
  checkAqlmModule(ck, c, m, spec);
  const K = spec.inFeatures, N = spec.outFeatures, { inGroupSize: ig, outGroupSize: og, numCodebooks: C, nbitsPerCodebook: nbits } = c, size = 2 ** nbits;
  const raw = (await ck.read(`${m}.codes`)).data;
  const codes = nbits <= 8 ? new Uint8Array(raw.length) : new Uint16Array(raw.length);
  const mask = size - 1;
  for (let i = 0; i < raw.length; i++) codes[i] = Number(raw[i]) & mask; // two's complement mod 2^nbits = unpack_int_data
  return {
    name: m, K, N, C, nbits, og, ig, codes, codebooks: await readFinite(ck, `${m}.codebooks`), scales: await readFinite(ck, `${m}.scales`),
    bias: ck.has(`${m}.bias`) ? await readFinite(ck, `${m}.bias`) : undefined,
  };
}

/**
 * The same linear with one codebook: when num_codebooks·nbits ≤ 16 (2×8, …), every combination of codes gets one
 * entry of a 2^(C·nbits)-row table holding Σ_c codebooks[c, code_c] (float32, summed in codebook order as the
 * dequantization does, so the weights are unchanged) and the codes become one index (code_0·2^((C−1)·nbits) + …).
 * The graph then gathers each weight vector once instead of once per codebook plus the additions (2×8 at the 1B
 * shape: 1.1 → ~3 tok/s). Costs 2^16·og·ig·4 bytes per linear (2 MiB at in_group_size 8).
 */
export function combineCodebooks(l: AqlmLinear): AqlmLinear {
  const { C, nbits } = l;
  if (C === 1 || C * nbits > 16) return l;
  const size = 2 ** nbits, vec = l.og * l.ig, total = 2 ** (C * nbits), groups = l.codes.length / C;
  const codes = new Uint16Array(groups);
  for (let i = 0; i < groups; i++) { let k = 0; for (let c = 0; c < C; c++) k = k * size + l.codes[i * C + c]!; codes[i] = k; }
  const books = new Float32Array(total * vec);
  for (let k = 0; k < total; k++) {
    for (let e = 0; e < vec; e++) {
      let acc = 0;
      for (let c = 0, r = k; c < C; c++) {
        const digit = Math.floor(r / 2 ** ((C - 1 - c) * nbits)) % size;
        acc = Math.fround(acc + l.codebooks[(c * size + digit) * vec + e]!);
      }
      books[k * vec + e] = acc;
    }
  }
  return { ...l, C: 1, nbits: C * nbits, codes, codebooks: books };
}

/** W [out, in] float32 (sum over codebooks in float32, then × scale — the order of aqlm's embedding_bag sum + mul). */
export function dequantizeAqlm(l: AqlmLinear): Float32Array {
  const { K, N, C, og, ig } = l, ni = K / ig, no = N / og, size = 2 ** l.nbits, W = new Float32Array(N * K), vec = og * ig;
  const acc = new Float32Array(vec);
  for (let o = 0; o < no; o++) for (let i = 0; i < ni; i++) {
    acc.fill(0);
    for (let c = 0; c < C; c++) {
      const base = (c * size + l.codes[(o * ni + i) * C + c]!) * vec;
      for (let e = 0; e < vec; e++) acc[e] = acc[e]! + l.codebooks[base + e]!;
    }
    const s = l.scales[o]!;
    for (let a = 0; a < og; a++) for (let b = 0; b < ig; b++) W[(o * og + a) * K + i * ig + b] = acc[a * ig + b]! * s;
  }
  return W;
}
