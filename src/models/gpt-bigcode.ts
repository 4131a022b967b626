/**
 * GPTBigCode — StarCoder 1 / SantaCoder / WizardCoder-15B (transformers modeling_gpt_bigcode.py,
 * GPTBigCodeForCausalLM; model_type "gpt_bigcode").
 *  - GPT-2-like: learned positions (`transformer.wte` + `transformer.wpe`), pre-LayerNorm blocks `ln_1`/`ln_2` (bias),
 *    `transformer.ln_f`, lm_head tied to `wte` (tie_word_embeddings default true). Unlike GPT-2 every linear is an
 *    nn.Linear (weights [out, in]).
 *  - fused `attn.c_attn` [hidden + 2·kv_heads·head_dim, hidden]:
 *      multi_query (default true): [q (hidden) | k (head_dim) | v (head_dim)], one kv head shared by all heads;
 *      else: viewed [heads, 3·head_dim], per head q | k | v (NOT GPT-2's q-block, k-block, v-block).
 *  - scores · head_dim^-0.5 when scale_attn_weights (default true). attention_softmax_in_fp32 /
 *    scale_attention_softmax_in_fp32 only change fp16 numerics (the layer_idx+1 unscale cancels).
 *  - MLP `mlp.c_fc` → activation_function (gelu_pytorch_tanh) → `mlp.c_proj`, width n_inner (null: 4·n_embd); all
 *    linears biased.
 * cfg.numKvHeads (1 or n_head) comes from multi_query (`configure`).
 */
import { fail } from '../errors.ts';
import { attendHeads, layerNormAt, mlp, splitFusedQkv } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, embedWithPositions, linear } from './define.ts';

export const gptBigCode = defineArchitecture({
  modelTypes: ['gpt_bigcode'],
  // GPTBigCodeConfig: n_positions 1024, n_inner null (4·n_embd).
  config: { gpt_bigcode: { hidden_act: 'gelu_pytorch_tanh', rms_norm_eps: 1e-5, max_position_embeddings: 1024, tie_word_embeddings: true, bos_token_id: 50256, eos_token_id: 50256 } },
  // GPTBigCodeConfig: one shared kv head when multi_query (the default), else one per head.
  configure: (cfg) => ({ numKvHeads: cfg.raw.multi_query === false ? cfg.numHeads : 1 }),
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wpe', 'transformer.wte', 'transformer.ln_f'],
  // AutoGPTQ GPTBigCodeGPTQForCausalLM: the fused c_attn is quantized as one module.
  modules: (_, { h, i, kv }) => ({
    attn: { c_attn: linear(0, h, h + 2 * kv, true), c_proj: linear(1, h, h, true) },
    mlp: { c_fc: linear(2, h, i, true), c_proj: linear(3, i, h, true) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', layerNormAt],

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: gpt_bigcode needs head_dim = n_embd (${h}) / n_head (${nh})`);
    const mq = configBool(cfg, 'multi_query', true);
    if (cfg.numKvHeads !== (mq ? 1 : nh)) fail(`${cfg.path}: gpt_bigcode kv heads ${cfg.numKvHeads} do not match multi_query=${mq}`);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
    if (configBool(cfg, 'add_cross_attention', false)) fail(`${cfg.path}: gpt_bigcode with add_cross_attention is not supported`);
    configBool(cfg, 'scale_attn_weights', true);
  },

  learnedPositions: true,
  embed: (g, cfg, w, ids, positions) => embedWithPositions(g, cfg, w, ids, positions, 'transformer.wte', 'transformer.wpe'),

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);
    const scale = configBool(cfg, 'scale_attn_weights', true) ? 1 / Math.sqrt(d) : 1;

    const qkv = w.linear(g, ln('ln_1', x), m.attn.c_attn);
    // multi_query: [q_0 … q_{heads−1}, k, v] = one group of `heads` queries; else `heads` groups of one.
    const { q, k, v } = nkv === 1 && nh !== 1 ? splitFusedQkv(g, qkv, 1, nh, d) : splitFusedQkv(g, qkv, nh, 1, d);
    const x2 = g.op('Add', [x, attendHeads(ctx, q, k, v, m.attn.c_proj, { heads: nh, kvHeads: nkv, headDim: d, rope: 'none', scale })]);
    return g.op('Add', [x2, mlp(g, w, ln('ln_2', x2), m.mlp.c_fc, m.mlp.c_proj, cfg.hiddenAct)]);
  },
});
