/**
 * An architecture is one file: `export const x = defineArchitecture({...})` with
 *  - `config`: per model_type, what Transformers' `*Config` class fills in (ConfigDefaults, Transformers' field names),
 *    plus `configure` for fields the class derives its own way;
 *  - `modules`: the module tree of one decoder layer (GPTQModel's `module_tree`): nested objects whose leaves are
 *    `linear(group, in, out, bias)`. From it come AutoGPTQ's `inside_layer_modules` (groups quantized together in
 *    true-sequential order), the linear shapes/biases, and the LinearSpecs the layer graph receives as `m`;
 *  - `layer(ctx, x, m)`: the decoder layer graph; `embed` / `head` default to a token-embedding gather and
 *    `norm` + `lm_head` (tied to the embedding when the checkpoint has no head), with `embedded` / `logits` hooks for
 *    the usual scalings.
 * The module tree follows GPTQModel's models/definitions/*.py `module_tree` literals (`"#"` for repeated blocks, `:N`
 * group ids, `:!` for modules that run but are not quantized: here `linear(null, …)`).
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { ACTIVATION_NAMES, layerIndexOf } from './blocks.ts';
import type { ArchConfig, ArchDefinition, CheckpointRules, LayerContext, LayerLinear, LinearSpec, WeightSource } from './types.ts';

/** A linear of the module tree: its shape and its true-sequential group (null: runs in fp, never quantized). */
export interface LinearNode {
  readonly kind: 'linear';
  readonly group: number | null;
  readonly inFeatures: number; readonly outFeatures: number; readonly bias: boolean;
  /** HF Conv1D: weight stored [in, out]. */
  readonly conv1d?: boolean;
}

/** Module tree of one decoder layer: names → linears, subtrees, or arrays of identical subtrees (experts). */
export type ModuleTree = { readonly [name: string]: LinearNode | ModuleTree | readonly ModuleTree[] };

/** The tree with every linear resolved to its LinearSpec (full module name) for one layer. */
export type Modules<T> = {
  [K in keyof T]: T[K] extends LinearNode ? LinearSpec : T[K] extends readonly (infer U)[] ? Modules<U>[] : Modules<T[K]>;
};

/**
 * A linear of the module tree. `group`: AutoGPTQ's true-sequential group, quantized in ascending group order (linears
 * listed in one group share their calibration pass); null: the linear runs in the graph but is never quantized (a MoE
 * router: GPTQModel's `:!`). `bias`: a boolean, or `{ bias, conv1d }` for HF Conv1D weights stored [in, out].
 */
export function linear(group: number | null, inFeatures: number, outFeatures: number, bias: boolean | { bias?: boolean; conv1d?: boolean } = false): LinearNode {
  const o = typeof bias === 'boolean' ? { bias } : bias;
  return { kind: 'linear', group, inFeatures, outFeatures, bias: !!o.bias, ...(o.conv1d ? { conv1d: true } : {}) };
}

