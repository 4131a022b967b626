/**
 * GPT-NeoX / Pythia (transformers modeling_gpt_neox.py, GPTNeoXForCausalLM).
 *  - `gpt_neox.embed_in` token embeddings (no learned positions), LayerNorms with bias everywhere.
 *  - attention: one fused `attention.query_key_value` [3·hidden, hidden] laid out PER HEAD: the output is viewed as
 *    [..., heads, 3·head_dim] and each head's slice is q | k | v (not one q block, one k block, one v block).
 *  - rotary (rotate_half) on the first int(head_dim·rotary_pct) channels of q and k, base rotary_emb_base;
 *    scores scaled by head_dim^-0.5; `attention.dense` out projection; biases when attention_bias (default true).
 *  - MLP `dense_h_to_4h` → hidden_act (gelu) → `dense_4h_to_h`, always with bias.
 *  - use_parallel_residual (default true): x + attn(ln1(x)) + mlp(ln2(x)); else x' = x + attn(ln1(x)); x' + mlp(ln2(x')).
 *  - `gpt_neox.final_layer_norm`, head `embed_out` (untied unless tie_word_embeddings, then `embed_in`).
 */
import { fail } from '../errors.ts';
import { activation, attention, layerNormAt, mergeHeads } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, linear } from './define.ts';
import { applyRope } from './rope.ts';

export const gptNeox = defineArchitecture({
  modelTypes: ['gpt_neox'],
  // GPTNeoXConfig: rotary_pct 0.25, rotary_emb_base 10000, hidden_act gelu, use_parallel_residual, untied embed_out.
  config: { gpt_neox: { hidden_act: 'gelu', intermediate_size: 24576, rms_norm_eps: 1e-5, max_position_embeddings: 2048, partial_rotary_factor: 0.25, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2 } },
  // Transformers 5 conversion_mapping.py: the head `embed_out` is stored as "lm_head".
  checkpoint: { renames: [['lm_head.', 'embed_out.']] },
  layersBlockName: 'gpt_neox.layers.',
  outsideLayerModules: ['gpt_neox.embed_in', 'gpt_neox.final_layer_norm'],
  // AutoGPTQ GPTNeoXGPTQForCausalLM: the fused query_key_value is quantized as one module.
  modules: (cfg, { h, i }) => {
    const bias = configBool(cfg, 'attention_bias', true);
    return {
      attention: { query_key_value: linear(0, h, 3 * h, bias), dense: linear(1, h, h, bias) },
      mlp: { dense_h_to_4h: linear(2, h, i, true), dense_4h_to_h: linear(3, i, h, true) },
    };
  },
  embedding: 'gpt_neox.embed_in',
  norm: ['gpt_neox.final_layer_norm', layerNormAt],
  lmHead: 'embed_out',

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gpt_neox needs head_dim = hidden_size / num_attention_heads and no grouped kv heads`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0)
      fail(`${cfg.path}: rotary dims int(head_dim·rotary_pct) = ${cfg.rotaryDim} must be a positive even number`);
    checkActivation(cfg);
    configBool(cfg, 'use_parallel_residual', true);
    configBool(cfg, 'attention_bias', true);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);

    // [B,S,3H] → [B,S,heads,3d] → per head q | k | v → [B,heads,S,d]
    const qkv = g.op('Reshape', [w.linear(g, ln('input_layernorm', x), m.attention.query_key_value), g.constI64([0, 0, nh, 3 * d])]);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([d, d, d])], 3, { axis: -1 }).map((t) => g.op('Transpose', [t], { perm: [0, 2, 1, 3] }));
    const qr = applyRope(g, q!, ctx.rope, d, cfg.rotaryDim);
    const kr = applyRope(g, k!, ctx.rope, d, cfg.rotaryDim);
    const attn = w.linear(g, mergeHeads(g, attention(ctx, qr, kr, v!, nh, nh, d), nh, d), m.attention.dense);
    const mlp = (v2: string) => w.linear(g, activation(g, w.linear(g, v2, m.mlp.dense_h_to_4h), cfg.hiddenAct), m.mlp.dense_4h_to_h);

    if (configBool(cfg, 'use_parallel_residual', true)) {
      return g.op('Add', [g.op('Add', [x, attn]), mlp(ln('post_attention_layernorm', x))]);
    }
    const x2 = g.op('Add', [x, attn]);
    return g.op('Add', [x2, mlp(ln('post_attention_layernorm', x2))]);
  },
});
