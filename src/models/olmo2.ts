/**
 * OLMo 2 (transformers modeling_olmo2.py, Olmo2ForCausalLM; model_type "olmo2").
 *  - Llama linears (`self_attn.q_proj/k_proj/v_proj/o_proj`, biases iff attention_bias; SwiGLU `mlp.gate_proj/
 *    up_proj/down_proj`), rotate-half RoPE, GQA, scores · head_dim^-0.5;
 *  - q/k norms over the FULL projections: `self_attn.q_norm` is an RMSNorm of width heads·head_dim, `k_norm` of
 *    kv_heads·head_dim, applied to q_proj(x) / k_proj(x) before the split into heads and rotary;
 *  - post-norms, no pre-norm: h = x + post_attention_layernorm(attn(x)); out = h + post_feedforward_layernorm(mlp(h));
 *  - head: `model.norm` then `lm_head` (untied by default).
 */
import { attendHeads, gatedMlp, rmsNormAt, splitHeads } from './blocks.ts';
import { checkActivation, defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';

export const olmo2 = defineArchitecture({
  modelTypes: ['olmo2'],
  // Olmo2Config defaults (configuration_olmo2.py, transformers 5.18); kv heads = heads unless given.
  config: { olmo2: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: false, pad_token_id: 1, eos_token_id: 50279 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ's llama groups: [k, v, q], [o], [up, gate], [down]; q_norm / k_norm stay fp.
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  norm: ['model.norm', rmsNormAt],
  check: (cfg) => checkActivation(cfg),
  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { numHeads: heads, numKvHeads: kvHeads, headDim: d, rmsNormEps: eps, hiddenSize: h } = cfg;
    const a = m.self_attn;
    const proj = (which: 'q' | 'k', n: number) =>
      splitHeads(g, rmsNormAt(g, w, `${p}self_attn.${which}_norm`, w.linear(g, x, which === 'q' ? a.q_proj : a.k_proj), n * d, eps), n, d);
    const v = splitHeads(g, w.linear(g, x, a.v_proj), kvHeads, d);
    const attn = attendHeads(ctx, proj('q', heads), proj('k', kvHeads), v, a.o_proj, { heads, kvHeads, headDim: d, rotaryDim: cfg.rotaryDim });
    const x2 = g.op('Add', [x, rmsNormAt(g, w, `${p}post_attention_layernorm`, attn, h, eps)]);
    return g.op('Add', [x2, rmsNormAt(g, w, `${p}post_feedforward_layernorm`, gatedMlp(g, w, x2, m.mlp, cfg.hiddenAct), h, eps)]);
  },
});
