/** config.json / generation_config.json loading with Transformers' defaults, and RoPE inverse frequencies. */
import { promises as fs } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { fail } from '../errors.ts';

export interface RopeScaling {
  /** rope_type (or legacy `type`), e.g. "linear", "dynamic", "llama3", "yarn". */
  type: string;
  factor?: number;
  originalMaxPositionEmbeddings?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  raw: Record<string, unknown>;
}

export interface ModelConfig {
  /** Path of the config.json this came from (used in error messages). */
  path: string;
  raw: Record<string, unknown>;
  modelType: string;
  architectures: string[];
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  partialRotaryFactor: number;
  /** int(headDim * partialRotaryFactor), as transformers' rope init computes `dim`. */
  rotaryDim: number;
  tieWordEmbeddings: boolean;
  hiddenAct: string;
  attentionBias: boolean;
  mlpBias: boolean;
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
  torchDtype: string | null;
  quantizationConfig: Record<string, unknown> | undefined;
}

interface Defaults {
  tie: boolean; eps: number; maxPos: number; act: string; kv?: number; headDim?: number;
  inter?: number; sliding?: number | null; bos?: number; eos?: number; pad?: number;
  /** partial rotary factor when config.json has none (GPTNeoXConfig rotary_pct 0.25, PhiConfig 0.5); else 1. */
  prf?: number;
  /** rotary_dim when config.json has no such field (GPTJConfig 64). */
  rotaryDim?: number;
  /** rope_theta when config.json has none (MixtralConfig 1e6); else 10000. */
  theta?: number;
}
/**
 * Per model_type defaults, from transformers' configuration_<model>.py. PretrainedConfig itself defaults
 * tie_word_embeddings=True; LlamaConfig/MistralConfig/Qwen2Config/Qwen3Config/Phi3Config set False.
 * MistralConfig defaults num_key_value_heads=8, Qwen2/Qwen3 32 (others: = num_attention_heads).
 */
const MODEL_DEFAULTS: Record<string, Defaults> = {
  llama: { tie: false, eps: 1e-6, maxPos: 2048, act: 'silu', inter: 11008, bos: 1, eos: 2 },
  mistral: { tie: false, eps: 1e-6, maxPos: 4096 * 32, act: 'silu', kv: 8, inter: 14336, sliding: 4096, bos: 1, eos: 2 },
  qwen2: { tie: false, eps: 1e-6, maxPos: 32768, act: 'silu', kv: 32, inter: 22016 },
  qwen3: { tie: false, eps: 1e-6, maxPos: 32768, act: 'silu', kv: 32, inter: 22016, headDim: 128 },
  phi3: { tie: false, eps: 1e-5, maxPos: 4096, act: 'silu', inter: 8192, bos: 1, eos: 32000, pad: 32000 },
  gemma: { tie: true, eps: 1e-6, maxPos: 8192, act: 'gelu_pytorch_tanh', kv: 16, headDim: 256, inter: 24576, bos: 2, eos: 1, pad: 0 },
  gpt2: { tie: true, eps: 1e-5, maxPos: 1024, act: 'gelu_new', bos: 50256, eos: 50256 },
  // OPTConfig: no eps field (nn.LayerNorm's 1e-5), ffn_dim 3072, activation_function relu.
  opt: { tie: true, eps: 1e-5, maxPos: 2048, act: 'relu', inter: 3072, bos: 2, eos: 2, pad: 1 },
  // GPTNeoXConfig: rotary_pct 0.25, rotary_emb_base 10000, hidden_act gelu, use_parallel_residual, untied embed_out.
  gpt_neox: { tie: false, eps: 1e-5, maxPos: 2048, act: 'gelu', inter: 24576, bos: 0, eos: 2, prf: 0.25 },
  // GPTJConfig: rotary_dim 64, n_inner null (4·n_embd), activation_function gelu_new.
  gptj: { tie: false, eps: 1e-5, maxPos: 2048, act: 'gelu_new', bos: 50256, eos: 50256, rotaryDim: 64 },
  // PhiConfig: partial_rotary_factor 0.5, hidden_act gelu_new.
  phi: { tie: false, eps: 1e-5, maxPos: 2048, act: 'gelu_new', inter: 8192, bos: 1, eos: 2, prf: 0.5 },
  // BloomConfig: ALiBi (no max positions; seq_length is informative), layer_norm_epsilon 1e-5, MLP 4·hidden.
  bloom: { tie: true, eps: 1e-5, maxPos: 2048, act: 'gelu_tanh', bos: 1, eos: 2 },
  // FalconConfig: max_position_embeddings 2048, activation gelu, ffn_hidden_size 4·hidden; kv heads: see parseModelConfig.
  falcon: { tie: true, eps: 1e-5, maxPos: 2048, act: 'gelu', bos: 11, eos: 11 },
  // MixtralConfig: rms_norm_eps 1e-5, rope_theta 1e6, sliding_window None, 8 kv heads, intermediate 14336.
  mixtral: { tie: false, eps: 1e-5, maxPos: 4096 * 32, act: 'silu', kv: 8, inter: 14336, sliding: null, bos: 1, eos: 2, theta: 1e6 },
};
/** Unknown model types: PretrainedConfig's tie_word_embeddings=True; eps 1e-6 (llama family). */
const GENERIC: Defaults = { tie: true, eps: 1e-6, maxPos: 2048, act: 'silu' };
/**
 * More model types (same sources; InternLM/InternLM2/Baichuan from their remote-code configuration files).
 * GPTBigCodeConfig: n_positions 1024, n_inner null (4·n_embd); kv heads from multi_query (parseModelConfig).
 * Starcoder2Config: norm_epsilon 1e-5, 2 kv heads, use_bias true, tied. CohereConfig: layer_norm_eps 1e-5, tied.
 */
