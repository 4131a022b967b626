/**
 * StarCoder2 (transformers modeling_starcoder2.py, Starcoder2ForCausalLM; model_type "starcoder2").
 *  - `model.embed_tokens`; LayerNorm WITH bias (`input_layernorm`, `post_attention_layernorm`, `model.norm`), eps
 *    `norm_epsilon` (an alias of rms_norm_eps in io/config.ts).
 *  - llama attention: `self_attn.q_proj/k_proj/v_proj/o_proj`, biases iff use_bias (default true), GQA
 *    (num_key_value_heads), rotary rotate_half over head_dim with rope_theta, scores · head_dim^-0.5,
 *    sliding_window (handled by the mask builder from cfg.slidingWindow).
 *  - MLP `mlp.c_fc` → hidden_act (gelu_pytorch_tanh) → `mlp.c_proj`, biases iff use_bias.
 *  - sequential residual; head `lm_head` tied to embed_tokens (tie_word_embeddings default true).
 */
import { fail } from '../errors.ts';
import { layerNormAt, mlp, selfAttention } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, linear } from './define.ts';

export const starcoder2 = defineArchitecture({
  modelTypes: ['starcoder2'],
  // Starcoder2Config: norm_epsilon 1e-5, 2 kv heads, use_bias true, tied.
  config: { starcoder2: { hidden_act: 'gelu_pytorch_tanh', intermediate_size: 12288, num_key_value_heads: 2, rms_norm_eps: 1e-5, max_position_embeddings: 4096, tie_word_embeddings: true, bos_token_id: 50256, eos_token_id: 50256 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ Starcoder2GPTQForCausalLM (GPTQModel: the same groups).
  modules: (cfg, { h, i, q, kv }) => {
    const b = configBool(cfg, 'use_bias', true);
    return {
      self_attn: { k_proj: linear(0, h, kv, b), v_proj: linear(0, h, kv, b), q_proj: linear(0, h, q, b), o_proj: linear(1, q, h, b) },
      mlp: { c_fc: linear(2, h, i, b), c_proj: linear(3, i, h, b) },
    };
  },
  norm: ['model.norm', layerNormAt],

  check(cfg) {
    checkActivation(cfg);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: starcoder2 applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    configBool(cfg, 'use_bias', true);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, ln('input_layernorm', x), m.self_attn)]);
    return g.op('Add', [x2, mlp(g, w, ln('post_attention_layernorm', x2), m.mlp.c_fc, m.mlp.c_proj, cfg.hiddenAct)]);
  },
});
