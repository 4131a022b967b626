/**
 * Load an AWQ, bitsandbytes or AQLM checkpoint for inference (CausalLM.load calls this before the GPTQ path).
 *
 * Kernels, all computing the checkpoint's exact dequantized weights (float32):
 *  - AWQ → MatMulNBits 4-bit, block = group size, uint8 zero points (src/formats/awq.ts awqToGptq, then the GPTQ
 *    preparation of src/runtime/quantized-weights.ts prepareLinear).
 *  - bitsandbytes 4-bit → com.microsoft.MatMulBnb4 where ORT's table and block sizes fit, else fp32 weights.
 *  - bitsandbytes 8-bit → fp32 weights (W = int8·SCB/127); at accuracy_level 4 MatMulNBits 8-bit (codes + 128,
 *    zero point 128, the row scale in every block: exact weights, int8 activations).
 *  - AQLM → the in-graph codebook gather (src/formats/kernels.ts).
 * `dequantize: true` turns the bnb 4-bit and AQLM kernels into fp32 weights at load (faster per token, 8×/16× the
 * memory of those linears). Modules without quantized tensors (lm_head, modules_to_not_convert, llm_int8_skip_modules,
 * linear_weights_not_to_quantize) are fp tensors of the file and load as such.
 */
import type { ModelConfig } from '../io/config.ts';
import { lookupBaseModelName, type Checkpoint } from '../io/safetensors.ts';
import { embeddingName, readFloatTensors } from '../runtime/model-checkpoint.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { prepareLinear, QuantizedWeights, type AccuracyLevel, type PreparedLinear } from '../runtime/quantized-weights.ts';
import { linearSpecs, type QuantizedLoad, type QuantizedLoadInfo } from '../runtime/gptq-checkpoint.ts';
import { resolveQuantizeConfig } from '../quant/quantize-config.ts';
import { fail } from '../errors.ts';
import { aqlmBits, aqlmModuleNames, combineCodebooks, aqlmSummary, dequantizeAqlm, parseAqlmConfig, readAqlmLinear } from './aqlm.ts';
import { awqModuleNames, awqSummary, awqToGptq, parseAwqConfig, readAwqLinear } from './awq.ts';
import { BNB8_SUMMARY, bnb4KernelUnfit, bnb4ModuleNames, bnb4Summary, bnb8ModuleNames, dequantizeBnb4, dequantizeBnb8, parseBnbConfig, readBnb4Linear, readBnb8Linear } from './bnb.ts';
import { detectFormat, fileOf, quantizedModuleOf, type FormatSource } from './common.ts';
import { formatLinear, type FormatKernelLinear } from './kernels.ts';

export interface FormatLoadOptions { accuracyLevel?: AccuracyLevel; dequantize?: boolean; onLog?: (msg: string) => void }

/**
 * WeightSource over a format checkpoint: MatMulBnb4 / AQLM-gather linears here, everything else (MatMulNBits, fp32
 * fallbacks, fp tensors) through QuantizedWeights.
 */
export class FormatWeights implements WeightSource {
  private readonly emitted = new Set<string>();
  constructor(private readonly base: WeightSource, private readonly kernels: ReadonlyMap<string, FormatKernelLinear>, private readonly where = 'checkpoint') {}

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string { return this.base.tensor(g, name, shape); }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    const p = lookupBaseModelName((n) => this.kernels.get(n), s.name);
    if (!p) return this.base.linear(g, x, s);
    if (p.K !== s.inFeatures || p.N !== s.outFeatures) fail(`quantized module "${s.name}" is ${p.N}x${p.K} (out x in) but the model config needs ${s.outFeatures}x${s.inFeatures}`);
    if (s.bias && !p.bias) fail(`${this.where}: quantized module "${s.name}" has no "${s.name}.bias" but the model config needs one`);
    if (this.emitted.has(p.name)) fail(`linear "${s.name}" used twice in one graph`);
    this.emitted.add(p.name);
    return formatLinear(g, x, p);
  }
}

