/**
 * Independent float64 reference forwards for GPT-NeoX (GPTNeoXForCausalLM), GPT-J (GPTJForCausalLM) and
 * Phi-1/1.5/2 (PhiForCausalLM).
 *
 * TEST ORACLE ONLY: plain loops written from the math of transformers' modeling_gpt_neox.py, modeling_gptj.py and
 * modeling_phi.py, sharing no code with the ONNX graphs under test. Positions are 0..S−1.
 *
 * Common pieces
 *  - nn.Linear weights [out, in]: y[o] = b[o] + Σ_i x[i]·W[o, i].
 *  - LayerNorm: (x − mean) / sqrt(var + eps) · w + b with the biased variance.
 *  - gelu: 0.5·x·(1 + erf(x/√2)); gelu_new: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).
 *  - rotary frequency i of a rotary width R: θ_i = pos / base^(2i/R), i < R/2.
 *      rotate_half (NeoX, Phi): channels (i, i + R/2) rotate together;
 *      rotate_every_two (GPT-J): channels (2i, 2i+1) rotate together;
 *      the pair (a, b) becomes (a·cos − b·sin, b·cos + a·sin); channels ≥ R pass through.
 *  - attention: causal softmax(q·kᵀ / sqrt(head_dim))·v per head (query head h reads kv head ⌊h / (heads/kvHeads)⌋).
 *
 * GPT-NeoX block: qkv = query_key_value(ln1(x)) viewed [heads, 3·head_dim]: head h's q, k, v are its three
 *   consecutive head_dim slices. parallel: x + dense(attn) + mlp(ln2(x)); sequential: y = x + dense(attn); y + mlp(ln2(y)).
 *   Head: final_layer_norm, embed_out (no bias; embed_in when absent).
 * GPT-J block: n = ln_1(x); x + out_proj(attn(q_proj(n), k_proj(n), v_proj(n))) + fc_out(act(fc_in(n))). Head: ln_f, lm_head + bias.
 * Phi layer: n = input_layernorm(x); q/k/v_proj(n) (+ per-head q_layernorm/k_layernorm over head_dim when
 *   qk_layernorm) → rotary → attn → dense; x + attn + fc2(act(fc1(n))). Head: final_layernorm, lm_head + bias.
 */
import { fail } from '../../src/errors.ts';
import { layerNorm, linear } from './ref-math.ts';

export type Weights = (name: string) => Float32Array | undefined;
type Act = 'gelu' | 'gelu_new' | 'relu';

interface RefCommon {
  hidden: number; layers: number; heads: number; kvHeads: number; headDim: number; inter: number; vocab: number;
  eps: number; act: Act; rotDim: number; base: number;
}
export interface NeoxRefConfig extends RefCommon { parallel: boolean; attnBias: boolean }
export type GptjRefConfig = RefCommon;
export interface PhiRefConfig extends RefCommon { qkLayernorm: boolean }

// ------------------------------------------------------------------------------------------------ math

/** erf to ~1e-15: Maclaurin series for |x| ≤ 2.5, continued fraction for erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax <= 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let t = ax;
  for (let k = 80; k >= 1; k--) t = ax + k / 2 / t;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / t;
  return Math.sign(x) * (1 - erfc);
}

function actFn(v: number, kind: Act): number {
  if (kind === 'relu') return v > 0 ? v : 0;
  if (kind === 'gelu') return 0.5 * v * (1 + erf(v / Math.SQRT2));
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
}

function toAct(a: string, who: string): Act {
  if (a === 'gelu' || a === 'relu') return a;
  if (a === 'gelu_new' || a === 'gelu_pytorch_tanh' || a === 'gelu_fast') return 'gelu_new';
  fail(`${who} reference: activation ${a} not implemented`);
}

function get(w: Weights, name: string, size: number, who: string): Float32Array {
  const t = w(name);
  if (!t) fail(`${who} reference: missing ${name}`);
  if (t.length !== size) fail(`${who} reference: ${name} has ${t.length} values, expected ${size}`);
  return t;
}

/** Rotate one head vector v[off .. off+rotDim) in place at position pos. */
function rotate(v: Float64Array, off: number, rotDim: number, pos: number, base: number, interleaved: boolean): void {
  const half = rotDim / 2;
  for (let i = 0; i < half; i++) {
    const ang = pos / base ** ((2 * i) / rotDim);
    const c = Math.cos(ang), s = Math.sin(ang);
    const ia = interleaved ? off + 2 * i : off + i;
    const ib = interleaved ? off + 2 * i + 1 : off + i + half;
    const a = v[ia]!, b = v[ib]!;
    v[ia] = a * c - b * s;
    v[ib] = b * c + a * s;
  }
}

