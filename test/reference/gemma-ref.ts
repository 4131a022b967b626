/**
 * Independent float64 reference forward for Gemma (GemmaForCausalLM), plain loops from transformers'
 * modeling_gemma.py. TEST ORACLE ONLY.
 *
 *  - h = embed_tokens[id] · fp32(sqrt(hidden_size))   (the normalizer is a tensor of the hidden dtype, fp32 here)
 *  - GemmaRMSNorm: x / sqrt(mean(x²) + eps) · (1 + w)
 *  - attention: q/k/v/o_proj (biases iff attention_bias), heads·head_dim wide (head_dim from config), GQA
 *    (query head h reads kv head floor(h / (heads/kv))), rotate_half rotary over head_dim, scale head_dim^−0.5
 *  - mlp: down(act(gate(x)) · up(x)), act = hidden_act (GemmaConfig default gelu_pytorch_tanh; the legacy "gelu" is
 *    read as gelu_pytorch_tanh, as current GemmaConfig does); hidden_activation is ignored
 *  - logits = norm(h) · lm_headᵀ (lm_head.weight, else embed_tokens)
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

export interface GemmaRefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; theta: number; bias: boolean; act: string;
}

export function gemmaRefConfig(c: any): GemmaRefConfig {
  if (c?.model_type !== 'gemma') fail(`gemma reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hiddenAct = c.hidden_act ?? 'gelu_pytorch_tanh';
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads ?? 16, headDim: c.head_dim ?? 256, vocab: c.vocab_size,
    eps: c.rms_norm_eps ?? 1e-6, theta: c.rope_theta ?? 10000, bias: c.attention_bias ?? false,
    act: hiddenAct === 'gelu' ? 'gelu_pytorch_tanh' : hiddenAct,
  };
}

export function gemmaRefLayer(c: GemmaRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'gemma');
  const lin = (x: Float64Array, name: string, inF: number, outF: number, bias: boolean) =>
    linear(x, seq, inF, outF, t(`${name}.weight`, inF * outF), bias ? t(`${name}.bias`, outF) : undefined);
  const n1 = rmsNorm(h, seq, E, t('input_layernorm.weight', E), c.eps, 1);
  const q = lin(n1, 'self_attn.q_proj', E, nh * d, c.bias);
  const k = lin(n1, 'self_attn.k_proj', E, kv * d, c.bias);
  const v = lin(n1, 'self_attn.v_proj', E, kv * d, c.bias);
  const pos = positionsFromMask(seq, mask);
  rotate(q, seq, nh, d, pos, c.theta);
  rotate(k, seq, kv, d, pos, c.theta);
  const attn = causalAttention(q, k, v, seq, nh, kv, d, d ** -0.5, mask);
  const h1 = add(h, lin(attn, 'self_attn.o_proj', nh * d, E, c.bias));
  const n2 = rmsNorm(h1, seq, E, t('post_attention_layernorm.weight', E), c.eps, 1);
  const gate = lin(n2, 'mlp.gate_proj', E, I, false), up = lin(n2, 'mlp.up_proj', E, I, false);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(h1, lin(gate, 'mlp.down_proj', I, E, false));
}

export function gemmaRefEmbed(c: GemmaRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden;
  const table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'gemma');
  const norm = Math.fround(Math.sqrt(E));
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]! * norm; });
  return x;
}

export function gemmaRefForward(c: GemmaRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = gemmaRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = gemmaRefLayer(c, w, l, h, seq, mask);
  const n = rmsNorm(h, seq, E, tensor(w, 'model.norm.weight', E, 'gemma'), c.eps, 1);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'gemma'));
}
