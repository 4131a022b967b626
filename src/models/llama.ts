/**
 * Llama family (transformers modeling_llama.py / modeling_mistral.py / modeling_qwen2.py): RMSNorm, rotary
 * (rotate_half, every rope_scaling type of rope.ts), GQA, SwiGLU. Qwen2 adds q/k/v biases; Mistral a sliding window
 * (the mask builder reads cfg.slidingWindow). The module tree and layer are exported for the llama-layout files
 * (gemma.ts, internlm.ts, …).
 */
import { defineArchitecture, linear, type Dims, type Modules, type NormAt } from './define.ts';
import { gatedMlp, rmsNormAt, selfAttention } from './blocks.ts';
import type { LayerContext } from './types.ts';

/** One llama decoder layer's linears; numbers = AutoGPTQ's true-sequential groups: [k, v, q], [o], [up, gate], [down]. */
export const llamaModules = ({ h, i, q, kv }: Dims, b: { qkv?: boolean; o?: boolean; mlp?: boolean } = {}) => ({
  self_attn: { k_proj: linear(0, h, kv, b.qkv), v_proj: linear(0, h, kv, b.qkv), q_proj: linear(0, h, q, b.qkv), o_proj: linear(1, q, h, b.o) },
  mlp: { up_proj: linear(2, h, i, b.mlp), gate_proj: linear(2, h, i, b.mlp), down_proj: linear(3, i, h, b.mlp) },
});

/** x + attn(norm(x)), then + mlp(norm(·)) with norms `input_layernorm` / `post_attention_layernorm`. */
export function llamaLayer(ctx: LayerContext, x: string, m: Modules<ReturnType<typeof llamaModules>>, norm: NormAt = rmsNormAt, act = ctx.cfg.hiddenAct): string {
  const { g, cfg, w, prefix: p } = ctx;
  const n1 = norm(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
  const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn)]);
  const n2 = norm(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
  return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, act)]);
}

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
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias || cfg.modelType === 'qwen2', o: cfg.attentionBias, mlp: cfg.mlpBias }),
  norm: ['model.norm', rmsNormAt],
  layer: (ctx, x, m) => llamaLayer(ctx, x, m),
});
