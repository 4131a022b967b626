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
 * cfg.numKvHeads (1 or n_head) comes from multi_query in io/config.ts.
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import { ACTIVATION_NAMES, attendHeads, layerLinearSpecs, layerNormAt, mlp, splitFusedQkv } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const WTE = 'transformer.wte.weight';

export const gptBigCode: ArchDefinition = {
  modelTypes: ['gpt_bigcode'],
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wpe', 'transformer.wte', 'transformer.ln_f'],
  // AutoGPTQ GPTBigCodeGPTQForCausalLM: the fused c_attn is quantized as one module.
  insideLayerModules: [['attn.c_attn'], ['attn.c_proj'], ['mlp.c_fc'], ['mlp.c_proj']],
  lmHead: 'lm_head',
  tiedEmbedding: WTE,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numKvHeads: nkv, headDim: d } = cfg;
    return [
      { rel: 'attn.c_attn', inFeatures: h, outFeatures: h + 2 * nkv * d, bias: true },
      { rel: 'attn.c_proj', inFeatures: h, outFeatures: h, bias: true },
      { rel: 'mlp.c_fc', inFeatures: h, outFeatures: i, bias: true },
      { rel: 'mlp.c_proj', inFeatures: i, outFeatures: h, bias: true },
    ];
  },

  check(cfg) {
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: gpt_bigcode needs head_dim = n_embd (${h}) / n_head (${nh})`);
    const mq = configBool(cfg, 'multi_query', true);
    if (cfg.numKvHeads !== (mq ? 1 : nh)) fail(`${cfg.path}: gpt_bigcode kv heads ${cfg.numKvHeads} do not match multi_query=${mq}`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: activation_function "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    if (configBool(cfg, 'add_cross_attention', false)) fail(`${cfg.path}: gpt_bigcode with add_cross_attention is not supported`);
    configBool(cfg, 'scale_attn_weights', true);
  },

  embed(g, cfg, w, ids, positions) {
    const wte = w.tensor(g, WTE, [cfg.vocabSize, cfg.hiddenSize]);
    const wpe = w.tensor(g, 'transformer.wpe.weight', [cfg.maxPositionEmbeddings, cfg.hiddenSize]);
    return g.op('Add', [g.op('Gather', [wte, ids], { axis: 0 }), g.op('Gather', [wpe, positions], { axis: 0 })]);
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(gptBigCode, cfg, p);
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);
    const scale = configBool(cfg, 'scale_attn_weights', true) ? 1 / Math.sqrt(d) : 1;

    const qkv = w.linear(g, ln('ln_1', x), lin['attn.c_attn']!);
    // multi_query: [q_0 … q_{heads−1}, k, v] = one group of `heads` queries; else `heads` groups of one.
    const { q, k, v } = nkv === 1 && nh !== 1 ? splitFusedQkv(g, qkv, 1, nh, d) : splitFusedQkv(g, qkv, nh, 1, d);
    const x2 = g.op('Add', [x, attendHeads(ctx, q, k, v, lin['attn.c_proj']!, { heads: nh, kvHeads: nkv, headDim: d, rope: 'none', scale })]);
    return g.op('Add', [x2, mlp(g, w, ln('ln_2', x2), lin['mlp.c_fc']!, lin['mlp.c_proj']!, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNormAt(g, w, 'transformer.ln_f', x, h, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: WTE });
  },
};
