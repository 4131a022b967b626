/**
 * AWQ checkpoints (AutoAWQ / GPTQModel / Transformers `quant_method: "awq"`, 4-bit, versions "gemm" and "gemv").
 *
 * Layouts (AutoAWQ, casper-hansen/AutoAWQ):
 *  - config: awq/models/_config.py AwqConfig.to_transformers_dict() → {quant_method, zero_point, group_size, bits, version,
 *    modules_to_not_convert}; Transformers 5 AwqConfig.to_dict() adds "format" (= version); pre-integration checkpoints
 *    have quant_config.json {zero_point, q_group_size, w_bit, version} instead (src/formats/common.ts detectFormat).
 *  - GEMM (awq/modules/linear/gemm.py WQLinear_GEMM): qweight int32 [in, out/8], qzeros int32 [in/g, out/8], scales
 *    [in/g, out] (fp16); 8 consecutive OUTPUT columns per int32, nibble i (bits 4i..4i+3) = column 8c + AWQ_ORDER[i],
 *    AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (awq/utils/packing_utils.py); qzeros packed alike.
 *  - GEMV (awq/modules/linear/gemv.py WQLinear_GEMV): qweight int32 [out, in/8] with nibble i = input 8c + i; qzeros
 *    int32 [out, W], scales [out, 8·W], W = calculate_zeros_width(in, g) ≥ ceil(groups/8) (padding unused).
 *  - W[o, i] = (q − z)·s with the stored zero (NOT zero + 1 as AutoGPTQ v1): packing_utils.py dequantize_gemm. The
 *    packers always store qzeros (they assert zeros is not None), so zero_point false changes only how the zeros were
 *    chosen; they are applied all the same.
 *
 * The groups run over consecutive inputs (no act-order), so an AWQ linear is an AutoGPTQ linear with g_idx = i/g and
 * v2 zero points (GPTQModel's gptq_v2 stores the zero itself): `awqToGptq` converts losslessly, and the runtime then
 * uses the GPTQ path (MatMulNBits 4-bit, block = group size) and `gptq convert --to gptq` writes it out.
 */
import type { Checkpoint } from '../io/safetensors.ts';
import { packQweight, packQzeros } from '../quant/pack.ts';
import type { GptqLinear } from '../runtime/quantized-weights.ts';
import { fail } from '../errors.ts';
import { expectTensor, field, fileOf, listField, need, shapeStr, readFinite, type FormatSource } from './common.ts';

export interface AwqConfig {
  bits: 4;
  /** Inputs per group; −1 in the file = one group over all inputs. */
  groupSize: number;
  zeroPoint: boolean;
  version: 'gemm' | 'gemv';
  /** Substrings of module names AutoAWQ kept in fp16 (awq/utils/module.py exclude_layers_to_not_quantize). */
  modulesToNotConvert: string[];
  from: string;
}

/** AutoAWQ versions (formats) that exist but whose layouts gptqjs does not read. */
const OTHER_VERSIONS = ['gemv_fast', 'marlin', 'exllama', 'exllamav2', 'ipex', 'llm-awq'];

/** Parse and check an AWQ quantization config (one-line errors naming the file and field). */
export function parseAwqConfig(src: FormatSource): AwqConfig {
  const { raw, from } = src;
  const bits = field(raw, 'bits', 'w_bit') ?? 4;
  if (bits !== 4) fail(`${from}: AWQ bits ${JSON.stringify(bits)} is not supported (AutoAWQ packs 4-bit only: awq/modules/linear/gemm.py)`);
  const g = field(raw, 'group_size', 'q_group_size') ?? 128;
  if (!(Number.isInteger(g) && ((g as number) > 0 || g === -1))) fail(`${from}: AWQ group_size must be a positive integer or -1, got ${JSON.stringify(g)}`);
  const zp = field(raw, 'zero_point') ?? true;
  if (typeof zp !== 'boolean') fail(`${from}: AWQ zero_point must be true or false, got ${JSON.stringify(zp)}`);
  const vRaw = field(raw, 'version', 'format') ?? 'gemm';
  const v = String(vRaw).toLowerCase();
  if (v !== 'gemm' && v !== 'gemv') {
    fail(`${from}: AWQ version ${JSON.stringify(vRaw)} is not supported (gemm, gemv${OTHER_VERSIONS.includes(v) ? `; ${v} uses another packing` : ''})`);
  }
  return { bits: 4, groupSize: g as number, zeroPoint: zp, version: v, modulesToNotConvert: listField(raw, from, 'modules_to_not_convert'), from };
}

