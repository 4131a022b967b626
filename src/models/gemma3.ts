/**
 * Gemma 3 text (transformers modeling_gemma3.py, Gemma3ForCausalLM; model_type "gemma3_text"): the Gemma 2 layer
 * (src/models/gemma2.ts: four (1 + w) norms, query_pre_attn_scalar, sliding/full layers, optional soft-capping —
 * none by default) with
 *  - q/k norms: `self_attn.q_norm` / `k_norm`, (1 + w) RMSNorm over head_dim, before rotary;
 *  - two rotary embeddings: full layers rope_theta (default 1e6) with `rope_scaling` (released 4B–27B: linear ×8),
 *    sliding layers `rope_local_base_freq` (default 1e4) unscaled; Transformers 5 writes them as
 *    `rope_parameters: {full_attention: {...}, sliding_attention: {...}}`;
 *  - layer kinds: `layer_types`, else sliding unless (i + 1) % sliding_window_pattern = 0 (default 6).
 * AutoGPTQ/GPTQModel Gemma3: llama's groups.
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { layerIndexOf, rmsNormAt } from './blocks.ts';
import { checkActivation, configInt, configNumber, defineArchitecture } from './define.ts';
import { gemma2Common, gemma2Layer, slidingLayers, softcapOf } from './gemma2.ts';

const nested = (cfg: ModelConfig, kind: string): Record<string, unknown> | undefined => {
  const rp = cfg.raw.rope_parameters as Record<string, unknown> | null | undefined;
  const v = rp && typeof rp === 'object' ? rp[kind] : undefined;
  return v && typeof v === 'object' ? v as Record<string, unknown> : undefined;
};

const locals = new WeakMap<ModelConfig, ModelConfig>();
/** The config of the sliding layers' rotary embedding: base rope_local_base_freq, no scaling (one object per cfg). */
function localRope(cfg: ModelConfig): ModelConfig {
  let c = locals.get(cfg);
  if (!c) {
    const theta = nested(cfg, 'sliding_attention')?.rope_theta ?? configNumber(cfg, 'rope_local_base_freq', 10000);
    locals.set(cfg, c = { ...cfg, ropeTheta: theta as number, ropeScaling: null });
  }
  return c;
}

const pattern = (cfg: ModelConfig) => configInt(cfg, 'sliding_window_pattern', 6);

export const gemma3 = defineArchitecture({
  modelTypes: ['gemma3_text'],
  // Gemma3TextConfig defaults.
  config: { gemma3_text: { intermediate_size: 9216, num_key_value_heads: 4, head_dim: 256, rms_norm_eps: 1e-6, max_position_embeddings: 131072, rope_theta: 1e6, sliding_window: 4096, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 } },
  // Gemma3TextConfig.convert_rope_params_to_dict: the full layers' rope from rope_parameters.full_attention when
  // written that way (Transformers 5), else rope_theta / rope_scaling (read generically).
  configure(cfg, read) {
    const act = { hiddenAct: read.str('hidden_activation', 'gelu_pytorch_tanh')! };
    const full = nested(cfg, 'full_attention');
    if (!full) return act;
    const theta = full.rope_theta ?? 1e6;
    if (typeof theta !== 'number') fail(`${cfg.path}: field "rope_parameters.full_attention.rope_theta" must be a number`);
    return { ...act, ropeTheta: theta, ropeScaling: read.ropeScaling('rope_parameters.full_attention', full) };
  },
  ...gemma2Common(null),

  check(cfg) {
    checkActivation(cfg, cfg.hiddenAct, 'hidden_activation');
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: gemma3_text applies rotary to the whole (even) head_dim (${cfg.headDim})`);
    slidingLayers(cfg, pattern(cfg));
    if (cfg.raw.use_bidirectional_attention === true) fail(`${cfg.path}: use_bidirectional_attention is not supported (causal decoders only)`);
    const local = nested(cfg, 'sliding_attention');
    const type = local?.rope_type ?? local?.type ?? 'default';
    if (type !== 'default') fail(`${cfg.path}: rope_parameters.sliding_attention.rope_type "${String(type)}" is not supported (supported: default)`);
    localRope(cfg);
    softcapOf(cfg, 'attn_logit_softcapping', null);
    softcapOf(cfg, 'final_logit_softcapping', null);
    if (configNumber(cfg, 'query_pre_attn_scalar', 256) <= 0) fail(`${cfg.path}: field "query_pre_attn_scalar" must be positive`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const sliding = slidingLayers(cfg, pattern(cfg))[layerIndexOf(ctx)]!;
    if (!ctx.ropeWith) throw new Error('gemma3_text: this graph cannot give sliding layers their own rotary embedding');
    const qkNorm = (t: string, which: 'q' | 'k') => rmsNormAt(g, w, `${p}self_attn.${which}_norm`, t, cfg.headDim, cfg.rmsNormEps, 1);
    return gemma2Layer(ctx, x, m, {
      sliding, softcap: softcapOf(cfg, 'attn_logit_softcapping', null), qkNorm, rope: sliding ? ctx.ropeWith(localRope(cfg)) : ctx.rope,
    });
  },
});
