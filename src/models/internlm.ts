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
import type { ModelConfig } from '../io/config.ts';
import { ACTIVATION_NAMES, applyRope, attention, gatedMlp, mergeHeads, rmsNorm, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext, LinearSpec } from './types.ts';

function linears(cfg: ModelConfig, prefix: string): Record<string, LinearSpec> {
  return Object.fromEntries(internlm.layerLinears(cfg).map((l) => [l.rel, { ...l, name: prefix + l.rel }]));
}

export const internlm: ArchDefinition = {
  modelTypes: ['internlm'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ InternLMGPTQForCausalLM (llama's groups).
  insideLayerModules: [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'],
    ['self_attn.o_proj'],
    ['mlp.up_proj', 'mlp.gate_proj'],
    ['mlp.down_proj'],
  ],
  lmHead: 'lm_head',

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, headDim: d } = cfg;
    const bias = configBool(cfg, 'bias', true);
    return [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: nh * d, bias },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: nh * d, bias },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: nh * d, bias },
      { rel: 'self_attn.o_proj', inFeatures: nh * d, outFeatures: h, bias },
      { rel: 'mlp.gate_proj', inFeatures: h, outFeatures: i, bias: false },
      { rel: 'mlp.up_proj', inFeatures: h, outFeatures: i, bias: false },
      { rel: 'mlp.down_proj', inFeatures: i, outFeatures: h, bias: false },
    ];
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
    const lin = linears(cfg, p);
    const n1 = rmsNorm(g, x, w.tensor(g, `${p}input_layernorm.weight`, [h]), cfg.rmsNormEps);
    const q = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.q_proj']!), nh, d), ctx.rope, d);
    const k = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.k_proj']!), nh, d), ctx.rope, d);
    const v = splitHeads(g, w.linear(g, n1, lin['self_attn.v_proj']!), nh, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nh, d), nh, d);
    const x2 = g.op('Add', [x, w.linear(g, attn, lin['self_attn.o_proj']!)]);
    const n2 = rmsNorm(g, x2, w.tensor(g, `${p}post_attention_layernorm.weight`, [h]), cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, `${p}mlp.`, h, cfg.intermediateSize, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNorm(g, x, w.tensor(g, 'model.norm.weight', [cfg.hiddenSize]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false, tiedTo: 'model.embed_tokens.weight' });
  },
};
