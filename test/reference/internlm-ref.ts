/**
 * Independent float64 reference forwards for InternLM (v1, remote-code modeling_internlm.py) and InternLM2
 * (modeling_internlm2.py). TEST ORACLE ONLY. Positions 0..S−1.
 *
 * InternLM: llama — RMSNorm (rms_norm_eps), q/k/v/o_proj with biases iff `bias` (default true), rotate_half rotary
 *   with base `rotary.base` (default 10000), SwiGLU mlp.gate/up/down_proj without bias, model.norm, lm_head.
 * InternLM2: tok_embeddings; attention_norm → wqkv (bias iff `bias`) whose output per kv head g is
 *   [q_{g·r} … q_{g·r+r−1}, k_g, v_g] (r = heads/kv_heads, each head_dim wide) → rotary (rope_theta) → attention
 *   (query head h reads kv head floor(h/r)) → wo (bias iff `bias`); ffn_norm → w2(silu(w1(x))·w3(x)); model.norm;
 *   logits via `output` (tok_embeddings when absent).
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

export interface InternRefConfig {
  v2: boolean; hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; theta: number; bias: boolean; act: string;
}

export function internRefConfig(c: any): InternRefConfig {
  if (c?.model_type !== 'internlm' && c?.model_type !== 'internlm2') fail(`internlm reference: model_type ${JSON.stringify(c?.model_type)}`);
  const v2 = c.model_type === 'internlm2';
  return {
    v2, hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads: c.num_attention_heads,
    kvHeads: (v2 ? c.num_key_value_heads : undefined) ?? c.num_attention_heads, headDim: c.hidden_size / c.num_attention_heads,
    vocab: c.vocab_size, eps: c.rms_norm_eps ?? 1e-6, theta: v2 ? c.rope_theta ?? 10000 : c.rotary?.base ?? 10000,
    bias: c.bias ?? true, act: c.hidden_act ?? 'silu',
  };
}

const embedName = (c: InternRefConfig) => (c.v2 ? 'model.tok_embeddings.weight' : 'model.embed_tokens.weight');

export function internRefEmbed(c: InternRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, embedName(c), c.vocab * E, 'internlm');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]!; });
  return x;
}

export function internRefLayer(c: InternRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'internlm');
  const lin = (v: Float64Array, name: string, inF: number, outF: number, bias: boolean) =>
    linear(v, seq, inF, outF, t(`${name}.weight`, inF * outF), bias ? t(`${name}.bias`, outF) : undefined);
  const n1 = rmsNorm(x, seq, E, t(c.v2 ? 'attention_norm.weight' : 'input_layernorm.weight', E), c.eps, 0);
  let q: Float64Array, k: Float64Array, v: Float64Array;
  if (c.v2) {
    const r = nh / kv, W = (nh + 2 * kv) * d;
    const qkv = lin(n1, 'attention.wqkv', E, W, c.bias);
    q = new Float64Array(seq * nh * d); k = new Float64Array(seq * kv * d); v = new Float64Array(seq * kv * d);
    for (let s = 0; s < seq; s++) for (let g = 0; g < kv; g++) {
      const base = s * W + g * (r + 2) * d;
      for (let j = 0; j < r; j++) for (let i = 0; i < d; i++) q[(s * nh + g * r + j) * d + i] = qkv[base + j * d + i]!;
      for (let i = 0; i < d; i++) { k[(s * kv + g) * d + i] = qkv[base + r * d + i]!; v[(s * kv + g) * d + i] = qkv[base + (r + 1) * d + i]!; }
    }
  } else {
    q = lin(n1, 'self_attn.q_proj', E, nh * d, c.bias); k = lin(n1, 'self_attn.k_proj', E, nh * d, c.bias); v = lin(n1, 'self_attn.v_proj', E, nh * d, c.bias);
  }
  const pos = positionsFromMask(seq);
  rotate(q, seq, nh, d, pos, c.theta);
  rotate(k, seq, kv, d, pos, c.theta);
  const attn = causalAttention(q, k, v, seq, nh, kv, d, d ** -0.5);
  const x2 = add(x, lin(attn, c.v2 ? 'attention.wo' : 'self_attn.o_proj', nh * d, E, c.bias));
  const n2 = rmsNorm(x2, seq, E, t(c.v2 ? 'ffn_norm.weight' : 'post_attention_layernorm.weight', E), c.eps, 0);
  const [gN, uN, dN] = c.v2 ? ['feed_forward.w1', 'feed_forward.w3', 'feed_forward.w2'] : ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
  const gate = lin(n2, gN!, E, I, false), up = lin(n2, uN!, E, I, false);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(x2, lin(gate, dN!, I, E, false));
}

export function internRefForward(c: InternRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = internRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = internRefLayer(c, w, l, h, seq);
  const n = rmsNorm(h, seq, E, tensor(w, 'model.norm.weight', E, 'internlm'), c.eps, 0);
  return logitsRows(n, seq, E, c.vocab, w(c.v2 ? 'output.weight' : 'lm_head.weight') ?? tensor(w, embedName(c), c.vocab * E, 'internlm'));
}