Object.assign(MODEL_DEFAULTS, {
  gpt_bigcode: { tie: true, eps: 1e-5, maxPos: 1024, act: 'gelu_pytorch_tanh', bos: 50256, eos: 50256 },
  starcoder2: { tie: true, eps: 1e-5, maxPos: 4096, act: 'gelu_pytorch_tanh', kv: 2, inter: 12288, bos: 50256, eos: 50256 },
  internlm: { tie: false, eps: 1e-6, maxPos: 2048, act: 'silu', inter: 11008, bos: 1, eos: 2, pad: 0 },
  internlm2: { tie: false, eps: 1e-6, maxPos: 2048, act: 'silu', inter: 11008, bos: 1, eos: 2, pad: 0 },
  baichuan: { tie: false, eps: 1e-6, maxPos: 4096, act: 'silu', inter: 11008, bos: 1, eos: 2, pad: 0 },
  cohere: { tie: true, eps: 1e-5, maxPos: 8192, act: 'silu', inter: 22528, bos: 5, eos: 255001, pad: 0 },
} satisfies Record<string, Defaults>);

/** Transformers' attribute_map aliases (gpt2/gptj/bloom/falcon/opt …) for the standard names. */
const ALIASES: Record<string, string[]> = {
  hidden_size: ['n_embd', 'd_model', 'n_embed'],
  num_hidden_layers: ['n_layer', 'num_layers'],
  num_attention_heads: ['n_head', 'num_heads'],
  max_position_embeddings: ['n_positions', 'max_sequence_length', 'seq_length'],
  intermediate_size: ['n_inner', 'ffn_dim', 'ffn_hidden_size'],
  rms_norm_eps: ['layer_norm_eps', 'layer_norm_epsilon', 'norm_epsilon'],
  hidden_act: ['activation_function'],
};

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try { text = await fs.readFile(path, 'utf8'); } catch (e: any) {
    if (e.code === 'ENOENT') fail(`${what}: ${path} not found`);
    fail(`${what}: cannot read ${path}: ${e.message}`);
  }
  try { return JSON.parse(text); } catch (e: any) { fail(`${path}: not valid JSON (${String(e.message).split('\n')[0]})`); }
}

