/**
 * GPT-J (transformers modeling_gptj.py, GPTJForCausalLM).
 *  - `transformer.wte` token embeddings (no learned positions); one LayerNorm `ln_1` per block.
 *  - attention: separate `attn.q_proj/k_proj/v_proj/out_proj` without bias; rotary on the first `rotary_dim` channels
 *    of q and k in rotate_every_two form (channel pairs (2i, 2i+1), base 10000); scores / sqrt(head_dim).
 *  - parallel block: x + attn(ln_1(x)) + mlp(ln_1(x)); MLP `fc_in` → activation_function (gelu_new) → `fc_out`, biased.
 *  - `transformer.ln_f`, head `lm_head` WITH bias.
 * rotary_dim null means rotary over all of n_embd, which HF can only apply when there is a single head.
 */
import { fail } from '../errors.ts';
import { layerNormAt, mlp, selfAttention } from './blocks.ts';
import { checkActivation, defineArchitecture, linear } from './define.ts';

export const gptj = defineArchitecture({
  modelTypes: ['gptj'],
  // GPTJConfig: rotary_dim 64, n_inner null (4·n_embd), activation_function gelu_new.
  config: { gptj: { hidden_act: 'gelu_new', rms_norm_eps: 1e-5, max_position_embeddings: 2048, rotary_dim: 64, tie_word_embeddings: false, bos_token_id: 50256, eos_token_id: 50256 } },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.ln_f'],
  modules: (_, { h, i }) => ({
    attn: { k_proj: linear(0, h, h), v_proj: linear(0, h, h), q_proj: linear(0, h, h), out_proj: linear(1, h, h) },
    mlp: { fc_in: linear(2, h, i, true), fc_out: linear(3, i, h, true) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', layerNormAt],
  lmHeadBias: true,

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: n_embd (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gptj needs head_dim = n_embd / n_head and no grouped kv heads`);
    if (cfg.raw.rotary_dim === null && cfg.numHeads !== 1)
      fail(`${cfg.path}: gptj with rotary_dim null (rotary over all n_embd channels) only works with one head`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0 || cfg.rotaryDim > cfg.headDim)
      fail(`${cfg.path}: field "rotary_dim" (${cfg.rotaryDim}) must be a positive even number ≤ head_dim (${cfg.headDim})`);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n = layerNormAt(g, w, `${p}ln_1`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n, { ...m.attn, o_proj: m.attn.out_proj }, { rope: 'interleaved', rotaryDim: cfg.rotaryDim });
    const ff = mlp(g, w, n, m.mlp.fc_in, m.mlp.fc_out, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), ff]);
  },
});
