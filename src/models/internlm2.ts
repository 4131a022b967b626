/**
 * InternLM2 / InternLM2.5 (remote code modeling_internlm2.py, InternLM2ForCausalLM, model_type "internlm2").
 * Llama math with its own module names:
 *  - `model.tok_embeddings`; per layer `attention_norm`, `attention.wqkv`, `attention.wo`, `ffn_norm`,
 *    `feed_forward.w1` (gate) / `w3` (up) / `w2` (down); `model.norm`; head `output` (untied by default).
 *  - fused `attention.wqkv` [(heads + 2·kv_heads)·head_dim, hidden], grouped per kv head: the output is viewed as
 *    [kv_heads, heads/kv_heads + 2, head_dim] ("b q (h gs d) -> b q h gs d"): each group holds its query heads, then
 *    its k, then its v (splitFusedQkv with groups = kv_heads).
 *  - wqkv and wo carry a bias iff config `bias` (InternLM2Config default true; released checkpoints set false);
 *    the MLP never does. RMSNorm, rotate_half rotary (rope_theta, rope_scaling), GQA, silu.
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import { ACTIVATION_NAMES, activation, attendHeads, layerLinearSpecs, rmsNormAt, splitFusedQkv } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const EMBED = 'model.tok_embeddings.weight';

export const internlm2: ArchDefinition = {
  modelTypes: ['internlm2'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.tok_embeddings', 'model.norm'],
  // AutoGPTQ InternLM2GPTQForCausalLM / GPTQModel: the fused wqkv is quantized as one module.
  insideLayerModules: [['attention.wqkv'], ['attention.wo'], ['feed_forward.w1', 'feed_forward.w3'], ['feed_forward.w2']],
  lmHead: 'output',
  tiedEmbedding: EMBED,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const bias = configBool(cfg, 'bias', true);
    return [
      { rel: 'attention.wqkv', inFeatures: h, outFeatures: (nh + 2 * nkv) * d, bias },
      { rel: 'attention.wo', inFeatures: nh * d, outFeatures: h, bias },
      { rel: 'feed_forward.w1', inFeatures: h, outFeatures: i, bias: false },
      { rel: 'feed_forward.w3', inFeatures: h, outFeatures: i, bias: false },
      { rel: 'feed_forward.w2', inFeatures: i, outFeatures: h, bias: false },
    ];
  },

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: internlm2 needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: internlm2 applies rotary to the whole (even) head_dim`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    configBool(cfg, 'bias', true);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, EMBED, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(internlm2, cfg, p);
    const n1 = rmsNormAt(g, w, `${p}attention_norm`, x, h, cfg.rmsNormEps);
    const { q, k, v } = splitFusedQkv(g, w.linear(g, n1, lin['attention.wqkv']!), nkv, nh / nkv, d);
    const x2 = g.op('Add', [x, attendHeads(ctx, q, k, v, lin['attention.wo']!, { heads: nh, kvHeads: nkv, headDim: d })]);
    const n2 = rmsNormAt(g, w, `${p}ffn_norm`, x2, h, cfg.rmsNormEps);
    const gate = activation(g, w.linear(g, n2, lin['feed_forward.w1']!), cfg.hiddenAct);
    const up = w.linear(g, n2, lin['feed_forward.w3']!);
    return g.op('Add', [x2, w.linear(g, g.op('Mul', [gate, up]), lin['feed_forward.w2']!)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNormAt(g, w, 'model.norm', x, cfg.hiddenSize, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'output', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false, tiedTo: EMBED });
  },
};