/** Field reader for one JSON object with one-line errors naming file + field. */
function reader(path: string, raw: Record<string, unknown>) {
  const get = (key: string): [string, unknown] => {
    if (raw[key] !== undefined && raw[key] !== null) return [key, raw[key]];
    for (const a of ALIASES[key] ?? []) if (raw[a] !== undefined && raw[a] !== null) return [a, raw[a]];
    return [key, undefined];
  };
  const num = (key: string, def?: number, integer = false): number => {
    const [k, v] = get(key);
    if (v === undefined) {
      if (def === undefined) fail(`${path}: missing required field "${key}"`);
      return def;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && (!Number.isInteger(v) || v <= 0)))
      fail(`${path}: field "${k}" must be a ${integer ? 'positive integer' : 'number'}, got ${JSON.stringify(v)}`);
    return v;
  };
  const int = (key: string, def?: number) => num(key, def, true);
  const bool = (key: string, def: boolean): boolean => {
    const [k, v] = get(key);
    if (v === undefined) return def;
    if (typeof v !== 'boolean') fail(`${path}: field "${k}" must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const str = (key: string, def: string | null): string | null => {
    const [k, v] = get(key);
    if (v === undefined) return def;
    if (typeof v !== 'string') fail(`${path}: field "${k}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string, def: number | null): number | null => {
    const [k, v] = get(key);
    if (v === undefined) return def;
    if (!Number.isInteger(v) || (v as number) < 0) fail(`${path}: field "${k}" must be a token id (integer >= 0), got ${JSON.stringify(v)}`);
    return v as number;
  };
  const tokenIds = (key: string, def: number | null): number | number[] | null => {
    const [k, v] = get(key);
    if (Array.isArray(v)) {
      if (!v.every((x) => Number.isInteger(x) && x >= 0)) fail(`${path}: field "${k}" must be a token id or a list of token ids`);
      return v as number[];
    }
    return tokenId(key, def);
  };
  return { get, num, int, bool, str, tokenId, tokenIds };
}

