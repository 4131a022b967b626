/**
 * GPT-2 (transformers modeling_gpt2.py, GPT2LMHeadModel): learned absolute positions (wte + wpe), pre-LayerNorm
 * blocks, fused qkv `attn.c_attn`, gelu_new MLP, final `ln_f`, lm_head tied to `wte`.
 * All four linears are HF Conv1D: weights stored [in, out] (`conv1d: true`).
 * Attention scores are divided by sqrt(head_dim) when `scale_attn_weights` (default true) and additionally by
 * (layer_idx + 1) when `scale_attn_by_inverse_layer_idx`; `reorder_and_upcast_attn` only changes fp16 numerics.
 */
import { fail } from '../errors.ts';
import { configBool } from '../io/config.ts';
import { ACTIVATION_NAMES, attendHeads, layerIndexOf, layerLinearSpecs, layerNormAt, mlp, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const WTE = 'transformer.wte.weight';

export const gpt2: ArchDefinition = {
  modelTypes: ['gpt2'],
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.wpe', 'transformer.ln_f'],
  // AutoGPTQ GPT2GPTQForCausalLM: c_attn (fused q,k,v) is quantized as one module.
  insideLayerModules: [['attn.c_attn'], ['attn.c_proj'], ['mlp.c_fc'], ['mlp.c_proj']],
  lmHead: 'lm_head',
  tiedEmbedding: WTE,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i } = cfg;
    return [
      { rel: 'attn.c_attn', inFeatures: h, outFeatures: 3 * h, bias: true, conv1d: true },
      { rel: 'attn.c_proj', inFeatures: h, outFeatures: h, bias: true, conv1d: true },
      { rel: 'mlp.c_fc', inFeatures: h, outFeatures: i, bias: true, conv1d: true },
      { rel: 'mlp.c_proj', inFeatures: i, outFeatures: h, bias: true, conv1d: true },
    ];
  },

  layerGraphVaries: (cfg) => configBool(cfg, 'scale_attn_by_inverse_layer_idx', false),
  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: n_embd (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gpt2 needs head_dim = n_embd / n_head and no grouped kv heads`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: activation_function "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    if (configBool(cfg, 'add_cross_attention', false)) fail(`${cfg.path}: gpt2 with add_cross_attention is not supported`);
    configBool(cfg, 'scale_attn_weights', true);
    configBool(cfg, 'scale_attn_by_inverse_layer_idx', false);
  },

  embed(g, cfg, w, ids, positions) {
    const wte = w.tensor(g, WTE, [cfg.vocabSize, cfg.hiddenSize]);
    const wpe = w.tensor(g, 'transformer.wpe.weight', [cfg.maxPositionEmbeddings, cfg.hiddenSize]);
    return g.op('Add', [g.op('Gather', [wte, ids], { axis: 0 }), g.op('Gather', [wpe, positions], { axis: 0 })]);
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const lin = layerLinearSpecs(gpt2, cfg, p);
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);

    let scale = configBool(cfg, 'scale_attn_weights', true) ? 1 / Math.sqrt(d) : 1;
    if (configBool(cfg, 'scale_attn_by_inverse_layer_idx', false)) scale /= layerIndexOf(ctx) + 1;

    const qkv = w.linear(g, ln('ln_1', x), lin['attn.c_attn']!);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([h, h, h])], 3, { axis: -1 });
    const [qh, kh, vh] = [q!, k!, v!].map((t) => splitHeads(g, t, nh, d));
    const x2 = g.op('Add', [x, attendHeads(ctx, qh!, kh!, vh!, lin['attn.c_proj']!, { heads: nh, kvHeads: nh, headDim: d, rope: 'none', scale })]);
    return g.op('Add', [x2, mlp(g, w, ln('ln_2', x2), lin['mlp.c_fc']!, lin['mlp.c_proj']!, cfg.hiddenAct)]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNormAt(g, w, 'transformer.ln_f', x, h, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: false, tiedTo: WTE });
  },
};
