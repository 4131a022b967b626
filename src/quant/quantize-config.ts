/** GPTQ quantization settings, and AutoGPTQ `quantize_config.json` (de)serialization. */
import { fail } from '../errors.ts';

/** The bit widths GPTQ checkpoints pack (AutoGPTQ QuantLinear / GPTQModel: 2, 3, 4, 8). */
export const BITS = [2, 3, 4, 8] as const;
export type Bits = (typeof BITS)[number];

/** Why `bits` is not a supported width ("bits must be 2, 3, 4 or 8, got 5"), or null. */
export function bitsProblem(bits: unknown): string | null {
  return (BITS as readonly unknown[]).includes(bits) ? null : `bits must be ${BITS.slice(0, -1).join(', ')} or ${BITS.at(-1)}, got ${JSON.stringify(bits)}`;
}
/**
 * Rounding arithmetic of the quantizer (RTN and GPTQ's column loop).
 * - 'float64' (default): codes are computed from the float16 scales the checkpoint stores, the quotient w/scale and
 *   GPTQ's column state in float64, so dequantized(saved) is exactly the Q GPTQ's error feedback used.
 * - 'float32': AutoGPTQ's torch arithmetic (auto_gptq/quantization/quantizer.py, gptq.py): codes from the float32
 *   scale (rounded to fp16 only when saved, as AutoGPTQ's pack does), float32 ÷ float32 quotient rounded half to even,
 *   and GPTQ's column state (w, q, err, the rank-1 updates) rounded to float32 at every step. RTN then reproduces
 *   AutoGPTQ's Quantizer bit for bit; GPTQ codes differ only where float32 GEMM summation order (ORT MLAS vs torch)
 *   decides a rounding. In symmetric min-max groups the extreme weights land on the tie ±(maxq+1)/2 − ½ and round half
 *   to even, as in AutoGPTQ.
 */
export type Arithmetic = 'float64' | 'float32';
export const ARITHMETICS = ['float64', 'float32'] as const;

/**
 * Which float16 scale the checkpoint stores (arithmetic 'float64', where codes are computed from the stored scale).
 * - 'nearest' (default): the fp16 value nearest to the float32 min-max scale. In a symmetric group the extreme weight
 *   then lands a hair off the tie ±(maxq+1)/2 − ½ and rounds whichever way fp16 rounding moved the scale (inward in
 *   about half of the groups).
 * - 'down': the largest fp16 below the min-max scale, so a negative extreme always reaches the extra negative level
 *   (code 0), the direction AutoGPTQ's float32 round-half-to-even takes on the tie, with dequantized(saved) still
 *   exactly GPTQ's Q (the range shrinks by < 2^−10 relative).
 */
export type ScaleRounding = 'nearest' | 'down';
export type MseWeighting = 'uniform' | 'hessian';
export const MSE_WEIGHTINGS = ['uniform', 'hessian'] as const;
export const SCALE_ROUNDINGS = ['nearest', 'down'] as const;

/** 'gptq' = AutoGPTQ v1 (qzeros store zero−1); 'gptq_v2' = GPTQModel v2 (qzeros store zero). We write 'gptq'. */
export type CheckpointFormat = 'gptq' | 'gptq_v2';

export interface QuantizeConfig {
  bits: Bits;
  /** Columns (input features) per scale/zero group; −1 = one group per row. */
  groupSize: number;
  /** Act-order: quantize columns in order of decreasing diag(H). */
  descAct: boolean;
  /** Group params computed up front on the unquantized W (needs groupSize > 0). */
  staticGroups: boolean;
  sym: boolean;
  /** Dampening: dampPercent·mean(diag H) is added to diag(H). */
  dampPercent: number;
  /** If H + damp is not positive definite, retry with dampPercent += this (GPTQModel; 0 = fail at once). */
  dampAutoIncrement: number;
  trueSequential: boolean;
  /** Lazy-batch block width (AutoGPTQ `blocksize`). */
  blockSize: number;
  lmHead: boolean;
  /** AutoGPTQ Quantizer MSE grid search for the clipping range (slow; off by default). */
  mse: boolean;
  /**
   * The MSE search's error (needs mse): 'uniform' = AutoGPTQ's Σ|q(w) − w|^2.4; 'hessian' = Σ diag(H)_c·(q(w) − w)²,
   * the diagonal of GPTQ's own output-error proxy (GPTQ only; RTN has no Hessian and stays uniform).
   */
  mseWeighting: MseWeighting;
  /** Rounding arithmetic: 'float64' (default) or AutoGPTQ's 'float32' (see Arithmetic). Not saved in the checkpoint. */
  arithmetic: Arithmetic;
  /** fp16 scale stored: 'nearest' (default) or 'down' (see ScaleRounding). Not saved in the checkpoint. */
  scaleRounding: ScaleRounding;
  /**
   * Group-aware act-order (GPTQModel `act_group_aware`, gptqmodel/quantization/gar.py): GPTQ processes the columns in
   * an order by the Hessian diagonal that keeps every group whole — within each group by diag(H) descending, the groups
   * by their largest diag(H) descending, a trailing partial group last — so the checkpoint keeps in-order g_idx and
   * desc_act false (the fast in-order kernels). Needs groupSize > 0; not with descAct or staticGroups. Off by default.
   */
  actGroupAware: boolean;
  checkpointFormat: CheckpointFormat;
  modelNameOrPath?: string;
  modelFileBaseName?: string;
}

