/**
 * GPT-2 (transformers modeling_gpt2.py, GPT2LMHeadModel): learned absolute positions (wte + wpe), pre-LayerNorm
 * blocks, fused qkv `attn.c_attn`, gelu_new MLP, final `ln_f`, lm_head tied to `wte`.
 * All four linears are HF Conv1D: weights stored [in, out] (`conv1d: true`).
 * Attention scores are divided by sqrt(head_dim) when `scale_attn_weights` (default true) and additionally by
 * (layer_idx + 1) when `scale_attn_by_inverse_layer_idx`; `reorder_and_upcast_attn` only changes fp16 numerics.
 */
import { fail } from '../errors.ts';
import { attendHeads, layerIndexOf, layerNormAt, mlp, splitHeads } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, embedWithPositions, linear } from './define.ts';

export const gpt2 = defineArchitecture({
  modelTypes: ['gpt2'],
  // GPT2Config: layer_norm_epsilon 1e-5, n_positions 1024, n_inner null (4·n_embd), activation_function gelu_new.
  config: { gpt2: { hidden_act: 'gelu_new', rms_norm_eps: 1e-5, max_position_embeddings: 1024, tie_word_embeddings: true, bos_token_id: 50256, eos_token_id: 50256 } },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.wpe', 'transformer.ln_f'],
  // AutoGPTQ GPT2GPTQForCausalLM: c_attn (fused q,k,v) is quantized as one module. All are Conv1D.
  modules: (_, { h, i }) => ({
    attn: { c_attn: linear(0, h, 3 * h, { bias: true, conv1d: true }), c_proj: linear(1, h, h, { bias: true, conv1d: true }) },
    mlp: { c_fc: linear(2, h, i, { bias: true, conv1d: true }), c_proj: linear(3, i, h, { bias: true, conv1d: true }) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', layerNormAt],

  layerGraphVaries: (cfg) => configBool(cfg, 'scale_attn_by_inverse_layer_idx', false),
  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: n_embd (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gpt2 needs head_dim = n_embd / n_head and no grouped kv heads`);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
    if (configBool(cfg, 'add_cross_attention', false)) fail(`${cfg.path}: gpt2 with add_cross_attention is not supported`);
    configBool(cfg, 'scale_attn_weights', true);
    configBool(cfg, 'scale_attn_by_inverse_layer_idx', false);
  },

  learnedPositions: true,
  embed: (g, cfg, w, ids, positions) => embedWithPositions(g, cfg, w, ids, positions, 'transformer.wte', 'transformer.wpe'),

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);

    let scale = configBool(cfg, 'scale_attn_weights', true) ? 1 / Math.sqrt(d) : 1;
    if (configBool(cfg, 'scale_attn_by_inverse_layer_idx', false)) scale /= layerIndexOf(ctx) + 1;

    const qkv = w.linear(g, ln('ln_1', x), m.attn.c_attn);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([h, h, h])], 3, { axis: -1 });
    const [qh, kh, vh] = [q!, k!, v!].map((t) => splitHeads(g, t, nh, d));
    const x2 = g.op('Add', [x, attendHeads(ctx, qh!, kh!, vh!, m.attn.c_proj, { heads: nh, kvHeads: nh, headDim: d, rope: 'none', scale })]);
    return g.op('Add', [x2, mlp(g, w, ln('ln_2', x2), m.mlp.c_fc, m.mlp.c_proj, cfg.hiddenAct)]);
  },
});
