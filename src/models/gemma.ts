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
import type { ModelConfig } from '../io/model-config.ts';
import { rmsNormAt } from './blocks.ts';
import { checkActivation, defineArchitecture, type NormAt } from './define.ts';
import { llamaLayer, llamaModules } from './llama.ts';

/**
 * The MLP activation, as current transformers (GemmaConfig/GemmaMLP): `hidden_act`, where the legacy "gelu" of the
 * original releases means gelu_pytorch_tanh (Gemma was trained with the tanh GeLU). transformers 4.38–4.47 read
 * `hidden_activation` instead (null → gelu_pytorch_tanh); every released Gemma config gives the tanh GeLU either way.
 */
export function gemmaActivation(cfg: ModelConfig): string {
  return cfg.hiddenAct === 'gelu' ? 'gelu_pytorch_tanh' : cfg.hiddenAct;
}

/** GemmaRMSNorm: x / rms(x) · (1 + weight). */
export const gemmaNorm: NormAt = (g, w, name, x, n, eps) => rmsNormAt(g, w, name, x, n, eps, 1);

export const gemma = defineArchitecture({
  modelTypes: ['gemma'],
  config: { gemma: { hidden_act: 'gelu_pytorch_tanh', intermediate_size: 24576, num_key_value_heads: 16, head_dim: 256, rms_norm_eps: 1e-6, max_position_embeddings: 8192, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ GemmaGPTQForCausalLM (same groups as llama).
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias }),
  // GemmaModel: normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype) — constF rounds to fp32.
  embedded: (g, cfg, _w, x) => g.op('Mul', [x, g.constF(Math.sqrt(cfg.hiddenSize))]),
  norm: ['model.norm', gemmaNorm],

  check(cfg) {
    checkActivation(cfg, gemmaActivation(cfg));
    if (cfg.rotaryDim !== cfg.headDim) fail(`${cfg.path}: gemma applies rotary to the whole head (partial_rotary_factor must be 1)`);
    if (cfg.headDim % 2) fail(`${cfg.path}: head_dim (${cfg.headDim}) must be even`);
  },

  layer: (ctx, x, m) => llamaLayer(ctx, x, m, gemmaNorm, gemmaActivation(ctx.cfg)),
});
