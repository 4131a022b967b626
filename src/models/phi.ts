/**
 * Phi-1 / Phi-1.5 / Phi-2 (transformers modeling_phi.py, PhiForCausalLM, model_type "phi").
 *  - `model.embed_tokens` (no learned positions); one LayerNorm `input_layernorm` per layer.
 *  - attention: `self_attn.q_proj/k_proj/v_proj` (bias; k/v with num_key_value_heads) → optional per-head LayerNorm
 *    over head_dim (`q_layernorm`/`k_layernorm`, qk_layernorm) → rotary (rotate_half) on the first
 *    int(head_dim·partial_rotary_factor) channels (base rope_theta) → scores / sqrt(head_dim) → `self_attn.dense` (bias).
 *  - parallel layer: x + attn(ln(x)) + mlp(ln(x)); MLP `fc1` → hidden_act (gelu_new) → `fc2`, biased.
 *  - `model.final_layernorm`, head `lm_head` WITH bias.
 */
import { fail } from '../errors.ts';
import { layerNormAt, mlp, selfAttention } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, linear } from './define.ts';

export const phi = defineArchitecture({
  modelTypes: ['phi'],
  // PhiConfig: partial_rotary_factor 0.5, hidden_act gelu_new.
  config: { phi: { hidden_act: 'gelu_new', intermediate_size: 8192, rms_norm_eps: 1e-5, max_position_embeddings: 2048, partial_rotary_factor: 0.5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.final_layernorm'],
  // AutoGPTQ lists q, k, v as three sequential groups; they share one input (ln(x)), so one group is the same math.
  modules: (_, { h, i, q, kv }) => ({
    self_attn: { q_proj: linear(0, h, q, true), k_proj: linear(0, h, kv, true), v_proj: linear(0, h, kv, true), dense: linear(1, q, h, true) },
    mlp: { fc1: linear(2, h, i, true), fc2: linear(3, i, h, true) },
  }),
  norm: ['model.final_layernorm', layerNormAt],
  lmHeadBias: true,

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) fail(`${cfg.path}: phi needs head_dim = hidden_size / num_attention_heads`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0)
      fail(`${cfg.path}: rotary dims int(head_dim·partial_rotary_factor) = ${cfg.rotaryDim} must be a positive even number`);
    checkActivation(cfg);
    configBool(cfg, 'qk_layernorm', false);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n = layerNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const headNorm = (t: string, which: 'q' | 'k') => layerNormAt(g, w, `${p}self_attn.${which}_layernorm`, t, cfg.headDim, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n, { ...m.self_attn, o_proj: m.self_attn.dense },
      { rotaryDim: cfg.rotaryDim, qkNorm: configBool(cfg, 'qk_layernorm', false) ? headNorm : undefined });
    const ff = mlp(g, w, n, m.mlp.fc1, m.mlp.fc2, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), ff]);
  },
});
