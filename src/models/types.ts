import type { GraphBuilder } from '../graph/builder.ts';
import type { ConfigDefaults, ConfigReader, ModelConfig } from '../io/model-config.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { Rope } from './rope.ts';

/** One linear (torch `nn.Linear` semantics: weight [out, in], y = x·Wᵀ + b). `name` is the full module name. */
export interface LinearSpec {
  name: string; inFeatures: number; outFeatures: number; bias: boolean;
  /** The checkpoint stores the weight as [in, out] (HF `Conv1D`, GPT-2): y = x·W + b. */
  conv1d?: boolean;
  /** Tensor to use when the checkpoint has no `<name>.weight` (tied embeddings, e.g. "transformer.wte.weight"). */
  tiedTo?: string;
  /**
   * Calibration only: graph value [rows] (or [rows, 1]) of 0/1 weights over the flattened rows of x; the Hessian
   * becomes Σ mask·xᵀx, i.e. only the rows routed to this linear (MoE experts evaluated densely). Inference ignores it.
   */
  hessianRowWeight?: string;
}

/**
 * Where weights come from when a graph is built: fp32 initializers (inference), graph inputs (calibration,
 * one graph for all layers) or packed int weights (MatMulNBits). Architecture code only calls these.
 */
export interface WeightSource {
  /** y = x·Wᵀ + b for linear `spec`; x is [..., in]. */
  linear(g: GraphBuilder, x: string, spec: LinearSpec): string;
  /** A float tensor by checkpoint name (norm weights, embeddings, biases outside linears). */
  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string;
}

/** Per-graph values shared by every decoder layer. */
export interface LayerContext {
  g: GraphBuilder;
  cfg: ModelConfig;
  w: WeightSource;
  /** e.g. "model.layers.3." */
  prefix: string;
  /** cos/sin [B, 1, S, rotaryDim] of the graph's positions (src/models/rope.ts) */
  rope: Rope;
  /** Layer number when the graph knows it (absent: parse it from `prefix`; calibration graphs use layer 0's prefix). */
  layerIndex?: number;
  /** additive attention mask, broadcastable to [B, heads, S, T] (sliding window cfg.slidingWindow) */
  mask: string;
  /**
   * The graph's additive mask with another sliding window (null: none), built once per graph and window: for models
   * whose layers differ in window (Gemma 2/3 sliding vs full layers). Absent in graphs that cannot provide it.
   */
  maskWith?(window: number | null): string;
  /** The graph's rotary embedding for another rope configuration (Gemma 3's local layers), built once per graph and config object. */
  ropeWith?(cfg: ModelConfig): Rope;
  /** Attention logit soft-capping (Gemma 2): scores = cap·tanh(scores / cap) after scaling, before the mask. */
  softcap?: number;
  /** KV cache input for this layer, [B, kvHeads, P, headDim] each; absent for calibration graphs */
  past?: { key: string; value: string };
  /** set by the layer when past is given: [B, kvHeads, P+S, headDim] */
  present?: { key: string; value: string };
  /**
   * When set, `attention()` delegates to it (same arguments, same result layout [B, heads, S, d]): the runtime's
   * decode graphs use com.microsoft.GroupQueryAttention over an in-place KV buffer (src/models/attention-gqa.ts).
   */
  fusedAttention?: (ctx: LayerContext, q: string, k: string, v: string, heads: number, kvHeads: number, d: number, scale: number) => string;
}

/** What an architecture says about Transformers' config class of each of its model types (read by src/io/config.ts). */
export interface ArchConfig {
  /** Per model_type: the values the `*Config` class fills in when config.json lacks the field (Transformers names). */
  defaults: Readonly<Record<string, ConfigDefaults>>;
  /**
   * Fields the config class derives its own way (e.g. Falcon's kv heads from multi_query): the ModelConfig fields they
   * set, given the generically parsed config. Throw one-line errors through `read` / fail().
   */
  configure?(cfg: ModelConfig, read: ConfigReader): Partial<ModelConfig>;
}

/**
 * How checkpoints written by Transformers 5 (`save_original_format=False`, conversion_mapping.py) name this model's
 * weights differently; applied when a checkpoint is opened (src/runtime/model-checkpoint.ts bindModel).
 */
export interface CheckpointRules {
  /** Stored name prefix → ours (the stored tensor is read under our name too). */
  renames?: readonly (readonly [from: string, to: string])[];
  /** Adds views/aliases to the open checkpoint (e.g. per-expert slices of fused expert stacks); one-line errors. */
  bind?(ck: Checkpoint, cfg: ModelConfig): void;
}

/**
 * An architecture as the rest of gptqjs uses it: the module tree (as AutoGPTQ's `layers_block_name`,
 * `outside_layer_modules`, `inside_layer_modules`), its config rules and the graph pieces. Architecture files build
 * one with defineArchitecture() (src/models/define.ts), which derives the module lists, linear shapes and default
 * embedding/head from one module tree; registerArchitecture() accepts the same object.
 */
export interface ArchDefinition {
  /** HF `model_type` values this definition serves. */
  modelTypes: readonly string[];
  /** Config defaults and quirks per model type (absent: PretrainedConfig's generic defaults). */
  config?: ArchConfig;
  /** Transformers 5 checkpoint naming of this architecture's weights. */
  checkpoint?: CheckpointRules;
  /** Checkpoint prefix of decoder layer i, e.g. "model.layers.". */
  layersBlockName: string;
  /** Non-layer modules (kept in fp, never quantized unless lm_head is asked for). */
  outsideLayerModules: readonly string[];
  /**
   * Linears of one layer (relative names), grouped as quantized together (true_sequential), groups in order. `layer`:
   * of decoder layer `layer` when layers differ (layerGraphVaries); undefined: the union over all layers.
   */
  insideLayerModules(cfg: ModelConfig, layer?: number): readonly (readonly string[])[];
  /** Shapes of one layer's quantizable linears (relative names); `layer` as in insideLayerModules. */
  layerLinears(cfg: ModelConfig, layer?: number): LayerLinear[];
  /** Name of the output head's linear. */
  lmHead: string;
  /** Checkpoint tensor of the input token embedding; a head absent from the checkpoint falls back to it (tied). */
  tiedEmbedding?: string;
  /** True when decoder layers' graphs differ by index (e.g. GPT-2 scale_attn_by_inverse_layer_idx). */
  layerGraphVaries?(cfg: ModelConfig): boolean;
  /**
   * Positions are rows of a learned table of max_position_embeddings rows (GPT-2, GPTBigCode, GPT-Neo, OPT): no
   * position ≥ max_position_embeddings exists (Transformers fails there with an IndexError). The runtime refuses such
   * inputs in one line and generation stops at the table's end (CausalLM.positionLimit).
   */
  learnedPositions?: boolean;
  /** Validate config fields the graph needs; throw one-line errors. */
  check?(cfg: ModelConfig): void;
  /** ids [B,S] int64 → hidden [B,S,H] */
  embed(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, ids: string, positions: string): string;
  /** one decoder layer, hidden → hidden */
  layer(ctx: LayerContext, hidden: string): string;
  /** hidden → logits (final norm + head) */
  head(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, hidden: string): string;
}

export interface LayerLinear {
  rel: string; inFeatures: number; outFeatures: number; bias: boolean;
  /** Weight stored [in, out] (HF Conv1D): transpose to [out, in] before GPTQ, as AutoGPTQ does. */
  conv1d?: boolean;
}