export const awqSummary = (c: AwqConfig) => `AWQ 4-bit ${c.version}, group ${c.groupSize}, zero_point ${c.zeroPoint}`;

/** One AWQ linear unpacked: codes [out, in], zeros and scales [groups, out] (GPTQ's orientation). */
export interface AwqLinear {
  name: string; inFeatures: number; outFeatures: number; groupSize: number; groups: number;
  codes: Uint8Array; zeros: Uint8Array; scales: Float32Array; bias?: Float32Array;
}

/** Nibble p of 8 → output column offset (AWQ_ORDER). */
const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** Names of the modules stored as AWQ tensors (having `<module>.qweight`). */
export function awqModuleNames(ck: Checkpoint): string[] {
  return ck.names().filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length)).sort();
}

/** Shapes of one AWQ module against the config and the architecture's linear; returns the geometry. */
export function checkAwqModule(ck: Checkpoint, c: AwqConfig, m: string, spec: { inFeatures: number; outFeatures: number }) {
  const K = spec.inFeatures, N = spec.outFeatures, where = fileOf(ck);
  const g = c.groupSize === -1 ? K : c.groupSize;
  if (K % g !== 0) fail(`${where}: module "${m}" has ${K} inputs, not a multiple of group_size ${g} (${c.from}); AutoAWQ requires in_features % group_size == 0`);
  if (N % 8 !== 0) fail(`${where}: module "${m}" has ${N} outputs, not a multiple of 8 (AWQ packs 8 codes per int32)`);
  const groups = K / g;
  for (const t of ['qweight', 'qzeros', 'scales']) need(ck, m, t, 'AWQ');
  const scaleDt = ['F16', 'BF16', 'F32'];
  if (c.version === 'gemm') {
    expectTensor(ck, `${m}.qweight`, ['I32'], [K, N / 8], `AWQ GEMM with in_features ${K}, out_features ${N} ([in, out/8], ${c.from})`);
    expectTensor(ck, `${m}.qzeros`, ['I32'], [groups, N / 8], `AWQ GEMM with group_size ${c.groupSize} ([in/group, out/8])`);
    expectTensor(ck, `${m}.scales`, scaleDt, [groups, N], `AWQ GEMM with group_size ${c.groupSize} ([in/group, out])`);
  } else {
    expectTensor(ck, `${m}.qweight`, ['I32'], [N, K / 8], `AWQ GEMV with in_features ${K}, out_features ${N} ([out, in/8], ${c.from})`);
    const qz = expectTensor(ck, `${m}.qzeros`, ['I32'], undefined, 'AWQ GEMV');
    const w = qz.shape[1] ?? 0;
    if (qz.shape.length !== 2 || qz.shape[0] !== N || w < Math.ceil(groups / 8)) {
      fail(`${where}: tensor "${m}.qzeros" has shape ${shapeStr(qz.shape)} but AWQ GEMV with ${groups} groups needs [${N}, ≥${Math.ceil(groups / 8)}] (awq/modules/linear/gemv.py calculate_zeros_width)`);
    }
    expectTensor(ck, `${m}.scales`, scaleDt, [N, w * 8], `AWQ GEMV with qzeros ${shapeStr(qz.shape)} ([out, 8·qzeros columns])`);
  }
  if (ck.has(`${m}.bias`)) expectTensor(ck, `${m}.bias`, scaleDt, [N], `out_features ${N}`);
  return { K, N, g, groups };
}