/** Causal attention; q [seq, heads·d], k/v [seq, kvHeads·d] (head-major). Returns [seq, heads·d]. */
function attend(q: Float64Array, k: Float64Array, v: Float64Array, seq: number, heads: number, kvHeads: number, d: number): Float64Array {
  const out = new Float64Array(seq * heads * d);
  const p = new Float64Array(seq);
  const rep = heads / kvHeads, scale = 1 / Math.sqrt(d);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / rep);
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[(i * heads + h) * d + t]! * k[(j * kvHeads + kh) * d + t]!;
        p[j] = dot * scale;
        if (p[j]! > max) max = p[j]!;
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) { p[j] = Math.exp(p[j]! - max); sum += p[j]!; }
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) acc += (p[j]! / sum) * v[(j * kvHeads + kh) * d + t]!;
        out[(i * heads + h) * d + t] = acc;
      }
    }
  }
  return out;
}

function add(...xs: Float64Array[]): Float64Array {
  const y = new Float64Array(xs[0]!.length);
  for (const x of xs) for (let i = 0; i < y.length; i++) y[i]! += x[i]!;
  return y;
}

function embedRows(table: Float32Array, ids: number[], H: number, vocab: number, who: string): Float64Array {
  const h = new Float64Array(ids.length * H);
  ids.forEach((id, s) => {
    if (!(id >= 0 && id < vocab)) fail(`${who} reference: token ${id} outside [0, ${vocab})`);
    for (let i = 0; i < H; i++) h[s * H + i] = table[id * H + i]!;
  });
  return h;
}

function logits(n: Float64Array, seq: number, H: number, V: number, W: Float32Array, b?: Float32Array): Float64Array[] {
  const y = linear(n, seq, H, V, W, b);
  return Array.from({ length: seq }, (_, s) => y.slice(s * V, (s + 1) * V));
}

function mlp(x: Float64Array, seq: number, c: RefCommon, w: Weights, up: string, down: string, who: string): Float64Array {
  const { hidden: H, inter: I } = c;
  const u = linear(x, seq, H, I, get(w, `${up}.weight`, I * H, who), get(w, `${up}.bias`, I, who));
  for (let i = 0; i < u.length; i++) u[i] = actFn(u[i]!, c.act);
  return linear(u, seq, I, H, get(w, `${down}.weight`, H * I, who), get(w, `${down}.bias`, H, who));
}

// ------------------------------------------------------------------------------------------------ GPT-NeoX

