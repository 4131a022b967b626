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
import { join } from '../platform/path.ts';
import { existsSync, promises as fs } from '../platform/fs.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { gemmLinear, InitializerWeights, type TensorLookup } from '../graph/weights.ts';
import { matMulNBits, packCodesRow, packZeroPoints } from '../graph/matmul-nbits.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite, lookupBaseModelName, withoutBasePrefix, type Checkpoint } from '../io/safetensors.ts';
import { embeddingName, openModelCheckpoint, readFloatTensors } from './model-checkpoint.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import { bitsProblem, fromQuantizeConfigJson, type Bits, type QuantizeConfig } from '../quant/quantize-config.ts';
import { dequantize, unpackQweightRows, unpackQzeros } from '../quant/pack.ts';
import { fail } from '../errors.ts';
import { logLine } from '../platform/os.ts';

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

// ------------------------------------------------------------------ checkpoint reading

export interface QuantizeConfigSource {
  config: QuantizeConfig;
  /** Which file(s) it came from, for messages: "…/quantize_config.json" or "…/config.json#quantization_config". */
  from: string;
  /** GPTQModel per-module rules (regex → overrides; "-:" prefix = not quantized). */
  dynamic?: Record<string, Record<string, unknown>>;
  raw: Record<string, unknown>;
  /** desc_act was written (fromQuantizeConfigJson defaults a missing one to AutoGPTQ's true). */
  descActExplicit: boolean;
}

/** The checkpoint's GPTQ settings: quantize_config.json (AutoGPTQ/GPTQModel) or config.json#quantization_config. */
export async function readQuantizeConfig(dir: string, cfg?: ModelConfig): Promise<QuantizeConfigSource | undefined> {
  const qPath = join(dir, 'quantize_config.json');
  const inConfig = cfg?.quantizationConfig;
  let fileRaw: Record<string, unknown> | undefined;
  if (existsSync(qPath)) {
    let j: unknown;
    try { j = JSON.parse(await fs.readFile(qPath, 'utf8')); } catch (e) { fail(`${qPath}: not valid JSON (${(e as Error).message.split('\n')[0]})`); }
    if (!j || typeof j !== 'object' || Array.isArray(j)) fail(`${qPath}: expected a JSON object`);
    fileRaw = j as Record<string, unknown>;
  }
  if (!fileRaw && !inConfig) return undefined;
  const parse = (raw: Record<string, unknown>, where: string) => {
    try { return fromQuantizeConfigJson(raw); } catch (e) { fail(`${where}: ${(e as Error).message.replace(/^quantize config json: /, '')}`); }
  };
  const cfgWhere = `${join(dir, 'config.json')}#quantization_config`;
  if (fileRaw && inConfig) {
    // Both present (GPTQModel/our quantizer write both): they must agree where both say something.
    const lower = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
    const a = lower(fileRaw), b = lower(inConfig);
    for (const k of ['bits', 'group_size']) {
      if (a[k] !== undefined && b[k] !== undefined && Number(a[k]) !== Number(b[k])) {
        fail(`${qPath} says ${k} ${JSON.stringify(a[k])} but ${cfgWhere} says ${JSON.stringify(b[k])}`);
      }
    }
  }
  const raw = fileRaw ?? inConfig!;
  const from = fileRaw ? qPath : cfgWhere;
  const config = parse(raw, from);
  if (fileRaw && inConfig) parse(inConfig, cfgWhere);
  const dyn = (raw.dynamic ?? inConfig?.dynamic) as unknown;
  let dynamic: Record<string, Record<string, unknown>> | undefined;
  if (dyn !== undefined && dyn !== null) {
    if (typeof dyn !== 'object' || Array.isArray(dyn)) fail(`${from}: "dynamic" must be an object of regex → overrides`);
    dynamic = dyn as Record<string, Record<string, unknown>>;
  }
  const descActExplicit = Object.keys(raw).some((k) => k.toLowerCase() === 'desc_act' && raw[k] !== null);
  return { config, from, dynamic, raw, descActExplicit };
}

export interface ModuleQuantParams { bits: Bits; groupSize: number; descAct: boolean; descActExplicit: boolean; skipped: boolean }