/** `n` copies of a subtree (experts `0…n−1`), built by `f(index)`. */
export function repeat<T extends ModuleTree>(n: number, f: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

/** The sizes module trees are written in. */
export interface Dims {
  /** hidden_size */ h: number;
  /** intermediate_size */ i: number;
  /** query width heads·head_dim */ q: number;
  /** key/value width kv_heads·head_dim */ kv: number;
  /** head_dim */ d: number;
  heads: number; kvHeads: number; vocab: number;
}

export function dims(cfg: ModelConfig): Dims {
  const { hiddenSize: h, intermediateSize: i, numHeads: heads, numKvHeads: kvHeads, headDim: d, vocabSize: vocab } = cfg;
  return { h, i, q: heads * d, kv: kvHeads * d, d, heads, kvHeads, vocab };
}

const isLinear = (v: unknown): v is LinearNode => (v as LinearNode)?.kind === 'linear';

/**
 * Linears of a tree in listing order, names relative to the layer. Arrays of subtrees are listed leaf by leaf across
 * their copies (experts.0.w1 … experts.n.w1, then experts.0.w3 …), as AutoGPTQ lists MoE experts.
 */
function flatten(t: ModuleTree, prefix = ''): { rel: string; node: LinearNode }[] {
  const out: { rel: string; node: LinearNode }[] = [];
  for (const [k, v] of Object.entries(t)) {
    if (isLinear(v)) out.push({ rel: prefix + k, node: v });
    else if (Array.isArray(v)) {
      const copies = (v as readonly ModuleTree[]).map((c, n) => flatten(c, `${prefix}${k}.${n}.`));
      for (let j = 0; j < (copies[0]?.length ?? 0); j++) for (const c of copies) out.push(c[j]!);
    } else out.push(...flatten(v as ModuleTree, `${prefix}${k}.`));
  }
  return out;
}

/** The LinearSpec of tree linear `node` named `name`. */
const specOf = (name: string, n: LinearNode): LinearSpec =>
  ({ name, inFeatures: n.inFeatures, outFeatures: n.outFeatures, bias: n.bias, ...(n.conv1d ? { conv1d: true } : {}) });

/** The tree's LinearSpecs under `prefix` (e.g. "model.layers.3."). */
function resolve<T extends ModuleTree>(t: T, prefix: string): Modules<T> {
  const r = (v: ModuleTree | readonly ModuleTree[], p: string): unknown => (Array.isArray(v)
    ? (v as readonly ModuleTree[]).map((c, n) => r(c, `${p}${n}.`))
    : Object.fromEntries(Object.entries(v).map(([k, c]) => [k, isLinear(c) ? specOf(p + k, c) : r(c, `${p}${k}.`)])));
  return r(t, prefix) as Modules<T>;
}

/** A norm over the last axis with checkpoint tensors under `name` (rmsNormAt, layerNormAt, …). */
export type NormAt = (g: GraphBuilder, w: WeightSource, name: string, x: string, n: number, eps: number) => string;

/** The one-file shape of an architecture (see the file comment). */
export interface ArchSpec<T extends ModuleTree> {
  /** HF `model_type` values. */
  modelTypes: readonly string[];
  /** Per model_type: what the Transformers config class fills in. */
  config: ArchConfig['defaults'];
  /** Fields the config class derives its own way (ArchConfig.configure). */
  configure?: ArchConfig['configure'];
  /** Transformers 5 checkpoint naming (conversion_mapping.py renames, fused expert stacks). */
  checkpoint?: CheckpointRules;
  /** Checkpoint prefix of decoder layer i, e.g. "model.layers.". */
  layersBlockName: string;
  /** Non-layer modules (AutoGPTQ outside_layer_modules). */
  outsideLayerModules: readonly string[];
  /**
   * Module tree of one decoder layer (sizes from `d` = dims(cfg)). `layer`: the decoder layer's index, for models whose
   * layers differ (dense and MoE layers); undefined asks for the union over all layers (the tree of every layer when
   * they are alike).
   */
  modules(cfg: ModelConfig, d: Dims, layer?: number): T;
  /** Token-embedding module (default "model.embed_tokens"): the default embed gathers its weight, a tied head reads it. */
  embedding?: string;
  /** Final norm before the head: [module name, norm]. Needed by the default head. */
  norm?: readonly [string, NormAt];
  /** Output head linear (default "lm_head") and whether it has a bias. */
  lmHead?: string;
  lmHeadBias?: boolean;
  /** Validate config fields the graph needs; throw one-line errors. */
  check?(cfg: ModelConfig): void;
  /** True when decoder layers' graphs differ by index. */
  layerGraphVaries?(cfg: ModelConfig): boolean;
  /** Positions come from a learned table of max_position_embeddings rows (ArchDefinition.learnedPositions). */
  learnedPositions?: boolean;
  /** ids [B,S] → hidden [B,S,H]; default: gather of `<embedding>.weight`. */
  embed?: ArchDefinition['embed'];
  /** Applied to the default embedding (e.g. Gemma's × √hidden). */
  embedded?(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, x: string): string;
  /** One decoder layer with its linears `m` (the module tree under the layer's prefix). */
  layer(ctx: LayerContext, x: string, m: Modules<T>): string;
  /** hidden → logits; default: `norm` then the `lmHead` linear (tied to the embedding). */
  head?: ArchDefinition['head'];
  /** Applied to the default head's logits (e.g. Cohere's logit_scale). */
  logits?(g: GraphBuilder, cfg: ModelConfig, logits: string): string;
}

/** The token-embedding gather: `<name>.weight` [vocab, hidden] at ids. */
export function embedTokens(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, ids: string, name = 'model.embed_tokens'): string {
  return g.op('Gather', [w.tensor(g, `${name}.weight`, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
}

/** Token embeddings plus learned absolute positions (GPT-2 / GPTBigCode: wte + wpe [max_position_embeddings, hidden]). */
export function embedWithPositions(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, ids: string, positions: string, tokens: string, pos: string): string {
  const wte = w.tensor(g, `${tokens}.weight`, [cfg.vocabSize, cfg.hiddenSize]);
  const wpe = w.tensor(g, `${pos}.weight`, [cfg.maxPositionEmbeddings, cfg.hiddenSize]);
  return g.op('Add', [g.op('Gather', [wte, ids], { axis: 0 }), g.op('Gather', [wpe, positions], { axis: 0 })]);
}

/** Build an ArchDefinition from its one-file shape. */
export function defineArchitecture<T extends ModuleTree>(s: ArchSpec<T>): ArchDefinition & { modules(cfg: ModelConfig, prefix: string, layer?: number): Modules<T> } {
  const embedding = s.embedding ?? 'model.embed_tokens', tied = `${embedding}.weight`, lmHead = s.lmHead ?? 'lm_head';
  const entries = (cfg: ModelConfig, layer?: number) => flatten(s.modules(cfg, dims(cfg), layer));
  const modules = (cfg: ModelConfig, prefix: string, layer?: number) => resolve(s.modules(cfg, dims(cfg), layer), prefix);
  return {
    modelTypes: s.modelTypes,
    config: { defaults: s.config, ...(s.configure ? { configure: s.configure } : {}) },
    ...(s.checkpoint ? { checkpoint: s.checkpoint } : {}),
    layersBlockName: s.layersBlockName,
    outsideLayerModules: s.outsideLayerModules,
    lmHead,
    tiedEmbedding: tied,
    insideLayerModules(cfg, layer) {
      const byGroup = new Map<number, string[]>();
      for (const { rel, node } of entries(cfg, layer)) if (node.group !== null) (byGroup.get(node.group) ?? byGroup.set(node.group, []).get(node.group)!).push(rel);
      return [...byGroup.entries()].sort(([a], [b]) => a - b).map(([, rels]) => rels);
    },
    layerLinears(cfg, layer): LayerLinear[] {
      return entries(cfg, layer).filter((e) => e.node.group !== null).map(({ rel, node: n }) =>
        ({ rel, inFeatures: n.inFeatures, outFeatures: n.outFeatures, bias: n.bias, ...(n.conv1d ? { conv1d: true } : {}) }));
    },
    modules,
    ...(s.layerGraphVaries ? { layerGraphVaries: s.layerGraphVaries } : {}),
    ...(s.learnedPositions ? { learnedPositions: true } : {}),
    ...(s.check ? { check: s.check } : {}),
    embed: s.embed ?? ((g, cfg, w, ids) => {
      const x = embedTokens(g, cfg, w, ids, embedding);
      return s.embedded ? s.embedded(g, cfg, w, x) : x;
    }),
    // The layer's own tree (by index) for models whose layers differ; alike layers ignore the index.
    layer: (ctx, x) => s.layer(ctx, x, modules(ctx.cfg, ctx.prefix, s.layerGraphVaries?.(ctx.cfg) ? layerIndexOf(ctx) : undefined)),
    head: s.head ?? ((g, cfg, w, x) => {
      if (!s.norm) throw new Error(`${s.modelTypes.join('/')}: defineArchitecture needs \`norm\` or \`head\``);
      const [name, norm] = s.norm;
      const logits = w.linear(g, norm(g, w, name, x, cfg.hiddenSize, cfg.rmsNormEps),
        { name: lmHead, inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: !!s.lmHeadBias, tiedTo: tied });
      return s.logits ? s.logits(g, cfg, logits) : logits;
    }),
  };
}

// ------------------------------------------------------------------------------------------------ config fields

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

/** Finite number field `key` of config.json (null/absent → def). */
export function configNumber(cfg: ModelConfig, key: string, def: number): number {
  const v = cfg.raw[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${cfg.path}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Refuse an activation the graphs do not implement: `<path>: <field> "<act>" is not supported (supported: …)`. */
export function checkActivation(cfg: ModelConfig, act = cfg.hiddenAct, field = 'hidden_act'): void {
  if (!ACTIVATION_NAMES.includes(act)) fail(`${cfg.path}: ${field} "${act}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
}
