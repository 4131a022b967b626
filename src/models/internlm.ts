/**
 * InternLM (v1: internlm/internlm-7b, internlm-chat-7b, internlm-20b; remote code modeling_internlm.py,
 * InternLMForCausalLM, model_type "internlm").
 * Llama with biases: `self_attn.q_proj/k_proj/v_proj/o_proj` all carry a bias iff config `bias` (default true);
 * RMSNorm, rotate_half rotary over head_dim, no GQA, SwiGLU MLP without biases, untied `lm_head`.
 * Rotary settings come from `rotary: {base, type: "origin" | "dynamic", scaling_factor}` (`configure` maps base →
 * ropeTheta, dynamic → rope_scaling "dynamic" with factor scaling_factor; both equal plain RoPE up to
 * max_position_embeddings). Beyond it, InternLMDynamicNTKScalingRotaryEmbedding grows the base like Transformers'
 * dynamic NTK (seq_len = past + new tokens), but it caches keys before rotary and re-rotates all of them with the grown
 * frequencies at every step; gptqjs keeps cached keys as rotated when written (Transformers' semantics), so KV decoding
 * past max_position_embeddings differs from the remote code (the full forward does not).
 */
import { fail } from '../errors.ts';
import { rmsNormAt } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture } from './define.ts';
import { llamaLayer, llamaModules } from './llama.ts';

export const internlm = defineArchitecture({
  modelTypes: ['internlm'],
  // InternLMConfig (remote configuration_internlm.py).
  config: { internlm: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 } },
  // `rotary: {base, type, scaling_factor}` (InternLMAttention._init_rope).
  configure(cfg, f) {
    const rot = cfg.raw.rotary && typeof cfg.raw.rotary === 'object' && !Array.isArray(cfg.raw.rotary) ? cfg.raw.rotary as Record<string, unknown> : undefined;
    const out: { ropeTheta?: number; ropeScaling?: ReturnType<typeof f.ropeScaling> } = {};
    const rp = cfg.raw.rope_parameters as Record<string, unknown> | null | undefined;
    if (typeof rot?.base === 'number' && cfg.raw.rope_theta == null && rp?.rope_theta == null) out.ropeTheta = rot.base;
    if (!cfg.ropeScaling && rot?.type === 'dynamic') out.ropeScaling = f.ropeScaling('rotary', { type: 'dynamic', factor: rot.scaling_factor ?? 1 });
    return out;
  },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ InternLMGPTQForCausalLM (llama's groups); no GQA: k/v as wide as q.
  modules: (cfg, d) => {
    const b = configBool(cfg, 'bias', true);
    return llamaModules({ ...d, kv: d.q }, { qkv: b, o: b });
  },
  norm: ['model.norm', rmsNormAt],

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: internlm needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.numKvHeads !== nh) fail(`${cfg.path}: internlm has no grouped kv heads (use model_type internlm2 for GQA checkpoints)`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: internlm applies rotary to the whole (even) head_dim`);
    checkActivation(cfg);
    const rot = cfg.raw.rotary as Record<string, unknown> | undefined | null;
    if (rot != null && (typeof rot !== 'object' || !['origin', 'dynamic'].includes(String(rot.type))))
      fail(`${cfg.path}: field "rotary.type" must be "origin" or "dynamic", got ${JSON.stringify((rot as any)?.type)}`);
    configBool(cfg, 'bias', true);
  },

  layer: (ctx, x, m) => llamaLayer(ctx, x, m),
});
