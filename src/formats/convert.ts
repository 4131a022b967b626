/**
 * `gptq convert DIR --to gptq --out OUT`: rewrite an AWQ checkpoint as an AutoGPTQ-format one, losslessly.
 *
 * AWQ and GPTQ compute the same W = (q − z)·s over in-order groups (awq/utils/packing_utils.py dequantize_gemm;
 * AutoGPTQ QuantLinear); only the packing differs. Per linear the codes are repacked along the inputs (qweight
 * [in/8, out]), the zero points packed along the outputs (qzeros [groups, out/8]), the scales kept value for value
 * ([groups, out], float16 as AutoGPTQ stores them: a scale that is not a float16 value is refused), g_idx =
 * i / group_size, the bias copied. Every
 * other tensor is copied unchanged. The one thing AutoGPTQ's v1 format cannot hold is a zero point of 0 (its qzeros
 * store zero − 1): `format: 'auto'` (default) writes v1 ('gptq', readable by AutoGPTQ, GPTQModel, Transformers) when
 * every zero is ≥ 1, else GPTQModel's 'gptq_v2' (the zero itself; readable by GPTQModel and Transformers 5 through
 * GPTQModel, not by AutoGPTQ); 'gptq' refuses a zero of 0, 'gptq_v2' always writes v2.
 * Before anything is written, every module's GPTQ tensors are decoded by the loader's own conversion and compared with
 * the AWQ codes, zero points and scales (src/quant/save.ts verifyPackedModule, h-save's check of GPTQ's output); the
 * save then reads the written files back against those tensors' digests. Output folder rules: saveQuantized's.
 */
import { createHash } from '../platform/crypto.ts';
import { promises as fs } from '../platform/fs.ts';
import { loadModelConfig } from '../io/config.ts';
import { Checkpoint, type TensorLike } from '../io/safetensors.ts';
import { archFor } from '../models/registry.ts';
import { resolveQuantizeConfig } from '../quant/quantize-config.ts';
import { packQweight, packQzeros } from '../quant/pack.ts';
import { saveQuantizedCheckpoint } from '../quant/save.ts';
import { moduleDigest, verifyPackedModule } from '../quant/module-tensors.ts';
import type { SkippedModule } from '../quant/layer-loop.ts';
import { archLinears, linearSpecs } from '../runtime/gptq-checkpoint.ts';
import { f16ToF32, toF16Bits, type Tensor } from '../tensor.ts';
import { fail, GptqError } from '../errors.ts';
import { awqModuleNames, checkAwqModule, parseAwqConfig, readAwqLinear, readAwqZeros } from './awq.ts';
import { detectFormat } from './common.ts';

export interface ConvertOptions {
  /** Zero-point format of the output (see the file comment). Default 'auto'. */
  format?: 'auto' | 'gptq' | 'gptq_v2';
  overwrite?: boolean;
  maxShardSize?: string | number;
  onLog?: (msg: string) => void;
}

export interface ConvertResult { out: string; format: 'gptq' | 'gptq_v2'; modules: number; keptFp: string[]; zeroPointZero: number; seconds: number }

/** A run id for the output folder rules: the same source converted the same way is the same run. */
async function runIdOf(dir: string, ck: Checkpoint, format: string): Promise<string> {
  const h = createHash('sha256').update(`convert-awq-gptq\0${format}\0`).update(await fs.readFile(`${dir}/config.json`));
  for (const f of ck.files) { const st = await fs.stat(f); h.update(`\0${f}\0${st.size}\0${st.mtimeMs}`); }
  return `convert-${h.digest('hex').slice(0, 16)}`;
}

