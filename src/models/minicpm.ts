/**
 * MiniCPM 1/2 (remote code: the model repo's modeling_minicpm.py, MiniCPMForCausalLM; model_type "minicpm"; the
 * fixture's copy is listed in test/fixtures/archs/README.md). The Llama layout with µP scalings:
 *  - embeddings · scale_emb;
 *  - each residual branch · scale_depth / √num_hidden_layers (src/models/granite.ts scaledLlamaLayer);
 *  - logits = lm_head(h / (hidden_size / dim_model_base)), here lm_head(h) · dim_model_base / hidden_size (same linear
 *    map); lm_head tied to embed_tokens by default (MiniCPMConfig tie_word_embeddings true).
 * `sparse_config` (MiniCPM4's sparse attention) only applies on CUDA in that file; its CPU path is dense attention,
 * as here.
 */
import { rmsNormAt } from './blocks.ts';
import { checkActivation, configNumber, defineArchitecture } from './define.ts';
import { scaledLlamaLayer } from './granite.ts';
import { llamaModules } from './llama.ts';

export const minicpm = defineArchitecture({
  modelTypes: ['minicpm'],
  // MiniCPMConfig defaults (configuration_minicpm.py of the model repo); kv heads = heads unless given.
  config: { minicpm: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ's llama groups (GPTQModel minicpm.py: the llama tree).
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  norm: ['model.norm', rmsNormAt],
  embedded: (g, cfg, _w, x) => g.op('Mul', [x, g.constF(configNumber(cfg, 'scale_emb', 1))]),
  logits: (g, cfg, logits) => g.op('Mul', [logits, g.constF(configNumber(cfg, 'dim_model_base', 1) / cfg.hiddenSize)]),
  check(cfg) { checkActivation(cfg); configNumber(cfg, 'scale_depth', 1); },
  layer: (ctx, x, m) => scaledLlamaLayer(ctx, x, m, configNumber(ctx.cfg, 'scale_depth', 1) / Math.sqrt(ctx.cfg.numLayers)),
});
