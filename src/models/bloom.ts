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
import { activation, alibiMask, attention, layerNormAt, mergeHeads, splitFusedQkv } from './blocks.ts';
import { configBool, defineArchitecture, linear } from './define.ts';
import type { LayerContext } from './types.ts';

export const bloom = defineArchitecture({
  modelTypes: ['bloom'],
  // BloomConfig: ALiBi (no max positions; seq_length is informative), layer_norm_epsilon 1e-5, MLP 4·hidden.
  config: { bloom: { hidden_act: 'gelu_tanh', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 } },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.word_embeddings', 'transformer.word_embeddings_layernorm', 'transformer.ln_f'],
  // AutoGPTQ BloomGPTQForCausalLM.
  modules: (_, { h }) => ({
    self_attention: { query_key_value: linear(0, h, 3 * h, true), dense: linear(1, h, h, true) },
    mlp: { dense_h_to_4h: linear(2, h, 4 * h, true), dense_4h_to_h: linear(3, 4 * h, h, true) },
  }),
  embedding: 'transformer.word_embeddings',
  embedded: (g, cfg, w, x) => layerNormAt(g, w, 'transformer.word_embeddings_layernorm', x, cfg.hiddenSize, cfg.rmsNormEps),
  norm: ['transformer.ln_f', layerNormAt],

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: bloom needs head_dim = hidden_size / n_head and no grouped kv heads`);
    configBool(cfg, 'apply_residual_connection_post_layernorm', false);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);
    const postLn = configBool(cfg, 'apply_residual_connection_post_layernorm', false);

    const ln1 = ln('input_layernorm', x);
    const { q, k, v } = splitFusedQkv(g, w.linear(g, ln1, m.self_attention.query_key_value), nh, 1, d);
    const actx: LayerContext = { ...ctx, mask: alibiMask(g, ctx.mask, nh) };
    const attn = mergeHeads(g, attention(actx, q, k, v, nh, nh, d), nh, d);
    if (actx.present) ctx.present = actx.present;
    const x2 = g.op('Add', [postLn ? ln1 : x, w.linear(g, attn, m.self_attention.dense)]);
    const ln2 = ln('post_attention_layernorm', x2);
    const up = activation(g, w.linear(g, ln2, m.mlp.dense_h_to_4h), 'gelu_tanh');
    return g.op('Add', [postLn ? ln2 : x2, w.linear(g, up, m.mlp.dense_4h_to_h)]);
  },
});
