/**
 * One quantized linear as it is saved: AutoGPTQ's tensors (qweight/qzeros/scales/g_idx/bias), proven to decode to
 * exactly what GPTQ computed (verifyPackedModule: the loader's own conversion) and fingerprinted (moduleDigest), so the
 * save can check the written shards against what was verified. packModule does all three for the layer loop.
 */
import { createHash } from '../platform/crypto.ts';
import { f16ToF32, f32ToF16, toF16Bits, toFloat32, type Tensor } from '../tensor.ts';
import { prepareLinear } from '../runtime/quantized-weights.ts';
import { fail, GptqError } from '../errors.ts';
import type { Bits, CheckpointFormat } from './quantize-config.ts';
import { packLinear, type PackedLinear } from './pack.ts';

/** A linear's packed tensors with what names and shapes them (bias: the fp32 values it is saved from, as fp16). */
export interface PackedModule extends PackedLinear { name: string; inFeatures: number; outFeatures: number; bias?: Float32Array }

/** AutoGPTQ's tensors for one quantized linear (bias in fp16, as its QuantLinear buffers are). */
export function moduleTensors(m: PackedModule, bits: number): Record<string, Tensor> {
  const groups = m.scales.length / m.outFeatures;
  const t: Record<string, Tensor> = {
    [`${m.name}.qweight`]: { dtype: 'I32', shape: [(m.inFeatures * bits) / 32, m.outFeatures], data: m.qweight },
    [`${m.name}.qzeros`]: { dtype: 'I32', shape: [groups, (m.outFeatures * bits) / 32], data: m.qzeros },
    [`${m.name}.scales`]: { dtype: 'F16', shape: [groups, m.outFeatures], data: m.scales },
    [`${m.name}.g_idx`]: { dtype: 'I32', shape: [m.inFeatures], data: m.gIdx },
  };
  if (m.bias) t[`${m.name}.bias`] = { dtype: 'F16', shape: [m.outFeatures], data: toF16Bits(m.bias) };
  return t;
}

/** What GPTQ computed for one module: codes [out, in], scales/zeros [groups, out], g_idx [in], and the bias it ran with. */
export interface ComputedModule { intCodes: Uint8Array; scales: Float32Array; zeros: Int32Array; gIdx: Int32Array; bias?: Float32Array }

/**
 * Decode one module's packed tensors exactly as inference loads them — runtime/quantized-weights.ts prepareLinear
 * on the scales as read (fp16 → float32), with its v1/v2 zero-point reading, 2/3-bit → 4-bit repack, act-order
 * permutation and group → block mapping (accuracy level 4, so 8-bit stays on the int-N path too) — and require GPTQ's
 * own codes, scales and zero points for every weight, its g_idx, and the bias it ran with (saved as fp16). "Exactly"
 * is bit equality: GPTQ quantizes to fp16-valued scales (quantizer.ts GridStorage), so dequantized(saved) == Q.
 * Throws a one-line GptqError naming the module and the first difference. Memory: the kernel layout of one module
 * (the size of qweight; 2/3-bit: 4-bit codes).
 */
