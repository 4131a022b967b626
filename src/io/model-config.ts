/**
 * The model-config types (what src/io/config.ts parses config.json into, and what architecture files read). Their own
 * file, importing nothing, so that src/models/* can name them without an import circle through config.ts (which reads
 * each model type's defaults from src/models/registry.ts).
 */

/** The RoPE settings dict of config.json (`rope_scaling`, Transformers 5 `rope_parameters`, …); src/models/rope.ts reads it. */
export interface RopeScaling {
  /** rope_type (or legacy `type`), e.g. "linear", "dynamic", "llama3", "yarn", "longrope". */
  type: string;
  factor?: number;
  originalMaxPositionEmbeddings?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  /** The config.json field it came from ("rope_scaling", "rope_parameters", …), for messages. */
  field: string;
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
  /** Top-level original_max_position_embeddings (Phi-3 style; wins over the rope dict's for llama3/yarn/longrope). */
  originalMaxPositionEmbeddings: number | null;
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

/**
 * What a Transformers `*Config` class fills in when config.json lacks the field, under Transformers' field names
 * (`rms_norm_eps` stands for every norm epsilon alias: layer_norm_eps, layer_norm_epsilon, norm_epsilon).
 * Absent here: PretrainedConfig's values (GENERIC below), head_dim = hidden/heads, kv heads = heads, 4·hidden MLP.
 */
export interface ConfigDefaults {
  hidden_act?: string;
  intermediate_size?: number;
  num_key_value_heads?: number;
  head_dim?: number;
  max_position_embeddings?: number;
  original_max_position_embeddings?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  /** e.g. GPTNeoXConfig rotary_pct 0.25, PhiConfig 0.5 */
  partial_rotary_factor?: number;
  /** GPTJConfig rotary_dim 64 */
  rotary_dim?: number;
  sliding_window?: number | null;
  tie_word_embeddings?: boolean;
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

/** One-line-error field readers over a config.json object (aliases resolved), given to ArchConfig.configure. */
export interface ConfigReader {
  /** [the field name found (the key or one of its Transformers aliases), its value or undefined]. */
  get(key: string): [string, unknown];
  /** A number; `def` when absent (required when def is undefined); `integer`: a positive integer. */
  num(key: string, def?: number, integer?: boolean): number;
  int(key: string, def?: number): number;
  bool(key: string, def: boolean): boolean;
  str(key: string, def: string | null): string | null;
  tokenId(key: string, def: number | null): number | null;
  tokenIds(key: string, def: number | null): number | number[] | null;
  /** A rope settings dict (what `rope_scaling` holds) read from `field`; null for none or rope_type "default". */
  ropeScaling(field: string, v: unknown): RopeScaling | null;
}
