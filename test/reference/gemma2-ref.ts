/**
 * Independent float64 reference forward for Gemma 2 and Gemma 3 text (Gemma2ForCausalLM / Gemma3ForCausalLM), plain
 * loops from transformers' modeling_gemma2.py / modeling_gemma3.py and their config classes. TEST ORACLE ONLY.
 *
 *  - h = embed_tokens[id] · fp32(√hidden); RMSNorm x / sqrt(mean(x²) + eps) · (1 + w) everywhere
 *  - layer: x + post_attention_layernorm(attn(input_layernorm(x))), then
 *    + post_feedforward_layernorm(down(act(gate(·)) · up(·))) of pre_feedforward_layernorm; act = hidden_activation
 *  - attention: q/k/v/o_proj, GQA, Gemma 3 only: q_norm / k_norm ((1 + w) RMSNorm over head_dim) before rotary;
 *    rotate_half rotary (Gemma 3: sliding layers theta rope_local_base_freq / rope_parameters.sliding_attention, full
 *    layers rope_theta with linear factor); score = (q·k)·query_pre_attn_scalar^−0.5, then cap·tanh(score/cap) when
 *    attn_logit_softcapping is set, then the mask: key j visible to query i iff j ≤ i, mask[j] = 1 and, on
 *    sliding layers, j > i − sliding_window (indices, as masking_utils' sliding_window_overlay)
 *  - layer kinds: layer_types, else sliding unless (i + 1) % pattern = 0 (pattern: Gemma 2 → 2, Gemma 3 →
 *    sliding_window_pattern, default 6)
 *  - logits = norm(h) · lm_headᵀ (or embed_tokens), then cap·tanh(logits/cap) when final_logit_softcapping is set
 */
import { fail } from '../../src/errors.ts';
import { act, add, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

interface RefRope { theta: number; factor: number }
export interface Gemma2RefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; act: string; bias: boolean; scale: number; attnCap: number | null; finalCap: number | null;
  window: number | null; sliding: boolean[]; qkNorm: boolean; global: RefRope; local: RefRope;
}

/** A rope dict of type default / linear. */
function ropeOf(r: any, theta: number): RefRope {
  const type = r?.rope_type ?? r?.type ?? 'default';
  if (type !== 'default' && type !== 'linear') fail(`gemma2 reference: rope type ${type}`);
  return { theta: r?.rope_theta ?? theta, factor: type === 'linear' ? r.factor : 1 };
}

export function gemma2RefConfig(c: any): Gemma2RefConfig {
  const g3 = c?.model_type === 'gemma3_text';
  if (!g3 && c?.model_type !== 'gemma2') fail(`gemma2 reference: model_type ${JSON.stringify(c?.model_type)}`);
  const L = c.num_hidden_layers;
  const pattern = g3 ? c.sliding_window_pattern ?? 6 : 2;
  const sliding = c.layer_types ? c.layer_types.map((t: string) => t === 'sliding_attention') : Array.from({ length: L }, (_, i) => (i + 1) % pattern !== 0);
  const rp = c.rope_parameters;
  let global: RefRope, local: RefRope;
  if (g3 && rp?.full_attention) { global = ropeOf(rp.full_attention, 1e6); local = ropeOf(rp.sliding_attention, 1e4); }
  else if (g3) { global = ropeOf(c.rope_scaling, c.rope_theta ?? 1e6); local = { theta: c.rope_local_base_freq ?? 1e4, factor: 1 }; }
  else global = local = ropeOf(rp ?? c.rope_scaling, c.rope_theta ?? 10000);
  const cap = (k: string, def: number | null) => (c[k] === undefined ? def : c[k]);
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: L, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads ?? 4,
    headDim: c.head_dim ?? 256, vocab: c.vocab_size, eps: c.rms_norm_eps ?? 1e-6, act: c.hidden_activation ?? 'gelu_pytorch_tanh',
    bias: c.attention_bias ?? false, scale: (c.query_pre_attn_scalar ?? 256) ** -0.5,
    attnCap: cap('attn_logit_softcapping', g3 ? null : 50), finalCap: cap('final_logit_softcapping', g3 ? null : 30),
    window: c.sliding_window === undefined ? 4096 : c.sliding_window, sliding, qkNorm: g3, global, local,
  };
}

