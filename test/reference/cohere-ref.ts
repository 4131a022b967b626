/**
 * Independent float64 reference forward for Cohere Command-R (CohereForCausalLM), plain loops from transformers'
 * modeling_cohere.py. TEST ORACLE ONLY. Positions 0..S−1.
 *
 *  - CohereLayerNorm: (x − mean) / sqrt(var + eps) · w (no bias), eps layer_norm_eps.
 *  - layer: n = input_layernorm(x); x + o_proj(attn(n)) + down(silu(gate(n)) · up(n)).
 *  - attention: q/k/v/o_proj (biases iff attention_bias), GQA; use_qk_norm: CohereLayerNorm of each head's q/k over
 *    head_dim with that head's weight row (q_norm.weight [heads, head_dim]); then interleaved rotary: channel pairs
 *    (2i, 2i+1) rotate by pos / rope_theta^(2i/head_dim); scale head_dim^−0.5.
 *  - logits = logit_scale · (norm(h) · Wᵀ), W = lm_head.weight ?? embed_tokens.
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, linear, logitsRows, tensor, type Weights } from './ref-math.ts';

export interface CohereRefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; theta: number; bias: boolean; act: string; qkNorm: boolean; logitScale: number;
}

export function cohereRefConfig(c: any): CohereRefConfig {
  if (c?.model_type !== 'cohere') fail(`cohere reference: model_type ${JSON.stringify(c?.model_type)}`);
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads ?? c.num_attention_heads, headDim: c.hidden_size / c.num_attention_heads, vocab: c.vocab_size,
    eps: c.layer_norm_eps ?? 1e-5, theta: c.rope_theta ?? 10000, bias: c.attention_bias ?? false, act: c.hidden_act ?? 'silu',
    qkNorm: c.use_qk_norm ?? false, logitScale: c.logit_scale ?? 0.0625,
  };
}

const who = 'cohere';

/** Row-wise LayerNorm without bias over rows of width n; row r uses weight row r % wRows (per-head weights). */
function cohereNorm(x: Float64Array, rows: number, n: number, w: Float32Array, eps: number, wRows = 1): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i]!;
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps), wr = (r % wRows) * n;
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i]! - mean) * inv * w[wr + i]!;
  }
  return y;
}

/** Interleaved rotary in place on [seq, heads·d] at positions 0..seq−1. */
function rotateInterleaved(x: Float64Array, seq: number, heads: number, d: number, theta: number): void {
  for (let s = 0; s < seq; s++) for (let h = 0; h < heads; h++) {
    const o = (s * heads + h) * d;
    for (let i = 0; i < d / 2; i++) {
      const ang = s * theta ** ((-2 * i) / d), c = Math.cos(ang), sn = Math.sin(ang);
      const a = x[o + 2 * i]!, b = x[o + 2 * i + 1]!;
      x[o + 2 * i] = a * c - b * sn;
      x[o + 2 * i + 1] = b * c + a * sn;
    }
  }
}

export function cohereRefEmbed(c: CohereRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, who);
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]!; });
  return x;
}

export function cohereRefLayer(c: CohereRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, who);
  const lin = (v: Float64Array, name: string, inF: number, outF: number, bias: boolean) =>
    linear(v, seq, inF, outF, t(`${name}.weight`, inF * outF), bias ? t(`${name}.bias`, outF) : undefined);
  const n = cohereNorm(x, seq, E, t('input_layernorm.weight', E), c.eps);
  let q = lin(n, 'self_attn.q_proj', E, nh * d, c.bias), k = lin(n, 'self_attn.k_proj', E, kv * d, c.bias);
  const v = lin(n, 'self_attn.v_proj', E, kv * d, c.bias);
  if (c.qkNorm) {
    q = cohereNorm(q, seq * nh, d, t('self_attn.q_norm.weight', nh * d), c.eps, nh);
    k = cohereNorm(k, seq * kv, d, t('self_attn.k_norm.weight', kv * d), c.eps, kv);
  }
  rotateInterleaved(q, seq, nh, d, c.theta);
  rotateInterleaved(k, seq, kv, d, c.theta);
  const attn = lin(causalAttention(q, k, v, seq, nh, kv, d, d ** -0.5), 'self_attn.o_proj', nh * d, E, c.bias);
  const gate = lin(n, 'mlp.gate_proj', E, I, false), up = lin(n, 'mlp.up_proj', E, I, false);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(add(x, attn), lin(gate, 'mlp.down_proj', I, E, false));
}

export function cohereRefForward(c: CohereRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = cohereRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = cohereRefLayer(c, w, l, h, seq);
  const n = cohereNorm(h, seq, E, tensor(w, 'model.norm.weight', E, who), c.eps);
  const rows = logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'model.embed_tokens.weight', c.vocab * E, who));
  for (const r of rows) for (let i = 0; i < r.length; i++) r[i]! *= c.logitScale;
  return rows;
}
