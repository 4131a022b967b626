/**
 * Independent float64 reference forward for OPT (OPTForCausalLM).
 *
 * TEST ORACLE ONLY: plain loops written from the math of transformers' modeling_opt.py, sharing no code with
 * the ONNX graphs under test.
 *
 *  - e = embed_tokens[id] (word_embed_proj_dim wide); e = project_in(e) when word_embed_proj_dim ≠ hidden_size
 *    h = e + embed_positions[position + 2]            (positions 0..S-1; learned table has an offset of 2)
 *  - per layer (pre-LN when do_layer_norm_before, else post-LN):
 *      r = h; [h = self_attn_layer_norm(h)]; q = q_proj(h)·head_dim^-0.5, k, v; causal softmax(q·kᵀ)·v;
 *      h = r + out_proj(attn); [if post-LN: h = self_attn_layer_norm(h)]
 *      r = h; [h = final_layer_norm(h)]; h = r + fc2(act(fc1(h))); [if post-LN: h = final_layer_norm(h)]
 *  - decoder final_layer_norm iff do_layer_norm_before && !_remove_final_layer_norm; project_out when projected
 *  - logits = h · lm_headᵀ (lm_head.weight when stored, else embed_tokens)
 *  - nn.Linear weights [out, in]; biases iff enable_bias; LayerNorm affine iff layer_norm_elementwise_affine,
 *    eps 1e-5, biased variance.
 * Tensor names are looked up with and without the `model.` prefix.
 */
import { fail } from '../../src/errors.ts';
import { act, linear as linearRows, logitsRows } from './ref-math.ts';

export interface OptRefConfig {
  hidden: number;
  layers: number;
  heads: number;
  ffn: number;
  vocab: number;
  positions: number;
  proj: number;
  preLN: boolean;
  finalLN: boolean;
  bias: boolean;
  affine: boolean;
  act: 'relu' | 'gelu_new';
}

export type Weights = (name: string) => Float32Array | undefined;

