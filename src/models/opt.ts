/**
 * OPT (transformers modeling_opt.py, OPTForCausalLM).
 *  - tokens: `embed_tokens` [vocab, word_embed_proj_dim], then `project_in` (no bias) when
 *    word_embed_proj_dim ≠ hidden_size; positions: `embed_positions` [max_position_embeddings + 2, hidden] read at
 *    position_id + 2 (OPTLearnedPositionalEmbedding's offset; the graph's position_ids are HF's cumsum(mask) − 1).
 *  - layers: LayerNorm before (do_layer_norm_before, all sizes but 350m) or after each residual block;
 *    q scaled by head_dim^-0.5; `fc1` → activation_function (relu) → `fc2`; biases when enable_bias (default true);
 *    LayerNorms without weight/bias when layer_norm_elementwise_affine is false.
 *  - decoder `final_layer_norm` only when do_layer_norm_before and not _remove_final_layer_norm; then `project_out`;
 *    lm_head [vocab, word_embed_proj_dim] tied to embed_tokens.
 */
import { fail } from '../errors.ts';
import { configBool, configInt } from '../io/config.ts';
import type { ModelConfig } from '../io/config.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { ACTIVATION_NAMES, activation, attention, layerNorm, mergeHeads, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext, LinearSpec, WeightSource } from './types.ts';

const D = 'model.decoder.';
const EMBED = `${D}embed_tokens.weight`;
/** OPTLearnedPositionalEmbedding.offset */
const POSITION_OFFSET = 2;

/** OPTConfig fields beyond the common ones (defaults as in OPTConfig.__init__). */
export function optOptions(cfg: ModelConfig) {
  const doLayerNormBefore = configBool(cfg, 'do_layer_norm_before', true);
  return {
    wordEmbedProjDim: configInt(cfg, 'word_embed_proj_dim', cfg.hiddenSize),
    doLayerNormBefore,
    enableBias: configBool(cfg, 'enable_bias', true),
    affine: configBool(cfg, 'layer_norm_elementwise_affine', true),
    finalLayerNorm: doLayerNormBefore && !configBool(cfg, '_remove_final_layer_norm', false),
  };
}

/** nn.LayerNorm(hidden, elementwise_affine) over the last axis. */
function optLayerNorm(g: GraphBuilder, cfg: ModelConfig, w: WeightSource, x: string, name: string, affine: boolean): string {
  const h = cfg.hiddenSize;
  const weight = affine ? w.tensor(g, `${name}.weight`, [h]) : g.constF(new Array<number>(h).fill(1), [h]);
  const bias = affine ? w.tensor(g, `${name}.bias`, [h]) : g.constF(new Array<number>(h).fill(0), [h]);
  return layerNorm(g, x, weight, bias, cfg.rmsNormEps);
}

export const opt: ArchDefinition = {
  modelTypes: ['opt'],
  layersBlockName: `${D}layers.`,
  outsideLayerModules: [`${D}embed_tokens`, `${D}embed_positions`, `${D}project_out`, `${D}project_in`, `${D}final_layer_norm`],
  insideLayerModules: [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'],
    ['self_attn.out_proj'],
    ['fc1'],
    ['fc2'],
  ],
  lmHead: 'lm_head',
  tiedEmbedding: EMBED,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: f } = cfg;
    const bias = optOptions(cfg).enableBias;
    return [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: h, bias },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: h, bias },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: h, bias },
      { rel: 'self_attn.out_proj', inFeatures: h, outFeatures: h, bias },
      { rel: 'fc1', inFeatures: h, outFeatures: f, bias },
      { rel: 'fc2', inFeatures: f, outFeatures: h, bias },
    ];
  },

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: opt needs head_dim = hidden_size / num_attention_heads and no grouped kv heads`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: activation_function "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    optOptions(cfg);
  },

  embed(g, cfg, w, ids, positions) {
    const o = optOptions(cfg);
    const table = w.tensor(g, EMBED, [cfg.vocabSize, o.wordEmbedProjDim]);
    let tok = g.op('Gather', [table, ids], { axis: 0 });
    if (o.wordEmbedProjDim !== cfg.hiddenSize)
      tok = w.linear(g, tok, { name: `${D}project_in`, inFeatures: o.wordEmbedProjDim, outFeatures: cfg.hiddenSize, bias: false });
    const posTable = w.tensor(g, `${D}embed_positions.weight`, [cfg.maxPositionEmbeddings + POSITION_OFFSET, cfg.hiddenSize]);
    const pos = g.op('Gather', [posTable, g.op('Add', [positions, g.constI64(POSITION_OFFSET)])], { axis: 0 });
    return g.op('Add', [tok, pos]);
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { numHeads: nh, headDim: d } = cfg;
    const o = optOptions(cfg);
    const lin: Record<string, LinearSpec> = Object.fromEntries(opt.layerLinears(cfg).map((l) => [l.rel, { ...l, name: p + l.rel }]));
    const ln = (name: string, v: string) => optLayerNorm(g, cfg, w, v, `${p}${name}`, o.affine);

    const a = o.doLayerNormBefore ? ln('self_attn_layer_norm', x) : x;
    // HF multiplies q_proj(x) by head_dim^-0.5 before QKᵀ; attention() scales q the same way.
    const q = splitHeads(g, w.linear(g, a, lin['self_attn.q_proj']!), nh, d);
    const k = splitHeads(g, w.linear(g, a, lin['self_attn.k_proj']!), nh, d);
    const v = splitHeads(g, w.linear(g, a, lin['self_attn.v_proj']!), nh, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nh, d, d ** -0.5), nh, d);
    let x2 = g.op('Add', [x, w.linear(g, attn, lin['self_attn.out_proj']!)]);
    if (!o.doLayerNormBefore) x2 = ln('self_attn_layer_norm', x2);

    const f = o.doLayerNormBefore ? ln('final_layer_norm', x2) : x2;
    const up = activation(g, w.linear(g, f, lin['fc1']!), cfg.hiddenAct);
    const out = g.op('Add', [x2, w.linear(g, up, lin['fc2']!)]);
    return o.doLayerNormBefore ? out : ln('final_layer_norm', out);
  },

  head(g, cfg, w, x) {
    const o = optOptions(cfg);
    let hdn = o.finalLayerNorm ? optLayerNorm(g, cfg, w, x, `${D}final_layer_norm`, o.affine) : x;
    if (o.wordEmbedProjDim !== cfg.hiddenSize)
      hdn = w.linear(g, hdn, { name: `${D}project_out`, inFeatures: cfg.hiddenSize, outFeatures: o.wordEmbedProjDim, bias: false });
    return w.linear(g, hdn, { name: 'lm_head', inFeatures: o.wordEmbedProjDim, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
};