/** Defaults for quantizing (AutoGPTQ README / transformers GPTQConfig choices: g128, no act-order, damp 0.01). */
export const DEFAULT_QUANTIZE_CONFIG: Readonly<QuantizeConfig> = Object.freeze({
  bits: 4, groupSize: 128, descAct: false, staticGroups: false, sym: true, dampPercent: 0.01,
  dampAutoIncrement: 0.0025, trueSequential: true, blockSize: 128, lmHead: false, mse: false, mseWeighting: 'uniform', arithmetic: 'float64', scaleRounding: 'nearest', actGroupAware: false, checkpointFormat: 'gptq',
});

const KEYS = new Set<string>([...Object.keys(DEFAULT_QUANTIZE_CONFIG), 'modelNameOrPath', 'modelFileBaseName']);
const BOOLS = ['descAct', 'staticGroups', 'sym', 'trueSequential', 'lmHead', 'mse', 'actGroupAware'] as const;

/** Defaults + validation; throws a one-line GptqError naming the bad field. */
export function resolveQuantizeConfig(partial: Partial<QuantizeConfig> = {}): QuantizeConfig {
  for (const k of Object.keys(partial)) {
    if (!KEYS.has(k)) {
      const camel = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      fail(`quantize config: unknown option '${k}'${KEYS.has(camel) ? ` (did you mean '${camel}'?)` : ''}`);
    }
  }
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const c = { ...DEFAULT_QUANTIZE_CONFIG, ...defined } as QuantizeConfig;
  const badBits = bitsProblem(c.bits);
  if (badBits) fail(`quantize config: ${badBits}`);
  if (!Number.isInteger(c.groupSize) || (c.groupSize !== -1 && c.groupSize <= 0)) fail(`quantize config: groupSize must be -1 or a positive integer, got ${c.groupSize}`);
  if (!(typeof c.dampPercent === 'number' && c.dampPercent > 0 && c.dampPercent < 1)) fail(`quantize config: dampPercent must be in (0, 1), got ${c.dampPercent}`);
  if (!(typeof c.dampAutoIncrement === 'number' && c.dampAutoIncrement >= 0 && c.dampAutoIncrement < 1)) fail(`quantize config: dampAutoIncrement must be in [0, 1), got ${c.dampAutoIncrement}`);
  if (!Number.isInteger(c.blockSize) || c.blockSize <= 0) fail(`quantize config: blockSize must be a positive integer, got ${c.blockSize}`);
  for (const k of BOOLS) if (typeof c[k] !== 'boolean') fail(`quantize config: ${k} must be a boolean, got ${JSON.stringify(c[k])}`);
  if (c.staticGroups && c.groupSize <= 0) fail('quantize config: staticGroups needs groupSize > 0');
  if (!(ARITHMETICS as readonly unknown[]).includes(c.arithmetic)) fail(`quantize config: arithmetic must be 'float64' or 'float32', got ${JSON.stringify(c.arithmetic)}`);
  if (!(MSE_WEIGHTINGS as readonly unknown[]).includes(c.mseWeighting)) fail(`quantize config: mseWeighting must be 'uniform' or 'hessian', got ${JSON.stringify(c.mseWeighting)}`);
  if (c.mseWeighting === 'hessian' && !c.mse) fail("quantize config: mseWeighting 'hessian' needs mse: true");
  if (!(SCALE_ROUNDINGS as readonly unknown[]).includes(c.scaleRounding)) fail(`quantize config: scaleRounding must be 'nearest' or 'down', got ${JSON.stringify(c.scaleRounding)}`);
  if (c.scaleRounding === 'down' && c.arithmetic === 'float32') fail("quantize config: scaleRounding 'down' needs arithmetic 'float64' (with 'float32' the codes come from the float32 scale, as AutoGPTQ)");
  if (c.actGroupAware && c.groupSize <= 0) fail('quantize config: actGroupAware needs groupSize > 0 (it orders columns within and between groups)');
  if (c.actGroupAware && (c.descAct || c.staticGroups)) fail(`quantize config: actGroupAware is an alternative to ${c.descAct ? 'descAct' : 'staticGroups'}; use one of them`);
  if (c.checkpointFormat !== 'gptq' && c.checkpointFormat !== 'gptq_v2') fail(`quantize config: checkpointFormat must be 'gptq' or 'gptq_v2', got ${JSON.stringify(c.checkpointFormat)}`);
  return c;
}