/** One AWQ module's zero points [groups, out] (after checkAwqModule). */
export async function readAwqZeros(ck: Checkpoint, c: AwqConfig, m: string, geo: { K: number; N: number; groups: number }): Promise<Uint8Array> {
  const { N, groups } = geo, qz = (await ck.read(`${m}.qzeros`)).data as Int32Array, zeros = new Uint8Array(groups * N);
  if (c.version === 'gemm') {
    const W = N / 8;
    for (let gi = 0; gi < groups; gi++) for (let col = 0; col < W; col++) {
      const x = qz[gi * W + col]!;
      for (let p = 0; p < 8; p++) zeros[gi * N + col * 8 + AWQ_ORDER[p]!] = (x >>> (4 * p)) & 15;
    }
  } else {
    const zw = ck.info(`${m}.qzeros`).shape[1]!;
    for (let o = 0; o < N; o++) for (let gi = 0; gi < groups; gi++) zeros[gi * N + o] = (qz[o * zw + (gi >> 3)]! >>> (4 * (gi & 7))) & 15;
  }
  return zeros;
}

/** One AWQ module's scales [groups, out] as float32 (after checkAwqModule; GEMV's padding dropped). */
export async function readAwqScales(ck: Checkpoint, c: AwqConfig, m: string, geo: { K: number; N: number; groups: number }): Promise<Float32Array> {
  const s = await readFinite(ck, `${m}.scales`);
  if (c.version === 'gemm') return s;
  const { N, groups } = geo, sw = ck.info(`${m}.scales`).shape[1]!, scales = new Float32Array(groups * N);
  for (let o = 0; o < N; o++) for (let gi = 0; gi < groups; gi++) scales[gi * N + o] = s[o * sw + gi]!;
  return scales;
}

/** Read and unpack one AWQ linear (after checking it). */
export async function readAwqLinear(ck: Checkpoint, c: AwqConfig, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<AwqLinear> {
  const geo = checkAwqModule(ck, c, m, spec), { K, N, g, groups } = geo;
  const qw = (await ck.read(`${m}.qweight`)).data as Int32Array;
  const codes = new Uint8Array(N * K);
  if (c.version === 'gemm') {
    const W = N / 8;
    for (let i = 0; i < K; i++) for (let col = 0; col < W; col++) {
      const x = qw[i * W + col]!;
      for (let p = 0; p < 8; p++) codes[(col * 8 + AWQ_ORDER[p]!) * K + i] = (x >>> (4 * p)) & 15;
    }
  } else {
    const W = K / 8;
    for (let o = 0; o < N; o++) for (let col = 0; col < W; col++) {
      const x = qw[o * W + col]!, d = o * K + col * 8;
      for (let p = 0; p < 8; p++) codes[d + p] = (x >>> (4 * p)) & 15;
    }
  }
  return {
    name: m, inFeatures: K, outFeatures: N, groupSize: c.groupSize === -1 ? -1 : g, groups, codes,
    zeros: await readAwqZeros(ck, c, m, geo), scales: await readAwqScales(ck, c, m, geo),
    bias: ck.has(`${m}.bias`) ? await readFinite(ck, `${m}.bias`) : undefined,
  };
}

/**
 * The same linear in AutoGPTQ/GPTQModel tensors: qweight [in/8, out] (codes along inputs, low nibble first), gptq_v2
 * qzeros (the zero itself), scales unchanged, in-order groups (no g_idx). Lossless: every code, zero and scale is
 * carried over bit for bit, and both formats compute W = (q − z)·s.
 */
export function awqToGptq(l: AwqLinear): GptqLinear {
  const { inFeatures: K, outFeatures: N, groups } = l;
  if (K % 32 !== 0 || N % 32 !== 0) fail(`AWQ module "${l.name}" is ${N}x${K} (out x in); the GPTQ packing gptqjs runs needs both multiples of 32`);
  return {
    name: l.name, inFeatures: K, outFeatures: N, bits: 4, groupSize: l.groupSize, groups,
    qweight: packQweight(l.codes, 4, K, N), qzeros: packQzeros(l.zeros, 4, groups, N, 'gptq_v2'), scales: l.scales,
    bias: l.bias, format: 'gptq_v2',
  };
}
