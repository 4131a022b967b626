/**
 * Reading GPTQ checkpoints (AutoGPTQ v1 "gptq" and GPTQModel "gptq_v2" layouts): the quantize config (quantize_config.json
 * or config.json#quantization_config, GPTQModel `dynamic` rules), each module's qweight/qzeros/scales/g_idx checked
 * against the model config, and the whole checkpoint prepared for the graph (src/runtime/quantized-weights.ts).
 */
import { join } from '../platform/path.ts';
import { existsSync, promises as fs } from '../platform/fs.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite, withoutBasePrefix, type Checkpoint } from '../io/safetensors.ts';
import { embeddingName, readFloatTensors } from './model-checkpoint.ts';
import type { ArchDefinition, WeightSource } from '../models/types.ts';
import { bitsProblem, fromQuantizeConfigJson, type Bits, type QuantizeConfig } from '../quant/quantize-config.ts';
import { fail } from '../errors.ts';
import { logLine } from '../platform/os.ts';
import { prepareLinear, QuantizedWeights, sharePermutations, type AccuracyLevel, type GptqLinear, type PreparedLinear } from './quantized-weights.ts';

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
 * The weights of a GPTQ checkpoint for inference, read from `ck` (opened with openModelCheckpoint; left open), or
 * undefined when it has no `.qweight` tensors. Modules stored as `.qweight` go through MatMulNBits; modules with a
 * plain `.weight` stay fp32.
 */
export async function loadQuantizedWeights(ck: Checkpoint, cfg: ModelConfig, arch: ArchDefinition,
  o: { accuracyLevel?: AccuracyLevel; onLog?: (msg: string) => void } = {}): Promise<QuantizedLoad | undefined> {
  const dir = ck.dir;
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
}

const defaultLog = logLine;
