/**
 * IBM Granite 3.x (transformers modeling_granite.py, GraniteForCausalLM; model_type "granite"): the Llama layout with
 * four multipliers from config.json —
 *  - embeddings · embedding_multiplier;
 *  - attention scores · attention_multiplier (instead of head_dim^-0.5);
 *  - each residual branch · residual_multiplier: h = x + attn(norm(x))·r, out = h + mlp(norm(h))·r;
 *  - logits / logits_scaling.
 * (GraniteConfig: all four default to 1.0.)
 */
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, rmsNormAt, selfAttention } from './blocks.ts';
import { checkActivation, configNumber, defineArchitecture, type Modules } from './define.ts';
import type { LayerContext } from './types.ts';
import { llamaModules } from './llama.ts';

/** GraniteConfig's multipliers (default 1.0 each). */
export function graniteMultipliers(cfg: ModelConfig) {
  const n = (k: string) => configNumber(cfg, k, 1);
  return { embedding: n('embedding_multiplier'), attention: n('attention_multiplier'), residual: n('residual_multiplier'), logits: n('logits_scaling') };
}

/**
 * Llama decoder layer with its residual branches scaled: h = x + attn(norm(x))·residual, out = h + mlp(norm(h))·residual;
 * attention scores · `scale` (default head_dim^-0.5). Granite (residual_multiplier, attention_multiplier) and MiniCPM
 * (scale_depth / √num_hidden_layers).
 */
export function scaledLlamaLayer(ctx: LayerContext, x: string, m: Modules<ReturnType<typeof llamaModules>>, residual: number, scale?: number): string {
  const { g, cfg, w, prefix: p } = ctx;
  const r = g.constF(residual);
  const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
  const x2 = g.op('Add', [x, g.op('Mul', [selfAttention(ctx, n1, m.self_attn, scale === undefined ? {} : { scale }), r])]);
  const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
  return g.op('Add', [x2, g.op('Mul', [gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct), r])]);
}

export const granite = defineArchitecture({
  modelTypes: ['granite'],
  // GraniteConfig defaults (configuration_granite.py, transformers 5.18); kv heads = heads unless given.
  config: { granite: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 } },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ's llama groups (GPTQModel granite.py is the llama tree).
  modules: (cfg, d) => llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias, mlp: cfg.mlpBias }),
  norm: ['model.norm', rmsNormAt],
  embedded: (g, cfg, _w, x) => g.op('Mul', [x, g.constF(graniteMultipliers(cfg).embedding)]),
  logits: (g, cfg, logits) => g.op('Div', [logits, g.constF(graniteMultipliers(cfg).logits)]),
  check(cfg) { checkActivation(cfg); graniteMultipliers(cfg); },
  layer: (ctx, x, m) => scaledLlamaLayer(ctx, x, m, graniteMultipliers(ctx.cfg).residual, graniteMultipliers(ctx.cfg).attention),
});
