/**
 * LongLLaMA (remote code LongLlamaForCausalLM of syzymon/long_llama_3b, CStanKonrad/long_llama; model_type
 * "longllama"; AutoGPTQ/GPTQModel LongLlama definitions): OpenLLaMA weights under LLaMA names with Focused Transformer
 * memory attention in `mem_layers`.
 *  - Within one local context the model is LLaMA: RMSNorm, q/k/v/o without bias (no GQA), SwiGLU, untied head; keys
 *    are cached before rotary and rotated at each call by position − min(position) of the local cache, which gives
 *    the same scores as rotating by position. A layer listed in `mem_layers` applies no rotary at all when
 *    `mem_positionals` is false.
 *  - Beyond that the remote code moves keys into a memory cache: inputs longer than `last_context_length` are run in
 *    chunks whose earlier keys the mem_layers attend to (kNN-free FoT memory), and a KV cache longer than
 *    max_position_embeddings drops its oldest keys into memory. gptqjs does not implement the memory: it is exact for
 *    contexts up to min(last_context_length, max_position_embeddings), which it reports as the model's
 *    maxPositionEmbeddings (perplexity windows, quantize seqlen and generation limits follow it).
 *  - rope_scaling must be null (the remote attention asserts it).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, layerIndexOf, rmsNormAt, selfAttention } from './blocks.ts';
import { configBool, defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';

/** Layers with memory attention (LongLlamaConfig.mem_layers, default none). */
function memLayers(cfg: ModelConfig): number[] {
  const v = cfg.raw.mem_layers ?? [];
  if (!Array.isArray(v) || !v.every((i) => Number.isInteger(i) && i >= 0 && i < cfg.numLayers))
    fail(`${cfg.path}: field "mem_layers" must be a list of layer indices < ${cfg.numLayers}`);
  return v as number[];
}

/** True when layer `i` rotates q/k (every layer unless it is a memory layer with mem_positionals false). */
const rotates = (cfg: ModelConfig, i: number) => configBool(cfg, 'mem_positionals', true) || !memLayers(cfg).includes(i);

export const longllama = defineArchitecture({
  modelTypes: ['longllama'],
  // LongLlamaConfig: vocab 32000, intermediate 11008, 2048 positions, eps 1e-6, untied, pad 0 / bos 1 / eos 2,
  // last_context_length 1024, mem_layers [], mem_positionals true.
  config: { longllama: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, pad_token_id: 0, bos_token_id: 1, eos_token_id: 2 } },
  configure: (cfg, f) => ({ maxPositionEmbeddings: Math.min(cfg.maxPositionEmbeddings, f.int('last_context_length', 1024)) }),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (_, d) => llamaModules(d),
  norm: ['model.norm', rmsNormAt],

  layerGraphVaries: (cfg) => !configBool(cfg, 'mem_positionals', true) && memLayers(cfg).length > 0,
  check(cfg) {
    memLayers(cfg);
    if (cfg.ropeScaling) fail(`${cfg.path}: longllama with rope_scaling is not supported (the remote code requires null)`);
    if (cfg.numKvHeads !== cfg.numHeads) fail(`${cfg.path}: longllama has no grouped kv heads (num_key_value_heads must equal num_attention_heads)`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn, rotates(cfg, layerIndexOf(ctx)) ? {} : { rope: 'none' })]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct)]);
  },
});
