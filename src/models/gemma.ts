/**
 * Gemma (transformers modeling_gemma.py, GemmaForCausalLM; model_type "gemma", not gemma2/3).
 * Llama-like with these differences:
 *  - RMSNorm scales by (1 + weight) (GemmaRMSNorm), for input/post-attention norms and `model.norm`;
 *  - token embeddings are multiplied by sqrt(hidden_size) cast to the hidden dtype (fp32 here);
 *  - `head_dim` is its own config field (q_proj out = heads·head_dim may differ from hidden_size), attention
 *    scale head_dim^-0.5, rotary over head_dim;
 *  - GeGLU MLP: down(act(gate(x)) · up(x)) with act = gemmaActivation(cfg) (the tanh GeLU for released models);
 *  - `attention_bias` puts biases on q/k/v/o; lm_head tied to embed_tokens (tie_word_embeddings default true).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/config.ts';
import { ACTIVATION_NAMES, LLAMA_INSIDE_MODULES, llamaLinears, gatedMlp, layerLinearSpecs, rmsNormAt, selfAttention } from './blocks.ts';
import type { ArchDefinition, LayerContext } from './types.ts';

/**
 * The MLP activation, as current transformers (GemmaConfig/GemmaMLP): `hidden_act`, where the legacy "gelu" of the
 * original releases means gelu_pytorch_tanh (Gemma was trained with the tanh GeLU). transformers 4.38–4.47 read
 * `hidden_activation` instead (null → gelu_pytorch_tanh); every released Gemma config gives the tanh GeLU either way.
 */
export function gemmaActivation(cfg: ModelConfig): string {
  return cfg.hiddenAct === 'gelu' ? 'gelu_pytorch_tanh' : cfg.hiddenAct;
}

export const gemma: ArchDefinition = {
  modelTypes: ['gemma'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ GemmaGPTQForCausalLM (same groups as llama).
  insideLayerModules: LLAMA_INSIDE_MODULES,
  lmHead: 'lm_head',
  tiedEmbedding: 'model.embed_tokens.weight',

  layerLinears(cfg) {
    return llamaLinears(cfg, cfg.numKvHeads, { qkv: cfg.attentionBias, o: cfg.attentionBias, mlp: false });
  },

  check(cfg) {
    const act = gemmaActivation(cfg);
    if (!ACTIVATION_NAMES.includes(act)) fail(`${cfg.path}: hidden_act "${act}" is not supported (supported: ${ACTIVATION_NAMES.join(', ')})`);
    if (cfg.rotaryDim !== cfg.headDim) fail(`${cfg.path}: gemma applies rotary to the whole head (partial_rotary_factor must be 1)`);
    if (cfg.headDim % 2) fail(`${cfg.path}: head_dim (${cfg.headDim}) must be even`);
  },

  embed(g, cfg, w, ids) {
    const table = w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
    // GemmaModel: normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype) — constF rounds to fp32.
    return g.op('Mul', [g.op('Gather', [table, ids], { axis: 0 }), g.constF(Math.sqrt(cfg.hiddenSize))]);
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = layerLinearSpecs(gemma, cfg, p);
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, h, cfg.rmsNormEps, 1);
    const attn = selfAttention(ctx, n1, {
      q: lin['self_attn.q_proj']!, k: lin['self_attn.k_proj']!, v: lin['self_attn.v_proj']!, o: lin['self_attn.o_proj']!,
    }, { heads: nh, kvHeads: nkv, headDim: d });
    const x2 = g.op('Add', [x, attn]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, h, cfg.rmsNormEps, 1);
    return g.op('Add', [x2, gatedMlp(g, w, n2, `${p}mlp.`, h, cfg.intermediateSize, gemmaActivation(cfg))]);
  },

  head(g, cfg, w, x) {
    const n = rmsNormAt(g, w, 'model.norm', x, cfg.hiddenSize, cfg.rmsNormEps, 1);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false, tiedTo: 'model.embed_tokens.weight' });
  },
};
