/**
 * Gemma 2 (transformers modeling_gemma2.py, Gemma2ForCausalLM; model_type "gemma2"). Gemma's embedding (× √hidden),
 * (1 + w) RMSNorms and GeGLU MLP (act = `hidden_activation`), with:
 *  - per layer `config.layer_types[i]`: "sliding_attention" layers see the last `sliding_window` keys, "full_attention"
 *    layers all of them (default: sliding on even layers, Gemma2Config.__post_init__);
 *  - attention scale query_pre_attn_scalar^-0.5 (not head_dim^-0.5);
 *  - attention logit soft-capping `attn_logit_softcapping` (scores = cap·tanh(scores/cap) after scaling, before the
 *    mask; null: none) and final logit soft-capping `final_logit_softcapping` on the head's logits;
 *  - four norms per layer: x + post_attention_layernorm(attn(input_layernorm(x))), then
 *    + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(·))).
 * AutoGPTQ/GPTQModel Gemma2: llama's groups [k, v, q], [o], [up, gate], [down]. Soft-capping runs on the fused paths
 * too (GroupQueryAttention `softcap`, and the buffer graph's own scores).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, layerIndexOf, selfAttention, softcapped, type AttentionOpts } from './blocks.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { checkActivation, configNumber, defineArchitecture, type Dims, type Modules } from './define.ts';
import { gemmaNorm } from './gemma.ts';
import { llamaModules } from './llama.ts';
import type { Rope } from './rope.ts';
import type { LayerContext, WeightSource } from './types.ts';

const LAYER_TYPES = ['sliding_attention', 'full_attention'];

/**
 * Whether each decoder layer uses the sliding window: config.json `layer_types`, else Transformers' default pattern
 * (sliding unless (i + 1) is a multiple of `pattern`: Gemma 2 every other layer, Gemma 3 five of six).
 */
export function slidingLayers(cfg: ModelConfig, pattern: number): boolean[] {
  const lt = cfg.raw.layer_types;
  if (lt === undefined || lt === null) return Array.from({ length: cfg.numLayers }, (_, i) => (i + 1) % pattern !== 0);
  if (!Array.isArray(lt) || lt.length !== cfg.numLayers || !lt.every((t) => LAYER_TYPES.includes(t as string)))
    fail(`${cfg.path}: field "layer_types" must list ${cfg.numLayers} of ${LAYER_TYPES.join(' / ')}, got ${JSON.stringify(lt)}`);
  return lt.map((t) => t === 'sliding_attention');
}

/** A soft-capping field: a positive number, or null / 0 for none. */
export function softcapOf(cfg: ModelConfig, key: string, def: number | null): number | undefined {
  const v = cfg.raw[key] === null ? null : configNumber(cfg, key, def ?? 0);
  if (v !== null && v < 0) fail(`${cfg.path}: field "${key}" must be positive or null, got ${v}`);
  return v || undefined;
}

/**
 * One Gemma 2 / Gemma 3 decoder layer: the layer's own window (`sliding`), scale query_pre_attn_scalar^-0.5,
 * attention soft-capping, optional q/k norms and rotary embedding (Gemma 3), four (1 + w) norms.
 */
export function gemma2Layer(ctx: LayerContext, x: string, m: Modules<ReturnType<typeof llamaModules>>,
  o: { sliding: boolean; softcap?: number; qkNorm?: AttentionOpts['qkNorm']; rope?: Rope }): string {
  const { g, cfg, w, prefix: p } = ctx;
  if (!ctx.maskWith) throw new Error(`${cfg.modelType}: this graph cannot give layers their own sliding window`);
  const norm = (name: string, v: string) => gemmaNorm(g, w, `${p}${name}`, v, cfg.hiddenSize, cfg.rmsNormEps);
  const actx: LayerContext = { ...ctx, mask: ctx.maskWith(o.sliding ? cfg.slidingWindow : null), softcap: o.softcap, rope: o.rope ?? ctx.rope };
  const attn = selfAttention(actx, norm('input_layernorm', x), m.self_attn,
    { scale: configNumber(cfg, 'query_pre_attn_scalar', 256) ** -0.5, qkNorm: o.qkNorm });
  if (actx.present) ctx.present = actx.present;
  const x2 = g.op('Add', [x, norm('post_attention_layernorm', attn)]);
  const ff = gatedMlp(g, w, norm('pre_feedforward_layernorm', x2), m.mlp, cfg.hiddenAct);
  return g.op('Add', [x2, norm('post_feedforward_layernorm', ff)]);
}

/**
 * What Gemma 2 and Gemma 3 text share: names, llama's module tree (AutoGPTQ/GPTQModel groups), the √hidden embedding
 * (embed_scale = hidden_size**0.5 in the weights' dtype), the (1 + w) final norm and final logit soft-capping
 * (`final_logit_softcapping`, default `finalCap`).
 */
export const gemma2Common = (finalCap: number | null) => ({
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (cfg: ModelConfig, d: Dims) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  embedded: (g: GraphBuilder, cfg: ModelConfig, _w: WeightSource, x: string) => g.op('Mul', [x, g.constF(Math.sqrt(cfg.hiddenSize))]),
  norm: ['model.norm', gemmaNorm] as const,
  logits: (g: GraphBuilder, cfg: ModelConfig, logits: string) => {
    const cap = softcapOf(cfg, 'final_logit_softcapping', finalCap);
    return cap ? softcapped(g, logits, cap) : logits;
  },
  layerGraphVaries: () => true,
});

export const gemma2 = defineArchitecture({
  modelTypes: ['gemma2'],
  // Gemma2Config defaults (hidden_act is not read: the MLP uses hidden_activation, set in configure).
  config: { gemma2: { intermediate_size: 9216, num_key_value_heads: 4, head_dim: 256, rms_norm_eps: 1e-6, max_position_embeddings: 8192, sliding_window: 4096, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 } },
  configure: (_, read) => ({ hiddenAct: read.str('hidden_activation', 'gelu_pytorch_tanh')! }),
  ...gemma2Common(30),

  check(cfg) {
    checkActivation(cfg, cfg.hiddenAct, 'hidden_activation');
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: gemma2 applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    slidingLayers(cfg, 2);
    if (cfg.raw.use_bidirectional_attention === true) fail(`${cfg.path}: use_bidirectional_attention is not supported (causal decoders only)`);
    softcapOf(cfg, 'attn_logit_softcapping', 50);
    softcapOf(cfg, 'final_logit_softcapping', 30);
    if (configNumber(cfg, 'query_pre_attn_scalar', 256) <= 0) fail(`${cfg.path}: field "query_pre_attn_scalar" must be positive`);
  },

  layer: (ctx, x, m) => gemma2Layer(ctx, x, m,
    { sliding: slidingLayers(ctx.cfg, 2)[layerIndexOf(ctx)]!, softcap: softcapOf(ctx.cfg, 'attn_logit_softcapping', 50) }),
});