const dense = (name: string, K: number, N: number, weight: Float32Array, bias: Float32Array | undefined, reason: string, bits: number): PreparedLinear =>
  ({ kind: 'dense', name, K, N, sourceBits: bits, weight, bias, reason });

/**
 * The weights of a format checkpoint, read from `ck` (opened with openModelCheckpoint; left open), ready to build graphs
 * from; undefined when its directory is not AWQ/bitsandbytes/AQLM (detectFormat).
 */
export async function loadFormatWeights(ck: Checkpoint, cfg: ModelConfig, arch: ArchDefinition, o: FormatLoadOptions = {}): Promise<QuantizedLoad | undefined> {
  const src = detectFormat(ck.dir, cfg);
  if (!src) return undefined;
  const specs = linearSpecs(arch, cfg);
  const prepared = new Map<string, PreparedLinear>(), kernels = new Map<string, FormatKernelLinear>();
  const info: QuantizedLoadInfo = { method: src.format, configFrom: src.from, summary: '', modules: [], permutations: 0 };
  let bits = 4;
  const spec = (m: string) => {
    const s = specs.get(m);
    if (!s) fail(`${fileOf(ck)}: quantized module "${m}" is not a linear of the ${cfg.modelType} architecture`);
    return s;
  };
  const put = (p: PreparedLinear) => {
    prepared.set(p.name, p);
    info.modules.push({ name: p.name, bits, actOrder: false, kernel: p.kind === 'dense' ? 'fp32' : p.bits === 4 ? 'matmulnbits-4' : 'matmulnbits-8', reason: p.kind === 'dense' ? p.reason : undefined });
  };
  const mods = await readFormatModules(ck, src, spec, o, put, (k) => {
    kernels.set(k.name, k);
    info.modules.push({ name: k.name, bits, actOrder: false, kernel: k.kind === 'bnb4' ? 'matmulbnb4' : 'aqlm-gather' });
  }, info, (b) => { bits = b; });
  const fallback = info.modules.filter((m) => m.kernel === 'fp32');
  if (fallback.length) {
    const reasons = [...new Set(fallback.map((m) => m.reason))];
    (o.onLog ?? ((s: string) => process.stderr.write(`[gptqjs] ${s}\n`)))(`${fallback.length} of ${info.modules.length} quantized modules dequantized to fp32 at load (exact): ${reasons.join('; ')} (e.g. ${fallback[0]!.name})`);
  }
  // every tensor of a quantized module (bitsandbytes' `<m>.weight.absmax`, …) except its bias is not an fp tensor
  const quantized = new Set(mods);
  const fp = await readFloatTensors(ck, (n) => { const m = quantizedModuleOf(n, quantized); return m !== undefined && n !== `${m}.bias`; });
  const where = ck.location;
  return { source: () => new FormatWeights(new QuantizedWeights((n) => fp.get(n), prepared, { accuracyLevel: o.accuracyLevel, tiedTo: embeddingName(arch), where }), kernels, where), info };
}

