/**
 * InternLM (v1: internlm/internlm-7b, internlm-chat-7b, internlm-20b; remote code modeling_internlm.py,
 * InternLMForCausalLM, model_type "internlm").
 * Llama with biases: `self_attn.q_proj/k_proj/v_proj/o_proj` all carry a bias iff config `bias` (default true);
 * RMSNorm, rotate_half rotary over head_dim, no GQA, SwiGLU MLP without biases, untied `lm_head`.
 * Rotary settings come from `rotary: {base, type: "origin" | "dynamic", scaling_factor}` (io/config.ts maps base →
 * ropeTheta, dynamic → rope scaling "dynamic"; both equal plain RoPE up to max_position_embeddings).
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import { ACTIVATION_NAMES, LLAMA_INSIDE_MODULES, llamaLinears, gatedMlp, layerLinearSpecs, rmsNormAt, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

export const internlm: ArchDefinition = {
  modelTypes: ['internlm'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ InternLMGPTQForCausalLM (llama's groups).
  insideLayerModules: LLAMA_INSIDE_MODULES,
  lmHead: 'lm_head',

  layerLinears(cfg) {
    const bias = configBool(cfg, 'bias', true);
    return llamaLinears(cfg, cfg.numHeads, { qkv: bias, o: bias, mlp: false }); // no GQA: k/v as wide as q
  },

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: internlm needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.numKvHeads !== nh) fail(`${cfg.path}: internlm has no grouped kv heads (use model_type internlm2 for GQA checkpoints)`);
    if (cfg.rotaryDim !== cfg.headDim || cfg.headDim % 2) fail(`${cfg.path}: internlm applies rotary to the whole (even) head_dim`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    const rot = cfg.raw.rotary as Record<string, unknown> | undefined | null;
    if (rot != null && (typeof rot !== 'object' || !['origin', 'dynamic'].includes(String(rot.type))))
      fail(`${cfg.path}: field "rotary.type" must be "origin" or "dynamic", got ${JSON.stringify((rot as any)?.type)}`);
    configBool(cfg, 'bias', true);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const lin = layerLinearSpecs(internlm, cfg, p);
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, h, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n1, {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.o_proj']!,
    }, { heads: nh, kvHeads: nh, headDim: d });
    const x2 = g.op('Add', [x, attn]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, h, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, `${p}mlp.`, h, cfg.intermediateSize, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNormAt(g, w, 'model.norm', x, cfg.hiddenSize, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false, tiedTo: 'model.embed_tokens.weight' });
  },
};