/** GPTNeoXConfig names and defaults (rotary_pct 0.25, rotary_emb_base 10000, use_parallel_residual, attention_bias). */
export function neoxRefConfig(c: any): NeoxRefConfig {
  if (c?.model_type !== 'gpt_neox') fail(`gpt_neox reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hidden = c.hidden_size, heads = c.num_attention_heads, headDim = hidden / heads;
  return {
    hidden, layers: c.num_hidden_layers, heads, kvHeads: heads, headDim, inter: c.intermediate_size, vocab: c.vocab_size,
    eps: c.layer_norm_eps ?? 1e-5, act: toAct(c.hidden_act ?? 'gelu', 'gpt_neox'),
    rotDim: Math.floor(headDim * (c.rotary_pct ?? 0.25)), base: c.rotary_emb_base ?? 10000,
    parallel: c.use_parallel_residual ?? true, attnBias: c.attention_bias ?? true,
  };
}

export function neoxRefEmbed(c: NeoxRefConfig, w: Weights, ids: number[]): Float64Array {
  return embedRows(get(w, 'gpt_neox.embed_in.weight', c.vocab * c.hidden, 'gpt_neox'), ids, c.hidden, c.vocab, 'gpt_neox');
}

export function neoxRefLayer(c: NeoxRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const who = 'gpt_neox', H = c.hidden, nh = c.heads, d = c.headDim;
  const p = `gpt_neox.layers.${layer}.`;
  const ln = (name: string, v: Float64Array) => layerNorm(v, seq, H, get(w, `${p}${name}.weight`, H, who), get(w, `${p}${name}.bias`, H, who), c.eps);
  const qkv = linear(ln('input_layernorm', x), seq, H, 3 * H, get(w, `${p}attention.query_key_value.weight`, 3 * H * H, who),
    c.attnBias ? get(w, `${p}attention.query_key_value.bias`, 3 * H, who) : undefined);
  const q = new Float64Array(seq * H), k = new Float64Array(seq * H), v = new Float64Array(seq * H);
  for (let s = 0; s < seq; s++) {
    for (let h = 0; h < nh; h++) {
      for (let t = 0; t < d; t++) {
        const src = s * 3 * H + h * 3 * d + t, dst = s * H + h * d + t;
        q[dst] = qkv[src]!; k[dst] = qkv[src + d]!; v[dst] = qkv[src + 2 * d]!;
      }
      rotate(q, s * H + h * d, c.rotDim, s, c.base, false);
      rotate(k, s * H + h * d, c.rotDim, s, c.base, false);
    }
  }
  const attn = linear(attend(q, k, v, seq, nh, nh, d), seq, H, H, get(w, `${p}attention.dense.weight`, H * H, who),
    c.attnBias ? get(w, `${p}attention.dense.bias`, H, who) : undefined);
  if (c.parallel) return add(x, attn, mlp(ln('post_attention_layernorm', x), seq, c, w, `${p}mlp.dense_h_to_4h`, `${p}mlp.dense_4h_to_h`, who));
  const y = add(x, attn);
  return add(y, mlp(ln('post_attention_layernorm', y), seq, c, w, `${p}mlp.dense_h_to_4h`, `${p}mlp.dense_4h_to_h`, who));
}

export function neoxRefForward(c: NeoxRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const who = 'gpt_neox', H = c.hidden, seq = ids.length;
  let h = neoxRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = neoxRefLayer(c, w, l, h, seq);
  const n = layerNorm(h, seq, H, get(w, 'gpt_neox.final_layer_norm.weight', H, who), get(w, 'gpt_neox.final_layer_norm.bias', H, who), c.eps);
  return logits(n, seq, H, c.vocab, w('embed_out.weight') ?? get(w, 'gpt_neox.embed_in.weight', c.vocab * H, who));
}

// ------------------------------------------------------------------------------------------------ GPT-J

/** GPTJConfig names and defaults (rotary_dim 64, n_inner null → 4·n_embd, gelu_new, base 10000). */
export function gptjRefConfig(c: any): GptjRefConfig {
  if (c?.model_type !== 'gptj') fail(`gptj reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hidden = c.n_embd, heads = c.n_head, headDim = hidden / heads;
  const rotDim = c.rotary_dim === undefined ? 64 : c.rotary_dim ?? hidden;
  if (rotDim > headDim) fail(`gptj reference: rotary_dim ${rotDim} > head_dim ${headDim}`);
  return {
    hidden, layers: c.n_layer, heads, kvHeads: heads, headDim, inter: c.n_inner ?? 4 * hidden, vocab: c.vocab_size,
    eps: c.layer_norm_epsilon ?? 1e-5, act: toAct(c.activation_function ?? 'gelu_new', 'gptj'), rotDim, base: 10000,
  };
}

export function gptjRefEmbed(c: GptjRefConfig, w: Weights, ids: number[]): Float64Array {
  return embedRows(get(w, 'transformer.wte.weight', c.vocab * c.hidden, 'gptj'), ids, c.hidden, c.vocab, 'gptj');
}

export function gptjRefLayer(c: GptjRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const who = 'gptj', H = c.hidden, nh = c.heads, d = c.headDim;
  const p = `transformer.h.${layer}.`;
  const n = layerNorm(x, seq, H, get(w, `${p}ln_1.weight`, H, who), get(w, `${p}ln_1.bias`, H, who), c.eps);
  const proj = (name: string) => linear(n, seq, H, H, get(w, `${p}attn.${name}.weight`, H * H, who));
  const q = proj('q_proj'), k = proj('k_proj'), v = proj('v_proj');
  for (let s = 0; s < seq; s++) for (let h = 0; h < nh; h++) {
    rotate(q, s * H + h * d, c.rotDim, s, c.base, true);
    rotate(k, s * H + h * d, c.rotDim, s, c.base, true);
  }
  const attn = linear(attend(q, k, v, seq, nh, nh, d), seq, H, H, get(w, `${p}attn.out_proj.weight`, H * H, who));
  return add(x, attn, mlp(n, seq, c, w, `${p}mlp.fc_in`, `${p}mlp.fc_out`, who));
}

export function gptjRefForward(c: GptjRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const who = 'gptj', H = c.hidden, V = c.vocab, seq = ids.length;
  let h = gptjRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = gptjRefLayer(c, w, l, h, seq);
  const n = layerNorm(h, seq, H, get(w, 'transformer.ln_f.weight', H, who), get(w, 'transformer.ln_f.bias', H, who), c.eps);
  return logits(n, seq, H, V, w('lm_head.weight') ?? get(w, 'transformer.wte.weight', V * H, who), get(w, 'lm_head.bias', V, who));
}

// ------------------------------------------------------------------------------------------------ Phi

/** PhiConfig names and defaults (partial_rotary_factor 0.5, rope_theta 10000, gelu_new, qk_layernorm false). */
export function phiRefConfig(c: any): PhiRefConfig {
  if (c?.model_type !== 'phi') fail(`phi reference: model_type ${JSON.stringify(c?.model_type)}`);
  if (c.rope_scaling) fail('phi reference: rope_scaling not implemented');
  const hidden = c.hidden_size, heads = c.num_attention_heads, headDim = hidden / heads;
  return {
    hidden, layers: c.num_hidden_layers, heads, kvHeads: c.num_key_value_heads ?? heads, headDim, inter: c.intermediate_size,
    vocab: c.vocab_size, eps: c.layer_norm_eps ?? 1e-5, act: toAct(c.hidden_act ?? 'gelu_new', 'phi'),
    rotDim: Math.floor(headDim * (c.partial_rotary_factor ?? 0.5)), base: c.rope_theta ?? 10000, qkLayernorm: c.qk_layernorm ?? false,
  };
}

export function phiRefEmbed(c: PhiRefConfig, w: Weights, ids: number[]): Float64Array {
  return embedRows(get(w, 'model.embed_tokens.weight', c.vocab * c.hidden, 'phi'), ids, c.hidden, c.vocab, 'phi');
}

export function phiRefLayer(c: PhiRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const who = 'phi', H = c.hidden, nh = c.heads, nkv = c.kvHeads, d = c.headDim;
  const p = `model.layers.${layer}.`;
  const n = layerNorm(x, seq, H, get(w, `${p}input_layernorm.weight`, H, who), get(w, `${p}input_layernorm.bias`, H, who), c.eps);
  const proj = (name: string, heads: number) =>
    linear(n, seq, H, heads * d, get(w, `${p}self_attn.${name}.weight`, heads * d * H, who), get(w, `${p}self_attn.${name}.bias`, heads * d, who));
  let q = proj('q_proj', nh), k = proj('k_proj', nkv);
  const v = proj('v_proj', nkv);
  if (c.qkLayernorm) { // LayerNorm(head_dim) on each head's slice
    q = layerNorm(q, seq * nh, d, get(w, `${p}self_attn.q_layernorm.weight`, d, who), get(w, `${p}self_attn.q_layernorm.bias`, d, who), c.eps);
    k = layerNorm(k, seq * nkv, d, get(w, `${p}self_attn.k_layernorm.weight`, d, who), get(w, `${p}self_attn.k_layernorm.bias`, d, who), c.eps);
  }
  for (let s = 0; s < seq; s++) {
    for (let h = 0; h < nh; h++) rotate(q, (s * nh + h) * d, c.rotDim, s, c.base, false);
    for (let h = 0; h < nkv; h++) rotate(k, (s * nkv + h) * d, c.rotDim, s, c.base, false);
  }
  const attn = linear(attend(q, k, v, seq, nh, nkv, d), seq, nh * d, H, get(w, `${p}self_attn.dense.weight`, H * nh * d, who), get(w, `${p}self_attn.dense.bias`, H, who));
  return add(x, attn, mlp(n, seq, c, w, `${p}mlp.fc1`, `${p}mlp.fc2`, who));
}

export function phiRefForward(c: PhiRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const who = 'phi', H = c.hidden, V = c.vocab, seq = ids.length;
  let h = phiRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = phiRefLayer(c, w, l, h, seq);
  const n = layerNorm(h, seq, H, get(w, 'model.final_layernorm.weight', H, who), get(w, 'model.final_layernorm.bias', H, who), c.eps);
  return logits(n, seq, H, V, w('lm_head.weight') ?? get(w, 'model.embed_tokens.weight', V * H, who), get(w, 'lm_head.bias', V, who));
}
