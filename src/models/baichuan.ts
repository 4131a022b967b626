/**
 * Baichuan-7B and Baichuan2-7B (remote code modeling_baichuan.py, BaiChuanForCausalLM / BaichuanForCausalLM,
 * model_type "baichuan"). Llama with one fused projection:
 *  - `self_attn.W_pack` [3·hidden, hidden], no bias, output blocks [q | k | v] (each hidden wide, heads·head_dim);
 *    `self_attn.o_proj`; RMSNorm; rotate_half rotary over head_dim (base 10000); SwiGLU `mlp.gate/up/down_proj`.
 *  - head `lm_head`: Baichuan-7B a plain linear; Baichuan2 a NormHead whose rows are L2-normalised before use
 *    (in eval the weight becomes F.normalize(W) on the first forward): logits = x · (W / max(‖W_row‖, 1e-12))ᵀ.
 *    Baichuan2 is recognised as vLLM does by vocab_size 125696, or by Baichuan2's `z_loss_weight` config field.
 *  - The 13B models (Baichuan-13B, Baichuan2-13B) use ALiBi instead of rotary and have no max_position_embeddings in
 *    config.json (only model_max_length); they are rejected in `check`.
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { F } from '../graph/builder.ts';
import { attendHeads, gatedMlp, rmsNormAt, splitHeads } from './blocks.ts';
import { checkActivation, defineArchitecture, linear } from './define.ts';

/** Baichuan2's NormHead (vLLM's rule: vocab 125696; also any config with Baichuan2's z_loss_weight field). */
export function baichuanNormHead(cfg: ModelConfig): boolean {
  return cfg.vocabSize === 125696 || cfg.raw.z_loss_weight !== undefined;
}

export const baichuan = defineArchitecture({
  modelTypes: ['baichuan'],
  // BaichuanConfig (remote configuration_baichuan.py, 7B).
  config: { baichuan: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ BaichuanGPTQForCausalLM.
  modules: (_, { h, i }) => ({
    self_attn: { W_pack: linear(0, h, 3 * h), o_proj: linear(1, h, h) },
    mlp: { up_proj: linear(2, h, i), gate_proj: linear(2, h, i), down_proj: linear(3, i, h) },
  }),

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (cfg.raw.max_position_embeddings === undefined)
      fail(`${cfg.path}: baichuan without max_position_embeddings is a 13B ALiBi model (Baichuan-13B / Baichuan2-13B), which is not supported; only the rotary 7B models are`);
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: baichuan needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.numKvHeads !== nh) fail(`${cfg.path}: baichuan has no grouped kv heads`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: baichuan applies rotary to the whole (even) head_dim`);
    checkActivation(cfg);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, h, cfg.rmsNormEps);
    const [q, k, v] = g.opN('Split', [w.linear(g, n1, m.self_attn.W_pack), g.constI64([h, h, h])], 3, { axis: -1 })
      .map((t) => splitHeads(g, t, nh, d));
    const x2 = g.op('Add', [x, attendHeads(ctx, q!, k!, v!, m.self_attn.o_proj, { heads: nh, kvHeads: nh, headDim: d })]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, h, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const { hiddenSize: h, vocabSize: V } = cfg;
    const n = rmsNormAt(g, w, 'model.norm', x, h, cfg.rmsNormEps);
    if (!baichuanNormHead(cfg)) return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: V, bias: false, tiedTo: 'model.embed_tokens.weight' });
    // NormHead: F.normalize(W, dim=1) = W / max(‖W_row‖₂, 1e-12).
    const W = w.tensor(g, 'lm_head.weight', [V, h]);
    const norm = g.op('Max', [g.op('ReduceL2', [W, g.constI64([1])], { keepdims: 1 }), g.constF(1e-12)]);
    const Wn = g.op('Div', [W, norm]);
    const n2 = g.op('Reshape', [n, g.constI64([-1, h])]);
    const y = g.op('Gemm', [n2, Wn], { transB: 1, alpha: F(1) });
    return g.op('Reshape', [y, g.op('Concat', [g.op('Shape', [n], { end: -1 }), g.constI64([V])], { axis: 0 })]);
  },
});