/** Per-module settings after GPTQModel `dynamic` rules (first matching rule wins; patterns match from the start). */
export function moduleParams(q: QuantizeConfigSource, module: string): ModuleQuantParams {
  const base: ModuleQuantParams = { bits: q.config.bits, groupSize: q.config.groupSize, descAct: q.config.descAct, descActExplicit: q.descActExplicit, skipped: false };
  for (const [key, ov] of Object.entries(q.dynamic ?? {})) {
    const neg = key.startsWith('-:');
    const pat = key.replace(/^[+-]:/, '');
    let re: RegExp;
    try { re = new RegExp(`^(?:${pat})`); } catch { fail(`${q.from}: dynamic rule ${JSON.stringify(key)} is not a valid regular expression`); }
    if (!re.test(module)) continue;
    if (neg) return { ...base, skipped: true };
    const o = Object.fromEntries(Object.entries(ov ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const r = { ...base };
    if (o.bits !== undefined) {
      if (bitsProblem(Number(o.bits))) fail(`${q.from}: dynamic rule ${JSON.stringify(key)}: ${bitsProblem(o.bits)}`);
      r.bits = Number(o.bits) as Bits;
    }
    if (o.group_size !== undefined) r.groupSize = Number(o.group_size);
    if (typeof o.desc_act === 'boolean') { r.descAct = o.desc_act; r.descActExplicit = true; }
    return r;
  }
  return base;
}

/** Every linear the architecture builds: full checkpoint name → shape. */
export function archLinears(arch: ArchDefinition, cfg: ModelConfig): Map<string, { inFeatures: number; outFeatures: number; bias: boolean }> {
  const m = new Map<string, { inFeatures: number; outFeatures: number; bias: boolean }>();
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const l of arch.layerLinears(cfg, i)) m.set(`${arch.layersBlockName}${i}.${l.rel}`, l);
  }
  m.set(arch.lmHead, { inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false });
  return m;
}

/** archLinears plus each name without its first component (base-model checkpoints, see InitializerWeights). */
export function linearSpecs(arch: ArchDefinition, cfg: ModelConfig): Map<string, { inFeatures: number; outFeatures: number; bias: boolean }> {
  const m = archLinears(arch, cfg);
  for (const [k, v] of [...m]) {
    const short = withoutBasePrefix(k);
    if (short !== undefined && !m.has(short)) m.set(short, v);
  }
  return m;
}

/** Names of the modules stored as GPTQ tensors (having `<module>.qweight`). */
export function quantizedModuleNames(ck: Checkpoint): string[] {
  return ck.names().filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length)).sort();
}

