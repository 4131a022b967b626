/**
 * config.json / generation_config.json loading with Transformers' rules: field aliases (attribute_map), the defaults
 * each model type's `*Config` class fills in and its quirks — both owned by the architecture file of that model type
 * (ArchDefinition.config, src/models/define.ts) — and PretrainedConfig's defaults for model types gptqjs does not know.
 */
import { promises as fs } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { fail, option } from '../errors.ts';
import { archConfigFor } from '../models/registry.ts';
import type { ConfigDefaults, ConfigReader, ModelConfig, RopeScaling } from './model-config.ts';

export type { ConfigDefaults, ConfigReader, ModelConfig, RopeScaling } from './model-config.ts';



/** PretrainedConfig's tie_word_embeddings=True; eps 1e-6 (llama family), 2048 positions, silu. */
const GENERIC = { tie_word_embeddings: true, rms_norm_eps: 1e-6, max_position_embeddings: 2048, hidden_act: 'silu' } as const;

/** Transformers' attribute_map aliases (gpt2/gptj/bloom/falcon/opt …) for the standard names. */
const ALIASES: Record<string, string[]> = {
  hidden_size: ['n_embd', 'd_model', 'n_embed'],
  num_hidden_layers: ['n_layer', 'num_layers', 'n_layers'],
  num_attention_heads: ['n_head', 'num_heads', 'n_heads'],
  max_position_embeddings: ['n_positions', 'max_sequence_length', 'seq_length', 'max_seq_len'],
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
function reader(path: string, raw: Record<string, unknown>): ConfigReader {
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
  /** A rope settings dict (what `rope_scaling` holds) read from `field`; null for none or rope_type "default". */
  const ropeScaling = (field: string, v: unknown): RopeScaling | null => parseRopeScaling(path, field, v);
  return { get, num, int, bool, str, tokenId, tokenIds, ropeScaling };
}


function parseRopeScaling(path: string, field: string, v: unknown): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) fail(`${path}: field "${field}" must be an object or null`);
  const o = v as Record<string, unknown>;
  // standardize_rope_params: rope_parameters.setdefault("rope_type", rope_parameters.get("type", "default")).
  const type = o.rope_type ?? o.type ?? 'default';
  if (typeof type !== 'string') fail(`${path}: field "${field}.rope_type" must be a string`);
  if (type === 'default') return null;
  const optNum = (k: string): number | undefined => {
    const x = o[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${path}: field "${field}.${k}" must be a number, got ${JSON.stringify(x)}`);
    return x;
  };
  return {
    type, factor: optNum('factor'), originalMaxPositionEmbeddings: optNum('original_max_position_embeddings'),
    lowFreqFactor: optNum('low_freq_factor'), highFreqFactor: optNum('high_freq_factor'), field, raw: o,
  };
}

/**
 * Parse an already-read config.json object (path only used in messages): generic fields with the defaults of the
 * model type's architecture (ArchDefinition.config.defaults, else PretrainedConfig's), then the architecture's
 * `configure` quirks, then checks that hold for every model.
 */
export function parseModelConfig(raw: unknown, path = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${path}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const f = reader(path, r);
  const modelType = f.str('model_type', '') ?? '';
  const arch = archConfigFor(modelType);
  const d: ConfigDefaults = arch?.defaults[modelType] ?? {};
  const archs = r.architectures;
  if (archs !== undefined && archs !== null && !(Array.isArray(archs) && archs.every((a) => typeof a === 'string')))
    fail(`${path}: field "architectures" must be a list of strings`);
  const hiddenSize = f.int('hidden_size');
  const numLayers = f.int('num_hidden_layers');
  const numHeads = f.int('num_attention_heads');
  const vocabSize = f.int('vocab_size');
  const numKvHeads = f.int('num_key_value_heads', d.num_key_value_heads ?? numHeads);
  const headDim = f.int('head_dim', d.head_dim ?? Math.floor(hiddenSize / numHeads));

  // RoPE settings (RotaryEmbeddingConfigMixin.convert_rope_params_to_dict): `rope_scaling` (Transformers 4 layout) or
  // else `rope_parameters` (5.x: {rope_type, rope_theta, factor, …}); the dict's rope_theta wins over the top-level
  // field (setdefault); partial_rotary_factor is the top-level field the attention modules read, else the dict's; then
  // the legacy names (GPT-NeoX rotary_emb_base / rotary_pct).
  const dictField = r.rope_scaling !== undefined && r.rope_scaling !== null ? 'rope_scaling' : 'rope_parameters';
  const ropeScaling = parseRopeScaling(path, dictField, r[dictField]);
  const dict = (r[dictField] ?? {}) as Record<string, unknown>;
  const ropeTheta = typeof dict.rope_theta === 'number' ? dict.rope_theta : f.num('rope_theta', f.num('rotary_emb_base', d.rope_theta ?? 10000));
  let prf = f.num('partial_rotary_factor', typeof dict.partial_rotary_factor === 'number'
    ? dict.partial_rotary_factor : f.num('rotary_pct', d.partial_rotary_factor ?? 1));
  // gptj/codegen: rotary_dim channels (null: all of them); absent → the model type's default.
  const rdField = r.rotary_dim === undefined ? d.rotary_dim : r.rotary_dim;
  const rd = typeof rdField === 'number' && r.partial_rotary_factor === undefined ? rdField : undefined;
  if (rd !== undefined) {
    if (!(Number.isInteger(rd) && rd > 0 && rd <= headDim)) fail(`${path}: field "rotary_dim" must be an integer in [1, head_dim ${headDim}], got ${rd}`);
    prf = rd / headDim;
  }
  if (!(prf > 0 && prf <= 1)) fail(`${path}: field "partial_rotary_factor" must be in (0, 1], got ${prf}`);
  const rotaryDim = rd ?? Math.floor(headDim * prf);

  let slidingWindow: number | null = null;
  const sw = r.sliding_window === undefined ? d.sliding_window ?? null : r.sliding_window;
  if (sw !== null && sw !== undefined) {
    if (!Number.isInteger(sw)) fail(`${path}: field "sliding_window" must be a positive integer or null`);
    slidingWindow = sw as number; // ≤ 0 refused below, once the architecture's quirks ran (Qwen2MoeConfig writes 0 when unused)
  }
  const origMax = r.original_max_position_embeddings ?? d.original_max_position_embeddings;
  const qc = r.quantization_config;
  if (qc !== undefined && qc !== null && (typeof qc !== 'object' || Array.isArray(qc))) fail(`${path}: field "quantization_config" must be an object`);
  const cfg: ModelConfig = {
    path, raw: r, modelType,
    architectures: (archs as string[] | undefined | null) ?? [],
    hiddenSize,
    intermediateSize: f.int('intermediate_size', d.intermediate_size ?? 4 * hiddenSize),
    numLayers, numHeads, numKvHeads, headDim, vocabSize,
    maxPositionEmbeddings: f.int('max_position_embeddings', d.max_position_embeddings ?? GENERIC.max_position_embeddings),
    originalMaxPositionEmbeddings: origMax === undefined || origMax === null ? null : f.int('original_max_position_embeddings', origMax as number),
    rmsNormEps: f.num('rms_norm_eps', d.rms_norm_eps ?? GENERIC.rms_norm_eps),
    ropeTheta, ropeScaling, partialRotaryFactor: prf, rotaryDim,
    tieWordEmbeddings: f.bool('tie_word_embeddings', d.tie_word_embeddings ?? GENERIC.tie_word_embeddings),
    hiddenAct: f.str('hidden_act', d.hidden_act ?? GENERIC.hidden_act)!,
    attentionBias: f.bool('attention_bias', false),
    mlpBias: f.bool('mlp_bias', false),
    slidingWindow,
    bosTokenId: f.tokenId('bos_token_id', d.bos_token_id ?? null),
    eosTokenId: f.tokenIds('eos_token_id', d.eos_token_id ?? null),
    padTokenId: f.tokenId('pad_token_id', d.pad_token_id ?? null),
    torchDtype: f.str('torch_dtype', f.str('dtype', null)),
    quantizationConfig: (qc as Record<string, unknown> | null) ?? undefined,
  };
  if (arch?.configure) Object.assign(cfg, arch.configure(cfg, f));
  if (cfg.slidingWindow !== null && cfg.slidingWindow <= 0) fail(`${path}: field "sliding_window" must be a positive integer or null`);
  if (cfg.numHeads % cfg.numKvHeads !== 0) fail(`${path}: field "num_key_value_heads" (${cfg.numKvHeads}) must divide num_attention_heads (${cfg.numHeads})`);
  return cfg;
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

/**
 * Tokens per window (perplexity) or calibration sample (quantize): at most the model's max_position_embeddings
 * (windows longer than the trained context measure nothing the model was trained for, and models with a learned
 * position table cannot run them); default min(2048, max_position_embeddings), as AutoGPTQ's evaluation uses the
 * model's context length. One rule for the CLI (--seqlen) and the library (seqlen); throws GptqError.
 */
export function seqlenFor(given: number | undefined, cfg: Pick<ModelConfig, 'maxPositionEmbeddings' | 'path'>): number {
  const max = cfg.maxPositionEmbeddings;
  if (given === undefined) return max > 0 ? Math.min(2048, max) : 2048;
  const name = option(`seqlen: ${given}`, `--seqlen ${given}`);
  if (!Number.isInteger(given) || given < 2) fail(`${name}: must be an integer ≥ 2`);
  if (max > 0 && given > max) fail(`${name}: longer than max_position_embeddings ${max} of ${cfg.path} (allowed: an integer in [2, ${max}])`);
  return given;
}
