/**
 * BLOOM (transformers modeling_bloom.py, BloomForCausalLM).
 *  - `transformer.word_embeddings` followed by `transformer.word_embeddings_layernorm` (LayerNorm with bias);
 *    no position embeddings: ALiBi. Score(h, i, j) = q·k/sqrt(head_dim) + slope_h · pos_j, where pos_j is the key's
 *    position from the attention mask (cumsum(mask) − 1, 0 where masked, as build_alibi_tensor) and slopes are
 *    get_slopes (incl. the non-power-of-two head count case). Computed in the layer from `ctx.mask` (alibiMask).
 *  - fused `self_attention.query_key_value` laid out per head as [heads, 3, head_dim] (q, k, v interleaved per head).
 *  - block: ln1 = input_layernorm(x); x2 = residual1 + dense(attn(ln1)); ln2 = post_attention_layernorm(x2);
 *    out = residual2 + dense_4h_to_h(gelu_tanh(dense_h_to_4h(ln2))); residual1/2 = ln1/ln2 when
 *    apply_residual_connection_post_layernorm, else x/x2.
 *  - MLP width is always 4·hidden (BloomMLP ignores n_inner); every linear has a bias.
 *  - `transformer.ln_f`, lm_head tied to word_embeddings. pretraining_tp/slow_but_exact only reorder fp sums.
 *  - config.json: n_embed (or hidden_size), n_layer, n_head, layer_norm_epsilon.
 * Checkpoints saved from BloomModel (bigscience/bloom-560m) lack the `transformer.` prefix; InitializerWeights
 * finds those names.
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import type { ModelConfig } from '../io/config.ts';
import { activation, alibiMask, attention, layerNorm, mergeHeads, splitFusedQkv } from './blocks.ts';
import type { ArchDefinition, LayerContext, LinearSpec } from './types.ts';

const WE = 'transformer.word_embeddings.weight';

function linears(cfg: ModelConfig, prefix: string): Record<string, LinearSpec> {
  return Object.fromEntries(bloom.layerLinears(cfg).map((l) => [l.rel, { ...l, name: prefix + l.rel }]));
}

export const bloom: ArchDefinition = {
  modelTypes: ['bloom'],
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.word_embeddings', 'transformer.word_embeddings_layernorm', 'transformer.ln_f'],
  // AutoGPTQ BloomGPTQForCausalLM.
  insideLayerModules: [['self_attention.query_key_value'], ['self_attention.dense'], ['mlp.dense_h_to_4h'], ['mlp.dense_4h_to_h']],
  lmHead: 'lm_head',
  tiedEmbedding: WE,

  layerLinears(cfg) {
    const h = cfg.hiddenSize;
    return [
      { rel: 'self_attention.query_key_value', inFeatures: h, outFeatures: 3 * h, bias: true },
      { rel: 'self_attention.dense', inFeatures: h, outFeatures: h, bias: true },
      { rel: 'mlp.dense_h_to_4h', inFeatures: h, outFeatures: 4 * h, bias: true },
      { rel: 'mlp.dense_4h_to_h', inFeatures: 4 * h, outFeatures: h, bias: true },
    ];
  },

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: bloom needs head_dim = hidden_size / n_head and no grouped kv heads`);
    configBool(cfg, 'apply_residual_connection_post_layernorm', false);
  },

  embed(g, cfg, w, ids) {
    const h = cfg.hiddenSize;
    const tok = g.op('Gather', [w.tensor(g, WE, [cfg.vocabSize, h]), ids], { axis: 0 });
    const ln = 'transformer.word_embeddings_layernorm';
    return layerNorm(g, tok, w.tensor(g, `${ln}.weight`, [h]), w.tensor(g, `${ln}.bias`, [h]), cfg.rmsNormEps);
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const lin = linears(cfg, p);
    const ln = (name: string, v: string) => layerNorm(g, v, w.tensor(g, `${p}${name}.weight`, [h]), w.tensor(g, `${p}${name}.bias`, [h]), cfg.rmsNormEps);
    const postLn = configBool(cfg, 'apply_residual_connection_post_layernorm', false);

    const ln1 = ln('input_layernorm', x);
    const { q, k, v } = splitFusedQkv(g, w.linear(g, ln1, lin['self_attention.query_key_value']!), nh, 1, d);
    const actx: LayerContext = { ...ctx, mask: alibiMask(g, ctx.mask, nh) };
    const attn = mergeHeads(g, attention(actx, q, k, v, nh, nh, d), nh, d);
    if (actx.present) ctx.present = actx.present;
    const x2 = g.op('Add', [postLn ? ln1 : x, w.linear(g, attn, lin['self_attention.dense']!)]);
    const ln2 = ln('post_attention_layernorm', x2);
    const up = activation(g, w.linear(g, ln2, lin['mlp.dense_h_to_4h']!), 'gelu_tanh');
    return g.op('Add', [postLn ? ln2 : x2, w.linear(g, up, lin['mlp.dense_4h_to_h']!)]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNorm(g, x, w.tensor(g, 'transformer.ln_f.weight', [h]), w.tensor(g, 'transformer.ln_f.bias', [h]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: WE });
  },
};