const capped = (x: number, cap: number | null) => (cap ? Math.tanh(x / cap) * cap : x);

export function gemma2RefLayer(c: Gemma2RefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'gemma2');
  const norm = (x: Float64Array, n: string, rows = seq, size = E) => rmsNorm(x, rows, size, t(`${n}.weight`, size), c.eps, 1);
  const lin = (x: Float64Array, name: string, inF: number, outF: number, bias: boolean) =>
    linear(x, seq, inF, outF, t(`${name}.weight`, inF * outF), bias ? t(`${name}.bias`, outF) : undefined);
  const n1 = norm(h, 'input_layernorm');
  let q = lin(n1, 'self_attn.q_proj', E, nh * d, c.bias);
  let k = lin(n1, 'self_attn.k_proj', E, kv * d, c.bias);
  const v = lin(n1, 'self_attn.v_proj', E, kv * d, c.bias);
  if (c.qkNorm) { q = norm(q, 'self_attn.q_norm', seq * nh, d); k = norm(k, 'self_attn.k_norm', seq * kv, d); }
  const sliding = c.sliding[layer]! && c.window !== null;
  const rope = c.sliding[layer] ? c.local : c.global;
  const pos = positionsFromMask(seq, mask).map((x) => x / rope.factor);
  rotate(q, seq, nh, d, pos, rope.theta);
  rotate(k, seq, kv, d, pos, rope.theta);
  const attn = new Float64Array(seq * nh * d), sc = new Float64Array(seq), rep = nh / kv;
  for (let hh = 0; hh < nh; hh++) {
    const kh = Math.floor(hh / rep);
    for (let i = 0; i < seq; i++) {
      const vis = (j: number) => j <= i && (!mask || mask[j] === 1) && (!sliding || j > i - c.window!);
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        if (!vis(j)) continue;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[(i * nh + hh) * d + e]! * k[(j * kv + kh) * d + e]!;
        sc[j] = capped(dot * c.scale, c.attnCap);
        max = Math.max(max, sc[j]!);
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) if (vis(j)) { sc[j] = Math.exp(sc[j]! - max); sum += sc[j]!; }
      if (sum === 0) continue; // fully masked (padding) query: never compared
      for (let e = 0; e < d; e++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) if (vis(j)) acc += (sc[j]! / sum) * v[(j * kv + kh) * d + e]!;
        attn[(i * nh + hh) * d + e] = acc;
      }
    }
  }
  const h1 = add(h, norm(lin(attn, 'self_attn.o_proj', nh * d, E, c.bias), 'post_attention_layernorm'));
  const n2 = norm(h1, 'pre_feedforward_layernorm');
  const gate = lin(n2, 'mlp.gate_proj', E, I, false), up = lin(n2, 'mlp.up_proj', E, I, false);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(h1, norm(lin(gate, 'mlp.down_proj', I, E, false), 'post_feedforward_layernorm'));
}

export function gemma2RefEmbed(c: Gemma2RefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'gemma2'), s = Math.fround(Math.sqrt(E));
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, r) => { for (let i = 0; i < E; i++) x[r * E + i] = table[id * E + i]! * s; });
  return x;
}

export function gemma2RefForward(c: Gemma2RefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = gemma2RefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = gemma2RefLayer(c, w, l, h, seq, mask);
  const n = rmsNorm(h, seq, E, tensor(w, 'model.norm.weight', E, 'gemma2'), c.eps, 1);
  const rows = logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'gemma2'));
  for (const r of rows) for (let i = 0; i < r.length; i++) r[i] = capped(r[i]!, c.finalCap);
  return rows;
}
