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
import { configBool } from '../io/config.ts';
import type { ModelConfig } from '../io/config.ts';
import { F, type GraphBuilder } from '../graph/builder.ts';
import { ACTIVATION_NAMES, LLAMA_INSIDE_MODULES, llamaLinears, gatedMlp, layerLinearSpecs, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const EMBED = 'model.embed_tokens.weight';

/** CohereConfig.logit_scale (default 0.0625). */
export function cohereLogitScale(cfg: ModelConfig): number {
  const v = cfg.raw.logit_scale ?? 0.0625;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${cfg.path}: field "logit_scale" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** CohereLayerNorm: (x − mean) / sqrt(var + eps) · w, no bias. */
function biaslessLayerNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('LayerNormalization', [x, weight], { axis: -1, epsilon: F(eps) });
}

export const cohere: ArchDefinition = {
  modelTypes: ['cohere'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ CohereGPTQForCausalLM (llama's groups).
  insideLayerModules: LLAMA_INSIDE_MODULES,
  lmHead: 'lm_head',
  tiedEmbedding: EMBED,

  layerLinears(cfg) {
    return llamaLinears(cfg, cfg.numKvHeads, { qkv: cfg.attentionBias, o: cfg.attentionBias, mlp: false });
  },

  check(cfg) {
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: cohere applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    configBool(cfg, 'use_qk_norm', false);
    cohereLogitScale(cfg);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, EMBED, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(cohere, cfg, p);
    const qkNorm = configBool(cfg, 'use_qk_norm', false);
    const n = biaslessLayerNorm(g, x, w.tensor(g, `${p}input_layernorm.weight`, [h]), cfg.rmsNormEps);
    // qk norm: per-head weight [heads, d] → [heads, 1, d] against [B, heads, S, d]
    const headNorm = (t: string, which: 'q' | 'k', heads: number) => {
      const wt = g.op('Reshape', [w.tensor(g, `${p}self_attn.${which}_norm.weight`, [heads, d]), g.constI64([heads, 1, d])]);
      return g.op('Mul', [biaslessLayerNorm(g, t, g.constF(new Array(d).fill(1), [d]), cfg.rmsNormEps), wt]);
    };
    const attn = selfAttention(ctx, n, {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.o_proj']!,
    }, { heads: nh, kvHeads: nkv, headDim: d, rope: 'interleaved', qkNorm: qkNorm ? headNorm : undefined });
    const mlp = gatedMlp(g, w, n, `${p}mlp.`, h, cfg.intermediateSize, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), mlp]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = biaslessLayerNorm(g, x, w.tensor(g, 'model.norm.weight', [h]), cfg.rmsNormEps);
    const logits = w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
    return g.op('Mul', [logits, g.constF(cohereLogitScale(cfg))]);
  },
};