/** AutoGPTQ `BaseQuantizeConfig.to_dict()` layout (+ lm_head when set, as GPTQModel writes it). */
export function toQuantizeConfigJson(cfg: QuantizeConfig): Record<string, unknown> {
  const o: Record<string, unknown> = {
    bits: cfg.bits, group_size: cfg.groupSize, damp_percent: cfg.dampPercent, desc_act: cfg.descAct,
    static_groups: cfg.staticGroups, sym: cfg.sym, true_sequential: cfg.trueSequential,
  };
  if (cfg.modelNameOrPath !== undefined) o.model_name_or_path = cfg.modelNameOrPath;
  if (cfg.modelFileBaseName !== undefined) o.model_file_base_name = cfg.modelFileBaseName;
  if (cfg.lmHead) o.lm_head = true;
  o.quant_method = 'gptq';
  o.checkpoint_format = cfg.checkpointFormat;
  return o;
}

/**
 * Parse a quantize_config.json (AutoGPTQ), GPTQModel's, or transformers' `quantization_config` (also a whole
 * config.json holding one). Missing keys take AutoGPTQ's dataclass defaults (group_size −1, desc_act true, sym true);
 * keys only meaningful to inference kernels (use_exllama, exllama_config, backend, …) are ignored.
 */
export function fromQuantizeConfigJson(obj: unknown): QuantizeConfig {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail('quantize config json: expected an object');
  let src = obj as Record<string, unknown>;
  if (src.quantization_config && typeof src.quantization_config === 'object') src = src.quantization_config as Record<string, unknown>;
  const j: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) j[k.toLowerCase()] = v;
  const pick = (...names: string[]) => { for (const n of names) if (j[n] !== undefined && j[n] !== null) return j[n]; return undefined; };
  const num = (name: string, v: unknown) => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) fail(`quantize config json: ${name} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const bool = (name: string, v: unknown, dflt: boolean) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') fail(`quantize config json: ${name} must be true/false, got ${JSON.stringify(v)}`);
    return v;
  };
  const method = pick('quant_method');
  if (method !== undefined && String(method).toLowerCase() !== 'gptq') fail(`quantize config json: quant_method '${String(method)}' is not supported (only gptq)`);
  if (j.is_marlin_format === true) fail("quantize config json: checkpoint format 'marlin' is not supported (only gptq, gptq_v2)");
  const fmtRaw = pick('checkpoint_format', 'format');
  const fmt = fmtRaw === undefined ? 'gptq' : String(fmtRaw).toLowerCase();
  if (fmt !== 'gptq' && fmt !== 'gptq_v2') fail(`quantize config json: checkpoint format '${fmt}' is not supported (only gptq, gptq_v2)`);
  const bitsV = pick('bits', 'w_bit');
  const groupV = pick('group_size', 'q_group_size');
  const dampV = pick('damp_percent');
  const incV = pick('damp_auto_increment');
  const mseV = pick('mse');
  const partial: Partial<QuantizeConfig> = {
    bits: (bitsV === undefined ? 4 : num('bits', bitsV)) as Bits,
    groupSize: groupV === undefined ? -1 : num('group_size', groupV),
    dampPercent: dampV === undefined ? 0.01 : num('damp_percent', dampV),
    descAct: bool('desc_act', pick('desc_act'), true),
    staticGroups: bool('static_groups', pick('static_groups'), false),
    sym: bool('sym', pick('sym'), true),
    trueSequential: bool('true_sequential', pick('true_sequential'), true),
    lmHead: bool('lm_head', pick('lm_head'), false),
    // GPTQModel stores mse as a float norm (0 = off); AutoGPTQ has none.
    mse: mseV === undefined ? false : typeof mseV === 'number' ? mseV > 0 : bool('mse', mseV, false),
    checkpointFormat: fmt as CheckpointFormat,
  };
  if (incV !== undefined) partial.dampAutoIncrement = num('damp_auto_increment', incV);
  const name = pick('model_name_or_path'), base = pick('model_file_base_name');
  if (typeof name === 'string') partial.modelNameOrPath = name;
  if (typeof base === 'string') partial.modelFileBaseName = base;
  try {
    return resolveQuantizeConfig(partial);
  } catch (e) {
    fail(`quantize config json: ${(e as Error).message.replace(/^quantize config: /, '')}`);
  }
}
