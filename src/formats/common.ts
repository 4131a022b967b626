/**
 * Which quantization format a checkpoint directory is in (config.json#quantization_config `quant_method`, as
 * Transformers' AutoHfQuantizer dispatches on it: transformers/quantizers/auto.py), and small helpers shared by the
 * AWQ, bitsandbytes and AQLM readers (src/formats/awq.ts, bnb.ts, aqlm.ts).
 */
import { existsSync, readFileSync } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite, type Checkpoint, type TensorInfo } from '../io/safetensors.ts';
import { fail } from '../errors.ts';

/** Formats besides GPTQ that gptqjs loads. */
export type OtherFormat = 'awq' | 'bitsandbytes' | 'aqlm';

export interface FormatSource {
  format: OtherFormat;
  /** The quantization config as written (keys as in the file). */
  raw: Record<string, unknown>;
  /** "…/config.json#quantization_config" or "…/quant_config.json" (for messages). */
  from: string;
}

/**
 * The non-GPTQ format of a model directory, or undefined (GPTQ, or not quantized). Reads config.json's
 * quantization_config; AutoAWQ checkpoints made before Transformers' AWQ integration have only quant_config.json
 * (awq/models/_config.py AwqConfig.config_file_name: zero_point, q_group_size, w_bit, version). Transformers ≤ 4.30
 * configs without quant_method but with load_in_4bit/load_in_8bit are bitsandbytes. Any other quant_method of
 * Transformers' QuantizationMethod (eetq, hqq, compressed-tensors, fp8, torchao, …) fails here with one line.
 */
export function detectFormat(dir: string, cfg: ModelConfig): FormatSource | undefined {
  const qc = cfg.quantizationConfig;
  const from = `${join(dir, 'config.json')}#quantization_config`;
  if (qc) {
    const m = qc.quant_method === undefined || qc.quant_method === null ? undefined : String(qc.quant_method).toLowerCase();
    if (m === 'awq') return { format: 'awq', raw: qc, from };
    if (m === 'aqlm') return { format: 'aqlm', raw: qc, from };
    if (m === 'bitsandbytes' || (m === undefined && (qc.load_in_4bit === true || qc.load_in_8bit === true))) return { format: 'bitsandbytes', raw: qc, from };
    if (m !== undefined && m !== 'gptq') fail(`${from}: quant_method "${m}" is not supported (gptqjs loads gptq, awq, bitsandbytes and aqlm checkpoints)`);
    return undefined;
  }
  const awqFile = join(dir, 'quant_config.json');
  if (existsSync(awqFile) && !existsSync(join(dir, 'quantize_config.json'))) {
    let j: unknown;
    try { j = JSON.parse(readFileSync(awqFile, 'utf8')); } catch (e) { fail(`${awqFile}: not valid JSON (${(e as Error).message.split('\n')[0]})`); }
    if (j && typeof j === 'object' && !Array.isArray(j) && ('w_bit' in j || 'q_group_size' in j)) return { format: 'awq', raw: j as Record<string, unknown>, from: awqFile };
  }
  return undefined;
}

/**
 * Whether `dir`'s config files declare a quantization: config.json#quantization_config (any quant_method),
 * quantize_config.json (AutoGPTQ / GPTQModel) or quant_config.json (AutoAWQ). Every quantized checkpoint gptqjs loads
 * has one; the tensors decide the rest (a declared checkpoint may still hold only fp tensors).
 */
export function declaresQuantization(dir: string, cfg: ModelConfig): boolean {
  return !!cfg.quantizationConfig || existsSync(join(dir, 'quantize_config.json')) || existsSync(join(dir, 'quant_config.json'));
}

export const fileOf = (ck: Checkpoint) => ck.location;
export const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/** The info of `<m>.<t>`, or a one-line error naming the file and the missing tensor. */
export function need(ck: Checkpoint, m: string, t: string, what: string): TensorInfo {
  const n = `${m}.${t}`;
  if (!ck.has(n)) fail(`${fileOf(ck)}: ${what} module "${m}" has no "${n}" tensor`);
  return ck.info(n);
}

/** Check a tensor's dtype (one of `dtypes`) and shape; one line naming file, tensor, what was found and what is needed. */
export function expectTensor(ck: Checkpoint, name: string, dtypes: readonly string[], shape: readonly number[] | undefined, why: string): TensorInfo {
  const i = ck.info(name);
  if (!dtypes.includes(i.dtype)) fail(`${fileOf(ck)}: tensor "${name}" is ${i.dtype}, expected ${dtypes.join('/')} (${why})`);
  if (shape && (i.shape.length !== shape.length || i.shape.some((d, k) => d !== shape[k]))) {
    fail(`${fileOf(ck)}: tensor "${name}" has shape ${shapeStr(i.shape)} but ${why} needs ${shapeStr(shape)}`);
  }
  return i;
}

/** Read a config field by any of its names (case-insensitive keys). */
export function field(raw: Record<string, unknown>, ...names: string[]): unknown {
  for (const n of names) for (const [k, v] of Object.entries(raw)) if (k.toLowerCase() === n && v !== undefined && v !== null) return v;
  return undefined;
}

/** Stable key for modules listed in a config as substrings (AutoAWQ modules_to_not_convert) or full names. */
export function listField(raw: Record<string, unknown>, from: string, ...names: string[]): string[] {
  const v = field(raw, ...names);
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(`${from}: "${names[0]}" must be a list of module names, got ${JSON.stringify(v)}`);
  return v as string[];
}

/** A float tensor of a quantized module, as float32, refused (one line) when it holds NaN/Inf. */
export async function readFinite(ck: Checkpoint, name: string): Promise<Float32Array> {
  const a = await ck.readFloat32(name);
  checkFinite(a, name, ck.location, ck.info(name).shape);
  return a;
}

/**
 * The quantized module a tensor belongs to ("m" for "m.qweight" and for bitsandbytes' "m.weight.quant_state.…"), or
 * undefined. Its bias is reported too; callers that keep biases as fp tensors check for `${m}.bias`.
 */
export function quantizedModuleOf(name: string, modules: ReadonlySet<string>): string | undefined {
  for (let m = name.replace(/\.[^.]+$/, ''); ; m = m.replace(/\.[^.]+$/, '')) {
    if (modules.has(m)) return m;
    if (!m.includes('.')) return undefined;
  }
}