export function verifyPackedModule(name: string, packed: PackedLinear & { bias?: Uint16Array }, c: ComputedModule,
  g: { bits: Bits; groupSize: number; inFeatures: number; outFeatures: number; format: CheckpointFormat }): void {
  const { bits, inFeatures: K, outFeatures: N } = g;
  const bad = (what: string): never => fail(`${name}: the packed tensors do not decode to what GPTQ computed (${what}); nothing was saved`);
  const groups = g.groupSize === -1 ? 1 : Math.ceil(K / g.groupSize);
  if (c.scales.length !== groups * N || c.zeros.length !== groups * N || packed.scales.length !== groups * N) bad(`scales hold ${packed.scales.length / N} groups, expected ${groups}`);
  for (let j = 0; j < K; j++) if (packed.gIdx[j] !== c.gIdx[j]) bad(`g_idx[${j}] is ${packed.gIdx[j]}, GPTQ used ${c.gIdx[j]}`);
  if (!!packed.bias !== !!c.bias) bad(packed.bias ? 'a bias GPTQ did not use' : 'the bias is missing');
  if (packed.bias) for (let n = 0; n < N; n++) if (f16ToF32(packed.bias[n]!) !== c.bias![n]) bad(`bias[${n}] is ${f16ToF32(packed.bias[n]!)}, the model ran with ${c.bias![n]}`);
  const p = prepareLinear({
    name, inFeatures: K, outFeatures: N, bits, groupSize: g.groupSize, groups, format: g.format, qweight: packed.qweight, qzeros: packed.qzeros,
    scales: toFloat32({ dtype: 'F16', shape: [groups, N], data: packed.scales }), gIdx: packed.gIdx,
  }, { accuracyLevel: 4 });
  if (p.kind === 'dense') { // the loader's fp32 fallback: compare with Q = scale·(code − zero)
    for (let n = 0; n < N; n++) for (let j = 0; j < K; j++) {
      const gi = c.gIdx[j]! * N + n, want = Math.fround(c.scales[gi]! * (c.intCodes[n * K + j]! - c.zeros[gi]!));
      if (p.weight[n * K + j] !== want) bad(`weight [${n}, ${j}] loads as ${p.weight[n * K + j]}, GPTQ's Q is ${want}`);
    }
    return;
  }
  const tb = p.bits, per = 8 / tb, mask = (1 << tb) - 1, block = p.block;
  const kBlocks = p.scales.length / N, rowBytes = p.B.length / N, zRow = Math.ceil((kBlocks * tb) / 8);
  const order = p.perm ? Int32Array.from(p.perm.idx, Number) : undefined;
  const gs = groups === 1 ? K : g.groupSize;
  // The kernel's input k is checkpoint input order[k]; its group must be GPTQ's group of that input.
  for (let k = 0; k < K; k++) {
    const j = order ? order[k]! : k;
    if (c.gIdx[j] !== Math.floor(k / gs)) bad(`input ${j} runs in group ${Math.floor(k / gs)}, GPTQ put it in group ${c.gIdx[j]}`);
  }
  const B = p.B, codes = c.intCodes;
  const badCode = (n: number, k: number): never => {
    const code = (B[n * rowBytes + Math.floor(k / per)]! >>> ((k % per) * tb)) & mask, j = order ? order[k]! : k;
    return bad(`code [${n}, ${j}] loads as ${code}, GPTQ chose ${codes[n * K + j]}`);
  };
  for (let n = 0; n < N; n++) {
    const row = n * rowBytes, crow = n * K;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * block, gi = c.gIdx[order ? order[k0]! : k0]! * N + n;
      const scale = p.scales[n * kBlocks + b]!;
      const zero = p.zeroPoints ? (p.zeroPoints[n * zRow + Math.floor(b / per)]! >>> ((b % per) * tb)) & mask : 1 << (tb - 1);
      if (scale !== c.scales[gi]) bad(`scale of output ${n}, group ${gi / N | 0} loads as ${scale}, GPTQ used ${c.scales[gi]}`);
      if (zero !== c.zeros[gi]) bad(`zero point of output ${n}, group ${gi / N | 0} loads as ${zero}, GPTQ used ${c.zeros[gi]}`);
    }
    // Codes, one kernel byte at a time (K is a multiple of 32, so rows hold whole bytes).
    if (tb === 4 && !order) {
      for (let k = 0; k < K; k += 2) if (B[row + (k >>> 1)] !== (codes[crow + k]! | (codes[crow + k + 1]! << 4))) badCode(n, k);
    } else if (tb === 4) {
      for (let k = 0; k < K; k += 2) if (B[row + (k >>> 1)] !== (codes[crow + order![k]!]! | (codes[crow + order![k + 1]!]! << 4))) badCode(n, k);
    } else if (!order) {
      for (let k = 0; k < K; k++) if (B[row + k] !== codes[crow + k]) badCode(n, k);
    } else {
      for (let k = 0; k < K; k++) if (B[row + k] !== codes[crow + order[k]!]) badCode(n, k);
    }
  }
}

/** Suffixes of one quantized module's saved tensors, in digest order. */
const MODULE_TENSORS = ['qweight', 'qzeros', 'scales', 'g_idx', 'bias'];

/** sha256 over one module's saved tensors (name, dtype, shape, bytes), as written or as read back. */
export async function moduleDigest(name: string, get: (n: string) => Promise<Tensor | undefined>): Promise<string> {
  const h = createHash('sha256');
  for (const s of MODULE_TENSORS) {
    const t = await get(`${name}.${s}`);
    if (!t) continue;
    h.update(`${name}.${s}|${t.dtype}|${t.shape.join(',')}|`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/**
 * Pack GPTQ's result `c` for linear `name` ([out, in] = l) into AutoGPTQ tensors of `g.format`, verify them against `c`
 * (verifyPackedModule) and digest them (moduleDigest). `c.bias` must already hold the fp16 values it is saved as
 * (f16Values). A GptqError of the packer is prefixed with the module name.
 */
export async function packModule(name: string, c: ComputedModule, g: { bits: Bits; groupSize: number; inFeatures: number; outFeatures: number; format: CheckpointFormat }): Promise<{ tensors: Record<string, Tensor>; digest: string }> {
  const packed = withModule(name, () => packLinear({ codes: c.intCodes, scales: c.scales, zeros: c.zeros, gIdx: c.gIdx, bits: g.bits, inFeatures: g.inFeatures, outFeatures: g.outFeatures, format: g.format }));
  const tensors = moduleTensors({ ...packed, name, inFeatures: g.inFeatures, outFeatures: g.outFeatures, bias: c.bias }, g.bits);
  verifyPackedModule(name, { ...packed, bias: tensors[`${name}.bias`]?.data as Uint16Array | undefined }, c, g);
  return { tensors, digest: await moduleDigest(name, async (n) => tensors[n]) };
}

/** A bias rounded to the float16 values it is saved as (one line if a value overflows fp16). */
export function f16Values(b: Float32Array, name: string): Float32Array {
  const o = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) {
    o[i] = f16ToF32(f32ToF16(b[i]!));
    if (!Number.isFinite(o[i]!)) fail(`${name}: value ${b[i]} at [${i}] is outside float16's range (±65504); GPTQ checkpoints store biases as fp16`);
  }
  return o;
}

/** Run `f`, prefixing a GptqError's message with the module name. */
export function withModule<T>(name: string, f: () => T): T {
  try { return f(); } catch (e) { if (e instanceof GptqError) fail(`${name}: ${e.message}`); throw e; }
}
