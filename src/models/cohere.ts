/**
 * Cohere Command-R / Command-R+ / Aya-23 (transformers modeling_cohere.py, CohereForCausalLM; model_type "cohere").
 *  - `model.embed_tokens`; CohereLayerNorm = LayerNorm WITHOUT bias (mean-centred, eps layer_norm_eps) for
 *    `input_layernorm` and `model.norm`.
 *  - parallel block from ONE norm: n = input_layernorm(x); out = x + o_proj(attn(n)) + mlp(n).
 *  - attention: `self_attn.q_proj/k_proj/v_proj/o_proj` (biases iff attention_bias), GQA, optional use_qk_norm:
 *    `self_attn.q_norm` / `k_norm` are CohereLayerNorms over head_dim with a weight per head ([heads, head_dim]),
 *    applied before rotary. Rotary is INTERLEAVED (repeat_interleave'd frequencies, rotate-every-two: channel pairs
 *    (2i, 2i+1)), base rope_theta, over head_dim.
 *  - MLP: SwiGLU `mlp.gate_proj/up_proj/down_proj`, no biases.
 *  - head: lm_head (tied to embed_tokens by default) and logits · logit_scale (default 0.0625).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { F, type GraphBuilder } from '../graph/builder.ts';
import { gatedMlp, selfAttention } from './blocks.ts';
import { checkActivation, configBool, configNumber, defineArchitecture, type NormAt } from './define.ts';
import { llamaModules } from './llama.ts';

/** CohereConfig.logit_scale (default 0.0625). */
export const cohereLogitScale = (cfg: ModelConfig): number => configNumber(cfg, 'logit_scale', 0.0625);

/** CohereLayerNorm: (x − mean) / sqrt(var + eps) · w, no bias. */
function biaslessLayerNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('LayerNormalization', [x, weight], { axis: -1, epsilon: F(eps) });
}
const cohereNorm: NormAt = (g, w, name, x, n, eps) => biaslessLayerNorm(g, x, w.tensor(g, `${name}.weight`, [n]), eps);

export const cohere = defineArchitecture({
  modelTypes: ['cohere'],
  // CohereConfig: layer_norm_eps 1e-5, tied.
  config: { cohere: { hidden_act: 'silu', intermediate_size: 22528, rms_norm_eps: 1e-5, max_position_embeddings: 8192, tie_word_embeddings: true, bos_token_id: 5, eos_token_id: 255001, pad_token_id: 0 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ CohereGPTQForCausalLM (llama's groups).
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  norm: ['model.norm', cohereNorm],
  logits: (g, cfg, logits) => g.op('Mul', [logits, g.constF(cohereLogitScale(cfg))]),

  check(cfg) {
    checkActivation(cfg);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: cohere applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    configBool(cfg, 'use_qk_norm', false);
    cohereLogitScale(cfg);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const d = cfg.headDim;
    const n = cohereNorm(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    // qk norm: per-head weight [heads, d] → [heads, 1, d] against [B, heads, S, d]
    const headNorm = (t: string, which: 'q' | 'k', heads: number) => {
      const wt = g.op('Reshape', [w.tensor(g, `${p}self_attn.${which}_norm.weight`, [heads, d]), g.constI64([heads, 1, d])]);
      return g.op('Mul', [biaslessLayerNorm(g, t, g.constF(new Array(d).fill(1), [d]), cfg.rmsNormEps), wt]);
    };
    const attn = selfAttention(ctx, n, m.self_attn, { rope: 'interleaved', qkNorm: configBool(cfg, 'use_qk_norm', false) ? headNorm : undefined });
    const mlp = gatedMlp(g, w, n, m.mlp, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), mlp]);
  },
});
