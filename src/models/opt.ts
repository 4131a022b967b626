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
import type { ModelConfig } from '../io/model-config.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { activation, attention, layerNorm, mergeHeads, splitHeads } from './blocks.ts';
import { checkActivation, configBool, configInt, defineArchitecture, linear } from './define.ts';
import type { WeightSource } from './types.ts';

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

export const opt = defineArchitecture({
  modelTypes: ['opt'],
  // OPTConfig: no eps field (nn.LayerNorm's 1e-5), ffn_dim 3072, activation_function relu.
  config: { opt: { hidden_act: 'relu', intermediate_size: 3072, rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 2, pad_token_id: 1 } },
  layersBlockName: `${D}layers.`,
  outsideLayerModules: [`${D}embed_tokens`, `${D}embed_positions`, `${D}project_out`, `${D}project_in`, `${D}final_layer_norm`],
  modules: (cfg, { h, i }) => {
    const bias = optOptions(cfg).enableBias;
    return {
      self_attn: { k_proj: linear(0, h, h, bias), v_proj: linear(0, h, h, bias), q_proj: linear(0, h, h, bias), out_proj: linear(1, h, h, bias) },
      fc1: linear(2, h, i, bias),
      fc2: linear(3, i, h, bias),
    };
  },
  embedding: `${D}embed_tokens`,

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: opt needs head_dim = hidden_size / num_attention_heads and no grouped kv heads`);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
    optOptions(cfg);
  },

  learnedPositions: true,
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

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { numHeads: nh, headDim: d } = cfg;
    const o = optOptions(cfg);
    const ln = (name: string, v: string) => optLayerNorm(g, cfg, w, v, `${p}${name}`, o.affine);

    const a = o.doLayerNormBefore ? ln('self_attn_layer_norm', x) : x;
    // HF multiplies q_proj(x) by head_dim^-0.5 before QKᵀ; attention() scales q the same way.
    const q = splitHeads(g, w.linear(g, a, m.self_attn.q_proj), nh, d);
    const k = splitHeads(g, w.linear(g, a, m.self_attn.k_proj), nh, d);
    const v = splitHeads(g, w.linear(g, a, m.self_attn.v_proj), nh, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nh, d, d ** -0.5), nh, d);
    let x2 = g.op('Add', [x, w.linear(g, attn, m.self_attn.out_proj)]);
    if (!o.doLayerNormBefore) x2 = ln('self_attn_layer_norm', x2);

    const f = o.doLayerNormBefore ? ln('final_layer_norm', x2) : x2;
    const up = activation(g, w.linear(g, f, m.fc1), cfg.hiddenAct);
    const out = g.op('Add', [x2, w.linear(g, up, m.fc2)]);
    return o.doLayerNormBefore ? out : ln('final_layer_norm', out);
  },

  head(g, cfg, w, x) {
    const o = optOptions(cfg);
    let hdn = o.finalLayerNorm ? optLayerNorm(g, cfg, w, x, `${D}final_layer_norm`, o.affine) : x;
    if (o.wordEmbedProjDim !== cfg.hiddenSize)
      hdn = w.linear(g, hdn, { name: `${D}project_out`, inFeatures: cfg.hiddenSize, outFeatures: o.wordEmbedProjDim, bias: false });
    return w.linear(g, hdn, { name: 'lm_head', inFeatures: o.wordEmbedProjDim, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
});
