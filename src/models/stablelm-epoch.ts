/**
 * StableLM-3B-4E1T / stable-code-3b remote code (model_type "stablelm_epoch", StableLMEpochForCausalLM;
 * AutoGPTQ StableLMEpochGPTQForCausalLM): the LLaMA layout (`model.layers.N.self_attn.{q,k,v,o}_proj`,
 * `mlp.{gate,up,down}_proj`, GQA, untied `lm_head`) with LayerNorm (weight and bias, eps `norm_eps`) instead of RMSNorm,
 * and rotary (rotate_half, base rope_theta) on the first head_dim·rope_pct channels. No biases in the linears.
 * Transformers' native StableLmForCausalLM (model_type "stablelm") was ported from this code.
 */
import { fail } from '../errors.ts';
import { gatedMlp, layerNormAt, selfAttention } from './blocks.ts';
import { defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';

export const stablelmEpoch = defineArchitecture({
  modelTypes: ['stablelm_epoch'],
  // StableLMEpochConfig: vocab 50304, intermediate 6912, kv heads 32, rope_pct 0.25, rope_theta 10000, 4096 positions,
  // norm_eps 1e-5, bos 0 / eos 2, untied.
  config: { stablelm_epoch: { hidden_act: 'silu', intermediate_size: 6912, num_key_value_heads: 32, rms_norm_eps: 1e-5, max_position_embeddings: 4096, partial_rotary_factor: 0.25, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2 } },
  // norm_eps and rope_pct are this config's names for the epsilon and the rotary fraction.
  configure: (cfg, f) => {
    const pct = f.num('rope_pct', 0.25);
    if (!(pct > 0 && pct <= 1)) fail(`${cfg.path}: field "rope_pct" must be in (0, 1], got ${pct}`);
    return { rmsNormEps: f.num('norm_eps', 1e-5), partialRotaryFactor: pct, rotaryDim: Math.floor(cfg.headDim * pct) };
  },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (_, d) => llamaModules(d),
  norm: ['model.norm', layerNormAt],

  check(cfg) {
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim < 2) fail(`${cfg.path}: stablelm_epoch rotary dims head_dim·rope_pct (${cfg.rotaryDim}) must be even`);
    if (cfg.raw.use_qkv_bias === true) fail(`${cfg.path}: stablelm_epoch with use_qkv_bias is not supported`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n1 = layerNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn, { rotaryDim: cfg.rotaryDim })]);
    const n2 = layerNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct)]);
  },
});