/** Read and prepare every quantized module of the format; returns their names. */
async function readFormatModules(ck: Checkpoint, src: FormatSource, spec: (m: string) => { inFeatures: number; outFeatures: number },
  o: FormatLoadOptions, put: (p: PreparedLinear) => void, putKernel: (k: FormatKernelLinear) => void, info: QuantizedLoadInfo,
  setBits: (bits: number) => void): Promise<string[]> {
  const where = fileOf(ck);
  const none = (what: string) => fail(`${where}: ${src.from} says ${src.format} but no module has ${what} tensors`);
  const foreign = (names: string[], what: string) => { if (names.length) fail(`${where}: tensor "${names[0]}" is ${what}, not ${src.format} (${src.from})`); };
  if (src.format === 'awq') {
    const c = parseAwqConfig(src);
    info.summary = awqSummary(c);
    info.quantizeConfig = resolveQuantizeConfig({ bits: 4, groupSize: c.groupSize, descAct: false, sym: false, checkpointFormat: 'gptq_v2' });
    foreign(ck.names().filter((n) => n.endsWith('.g_idx')), 'a GPTQ g_idx tensor');
    const act = ck.names().filter((n) => /\.act\.scales$/.test(n));
    if (act.length) fail(`${where}: tensor "${act[0]}" is an AWQ ScaledActivation scale (awq/modules/act.py), which gptqjs does not apply yet`);
    const mods = awqModuleNames(ck);
    if (!mods.length) none('.qweight');
    for (const m of mods) put(prepareLinear(awqToGptq(await readAwqLinear(ck, c, m, spec(m))), { accuracyLevel: o.accuracyLevel }));
    return mods;
  }
  if (src.format === 'bitsandbytes') {
    const c = parseBnbConfig(src);
    const m4 = bnb4ModuleNames(ck), m8 = bnb8ModuleNames(ck);
    if (c.bits === 4) {
      foreign(m8.map((m) => `${m}.SCB`), 'an 8-bit (LLM.int8) scale');
      if (!m4.length) none('4-bit quant state (weight.absmax, weight.quant_map, weight.quant_state.bitsandbytes__*)');
      const states = [];
      for (const m of m4) {
        const l = await readBnb4Linear(ck, m, spec(m));
        states.push(l.state);
        const why = o.dequantize ? 'dequantize requested' : bnb4KernelUnfit(l);
        if (why) put(dense(m, l.K, l.N, dequantizeBnb4(l), l.bias, `bitsandbytes 4-bit: ${why}`, 4));
        else putKernel({ kind: 'bnb4', ...l });
      }
      info.summary = bnb4Summary(states);
      return m4;
    }
    foreign(m4.map((m) => `${m}.weight.quant_map`), 'a 4-bit quant state');
    if (!m8.length) none('LLM.int8 (weight int8 + SCB)');
    setBits(8);
    info.summary = BNB8_SUMMARY;
    for (const m of m8) {
      const l = await readBnb8Linear(ck, m, spec(m));
      let block = 128;
      while (block >= 16 && l.K % block !== 0) block /= 2;
      if (o.accuracyLevel === 4 && block >= 16) {
        // MatMulNBits 8-bit: code + 128 with the default zero point 128, the row's scale in each of its blocks.
        const kb = l.K / block, B = new Uint8Array(l.N * l.K), scales = new Float32Array(l.N * kb);
        for (let i = 0; i < B.length; i++) B[i] = l.codes[i]! + 128;
        for (let n = 0; n < l.N; n++) scales.fill(l.rowScale[n]!, n * kb, (n + 1) * kb);
        put({ kind: 'nbits', name: m, K: l.K, N: l.N, bits: 8, block, sourceBits: 8, B, scales, bias: l.bias });
      } else {
        put(dense(m, l.K, l.N, dequantizeBnb8(l), l.bias, block < 16
          ? `8-bit: in_features ${l.K} is not a multiple of 16 (MatMulNBits blocks)`
          : '8-bit: ORT CPU MatMulNBits only has a fast 8-bit kernel at accuracy_level 4 (int8 activations); fp32 weights are exact and faster here', 8));
      }
    }
    return m8;
  }
  const c = parseAqlmConfig(src);
  const bits = aqlmBits(c);
  setBits(bits);
  info.summary = aqlmSummary(c);
  const mods = aqlmModuleNames(ck);
  if (!mods.length) none('.codes');
  for (const m of mods) {
    const l = await readAqlmLinear(ck, c, m, spec(m));
    if (o.dequantize) put(dense(m, l.K, l.N, dequantizeAqlm(l), l.bias, 'AQLM: dequantize requested', bits));
    else putKernel({ kind: 'aqlm', ...combineCodebooks(l) });
  }
  return mods;
}