/** OPTConfig field names and defaults. */
export function optRefConfig(c: any): OptRefConfig {
  if (c?.model_type !== 'opt') fail(`opt reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hidden = c.hidden_size ?? 768;
  const act = c.activation_function ?? 'relu';
  if (act !== 'relu' && act !== 'gelu_new') fail(`opt reference: activation ${act} not implemented`);
  const preLN = c.do_layer_norm_before ?? true;
  return {
    hidden,
    layers: c.num_hidden_layers ?? 12,
    heads: c.num_attention_heads ?? 12,
    ffn: c.ffn_dim ?? 3072,
    vocab: c.vocab_size ?? 50272,
    positions: c.max_position_embeddings ?? 2048,
    proj: c.word_embed_proj_dim ?? hidden,
    preLN,
    finalLN: preLN && !(c._remove_final_layer_norm ?? false),
    bias: c.enable_bias ?? true,
    affine: c.layer_norm_elementwise_affine ?? true,
    act,
  };
}

function get(w: Weights, name: string, size: number): Float32Array {
  const t = w(name) ?? (name.startsWith('model.') ? w(name.slice('model.'.length)) : undefined);
  if (!t) fail(`opt reference: missing ${name}`);
  if (t.length !== size) fail(`opt reference: ${name} has ${t.length} values, expected ${size}`);
  return t;
}

function layerNorm(c: OptRefConfig, w: Weights, name: string, x: Float64Array, seq: number): Float64Array {
  const n = c.hidden;
  const g = c.affine ? get(w, `${name}.weight`, n) : undefined;
  const b = c.affine ? get(w, `${name}.bias`, n) : undefined;
  const y = new Float64Array(seq * n);
  for (let s = 0; s < seq; s++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[s * n + i]!;
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[s * n + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + 1e-5);
    for (let i = 0; i < n; i++) {
      const z = (x[s * n + i]! - mean) * inv;
      y[s * n + i] = g && b ? z * g[i]! + b[i]! : z;
    }
  }
  return y;
}

/** nn.Linear: W [out, in]; bias `${name}.bias` when `bias`. */
function linear(w: Weights, name: string, bias: boolean, x: Float64Array, seq: number, inF: number, outF: number): Float64Array {
  const W = get(w, `${name}.weight`, outF * inF);
  const b = bias ? get(w, `${name}.bias`, outF) : undefined;
  return linearRows(x, seq, inF, outF, W, b);
}

/** One OPTDecoderLayer on h [seq·hidden]. */
export function optRefLayer(c: OptRefConfig, w: Weights, layer: number, h: Float64Array, seq: number): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh;
  const p = `model.decoder.layers.${layer}.`;
  const a = c.preLN ? layerNorm(c, w, p + 'self_attn_layer_norm', h, seq) : h;
  const q = linear(w, p + 'self_attn.q_proj', c.bias, a, seq, E, E);
  const k = linear(w, p + 'self_attn.k_proj', c.bias, a, seq, E, E);
  const v = linear(w, p + 'self_attn.v_proj', c.bias, a, seq, E, E);
  const scaling = Math.pow(d, -0.5);
  for (let i = 0; i < q.length; i++) q[i] = q[i]! * scaling;
  const out = new Float64Array(seq * E);
  const probs = new Float64Array(seq);
  for (let hd = 0; hd < nh; hd++) {
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[i * E + hd * d + t]! * k[j * E + hd * d + t]!;
        probs[j] = dot;
        if (dot > max) max = dot;
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) { probs[j] = Math.exp(probs[j]! - max); sum += probs[j]!; }
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) acc += (probs[j]! / sum) * v[j * E + hd * d + t]!;
        out[i * E + hd * d + t] = acc;
      }
    }
  }
  const o = linear(w, p + 'self_attn.out_proj', c.bias, out, seq, E, E);
  let h1: Float64Array = new Float64Array(seq * E);
  for (let i = 0; i < h1.length; i++) h1[i] = h[i]! + o[i]!;
  if (!c.preLN) h1 = layerNorm(c, w, p + 'self_attn_layer_norm', h1, seq);
  const f = c.preLN ? layerNorm(c, w, p + 'final_layer_norm', h1, seq) : h1;
  const up = linear(w, p + 'fc1', c.bias, f, seq, E, c.ffn);
  for (let i = 0; i < up.length; i++) up[i] = act(c.act, up[i]!);
  const down = linear(w, p + 'fc2', c.bias, up, seq, c.ffn, E);
  let h2: Float64Array = new Float64Array(seq * E);
  for (let i = 0; i < h2.length; i++) h2[i] = h1[i]! + down[i]!;
  if (!c.preLN) h2 = layerNorm(c, w, p + 'final_layer_norm', h2, seq);
  return h2;
}

/** Token (+project_in) + learned position embeddings, positions 0..seq−1. */
export function optRefEmbed(c: OptRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, P = c.proj, seq = ids.length;
  if (seq > c.positions) fail(`opt reference: ${seq} tokens > max_position_embeddings ${c.positions}`);
  const tok = get(w, 'model.decoder.embed_tokens.weight', c.vocab * P);
  let e: Float64Array = new Float64Array(seq * P);
  ids.forEach((id, s) => {
    if (!(id >= 0 && id < c.vocab)) fail(`opt reference: token ${id} outside [0, ${c.vocab})`);
    for (let i = 0; i < P; i++) e[s * P + i] = tok[id * P + i]!;
  });
  if (P !== E) e = linear(w, 'model.decoder.project_in', false, e, seq, P, E);
  const pos = get(w, 'model.decoder.embed_positions.weight', (c.positions + 2) * E);
  const h = new Float64Array(seq * E);
  for (let s = 0; s < seq; s++) for (let i = 0; i < E; i++) h[s * E + i] = e[s * E + i]! + pos[(s + 2) * E + i]!;
  return h;
}

/** Logits [seq][vocab]. */
export function optRefForward(c: OptRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, P = c.proj, V = c.vocab, seq = ids.length;
  let h = optRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = optRefLayer(c, w, l, h, seq);
  if (c.finalLN) h = layerNorm(c, w, 'model.decoder.final_layer_norm', h, seq);
  if (P !== E) h = linear(w, 'model.decoder.project_out', false, h, seq, E, P);
  const head = w('lm_head.weight') ?? get(w, 'model.decoder.embed_tokens.weight', V * P);
  return logitsRows(h, seq, P, V, head);
}
