/**
 * Independent float64 reference forward for StarCoder2 (Starcoder2ForCausalLM), plain loops from transformers'
 * modeling_starcoder2.py. TEST ORACLE ONLY. Positions 0..S−1.
 *
 *  - h = embed_tokens[id]; LayerNorm with bias (eps norm_epsilon) before attention and MLP; model.norm at the end.
 *  - attention: q/k/v/o_proj (biases iff use_bias), GQA, rotate_half rotary (rope_theta) over head_dim, scale
 *    head_dim^−0.5, key j visible to query i iff j ≤ i and (no sliding_window or i − j < sliding_window).
 *  - mlp: c_proj(act(c_fc(x))) (biases iff use_bias); logits = norm(h)·lm_headᵀ (embed_tokens when not stored).
 */
import { fail } from '../../src/errors.ts';
import { act, add, layerNorm, linear, logitsRows, positionsFromMask, rotate, tensor, type Weights } from './ref-math.ts';

export interface Starcoder2RefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; theta: number; bias: boolean; act: string; window: number | null;
}

export function starcoder2RefConfig(c: any): Starcoder2RefConfig {
  if (c?.model_type !== 'starcoder2') fail(`starcoder2 reference: model_type ${JSON.stringify(c?.model_type)}`);
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads ?? 2, headDim: c.hidden_size / c.num_attention_heads, vocab: c.vocab_size,
    eps: c.norm_epsilon ?? 1e-5, theta: c.rope_theta ?? 10000, bias: c.use_bias ?? true, act: c.hidden_act ?? 'gelu_pytorch_tanh',
    window: c.sliding_window ?? null,
  };
}

const who = 'starcoder2';

/** Causal (optionally sliding-window) softmax attention, query head h reading kv head floor(h·kv/heads). */
function windowAttention(q: Float64Array, k: Float64Array, v: Float64Array, seq: number, nh: number, kv: number, d: number, window: number | null): Float64Array {
  const out = new Float64Array(seq * nh * d), rep = nh / kv, scale = d ** -0.5;
  for (let h = 0; h < nh; h++) {
    const kh = Math.floor(h / rep);
    for (let i = 0; i < seq; i++) {
      const j0 = window ? Math.max(0, i - window + 1) : 0;
      const sc: number[] = [];
      for (let j = j0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[(i * nh + h) * d + t]! * k[(j * kv + kh) * d + t]!;
        sc.push(dot * scale);
      }
      const m = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = j0; j <= i; j++) acc += (e[j - j0]! / z) * v[(j * kv + kh) * d + t]!;
        out[(i * nh + h) * d + t] = acc;
      }
    }
  }
  return out;
}

export function starcoder2RefEmbed(c: Starcoder2RefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, who);
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]!; });
  return x;
}

export function starcoder2RefLayer(c: Starcoder2RefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, who);
  const lin = (v: Float64Array, name: string, inF: number, outF: number) =>
    linear(v, seq, inF, outF, t(`${name}.weight`, inF * outF), c.bias ? t(`${name}.bias`, outF) : undefined);
  const ln = (name: string, v: Float64Array) => layerNorm(v, seq, E, t(`${name}.weight`, E), t(`${name}.bias`, E), c.eps);
  const n1 = ln('input_layernorm', x);
  const q = lin(n1, 'self_attn.q_proj', E, nh * d), k = lin(n1, 'self_attn.k_proj', E, kv * d), v = lin(n1, 'self_attn.v_proj', E, kv * d);
  const pos = positionsFromMask(seq);
  rotate(q, seq, nh, d, pos, c.theta);
  rotate(k, seq, kv, d, pos, c.theta);
  const x2 = add(x, lin(windowAttention(q, k, v, seq, nh, kv, d, c.window), 'self_attn.o_proj', nh * d, E));
  const up = lin(ln('post_attention_layernorm', x2), 'mlp.c_fc', E, I);
  for (let i = 0; i < up.length; i++) up[i] = act(c.act, up[i]!);
  return add(x2, lin(up, 'mlp.c_proj', I, E));
}

export function starcoder2RefForward(c: Starcoder2RefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = starcoder2RefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = starcoder2RefLayer(c, w, l, h, seq);
  const n = layerNorm(h, seq, E, tensor(w, 'model.norm.weight', E, who), tensor(w, 'model.norm.bias', E, who), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'model.embed_tokens.weight', c.vocab * E, who));
}
