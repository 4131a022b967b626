/**
 * GPT-J (transformers modeling_gptj.py, GPTJForCausalLM).
 *  - `transformer.wte` token embeddings (no learned positions); one LayerNorm `ln_1` per block.
 *  - attention: separate `attn.q_proj/k_proj/v_proj/out_proj` without bias; rotary on the first `rotary_dim` channels
 *    of q and k in rotate_every_two form (channel pairs (2i, 2i+1), base 10000); scores / sqrt(head_dim).
 *  - parallel block: x + attn(ln_1(x)) + mlp(ln_1(x)); MLP `fc_in` → activation_function (gelu_new) → `fc_out`, biased.
 *  - `transformer.ln_f`, head `lm_head` WITH bias.
 * rotary_dim null means rotary over all of n_embd, which HF can only apply when there is a single head.
 */
import { fail } from '../errors.ts';
import { ACTIVATION_NAMES, layerLinearSpecs, layerNormAt, mlp, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

const WTE = 'transformer.wte.weight';

export const gptj: ArchDefinition = {
  modelTypes: ['gptj'],
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.ln_f'],
  insideLayerModules: [['attn.k_proj', 'attn.v_proj', 'attn.q_proj'], ['attn.out_proj'], ['mlp.fc_in'], ['mlp.fc_out']],
  lmHead: 'lm_head',
  tiedEmbedding: WTE,

  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i } = cfg;
    return [
      { rel: 'attn.q_proj', inFeatures: h, outFeatures: h, bias: false },
      { rel: 'attn.k_proj', inFeatures: h, outFeatures: h, bias: false },
      { rel: 'attn.v_proj', inFeatures: h, outFeatures: h, bias: false },
      { rel: 'attn.out_proj', inFeatures: h, outFeatures: h, bias: false },
      { rel: 'mlp.fc_in', inFeatures: h, outFeatures: i, bias: true },
      { rel: 'mlp.fc_out', inFeatures: i, outFeatures: h, bias: true },
    ];
  },

  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: n_embd (${cfg.hiddenSize}) must be divisible by n_head (${cfg.numHeads})`);
    if (cfg.numKvHeads !== cfg.numHeads || cfg.headDim * cfg.numHeads !== cfg.hiddenSize)
      fail(`${cfg.path}: gptj needs head_dim = n_embd / n_head and no grouped kv heads`);
    if (cfg.raw.rotary_dim === null && cfg.numHeads !== 1)
      fail(`${cfg.path}: gptj with rotary_dim null (rotary over all n_embd channels) only works with one head`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim <= 0 || cfg.rotaryDim > cfg.headDim)
      fail(`${cfg.path}: field "rotary_dim" (${cfg.rotaryDim}) must be a positive even number ≤ head_dim (${cfg.headDim})`);
    if (!ACTIVATION_NAMES.includes(cfg.hiddenAct)) fail(`${cfg.path}: activation_function "${cfg.hiddenAct}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, WTE, [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const lin = layerLinearSpecs(gptj, cfg, p);
    const n = layerNormAt(g, w, `${p}ln_1`, x, h, cfg.rmsNormEps);
    const attn = selfAttention(ctx, n, {
      q: lin['attn.q_proj']!, k: lin['attn.k_proj']!, v: lin['attn.v_proj']!, o: lin['attn.out_proj']!,
    }, { heads: nh, kvHeads: nh, headDim: d, rope: 'interleaved', rotaryDim: cfg.rotaryDim });
    const ff = mlp(g, w, n, lin['mlp.fc_in']!, lin['mlp.fc_out']!, cfg.hiddenAct);
    return g.op('Add', [g.op('Add', [x, attn]), ff]);
  },

  head(g, cfg, w, x) {
    const h = cfg.hiddenSize;
    const n = layerNormAt(g, w, 'transformer.ln_f', x, h, cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: h, outFeatures: cfg.vocabSize, bias: true, tiedTo: WTE });
  },
};
