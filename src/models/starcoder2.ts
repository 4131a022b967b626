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
import { ACTIVATION_NAMES, layerLinearSpecs, layerNormAt, mlp, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const EMBED = 'model.embed_tokens.weight';

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
    const lin = layerLinearSpecs(starcoder2, cfg, p);
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);
    const attn = selfAttention(ctx, ln('input_layernorm', x), {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.o_proj']!,
    }, { heads: nh, kvHeads: nkv, headDim: d });
    const x2 = g.op('Add', [x, attn]);
    return g.op('Add', [x2, mlp(g, w, ln('post_attention_layernorm', x2), lin['mlp.c_fc']!, lin['mlp.c_proj']!, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNormAt(g, w, 'model.norm', x, h, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
};