export async function convertAwqToGptq(dir: string, out: string, o: ConvertOptions = {}): Promise<ConvertResult> {
  const t0 = performance.now();
  const cfg = await loadModelConfig(dir);
  const src = detectFormat(dir, cfg);
  if (!src) fail(`convert --to gptq: ${dir} is not an AWQ checkpoint (no quant_method "awq" in config.json#quantization_config)`);
  if (src.format !== 'awq') fail(`convert --to gptq: ${dir} is ${src.format}; only AWQ converts losslessly to GPTQ (bitsandbytes NF4/FP4 codes and AQLM codebooks are not uniform integer grids)`);
  const want = o.format ?? 'auto';
  if (!['auto', 'gptq', 'gptq_v2'].includes(want)) fail(`convert: format must be auto, gptq or gptq_v2, got ${JSON.stringify(want)}`);
  const c = parseAwqConfig(src);
  const arch = archFor(cfg.modelType);
  const specs = linearSpecs(arch, cfg);
  const ck = await Checkpoint.open(dir);
  try {
    const mods = awqModuleNames(ck);
    if (!mods.length) fail(`${dir}: ${src.from} says awq but no module has .qweight tensors`);
    // Pass 1 (qzeros only): does any zero point need v2?
    let zero0 = 0;
    for (const m of mods) {
      const spec = specs.get(m);
      if (!spec) fail(`${ck.files[0]}: AWQ module "${m}" is not a linear of the ${cfg.modelType} architecture`);
      const z = await readAwqZeros(ck, c, m, checkAwqModule(ck, c, m, spec));
      for (const v of z) if (v === 0) zero0++;
    }
    if (want === 'gptq' && zero0) fail(`convert: ${zero0} zero points are 0, which the v1 'gptq' format cannot store (its qzeros hold zero − 1); use format gptq_v2 (--format gptq_v2) or auto`);
    const format: 'gptq' | 'gptq_v2' = want === 'gptq_v2' || (want === 'auto' && zero0) ? 'gptq_v2' : 'gptq';
    if (want === 'auto' && zero0) (o.onLog ?? (() => {}))(`convert: ${zero0} AWQ zero points are 0; writing gptq_v2 (GPTQModel / Transformers 5 read it; AutoGPTQ's v1 format cannot hold a zero of 0)`);

    // Each module: AWQ → AutoGPTQ tensors, decoded back by the loader's own conversion and compared with the AWQ
    // codes/zeros/scales (src/quant/save.ts verifyPackedModule); its digest is what the save checks the written files
    // against. Pass 2 (the save) converts each module again when its first tensor is written, one module in memory.
    const convert = async (m: string): Promise<Record<string, Tensor>> => {
      const l = await readAwqLinear(ck, c, m, specs.get(m)!), { inFeatures: K, outFeatures: N, groups } = l;
      if (K % 32 !== 0 || N % 32 !== 0) fail(`convert: AWQ module "${m}" is ${N}x${K} (out x in); AutoGPTQ packing needs both multiples of 32`);
      const g = c.groupSize === -1 ? K : c.groupSize, gIdx = Int32Array.from({ length: K }, (_, i) => Math.floor(i / g));
      const scales = toF16Bits(l.scales);
      for (let i = 0; i < scales.length; i++) {
        if (f16ToF32(scales[i]!) !== l.scales[i]) fail(`convert: scale ${l.scales[i]} of "${m}" (${ck.info(`${m}.scales`).dtype}) is not a float16 value; AutoGPTQ stores float16 scales, so this checkpoint does not convert losslessly`);
      }
      const packed = { qweight: packQweight(l.codes, 4, K, N), qzeros: packQzeros(l.zeros, 4, groups, N, format), scales, gIdx };
      const bias = ck.has(`${m}.bias`) ? await ck.read(`${m}.bias`) : undefined;
      const f16Bias = bias?.dtype === 'F16' ? bias.data as Uint16Array : undefined; // verified here; any bias is in the digest
      try {
        verifyPackedModule(m, { ...packed, bias: f16Bias }, { intCodes: l.codes, scales: l.scales, zeros: Int32Array.from(l.zeros), gIdx, bias: f16Bias && l.bias },
          { bits: 4, groupSize: c.groupSize, inFeatures: K, outFeatures: N, format });
      } catch (e) {
        if (e instanceof GptqError) fail(`convert: ${e.message.replace('what GPTQ computed', 'the AWQ source')}`);
        throw e;
      }
      const t: Record<string, Tensor> = {
        [`${m}.qweight`]: { dtype: 'I32', shape: [K / 8, N], data: packed.qweight },
        [`${m}.qzeros`]: { dtype: 'I32', shape: [groups, N / 8], data: packed.qzeros },
        [`${m}.scales`]: { dtype: 'F16', shape: [groups, N], data: scales },
        [`${m}.g_idx`]: { dtype: 'I32', shape: [K], data: gIdx },
      };
      if (bias) t[`${m}.bias`] = bias;
      return t;
    };
    const digests = new Map<string, string>();
    for (const m of mods) { const t = await convert(m); digests.set(m, await moduleDigest(m, async (n) => t[n])); }
    let cached: { m: string; t: Promise<Record<string, Tensor>> } | undefined;
    const tensorOf = async (m: string, n: string) => {
      if (cached?.m !== m) cached = { m, t: convert(m) };
      return (await cached.t)[n]!.data;
    };
    const packed = new Map<string, TensorLike>();
    for (const m of mods) {
      const { inFeatures: K, outFeatures: N } = specs.get(m)!, groups = c.groupSize === -1 ? 1 : K / c.groupSize;
      const shapes: Record<string, [TensorLike['dtype'], number[]]> = {
        qweight: ['I32', [K / 8, N]], qzeros: ['I32', [groups, N / 8]], scales: ['F16', [groups, N]], g_idx: ['I32', [K]],
      };
      if (ck.has(`${m}.bias`)) shapes.bias = [ck.info(`${m}.bias`).dtype, [N]];
      for (const [s, [dtype, shape]] of Object.entries(shapes)) packed.set(`${m}.${s}`, { dtype, shape, load: () => tensorOf(m, `${m}.${s}`) });
    }
    const quantized = new Set(mods);
    // every tensor of a quantized module is replaced (AWQ's qweight/qzeros/scales by the GPTQ ones)
    const layerLinears = [...archLinears(arch, cfg).keys()].filter((n) => n.startsWith(arch.layersBlockName));
    const skipped: SkippedModule[] = layerLinears.filter((n) => !quantized.has(n) && ck.has(`${n}.weight`))
      .map((name) => ({ name, reason: 'kept in full precision by AWQ (modules_to_not_convert)' }));
    const q = resolveQuantizeConfig({ bits: 4, groupSize: c.groupSize, descAct: false, sym: false, checkpointFormat: format });
    await saveQuantizedCheckpoint(out, { dir, ck, cfg, arch }, q, { quantized, packed, skipped, digests },
      { overwrite: o.overwrite, maxShardSize: o.maxShardSize, runId: await runIdOf(dir, ck, format) },
      { meta: { converted_from: { quant_method: 'awq', version: c.version, zero_point: c.zeroPoint, group_size: c.groupSize } } });
    cached = undefined;
    return { out, format, modules: mods.length, keptFp: skipped.map((s) => s.name), zeroPointZero: zero0, seconds: (performance.now() - t0) / 1000 };
  } finally { await ck.dispose(); }
}