function parseRopeScaling(path: string, field: string, v: unknown): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) fail(`${path}: field "${field}" must be an object or null`);
  const o = v as Record<string, unknown>;
  // LlamaConfig copies legacy `type` over `rope_type` (BC); other configs read rope_type first. Prefer rope_type unless absent.
  const type = o.rope_type ?? o.type ?? 'default';
  if (typeof type !== 'string') fail(`${path}: field "${field}.rope_type" must be a string`);
  const optNum = (k: string): number | undefined => {
    const x = o[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${path}: field "${field}.${k}" must be a number, got ${JSON.stringify(x)}`);
    return x;
  };
  return {
    type, factor: optNum('factor'), originalMaxPositionEmbeddings: optNum('original_max_position_embeddings'),
    lowFreqFactor: optNum('low_freq_factor'), highFreqFactor: optNum('high_freq_factor'), raw: o,
  };
}

/** Parse an already-read config.json object (path only used in messages). */
export function parseModelConfig(raw: unknown, path = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${path}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const f = reader(path, r);
  const modelType = f.str('model_type', '') ?? '';
  const d = MODEL_DEFAULTS[modelType] ?? GENERIC;
  const archs = r.architectures;
  if (archs !== undefined && archs !== null && !(Array.isArray(archs) && archs.every((a) => typeof a === 'string')))
    fail(`${path}: field "architectures" must be a list of strings`);
  const hiddenSize = f.int('hidden_size');
  const numLayers = f.int('num_hidden_layers');
  const numHeads = f.int('num_attention_heads');
  const vocabSize = f.int('vocab_size');
  // FalconAttention: num_kv_heads (old configs: n_head_kv) with new_decoder_architecture, one shared head when
  // multi_query (the default), else one per head.
  const falconKv = modelType !== 'falcon' ? undefined : r.new_decoder_architecture === true
    ? f.int('num_kv_heads', typeof r.n_head_kv === 'number' ? r.n_head_kv : numHeads) : r.multi_query === false ? numHeads : 1;
  // GPTBigCodeConfig: one shared kv head when multi_query (the default), else one per head.
  const bigcodeKv = modelType === 'gpt_bigcode' ? (r.multi_query === false ? numHeads : 1) : undefined;
  const numKvHeads = falconKv ?? bigcodeKv ?? f.int('num_key_value_heads', d.kv ?? numHeads);
  const headDim = f.int('head_dim', d.headDim ?? Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) fail(`${path}: field "num_key_value_heads" (${numKvHeads}) must divide num_attention_heads (${numHeads})`);

  // transformers v5 nests rope settings in `rope_parameters` ({rope_type, rope_theta, factor, …}).
  const rp = r.rope_parameters;
  const rpObj = rp && typeof rp === 'object' && !Array.isArray(rp) ? rp as Record<string, unknown> : undefined;
  // InternLM (v1) remote code: `rotary: {base, type: "origin" | "dynamic", scaling_factor}`.
  const rot = modelType === 'internlm' && r.rotary && typeof r.rotary === 'object' && !Array.isArray(r.rotary) ? r.rotary as Record<string, unknown> : undefined;
  const ropeTheta = f.num('rope_theta', typeof rpObj?.rope_theta === 'number' ? rpObj.rope_theta
    : typeof rot?.base === 'number' ? rot.base : f.num('rotary_emb_base', d.theta ?? 10000));
  let ropeScaling = parseRopeScaling(path, 'rope_scaling', r.rope_scaling);
  if (!ropeScaling && rot?.type === 'dynamic') ropeScaling = parseRopeScaling(path, 'rotary', { type: 'dynamic', factor: rot.scaling_factor ?? 1 });
  if (!ropeScaling && rpObj) ropeScaling = parseRopeScaling(path, 'rope_parameters', rpObj);
  if (ropeScaling && ropeScaling.type === 'default') ropeScaling = null;

  let prf = f.num('partial_rotary_factor', typeof rpObj?.partial_rotary_factor === 'number'
    ? rpObj.partial_rotary_factor : f.num('rotary_pct', d.prf ?? 1));
  // gptj/codegen: rotary_dim channels (null: all of them); absent → the model type's default.
  const rdField = r.rotary_dim === undefined ? d.rotaryDim : r.rotary_dim;
  const rd = typeof rdField === 'number' && r.partial_rotary_factor === undefined ? rdField : undefined;
  if (rd !== undefined) {
    if (!(Number.isInteger(rd) && rd > 0 && rd <= headDim)) fail(`${path}: field "rotary_dim" must be an integer in [1, head_dim ${headDim}], got ${rd}`);
    prf = rd / headDim;
  }
  if (!(prf > 0 && prf <= 1)) fail(`${path}: field "partial_rotary_factor" must be in (0, 1], got ${prf}`);
  const rotaryDim = rd ?? Math.floor(headDim * prf);

  let slidingWindow: number | null = null;
  const sw = r.sliding_window === undefined ? d.sliding ?? null : r.sliding_window;
  if (sw !== null && sw !== undefined) {
    if (!Number.isInteger(sw) || (sw as number) <= 0) fail(`${path}: field "sliding_window" must be a positive integer or null`);
    slidingWindow = sw as number;
  }
  // Qwen2/Qwen3: sliding_window only applies when use_sliding_window is true (Qwen2Config.__post_init__).
  if ((modelType === 'qwen2' || modelType === 'qwen3') && r.use_sliding_window !== true) slidingWindow = null;

  const qc = r.quantization_config;
  if (qc !== undefined && qc !== null && (typeof qc !== 'object' || Array.isArray(qc))) fail(`${path}: field "quantization_config" must be an object`);
  const hiddenAct = f.str('hidden_act', d.act)!;
  return {
    path, raw: r, modelType,
    architectures: (archs as string[] | undefined | null) ?? [],
    hiddenSize,
    intermediateSize: f.int('intermediate_size', d.inter ?? 4 * hiddenSize),
    numLayers, numHeads, numKvHeads, headDim, vocabSize,
    maxPositionEmbeddings: f.int('max_position_embeddings', d.maxPos),
    rmsNormEps: f.num('rms_norm_eps', d.eps),
    ropeTheta, ropeScaling, partialRotaryFactor: prf, rotaryDim,
    tieWordEmbeddings: f.bool('tie_word_embeddings', d.tie),
    hiddenAct,
    attentionBias: f.bool('attention_bias', false),
    mlpBias: f.bool('mlp_bias', false),
    slidingWindow,
    bosTokenId: f.tokenId('bos_token_id', d.bos ?? null),
    eosTokenId: f.tokenIds('eos_token_id', d.eos ?? null),
    padTokenId: f.tokenId('pad_token_id', d.pad ?? null),
    torchDtype: f.str('torch_dtype', f.str('dtype', null)),
    quantizationConfig: (qc as Record<string, unknown> | null) ?? undefined,
  };
}

/** Load `<dir>/config.json`. */
export async function loadModelConfig(dir: string): Promise<ModelConfig> {
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) fail(`model directory ${dir} does not exist`);
  const path = join(dir, 'config.json');
  return parseModelConfig(await readJson(path, `model directory ${dir} has no config.json`), path);
}

export interface GenerationConfig {
  raw: Record<string, unknown>;
  maxLength: number;
  maxNewTokens: number | null;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  padTokenId: number | null;
}

/** transformers GenerationConfig defaults: max_length 20, do_sample False, temperature 1.0, top_k 50, top_p 1.0. */
export function parseGenerationConfig(raw: unknown, path = 'generation_config.json'): GenerationConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${path}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const f = reader(path, r);
  const maxNew = r.max_new_tokens === undefined || r.max_new_tokens === null ? null : f.int('max_new_tokens');
  return {
    raw: r,
    maxLength: f.int('max_length', 20),
    maxNewTokens: maxNew,
    doSample: f.bool('do_sample', false),
    temperature: f.num('temperature', 1.0),
    topK: Math.trunc(f.num('top_k', 50)),
    topP: f.num('top_p', 1.0),
    repetitionPenalty: f.num('repetition_penalty', 1.0),
    bosTokenId: f.tokenId('bos_token_id', null),
    eosTokenId: f.tokenIds('eos_token_id', null),
    padTokenId: f.tokenId('pad_token_id', null),
  };
}

/** Load `<dir>/generation_config.json`; a missing file gives the defaults. */
export async function loadGenerationConfig(dir: string): Promise<GenerationConfig> {
  const path = join(dir, 'generation_config.json');
  const exists = await fs.stat(path).then(() => true, () => false);
  return parseGenerationConfig(exists ? await readJson(path, 'generation config') : {}, path);
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE (transformers modeling_rope_utils.py). Computed in float64 (torch computes in float32).

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

export interface RopeParams {
  /** rotaryDim/2 inverse frequencies. */
  invFreq: Float64Array;
  /** Multiplier applied to cos/sin (1 for all supported types). */
  attentionScaling: number;
  /** True for "dynamic" (NTK): frequencies change once seqLen > maxPositionEmbeddings; use ropeInvFreqForSeqLen. */
  dynamic: boolean;
}

function baseInvFreq(base: number, dim: number): Float64Array {
  const o = new Float64Array(dim >> 1);
  for (let i = 0; i < o.length; i++) o[i] = 1 / base ** ((2 * i) / dim);
  return o;
}

function needFactor(cfg: ModelConfig, s: RopeScaling, key: 'factor' | 'lowFreqFactor' | 'highFreqFactor' | 'originalMaxPositionEmbeddings'): number {
  const v = s[key];
  const snake = { factor: 'factor', lowFreqFactor: 'low_freq_factor', highFreqFactor: 'high_freq_factor', originalMaxPositionEmbeddings: 'original_max_position_embeddings' }[key];
  if (v === undefined) fail(`${cfg.path}: rope_scaling type "${s.type}" needs field "rope_scaling.${snake}"`);
  return v;
}

function checkType(cfg: ModelConfig): RopeScaling | null {
  const s = cfg.ropeScaling;
  if (s && !(SUPPORTED_ROPE_TYPES as readonly string[]).includes(s.type))
    fail(`${cfg.path}: rope_scaling type ${s.type} is not supported (supported: ${SUPPORTED_ROPE_TYPES.join(', ')})`);
  return s;
}

/** Inverse frequencies for cfg's rope type; for "dynamic" this is the seqLen <= max_position_embeddings case. */
export function ropeInvFreq(cfg: ModelConfig): RopeParams {
  const s = checkType(cfg);
  const dim = cfg.rotaryDim;
  const inv = baseInvFreq(cfg.ropeTheta, dim);
  if (!s) return { invFreq: inv, attentionScaling: 1, dynamic: false };
  if (s.type === 'linear') {
    // _compute_linear_scaling_rope_parameters: positions/factor ⇔ inv_freq/factor.
    const factor = needFactor(cfg, s, 'factor');
    for (let i = 0; i < inv.length; i++) inv[i]! /= factor;
    return { invFreq: inv, attentionScaling: 1, dynamic: false };
  }
  if (s.type === 'dynamic') {
    needFactor(cfg, s, 'factor');
    return ropeInvFreqForSeqLen(cfg, cfg.maxPositionEmbeddings);
  }
  // llama3: _compute_llama3_parameters.
  const factor = needFactor(cfg, s, 'factor');
  const low = needFactor(cfg, s, 'lowFreqFactor');
  const high = needFactor(cfg, s, 'highFreqFactor');
  const oldCtx = needFactor(cfg, s, 'originalMaxPositionEmbeddings');
  if (!(high > low)) fail(`${cfg.path}: rope_scaling.high_freq_factor (${high}) must be > low_freq_factor (${low})`);
  const lowWavelen = oldCtx / low, highWavelen = oldCtx / high;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowWavelen ? f / factor : f;
    if (wavelen < highWavelen || wavelen > lowWavelen) { inv[i] = scaled; continue; }
    const smooth = (oldCtx / wavelen - low) / (high - low);
    inv[i] = ((1 - smooth) * scaled) / factor + smooth * scaled;
  }
  return { invFreq: inv, attentionScaling: 1, dynamic: false };
}

/**
 * Frequencies for a sequence of length seqLen. Only "dynamic" depends on it (_compute_dynamic_ntk_parameters):
 * base' = base * (factor*L/maxPos - (factor-1))^(dim/(dim-2)) with L = max(seqLen, maxPos).
 * transformers caches the grown frequencies until the sequence shrinks below maxPos; this function is stateless.
 */
export function ropeInvFreqForSeqLen(cfg: ModelConfig, seqLen: number): RopeParams {
  const s = checkType(cfg);
  if (!s || s.type !== 'dynamic') return ropeInvFreq(cfg);
  const factor = needFactor(cfg, s, 'factor');
  const dim = cfg.rotaryDim, maxPos = cfg.maxPositionEmbeddings;
  const L = seqLen > maxPos ? seqLen : maxPos;
  const base = cfg.ropeTheta * ((factor * L) / maxPos - (factor - 1)) ** (dim / (dim - 2));
  return { invFreq: baseInvFreq(base, dim), attentionScaling: 1, dynamic: true };
}

// ---------------------------------------------------------------------------------------------------------------
// Architecture-specific config.json fields (read by the architecture files from `cfg.raw`).

/** Boolean field `key` of config.json (null/absent → def), with a one-line error naming file + field. */
export function configBool(cfg: ModelConfig, key: string, def: boolean): boolean {
  const v = cfg.raw[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') fail(`${cfg.path}: field "${key}" must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Positive integer field `key` of config.json (null/absent → def). */
export function configInt(cfg: ModelConfig, key: string, def: number): number {
  const v = cfg.raw[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${cfg.path}: field "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}
