/**
 * StableLM (transformers modeling_stablelm.py, StableLmForCausalLM; model_type "stablelm": StableLM-2, StableLM-3B,
 * stable-code) and its remote-code predecessor "stablelm_epoch" (StableLMEpochForCausalLM, modeling_stablelm_epoch.py of
 * stabilityai/stablelm-3b-4e1t and stable-code-3b). Llama's module names and SwiGLU MLP with:
 *  - LayerNorms WITH bias (`input_layernorm`, `post_attention_layernorm`, `model.norm`), eps layer_norm_eps
 *    (stablelm_epoch: norm_eps);
 *  - rotary (rotate_half) on the first int(head_dim·partial_rotary_factor) channels (default 0.25; stablelm_epoch:
 *    rope_pct), base rope_theta, scale head_dim^-0.5;
 *  - `use_qkv_bias`: biases on q/k/v (o_proj never has one);
 *  - stablelm only: `qk_layernorm` (StableLmLayerNormPerHead: a bias-free LayerNorm over head_dim per head,
 *    `self_attn.q_layernorm.norms.<h>.weight`, before rotary) and `use_parallel_residual` (x + attn(n) + mlp(n) from
 *    the one input_layernorm; no post_attention_layernorm);
 *  - MLP activation hidden_act (stablelm_epoch: always SiLU, its MLP ignores hidden_act); untied lm_head.
 * AutoGPTQ StableLMEpochGPTQForCausalLM / GPTQModel: llama's groups [k, v, q], [o], [gate, up], [down].
 */
import { F } from '../graph/builder.ts';
import { fail } from '../errors.ts';
import { gatedMlp, layerNormAt, selfAttention } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';

const epoch = (t: string) => t === 'stablelm_epoch';

export const stablelm = defineArchitecture({
  modelTypes: ['stablelm', 'stablelm_epoch'],
  // StableLmConfig (partial_rotary_factor 0.25 set in __post_init__) / StableLMEpochConfig (remote code) defaults.
  config: {
    stablelm: { hidden_act: 'silu', intermediate_size: 6912, num_key_value_heads: 32, rms_norm_eps: 1e-5, max_position_embeddings: 4096, partial_rotary_factor: 0.25, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 0 },
    stablelm_epoch: { hidden_act: 'silu', intermediate_size: 6912, num_key_value_heads: 32, rms_norm_eps: 1e-5, max_position_embeddings: 4096, partial_rotary_factor: 0.25, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2 },
  },
  // StableLMEpochConfig names: norm_eps, rope_pct (rotary dims int(head_dim·rope_pct)).
  configure(cfg, read) {
    if (!epoch(cfg.modelType)) return {};
    const prf = read.num('rope_pct', 0.25);
    if (!(prf > 0 && prf <= 1)) fail(`${cfg.path}: field "rope_pct" must be in (0, 1], got ${prf}`);
    return { rmsNormEps: read.num('norm_eps', 1e-5), partialRotaryFactor: prf, rotaryDim: Math.floor(cfg.headDim * prf) };
  },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (cfg, d) => llamaModules(d, { qkv: configBool(cfg, 'use_qkv_bias', false) }),
  norm: ['model.norm', layerNormAt],

  check(cfg) {
    if (!epoch(cfg.modelType)) checkActivation(cfg);
    if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) fail(`${cfg.path}: ${cfg.modelType} needs head_dim = hidden_size / num_attention_heads`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0) fail(`${cfg.path}: rotary dims int(head_dim·partial_rotary_factor) = ${cfg.rotaryDim} must be a positive even number`);
    configBool(cfg, 'use_qkv_bias', false);
    if (configBool(cfg, 'qk_layernorm', false) && epoch(cfg.modelType)) fail(`${cfg.path}: qk_layernorm is not supported for stablelm_epoch (its modeling file has none)`);
    if (configBool(cfg, 'use_parallel_residual', false) && epoch(cfg.modelType)) fail(`${cfg.path}: use_parallel_residual is not supported for stablelm_epoch (its modeling file has none)`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const d = cfg.headDim, eps = cfg.rmsNormEps;
    const n = layerNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, eps);
    // StableLmLayerNormPerHead: head h of t [B, heads, S, d] through its own bias-free LayerNorm
    const headNorm = (t: string, which: 'q' | 'k', heads: number) => {
      const ws = Array.from({ length: heads }, (_, h) => w.tensor(g, `${p}self_attn.${which}_layernorm.norms.${h}.weight`, [d]));
      const wt = g.op('Reshape', [g.op('Concat', ws, { axis: 0 }), g.constI64([heads, 1, d])]);
      const normed = g.op('LayerNormalization', [t, g.constF(new Array(d).fill(1), [d])], { axis: -1, epsilon: F(eps) });
      return g.op('Mul', [normed, wt]);
    };
    const attn = selfAttention(ctx, n, m.self_attn, { rotaryDim: cfg.rotaryDim, qkNorm: configBool(cfg, 'qk_layernorm', false) ? headNorm : undefined });
    const act = epoch(cfg.modelType) ? 'silu' : cfg.hiddenAct;
    if (configBool(cfg, 'use_parallel_residual', false)) return g.op('Add', [g.op('Add', [x, attn]), gatedMlp(g, w, n, m.mlp, act)]);
    const x2 = g.op('Add', [x, attn]);
    return g.op('Add', [x2, gatedMlp(g, w, layerNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, eps), m.mlp, act)]);
  },
});
