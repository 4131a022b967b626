/**
 * Qwen3 (transformers modeling_qwen3.py, Qwen3ForCausalLM; model_type "qwen3").
 *  - Llama layout (`model.embed_tokens`, RMSNorm `input_layernorm` / `post_attention_layernorm` / `model.norm`,
 *    SwiGLU `mlp.gate_proj/up_proj/down_proj`, rotate-half RoPE, GQA, biases iff attention_bias);
 *  - q/k norms: `self_attn.q_norm` / `k_norm` are RMSNorms over head_dim (one weight [head_dim] shared by all heads),
 *    applied to each head of q and k after the projection and before rotary; scores · head_dim^-0.5 (head_dim is its
 *    own field, default 128, not hidden/heads);
 *  - sliding window only with use_sliding_window, on layers ≥ max_window_layers (Qwen3Config.__post_init__).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, rmsNorm, rmsNormAt, selfAttention, type AttentionLinears } from './blocks.ts';
import { checkActivation, defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';
import type { ArchConfig, LayerContext } from './types.ts';

/**
 * The one sliding window all layers share, from `layer_types` (as config.json gives them, else `rule(i)` = the config
 * class's default list): a window when every layer is "sliding_attention", null when none is; a mix is refused in one
 * line (the graphs build one mask for all layers).
 */
export function uniformSlidingWindow(cfg: ModelConfig, rule: (i: number) => boolean): number | null {
  const given = cfg.raw.layer_types;
  if (given !== undefined && given !== null && !(Array.isArray(given) && given.length === cfg.numLayers && given.every((t) => t === 'sliding_attention' || t === 'full_attention')))
    fail(`${cfg.path}: field "layer_types" must list "sliding_attention" / "full_attention" for each of the ${cfg.numLayers} layers`);
  const sliding = Array.from({ length: cfg.numLayers }, (_, i) => (Array.isArray(given) ? given[i] === 'sliding_attention' : rule(i)));
  if (!sliding.some(Boolean) || cfg.slidingWindow === null) return null;
  if (!sliding.every(Boolean))
    fail(`${cfg.path}: sliding-window attention on some layers only (layers ${sliding.flatMap((s, i) => (s ? [i] : [])).join(', ')} of ${cfg.numLayers}; use_sliding_window/max_window_layers/layer_types) is not supported`);
  return cfg.slidingWindow;
}

/** Qwen3Config / Qwen3MoeConfig `__post_init__`: sliding window only with use_sliding_window, on layers ≥ max_window_layers. */
export const qwen3Configure: ArchConfig['configure'] = (cfg) => {
  if (cfg.raw.use_sliding_window !== true) return { slidingWindow: null };
  const mwl = cfg.raw.max_window_layers ?? 28;
  if (!Number.isInteger(mwl) || (mwl as number) < 0) fail(`${cfg.path}: field "max_window_layers" must be a non-negative integer, got ${JSON.stringify(mwl)}`);
  const from = cfg.modelType === 'qwen3' ? (mwl as number) : 0; // Qwen3MoeConfig has no max_window_layers: every layer slides
  return { slidingWindow: uniformSlidingWindow(cfg, (i) => i >= from) };
};

/** Qwen3 attention: per-head RMSNorm of q and k (`<p>self_attn.q_norm` / `k_norm`, weight [head_dim]) before rotary. */
export function qwen3Attention(ctx: LayerContext, x: string, lin: AttentionLinears): string {
  const { g, w, cfg, prefix: p } = ctx;
  const qkNorm = (t: string, which: 'q' | 'k') => rmsNorm(g, t, w.tensor(g, `${p}self_attn.${which}_norm.weight`, [cfg.headDim]), cfg.rmsNormEps);
  return selfAttention(ctx, x, lin, { qkNorm });
}

/** x + attn(norm(x)), then + mlp(norm(·)), the mlp given as `ffn` (dense SwiGLU or a MoE block). */
export function qwen3Layer(ctx: LayerContext, x: string, attn: AttentionLinears, ffn: (n: string) => string): string {
  const { g, cfg, w, prefix: p } = ctx;
  const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
  const x2 = g.op('Add', [x, qwen3Attention(ctx, n1, attn)]);
  const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
  return g.op('Add', [x2, ffn(n2)]);
}

export const qwen3 = defineArchitecture({
  modelTypes: ['qwen3'],
  // Qwen3Config defaults (configuration_qwen3.py, transformers 5.18).
  config: { qwen3: { hidden_act: 'silu', intermediate_size: 22016, num_key_value_heads: 32, head_dim: 128, rms_norm_eps: 1e-6, max_position_embeddings: 32768, sliding_window: 4096, tie_word_embeddings: false } },
  configure: qwen3Configure,
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ's llama groups: [k, v, q], [o], [up, gate], [down]; q_norm / k_norm stay fp (GPTQModel qwen3.py).
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  norm: ['model.norm', rmsNormAt],
  check(cfg) {
    checkActivation(cfg);
    if (cfg.rotaryDim % 2) fail(`${cfg.path}: rotary dimension ${cfg.rotaryDim} must be even`);
  },
  layer: (ctx, x, m) => qwen3Layer(ctx, x, m.self_attn, (n) => gatedMlp(ctx.g, ctx.w, n, m.mlp, ctx.cfg.hiddenAct)),
});
