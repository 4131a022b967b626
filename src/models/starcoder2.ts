/**
 * StarCoder2 (transformers modeling_starcoder2.py, Starcoder2ForCausalLM; model_type "starcoder2").
 *  - `model.embed_tokens`; LayerNorm WITH bias (`input_layernorm`, `post_attention_layernorm`, `model.norm`), eps
 *    `norm_epsilon` (aliased to rms_norm_eps in io/config.ts).
 *  - llama attention: `self_attn.q_proj/k_proj/v_proj/o_proj`, biases iff use_bias (default true), GQA
 *    (num_key_value_heads), rotary rotate_half over head_dim with rope_theta, scores · head_dim^-0.5,
 *    sliding_window (handled by the mask builder from cfg.slidingWindow).
 *  - MLP `mlp.c_fc` → hidden_act (gelu_pytorch_tanh) → `mlp.c_proj`, biases iff use_bias.
 *  - sequential residual; head `lm_head` tied to embed_tokens (tie_word_embeddings default true).
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import type { ModelConfig } from '../io/config.ts';
import { ACTIVATION_NAMES, activation, applyRope, attention, layerNorm, mergeHeads, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext, LinearSpec } from './types.ts';

const EMBED = 'model.embed_tokens.weight';

function linears(cfg: ModelConfig, prefix: string): Record<string, LinearSpec> {
  return Object.fromEntries(starcoder2.layerLinears(cfg).map((l) => [l.rel, { ...l, name: prefix + l.rel }]));
}

export const starcoder2: ArchDefinition = {
  modelTypes: ['starcoder2'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ Starcoder2GPTQForCausalLM (GPTQModel: the same groups).
  insideLayerModules: [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.c_fc'], ['mlp.c_proj']],
  lmHead: 'lm_head',
  tiedEmbedding: EMBED,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const bias = configBool(cfg, 'use_bias', true);
    return [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: nh * d, bias },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: nkv * d, bias },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: nkv * d, bias },
      { rel: 'self_attn.o_proj', inFeatures: nh * d, outFeatures: h, bias },
      { rel: 'mlp.c_fc', inFeatures: h, outFeatures: i, bias },
      { rel: 'mlp.c_proj', inFeatures: i, outFeatures: h, bias },
    ];
  },

  check(cfg) {
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: starcoder2 applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    configBool(cfg, 'use_bias', true);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, EMBED, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = linears(cfg, p);
    const ln = (name: string, v: string) => layerNorm(g, v, w.tensor(g, `${p}${name}.weight`, [h]), w.tensor(g, `${p}${name}.bias`, [h]), cfg.rmsNormEps);
    const n1 = ln('input_layernorm', x);
    const q = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.q_proj']!), nh, d), ctx.rope, d);
    const k = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.k_proj']!), nkv, d), ctx.rope, d);
    const v = splitHeads(g, w.linear(g, n1, lin['self_attn.v_proj']!), nkv, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nkv, d), nh, d);
    const x2 = g.op('Add', [x, w.linear(g, attn, lin['self_attn.o_proj']!)]);
    const up = activation(g, w.linear(g, ln('post_attention_layernorm', x2), lin['mlp.c_fc']!), cfg.hiddenAct);
    return g.op('Add', [x2, w.linear(g, up, lin['mlp.c_proj']!)]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNorm(g, x, w.tensor(g, 'model.norm.weight', [h]), w.tensor(g, 'model.norm.bias', [h]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
};
