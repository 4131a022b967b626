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
import { configBool } from '../io/config.ts';
import type { ModelConfig } from '../io/config.ts';
import { ACTIVATION_NAMES, activation, applyRope, attention, layerNorm, mergeHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext, LinearSpec } from './types.ts';

const EMBED = 'gpt_neox.embed_in.weight';

function linears(cfg: ModelConfig, prefix: string): Record<string, LinearSpec> {
  return Object.fromEntries(gptNeox.layerLinears(cfg).map((l) => [l.rel, { ...l, name: prefix + l.rel }]));
}

export const gptNeox: ArchDefinition = {
  modelTypes: ['gpt_neox'],
  layersBlockName: 'gpt_neox.layers.',
  outsideLayerModules: ['gpt_neox.embed_in', 'gpt_neox.final_layer_norm'],
  // AutoGPTQ GPTNeoXGPTQForCausalLM: the fused query_key_value is quantized as one module.
  insideLayerModules: [['attention.query_key_value'], ['attention.dense'], ['mlp.dense_h_to_4h'], ['mlp.dense_4h_to_h']],
  lmHead: 'embed_out',
  tiedEmbedding: EMBED,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i } = cfg;
    const attnBias = configBool(cfg, 'attention_bias', true);
    return [
      { rel: 'attention.query_key_value', inFeatures: h, outFeatures: 3 * h, bias: attnBias },
      { rel: 'attention.dense', inFeatures: h, outFeatures: h, bias: attnBias },
      { rel: 'mlp.dense_h_to_4h', inFeatures: h, outFeatures: i, bias: true },
      { rel: 'mlp.dense_4h_to_h', inFeatures: i, outFeatures: h, bias: true },
    ];
  },

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gpt_neox needs head_dim = hidden_size / num_attention_heads and no grouped kv heads`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0)
      fail(`${cfg.path}: rotary dims int(head_dim·rotary_pct) = ${cfg.rotaryDim} must be a positive even number`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    configBool(cfg, 'use_parallel_residual', true);
    configBool(cfg, 'attention_bias', true);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, EMBED, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const lin = linears(cfg, p);
    const ln = (name: string, v: string) => layerNorm(g, v, w.tensor(g, `${p}${name}.weight`, [h]), w.tensor(g, `${p}${name}.bias`, [h]), cfg.rmsNormEps);

    // [B,S,3H] → [B,S,heads,3d] → per head q | k | v → [B,heads,S,d]
    const qkv = g.op('Reshape', [w.linear(g, ln('input_layernorm', x), lin['attention.query_key_value']!), g.constI64([0, 0, nh, 3 * d])]);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([d, d, d])], 3, { axis: -1 }).map((t) => g.op('Transpose', [t], { perm: [0, 2, 1, 3] }));
    const qr = applyRope(g, q!, ctx.rope, d, cfg.rotaryDim);
    const kr = applyRope(g, k!, ctx.rope, d, cfg.rotaryDim);
    const attn = w.linear(g, mergeHeads(g, attention(ctx, qr, kr, v!, nh, nh, d), nh, d), lin['attention.dense']!);
    const mlp = (v2: string) => w.linear(g, activation(g, w.linear(g, v2, lin['mlp.dense_h_to_4h']!), cfg.hiddenAct), lin['mlp.dense_4h_to_h']!);

    if (configBool(cfg, 'use_parallel_residual', true)) {
      return g.op('Add', [g.op('Add', [x, attn]), mlp(ln('post_attention_layernorm', x))]);
    }
    const x2 = g.op('Add', [x, attn]);
    return g.op('Add', [x2, mlp(ln('post_attention_layernorm', x2))]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNorm(g, x, w.tensor(g, 'gpt_neox.final_layer_norm.weight', [h]), w.tensor(g, 'gpt_neox.final_layer_norm.bias', [h]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'embed_out', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
};
