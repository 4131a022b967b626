/**
 * `gptq convert DIR --to gptq --out OUT`: rewrite an AWQ checkpoint as an AutoGPTQ-format one, losslessly.
 *
 * AWQ and GPTQ compute the same W = (q − z)·s over in-order groups (awq/utils/packing_utils.py dequantize_gemm;
 * AutoGPTQ QuantLinear); only the packing differs. Per linear the codes are repacked along the inputs (qweight
 * [in/8, out]), the zero points packed along the outputs (qzeros [groups, out/8]), the scales kept value for value
 * ([groups, out]; float16 when every value is one, else float32), g_idx = i / group_size, the bias copied. Every
 * other tensor is copied unchanged. The one thing AutoGPTQ's v1 format cannot hold is a zero point of 0 (its qzeros
 * store zero − 1): `format: 'auto'` (default) writes v1 ('gptq', readable by AutoGPTQ, GPTQModel, Transformers) when
 * every zero is ≥ 1, else GPTQModel's 'gptq_v2' (the zero itself; readable by GPTQModel and Transformers 5 through
 * GPTQModel, not by AutoGPTQ); 'gptq' refuses a zero of 0, 'gptq_v2' always writes v2.
 * After writing, every module is read back through the GPTQ reader and its codes, zeros and scales compared with the
 * AWQ source (must be identical); the output folder rules are those of saveQuantized (src/quant/save.ts).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { loadModelConfig } from '../io/config.ts';
import { Checkpoint, lazyFrom, type TensorLike } from '../io/safetensors.ts';
import { archFor } from '../models/registry.ts';
import { resolveQuantizeConfig } from '../quant/config.ts';
import { packQweight, packQzeros, unpackQweight, unpackQzeros } from '../quant/pack.ts';
import { saveQuantizedCheckpoint } from '../quant/save.ts';
import type { SkippedModule } from '../quant/quantize-model.ts';
import { archLinears, linearSpecs, readGptqLinear, readQuantizeConfig } from '../runtime/quantized-weights.ts';
import { f32ToF16, f16ToF32 } from '../tensor.ts';
import { fail } from '../errors.ts';
import { awqModuleNames, checkAwqModule, parseAwqConfig, readAwqLinear, readAwqScales, readAwqZeros, type AwqLinear } from './awq.ts';
import { detectFormat } from './common.ts';

export interface ConvertOptions {
  /** Zero-point format of the output (see the file comment). Default 'auto'. */
  format?: 'auto' | 'gptq' | 'gptq_v2';
  overwrite?: boolean;
  maxShardSize?: string | number;
  onLog?: (msg: string) => void;
}

export interface ConvertResult { out: string; format: 'gptq' | 'gptq_v2'; modules: number; keptFp: string[]; zeroPointZero: number; seconds: number }

/** Scales as float16 bits when every value is a float16 exactly, else as float32. */
function scalesTensor(s: Float32Array, shape: number[]): TensorLike {
  const h = new Uint16Array(s.length);
  for (let i = 0; i < s.length; i++) {
    h[i] = f32ToF16(s[i]!);
    if (f16ToF32(h[i]!) !== s[i]) return { dtype: 'F32', shape, data: s };
  }
  return { dtype: 'F16', shape, data: h };
}

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

    // Tensors: each module converted when its first tensor is written (then dropped).
    let cached: { m: string; l: AwqLinear } | undefined;
    const linear = async (m: string) => {
      if (cached?.m !== m) cached = { m, l: await readAwqLinear(ck, c, m, specs.get(m)!) };
      return cached.l;
    };
    const packed = new Map<string, TensorLike>();
    for (const m of mods) {
      const { inFeatures: K, outFeatures: N } = specs.get(m)!, g = c.groupSize === -1 ? K : c.groupSize, groups = K / g;
      if (K % 32 !== 0 || N % 32 !== 0) fail(`convert: AWQ module "${m}" is ${N}x${K} (out x in); AutoGPTQ packing needs both multiples of 32`);
      packed.set(`${m}.qweight`, { dtype: 'I32', shape: [K / 8, N], load: async () => packQweight((await linear(m)).codes, 4, K, N) });
      packed.set(`${m}.qzeros`, { dtype: 'I32', shape: [groups, N / 8], load: async () => packQzeros((await linear(m)).zeros, 4, groups, N, format) });
      if (c.version === 'gemm' && ck.info(`${m}.scales`).dtype === 'F16') packed.set(`${m}.scales`, lazyFrom(ck, `${m}.scales`));
      else packed.set(`${m}.scales`, scalesTensor(await readAwqScales(ck, c, m, { K, N, groups }), [groups, N])); // dtype from the values
      packed.set(`${m}.g_idx`, { dtype: 'I32', shape: [K], data: Int32Array.from({ length: K }, (_, i) => Math.floor(i / g)) });
      if (ck.has(`${m}.bias`)) packed.set(`${m}.bias`, lazyFrom(ck, `${m}.bias`));
    }
    const quantized = new Set(mods);
    // every tensor of a quantized module is replaced (AWQ's qweight/qzeros/scales by the GPTQ ones)
    const layerLinears = [...archLinears(arch, cfg).keys()].filter((n) => n.startsWith(arch.layersBlockName));
    const skipped: SkippedModule[] = layerLinears.filter((n) => !quantized.has(n) && ck.has(`${n}.weight`))
      .map((name) => ({ name, reason: 'kept in full precision by AWQ (modules_to_not_convert)' }));
    const q = resolveQuantizeConfig({ bits: 4, groupSize: c.groupSize, descAct: false, sym: false, checkpointFormat: format });
    await saveQuantizedCheckpoint(out, { dir, ck, cfg, arch }, q, { quantized, packed, skipped },
      { overwrite: o.overwrite, maxShardSize: o.maxShardSize, runId: await runIdOf(dir, ck, format) },
      { meta: { converted_from: { quant_method: 'awq', version: c.version, zero_point: c.zeroPoint, group_size: c.groupSize } } });
    cached = undefined;

    // Read back through the GPTQ reader: codes, zeros and scales must equal the AWQ source.
    const outCfg = await loadModelConfig(out);
    const qs = (await readQuantizeConfig(out, outCfg))!;
    const back = await Checkpoint.open(out);
    try {
      for (const m of mods) {
        const a = await readAwqLinear(ck, c, m, specs.get(m)!), b = await readGptqLinear(back, qs, m, specs.get(m));
        const K = a.inFeatures, N = a.outFeatures;
        const codes = unpackQweight(b.qweight, 4, K, N), zeros = unpackQzeros(b.qzeros, 4, a.groups, N, b.format);
        const bad = (what: string) => fail(`convert: verification failed: ${what} of "${m}" in ${out} differ from the AWQ source (nothing else was changed; please report)`);
        for (let i = 0; i < codes.length; i++) if (codes[i] !== a.codes[i]) bad('codes');
        for (let i = 0; i < zeros.length; i++) if (zeros[i] !== a.zeros[i]) bad('zero points');
        for (let i = 0; i < b.scales.length; i++) if (b.scales[i] !== a.scales[i]) bad('scales');
      }
    } finally { await back.dispose(); }
    return { out, format, modules: mods.length, keptFp: skipped.map((s) => s.name), zeroPointZero: zero0, seconds: (performance.now() - t0) / 1000 };
  } finally { await ck.dispose(); }
}
