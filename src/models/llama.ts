/**
 * Llama family (llama, mistral, qwen2): RMSNorm, rotary (rotate_half), GQA, SwiGLU.
 * Qwen2 adds q/k/v biases; Mistral a sliding window (handled by the mask builder from cfg.slidingWindow).
 */
import { applyRope, attention, gatedMlp, mergeHeads, rmsNorm, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

export const llama: ArchDefinition = {
  modelTypes: ['llama', 'mistral', 'qwen2'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  insideLayerModules: [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'],
    ['self_attn.o_proj'],
    ['mlp.up_proj', 'mlp.gate_proj'],
    ['mlp.down_proj'],
  ],
  lmHead: 'lm_head',

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const qkvBias = cfg.attentionBias || cfg.modelType === 'qwen2';
    return [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: nh * d, bias: qkvBias },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: nkv * d, bias: qkvBias },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: nkv * d, bias: qkvBias },
      { rel: 'self_attn.o_proj', inFeatures: nh * d, outFeatures: h, bias: !!cfg.attentionBias },
      { rel: 'mlp.gate_proj', inFeatures: h, outFeatures: i, bias: !!cfg.mlpBias },
      { rel: 'mlp.up_proj', inFeatures: h, outFeatures: i, bias: !!cfg.mlpBias },
      { rel: 'mlp.down_proj', inFeatures: i, outFeatures: h, bias: !!cfg.mlpBias },
    ];
  },

  embed(g, cfg, w, ids) {
    const table = w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
    return g.op('Gather', [table, ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = Object.fromEntries(llama.layerLinears(cfg).map((l) => [l.rel, { ...l, name: p + l.rel }]));
    const n1 = rmsNorm(g, x, w.tensor(g, `${p}input_layernorm.weight`, [h]), cfg.rmsNormEps);
    const q = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.q_proj']!), nh, d), ctx.rope, d);
    const k = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.k_proj']!), nkv, d), ctx.rope, d);
    const v = splitHeads(g, w.linear(g, n1, lin['self_attn.v_proj']!), nkv, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nkv, d), nh, d);
    const x2 = g.op('Add', [x, w.linear(g, attn, lin['self_attn.o_proj']!)]);
    const n2 = rmsNorm(g, x2, w.tensor(g, `${p}post_attention_layernorm.weight`, [h]), cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, `${p}mlp.`, h, cfg.intermediateSize, cfg.hiddenAct, !!cfg.mlpBias)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNorm(g, x, w.tensor(g, 'model.norm.weight', [cfg.hiddenSize]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false });
  },
};
