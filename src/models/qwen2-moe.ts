/**
 * Qwen1.5-MoE / Qwen2-MoE (transformers modeling_qwen2_moe.py, Qwen2MoeForCausalLM; model_type "qwen2_moe"): Qwen2
 * attention (q/k/v biases iff qkv_bias, default true; o_proj without) and, on sparse layers, Qwen3-MoE's routed experts
 * (src/models/qwen3-moe.ts: softmax router `mlp.gate`, top-k, renormalized only with norm_topk_prob) plus a shared
 * expert: y = routed(x) + sigmoid(`mlp.shared_expert_gate`(x)) · shared_expert(x), where `mlp.shared_expert` is a SwiGLU
 * MLP of shared_expert_intermediate_size and `shared_expert_gate` a [1, hidden] linear (kept fp, like the router).
 * Dense layers (mlp_only_layers, decoder_sparse_step) have the SwiGLU `mlp.gate_proj/up_proj/down_proj`.
 * Sliding window (use_sliding_window) on layers i < max_window_layers with i even (Qwen2MoeConfig.__post_init__).
 */
import { gatedMlp, rmsNormAt, selfAttention } from './blocks.ts';
import { configBool, configInt, defineArchitecture, linear } from './define.ts';
import { llamaModules } from './llama.ts';
import { checkMoe, moeLayersDiffer, qwenMoeMlp, qwenMoeSizes, routedMoe, type GluLinears } from './qwen3-moe.ts';
import { uniformSlidingWindow } from './qwen3.ts';
import type { LinearSpec } from './types.ts';

export const qwen2Moe = defineArchitecture({
  modelTypes: ['qwen2_moe'],
  // Qwen2MoeConfig defaults (configuration_qwen2_moe.py, transformers 5.18).
  config: { qwen2_moe: { hidden_act: 'silu', intermediate_size: 5632, num_key_value_heads: 16, rms_norm_eps: 1e-6, max_position_embeddings: 32768, sliding_window: 4096, tie_word_embeddings: false } },
  configure: (cfg) => ({
    slidingWindow: cfg.raw.use_sliding_window === true
      ? uniformSlidingWindow(cfg, (i) => (i + 1) % 2 === 1 && i < configInt(cfg, 'max_window_layers', 28)) : null,
  }),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ Qwen2MoeGPTQForCausalLM: [k, v, q], [o], [shared up, gate], [shared down], [experts' up, gate],
  // [experts' down]; dense layers [up, gate], [down]; router and shared_expert_gate fp.
  modules: (cfg, d, layer) => {
    const t = llamaModules(d, { qkv: configBool(cfg, 'qkv_bias', true) });
    const shared = configInt(cfg, 'shared_expert_intermediate_size', 5632);
    const extra = {
      shared_expert: { up_proj: linear(2, d.h, shared), gate_proj: linear(2, d.h, shared), down_proj: linear(3, shared, d.h) },
      shared_expert_gate: linear(null, d.h, 1),
    };
    return { self_attn: t.self_attn, mlp: qwenMoeMlp(cfg, d, layer, t.mlp, 4, extra) };
  },
  norm: ['model.norm', rmsNormAt],
  check: checkMoe,
  layerGraphVaries: moeLayersDiffer,
  layer(ctx, x, m) {
    const { g, w, cfg, prefix: p } = ctx;
    const mlp = m.mlp as Record<string, unknown>;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn)]);
    const n = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    if (!mlp.experts) return g.op('Add', [x2, gatedMlp(g, w, n, mlp as unknown as GluLinears, cfg.hiddenAct)]);
    const routed = routedMoe(g, w, cfg, n, mlp.gate as LinearSpec, mlp.experts as GluLinears[], qwenMoeSizes(cfg));
    const gate = g.op('Sigmoid', [w.linear(g, n, mlp.shared_expert_gate as LinearSpec)]); // [B, S, 1]
    const shared = g.op('Mul', [gate, gatedMlp(g, w, n, mlp.shared_expert as GluLinears, cfg.hiddenAct)]);
    return g.op('Add', [x2, g.op('Add', [routed, shared])]);
  },
});