const fileOf = (ck: Checkpoint) => ck.location;
const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Shapes/dtypes of one module's GPTQ tensors against the config; returns the resolved geometry. One-line errors. */
export function checkModuleTensors(ck: Checkpoint, q: QuantizeConfigSource, m: string, spec: { inFeatures: number; outFeatures: number } | undefined) {
  const where = fileOf(ck);
  const p = moduleParams(q, m);
  const { bits } = p;
  const qw = ck.info(`${m}.qweight`);
  if (qw.dtype !== 'I32' || qw.shape.length !== 2) fail(`${where}: tensor "${m}.qweight" must be a 2-D int32 tensor, got ${qw.dtype} ${shapeStr(qw.shape)}`);
  const inF = spec?.inFeatures ?? (qw.shape[0]! * 32) / bits;
  const outF = spec?.outFeatures ?? qw.shape[1]!;
  const src = `bits ${bits} (${q.from})`;
  if ((inF * bits) % 32 !== 0 || qw.shape[0] !== (inF * bits) / 32 || qw.shape[1] !== outF) {
    fail(`${where}: tensor "${m}.qweight" has shape ${shapeStr(qw.shape)} but ${src} with in_features ${inF}, out_features ${outF} needs [${(inF * bits) / 32}, ${outF}] (rows = in·bits/32)`);
  }
  const groups = p.groupSize === -1 ? 1 : Math.ceil(inF / p.groupSize);
  if (!(p.groupSize === -1 || (Number.isInteger(p.groupSize) && p.groupSize > 0))) fail(`${q.from}: group_size must be -1 or positive, got ${p.groupSize}`);
  for (const t of ['qzeros', 'scales']) if (!ck.has(`${m}.${t}`)) fail(`${where}: module "${m}" has a qweight but no "${m}.${t}" tensor`);
  const sc = ck.info(`${m}.scales`);
  if (!['F16', 'F32', 'BF16'].includes(sc.dtype)) fail(`${where}: tensor "${m}.scales" must be float16/float32/bfloat16, got ${sc.dtype}`);
  if (sc.shape.length !== 2 || sc.shape[0] !== groups || sc.shape[1] !== outF) {
    fail(`${where}: tensor "${m}.scales" has shape ${shapeStr(sc.shape)} but group_size ${p.groupSize} (${q.from}) with in_features ${inF} needs [${groups}, ${outF}] (rows = groups)`);
  }
  const qz = ck.info(`${m}.qzeros`);
  if (qz.dtype !== 'I32' || qz.shape.length !== 2 || qz.shape[0] !== groups || qz.shape[1] !== (outF * bits) / 32) {
    fail(`${where}: tensor "${m}.qzeros" is ${qz.dtype} ${shapeStr(qz.shape)} but ${src}, group_size ${p.groupSize} need int32 [${groups}, ${(outF * bits) / 32}]`);
  }
  const hasG = ck.has(`${m}.g_idx`);
  if (hasG) {
    const gi = ck.info(`${m}.g_idx`);
    if (!['I32', 'I64'].includes(gi.dtype) || gi.shape.length !== 1 || gi.shape[0] !== inF) fail(`${where}: tensor "${m}.g_idx" is ${gi.dtype} ${shapeStr(gi.shape)}, expected int32 [${inF}]`);
  } else if (p.descAct && p.descActExplicit && groups > 1) {
    // (a desc_act merely defaulted to AutoGPTQ's true is not trusted over the tensors: in-order g_idx is implied)
    fail(`${where}: desc_act is true (${q.from}) but module "${m}" has no "${m}.g_idx" tensor (act-order checkpoints need g_idx)`);
  }
  if (ck.has(`${m}.bias`)) {
    const b = ck.info(`${m}.bias`);
    if (b.shape.length !== 1 || b.shape[0] !== outF) fail(`${where}: tensor "${m}.bias" has shape ${shapeStr(b.shape)}, expected [${outF}]`);
  }
  return { ...p, inFeatures: inF, outFeatures: outF, groups, hasGIdx: hasG };
}

/** Read one module's GPTQ tensors (after checkModuleTensors). */
export async function readGptqLinear(ck: Checkpoint, q: QuantizeConfigSource, m: string, spec?: { inFeatures: number; outFeatures: number }): Promise<GptqLinear> {
  const c = checkModuleTensors(ck, q, m, spec);
  let gIdx: Int32Array | undefined;
  if (c.hasGIdx) {
    const t = await ck.read(`${m}.g_idx`);
    gIdx = t.dtype === 'I64' ? Int32Array.from(t.data as BigInt64Array, Number) : (t.data as Int32Array);
  }
  const scales = await ck.readFloat32(`${m}.scales`);
  checkFinite(scales, `${m}.scales`, fileOf(ck), ck.info(`${m}.scales`).shape);
  const bias = ck.has(`${m}.bias`) ? await ck.readFloat32(`${m}.bias`) : undefined;
  if (bias) checkFinite(bias, `${m}.bias`, fileOf(ck), [bias.length]);
  return {
    name: m, inFeatures: c.inFeatures, outFeatures: c.outFeatures, bits: c.bits, groupSize: c.groupSize, groups: c.groups,
    qweight: (await ck.read(`${m}.qweight`)).data as Int32Array,
    qzeros: (await ck.read(`${m}.qzeros`)).data as Int32Array,
    scales, gIdx, bias, format: q.config.checkpointFormat,
  };
}

/** The kernel a quantized linear runs on (matmulbnb4 / aqlm-gather: bitsandbytes 4-bit and AQLM, src/formats). */
export type QuantizedKernel = 'matmulnbits-4' | 'matmulnbits-8' | 'matmulbnb4' | 'aqlm-gather' | 'fp32';

