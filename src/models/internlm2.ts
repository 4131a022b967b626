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
import { activation, attendHeads, rmsNormAt, splitFusedQkv } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, linear } from './define.ts';

export const internlm2 = defineArchitecture({
  modelTypes: ['internlm2'],
  // InternLM2Config (remote configuration_internlm2.py).
  config: { internlm2: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.tok_embeddings', 'model.norm'],
  // AutoGPTQ InternLM2GPTQForCausalLM / GPTQModel: the fused wqkv is quantized as one module.
  modules: (cfg, { h, i, q, kv }) => {
    const b = configBool(cfg, 'bias', true);
    return {
      attention: { wqkv: linear(0, h, q + 2 * kv, b), wo: linear(1, q, h, b) },
      feed_forward: { w1: linear(2, h, i), w3: linear(2, h, i), w2: linear(3, i, h) },
    };
  },
  embedding: 'model.tok_embeddings',
  norm: ['model.norm', rmsNormAt],
  lmHead: 'output',

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: internlm2 needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: internlm2 applies rotary to the whole (even) head_dim`);
    checkActivation(cfg);
    configBool(cfg, 'bias', true);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const n1 = rmsNormAt(g, w, `${p}attention_norm`, x, h, cfg.rmsNormEps);
    const { q, k, v } = splitFusedQkv(g, w.linear(g, n1, m.attention.wqkv), nkv, nh / nkv, d);
    const x2 = g.op('Add', [x, attendHeads(ctx, q, k, v, m.attention.wo, { heads: nh, kvHeads: nkv, headDim: d })]);
    const n2 = rmsNormAt(g, w, `${p}ffn_norm`, x2, h, cfg.rmsNormEps);
    const gate = activation(g, w.linear(g, n2, m.feed_forward.w1), cfg.hiddenAct);
    const up = w.linear(g, n2, m.feed_forward.w3);
    return g.op('Add', [x2, w.linear(g, g.op('Mul', [gate, up]), m.feed_forward.w2)]);
  },
});
