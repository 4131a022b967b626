/**
 * Llama family (transformers modeling_llama.py / modeling_mistral.py / modeling_qwen2.py): RMSNorm, rotary
 * (rotate_half, every rope_scaling type of rope.ts), GQA, SwiGLU. Qwen2 adds q/k/v biases; Mistral a sliding window
 * (the mask builder reads cfg.slidingWindow).
 */
import { defineArchitecture, linear } from './define.ts';
import { gatedMlp, rmsNormAt, selfAttention } from './blocks.ts';

export const llama = defineArchitecture({
  modelTypes: ['llama', 'mistral', 'qwen2'],
  // LlamaConfig / MistralConfig / Qwen2Config defaults (configuration_<model>.py)
  config: {
    llama: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 },
    mistral: { hidden_act: 'silu', intermediate_size: 14336, num_key_value_heads: 8, rms_norm_eps: 1e-6, max_position_embeddings: 4096 * 32, sliding_window: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 },
    qwen2: { hidden_act: 'silu', intermediate_size: 22016, num_key_value_heads: 32, rms_norm_eps: 1e-6, max_position_embeddings: 32768, tie_word_embeddings: false },
  },
  // Qwen2Config.__post_init__: sliding_window applies only with use_sliding_window.
  configure: (cfg) => (cfg.modelType === 'qwen2' && cfg.raw.use_sliding_window !== true ? { slidingWindow: null } : {}),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // One decoder layer; numbers = AutoGPTQ's true-sequential groups: [k, v, q], [o], [up, gate], [down].
  modules: (cfg, { h, i, q, kv }) => {
    const qkv = cfg.attentionBias || cfg.modelType === 'qwen2', o = cfg.attentionBias, mlp = cfg.mlpBias;
    return {
      self_attn: { k_proj: linear(0, h, kv, qkv), v_proj: linear(0, h, kv, qkv), q_proj: linear(0, h, q, qkv), o_proj: linear(1, q, h, o) },
      mlp: { up_proj: linear(2, h, i, mlp), gate_proj: linear(2, h, i, mlp), down_proj: linear(3, i, h, mlp) },
    };
  },
  norm: ['model.norm', rmsNormAt],

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn)]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct)]);
  },
});
