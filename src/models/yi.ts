/**
 * Yi, original remote-code layout (model_type "Yi", YiForCausalLM of 01-ai/Yi-6B / Yi-34B before they were re-saved as
 * model_type "llama"; AutoGPTQ YiGPTQForCausalLM, vLLM's former models/yi.py): Llama math — GQA, RoPE (θ 5e6 by
 * default), SwiGLU — with the decoder layer's RMSNorms named `ln1` (before attention) and `ln2` (before the MLP)
 * instead of input_layernorm / post_attention_layernorm; `model.norm`, untied `lm_head`.
 * The re-saved Yi checkpoints (model_type "llama") run through llama.ts.
 */
import { gatedMlp, rmsNormAt, selfAttention } from './blocks.ts';
import { defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';

export const yi = defineArchitecture({
  modelTypes: ['Yi'],
  // YiConfig (01-ai/Yi-6B configuration_yi.py): kv heads 4, rms_norm_eps 1e-5, 4096 positions, rope_theta 5e6,
  // untied, pad 0 / bos 1 / eos 2.
  config: { Yi: { hidden_act: 'silu', intermediate_size: 11008, num_key_value_heads: 4, rms_norm_eps: 1e-5, max_position_embeddings: 4096, rope_theta: 5e6, tie_word_embeddings: false, pad_token_id: 0, bos_token_id: 1, eos_token_id: 2 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (_, d) => llamaModules(d),
  norm: ['model.norm', rmsNormAt],

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const x2 = g.op('Add', [x, selfAttention(ctx, rmsNormAt(g, w, `${p}ln1`, x, cfg.hiddenSize, cfg.rmsNormEps), m.self_attn)]);
    return g.op('Add', [x2, gatedMlp(g, w, rmsNormAt(g, w, `${p}ln2`, x2, cfg.hiddenSize, cfg.rmsNormEps), m.mlp, cfg.hiddenAct)]);
  },
});
