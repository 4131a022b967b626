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
import { configBool } from '../io/config.ts';
import { ACTIVATION_NAMES, layerLinearSpecs, layerNormAt, mlp, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

export const phi: ArchDefinition = {
  modelTypes: ['phi'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.final_layernorm'],
  // AutoGPTQ lists q, k, v as three sequential groups; they share one input (ln(x)), so one group is the same math.
  insideLayerModules: [['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], ['self_attn.dense'], ['mlp.fc1'], ['mlp.fc2']],
  lmHead: 'lm_head',

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    return [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: nh * d, bias: true },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: nkv * d, bias: true },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: nkv * d, bias: true },
      { rel: 'self_attn.dense', inFeatures: nh * d, outFeatures: h, bias: true },
      { rel: 'mlp.fc1', inFeatures: h, outFeatures: i, bias: true },
      { rel: 'mlp.fc2', inFeatures: i, outFeatures: h, bias: true },
    ];
  },

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: hidden_size (${cfg.hiddenSize}) must be divisible by num_attention_heads (${cfg.numHeads})`);
    if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) fail(`${cfg.path}: phi needs head_dim = hidden_size / num_attention_heads`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0)
      fail(`${cfg.path}: rotary dims int(head_dim·partial_rotary_factor) = ${cfg.rotaryDim} must be a positive even number`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: hidden_act "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    configBool(cfg, 'qk_layernorm', false);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(phi, cfg, p);
    const qkNorm = configBool(cfg, 'qk_layernorm', false);

    const n = layerNormAt(g, w, `${p}input_layernorm`, x, h, cfg.rmsNormEps);
    const headNorm = (t: string, which: 'q' | 'k') => layerNormAt(g, w, `${p}self_attn.${which}_layernorm`, t, d, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n, {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.dense']!,
    }, { heads: nh, kvHeads: nkv, headDim: d, rotaryDim: cfg.rotaryDim, qkNorm: qkNorm ? headNorm : undefined });
    const ff = mlp(g, w, n, lin['mlp.fc1']!, lin['mlp.fc2']!, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), ff]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNormAt(g, w, 'model.final_layernorm', x, h, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: true, tiedTo: 'model.embed_tokens.weight' });
  },
};
