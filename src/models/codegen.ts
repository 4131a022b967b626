/**
 * CodeGen (transformers models/codegen/modeling_codegen.py, CodeGenForCausalLM; Salesforce codegen-*-mono/multi).
 * GPT-J's block with one fused projection:
 *  - `attn.qkv_proj` [3·n_embd, n_embd], no bias, laid out for 4 model-parallel shards (mp_num = 4): the output is
 *    4 chunks, each [q | v | k] of n_embd/4 channels (note: v before k); query head 4-chunk c, slot j is head
 *    c·(heads/4) + j (CodeGenAttention._split_heads). heads must be a multiple of 4.
 *  - rotary rotate_every_two on the first `rotary_dim` channels of q and k (create_sinusoidal_positions, base 10000),
 *    scores / √head_dim; `attn.out_proj` without bias.
 *  - parallel block: x + attn(ln_1(x)) + fc_out(gelu_new(fc_in(ln_1(x)))), MLP biased, width n_inner (default 4·n_embd).
 *  - `transformer.wte`, `transformer.ln_f`, `lm_head` with bias (untied).
 * Quantized as GPTQModel's CodeGenQModel / AutoGPTQ's CodeGenGPTQForCausalLM: qkv_proj is one linear (saved as
 * `transformer.h.N.attn.qkv_proj.qweight`), groups [qkv_proj], [out_proj], [fc_in], [fc_out].
 * MOSS (model_type "moss", remote code MossForCausalLM of fnlp/moss-moon-003; AutoGPTQ MOSSGPTQForCausalLM) is this
 * model under Moss* class names with MossConfig's defaults; its own pre-quantized checkpoints (wbits 4/8, MOSS's
 * QuantLinear layout) are refused.
 */
import { fail } from '../errors.ts';
import { attendHeads, layerNormAt, mlp } from './blocks.ts';
import { checkActivation, defineArchitecture, linear } from './define.ts';

/** CodeGenAttention's model-parallel shard count. */
const MP = 4;

export const codegen = defineArchitecture({
  modelTypes: ['codegen', 'moss'],
  // CodeGenConfig: rotary_dim 64, n_inner null (4·n_embd), gelu_new, layer_norm_epsilon 1e-5, n_positions 2048, untied.
  // MossConfig: the same with bos 106028 / eos 106068.
  config: {
    codegen: { hidden_act: 'gelu_new', rms_norm_eps: 1e-5, max_position_embeddings: 2048, rotary_dim: 64, tie_word_embeddings: false, bos_token_id: 50256, eos_token_id: 50256 },
    moss: { hidden_act: 'gelu_new', rms_norm_eps: 1e-5, max_position_embeddings: 2048, rotary_dim: 64, tie_word_embeddings: false, bos_token_id: 106028, eos_token_id: 106068 },
  },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.ln_f'],
  modules: (_, { h, i }) => ({
    attn: { qkv_proj: linear(0, h, 3 * h), out_proj: linear(1, h, h) },
    mlp: { fc_in: linear(2, h, i, true), fc_out: linear(3, i, h, true) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', layerNormAt],
  lmHeadBias: true,

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0 || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: codegen needs n_embd (${cfg.hiddenSize}) divisible by n_head (${cfg.numHeads}) and no grouped kv heads`);
    if (cfg.numHeads % MP !== 0) fail(`${cfg.path}: codegen's fused qkv_proj is laid out in ${MP} shards: n_head (${cfg.numHeads}) must be a multiple of ${MP}`);
    if (cfg.raw.rotary_dim === null && cfg.numHeads !== 1) fail(`${cfg.path}: codegen with rotary_dim null only works with one head (as Transformers)`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim > cfg.headDim)
      fail(`${cfg.path}: field "rotary_dim" (${cfg.rotaryDim}) must be an even number ≤ head_dim (${cfg.headDim})`);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
    const wbits = cfg.raw.wbits;
    if (cfg.modelType === 'moss' && wbits !== undefined && wbits !== null && wbits !== 32)
      fail(`${cfg.path}: moss with wbits ${JSON.stringify(wbits)} (MOSS's own quantized checkpoint) is not supported; quantize the fp16 model instead`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const n = layerNormAt(g, w, `${p}ln_1`, x, h, cfg.rmsNormEps);
    // [B,S,3h] → [B,S,MP,3,h/MP] (q, v, k per shard) → per part [B,S,MP·heads/MP,d] → [B,heads,S,d]
    const shards = g.op('Reshape', [w.linear(g, n, m.attn.qkv_proj), g.constI64([0, 0, MP, 3, h / MP])]);
    const [q, v, k] = g.opN('Split', [shards, g.constI64([1, 1, 1])], 3, { axis: 3 })
      .map((t) => g.op('Transpose', [g.op('Reshape', [t, g.constI64([0, 0, nh, d])])], { perm: [0, 2, 1, 3] }));
    const attn = attendHeads(ctx, q!, k!, v!, m.attn.out_proj, { heads: nh, kvHeads: nh, headDim: d, rope: 'interleaved', rotaryDim: cfg.rotaryDim });
    const ff = mlp(g, w, n, m.mlp.fc_in, m.mlp.fc_out, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), ff]);
  },
});
