/**
 * Llama family (llama, mistral, qwen2): RMSNorm, rotary (rotate_half), GQA, SwiGLU.
 * Qwen2 adds q/k/v biases; Mistral a sliding window (handled by the mask builder from cfg.slidingWindow).
 */
import { LLAMA_INSIDE_MODULES, gatedMlp, layerLinearSpecs, llamaLinears, rmsNormAt, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

export const llama: ArchDefinition = {
  modelTypes: ['llama', 'mistral', 'qwen2'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  insideLayerModules: LLAMA_INSIDE_MODULES,
  lmHead: 'lm_head',

  layerLinears(cfg) {
    const qkvBias = cfg.attentionBias || cfg.modelType === 'qwen2';
    return llamaLinears(cfg, cfg.numKvHeads, { qkv: qkvBias, o: !!cfg.attentionBias, mlp: !!cfg.mlpBias });
  },

  embed(g, cfg, w, ids) {
    const table = w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
    return g.op('Gather', [table, ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(llama, cfg, p);
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, h, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n1, {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.o_proj']!,
    }, { heads: nh, kvHeads: nkv, headDim: d });
    const x2 = g.op('Add', [x, attn]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, h, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, `${p}mlp.`, h, cfg.intermediateSize, cfg.hiddenAct, !!cfg.mlpBias)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNormAt(g, w, 'model.norm', x, cfg.hiddenSize, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false });
  },
};