export interface QuantizedLoadInfo {
  /** The checkpoint's format: GPTQ (AutoGPTQ / GPTQModel), or AWQ / bitsandbytes / AQLM (src/formats). */
  method: 'gptq' | 'awq' | 'bitsandbytes' | 'aqlm';
  /**
   * GPTQ settings of a GPTQ checkpoint; for AWQ the GPTQ settings it is equivalent to and runs as (4-bit, in-order
   * groups, asymmetric, gptq_v2 zero points); absent for bitsandbytes and AQLM.
   */
  quantizeConfig?: QuantizeConfig;
  /** One line naming the scheme, e.g. "AWQ 4-bit gemm, group 128, zero_point true" (formats other than GPTQ). */
  summary?: string;
  configFrom: string;
  /** Per module: the kernel it runs on; bits = stored bits per weight of its codes. */
  modules: { name: string; bits: number; kernel: QuantizedKernel; actOrder: boolean; reason?: string }[];
  /** Distinct act-order input permutations (one Gather each per graph use). */
  permutations: number;
}

export interface QuantizedLoad { source: () => WeightSource; info: QuantizedLoadInfo }

/**
 * Load a GPTQ checkpoint directory for inference, or return undefined when it has no `.qweight` tensors.
 * Modules stored as `.qweight` go through MatMulNBits; modules with a plain `.weight` stay fp32.
 */
export async function loadQuantizedWeights(dir: string, cfg: ModelConfig, arch: ArchDefinition,
  o: { accuracyLevel?: AccuracyLevel; onLog?: (msg: string) => void } = {}): Promise<QuantizedLoad | undefined> {
  const ck = await openModelCheckpoint(dir, cfg, arch);
  try {
    const mods = quantizedModuleNames(ck);
    if (!mods.length) return undefined;
    const q = await readQuantizeConfig(dir, cfg);
    if (!q) fail(`${fileOf(ck)}: has GPTQ tensors (e.g. "${mods[0]}.qweight") but ${dir} has no quantize_config.json and config.json has no quantization_config, so bits/group_size are unknown`);
    const specs = linearSpecs(arch, cfg);
    for (const m of mods) if (!specs.has(m)) fail(`${fileOf(ck)}: quantized module "${m}" is not a linear of the ${cfg.modelType} architecture`);
    const prepared = new Map<string, PreparedLinear>();
    const info: QuantizedLoadInfo = { method: 'gptq', quantizeConfig: q.config, configFrom: q.from, modules: [], permutations: 0 };
    const quantized = new Set(mods);
    for (const m of mods) {
      const p = prepareLinear(await readGptqLinear(ck, q, m, specs.get(m)), { accuracyLevel: o.accuracyLevel });
      prepared.set(m, p);
      info.modules.push({
        name: m, bits: p.sourceBits, kernel: p.kind === 'dense' ? 'fp32' : p.bits === 4 ? 'matmulnbits-4' : 'matmulnbits-8',
        actOrder: p.kind === 'nbits' && !!p.perm, reason: p.kind === 'dense' ? p.reason : undefined,
      });
    }
    info.permutations = sharePermutations(prepared.values());
    const fallback = info.modules.filter((m) => m.kernel === 'fp32');
    if (fallback.length) {
      const reasons = [...new Set(fallback.map((m) => m.reason))];
      (o.onLog ?? defaultLog)(`${fallback.length} of ${mods.length} quantized modules dequantized to fp32 at load (exact, 4-8x the memory): ${reasons.join('; ')} (e.g. ${fallback[0]!.name})`);
    }
    const fp = await readFloatTensors(ck, (n) => quantized.has(n.replace(/\.[^.]+$/, '')));
    const where = ck.location;
    return { source: () => new QuantizedWeights((n) => fp.get(n), prepared, { accuracyLevel: o.accuracyLevel, tiedTo: embeddingName(arch), where }), info };
  } finally { await ck.dispose(); }
}

const defaultLog = logLine;

export function checkAccuracyLevel(v: unknown): AccuracyLevel {
  if (v === undefined) return 0;
  if (![0, 1, 2, 3, 4].includes(v as number)) fail(`accuracyLevel must be 0 (fp32 activations), 1, 2, 3 or 4 (int8 activations), got ${JSON.stringify(v)}`);
  return v as AccuracyLevel;
}
