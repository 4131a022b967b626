/**
 * Independent float64 reference forward for GPT-2 (GPT2LMHeadModel).
 *
 * TEST ORACLE ONLY: plain loops written from the math of transformers' modeling_gpt2.py, sharing no code with
 * the ONNX graphs under test.
 *
 *  - h = wte[id] + wpe[position]                      (positions 0..S-1)
 *  - per block:  a = ln_1(h); qkv = Conv1D c_attn(a) split into q | k | v (each n_embd wide, heads contiguous);
 *                scores = q·kᵀ [/ sqrt(head_dim) if scale_attn_weights] [/ (layer_idx+1) if
 *                scale_attn_by_inverse_layer_idx]; causal softmax; h += c_proj(attn)
 *                h += mlp.c_proj(act(mlp.c_fc(ln_2(h))))
 *  - logits = ln_f(h) · lm_headᵀ (lm_head.weight when stored, else wte)
 *  - Conv1D weights are stored [in, out]: y[o] = Σ_i x[i]·W[i, o] + b[o].
 *  - LayerNorm: (x − mean) / sqrt(var + eps) · w + b with the biased variance.
 *  - gelu_new: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).
 * Tensor names are looked up with and without the `transformer.` prefix (base-model checkpoints lack it).
 */
import { fail } from '../../src/errors.ts';
import { act, layerNorm } from './ref-math.ts';

export interface Gpt2RefConfig {
  hidden: number;
  layers: number;
  heads: number;
  inner: number;
  vocab: number;
  positions: number;
  eps: number;
  act: 'gelu_new' | 'relu';
  scaleAttnWeights: boolean;
  scaleByInverseLayerIdx: boolean;
}

export type Weights = (name: string) => Float32Array | undefined;

/** GPT2Config field names and defaults. */
export function gpt2RefConfig(c: any): Gpt2RefConfig {
  if (c?.model_type !== 'gpt2') fail(`gpt2 reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hidden = c.n_embd ?? 768;
  let act = c.activation_function ?? 'gelu_new';
  if (act === 'gelu_pytorch_tanh') act = 'gelu_new';
  if (act !== 'gelu_new' && act !== 'relu') fail(`gpt2 reference: activation ${act} not implemented`);
  return {
    hidden,
    layers: c.n_layer ?? 12,
    heads: c.n_head ?? 12,
    inner: c.n_inner ?? 4 * hidden,
    vocab: c.vocab_size ?? 50257,
    positions: c.n_positions ?? 1024,
    eps: c.layer_norm_epsilon ?? 1e-5,
    act,
    scaleAttnWeights: c.scale_attn_weights ?? true,
    scaleByInverseLayerIdx: c.scale_attn_by_inverse_layer_idx ?? false,
  };
}

function get(w: Weights, name: string, size: number): Float32Array {
  const t = w(name) ?? (name.startsWith('transformer.') ? w(name.slice('transformer.'.length)) : undefined);
  if (!t) fail(`gpt2 reference: missing ${name}`);
  if (t.length !== size) fail(`gpt2 reference: ${name} has ${t.length} values, expected ${size}`);
  return t;
}

/** Conv1D: W [in, out]. */
function conv1d(x: Float64Array, seq: number, inF: number, outF: number, W: Float32Array, b: Float32Array): Float64Array {
  const y = new Float64Array(seq * outF);
  for (let s = 0; s < seq; s++) {
    for (let o = 0; o < outF; o++) {
      let acc = b[o]!;
      for (let i = 0; i < inF; i++) acc += x[s * inF + i]! * W[i * outF + o]!;
      y[s * outF + o] = acc;
    }
  }
  return y;
}

/** One GPT2Block on h [seq·hidden] (positions 0..seq−1). */
export function gpt2RefBlock(c: Gpt2RefConfig, w: Weights, layer: number, h: Float64Array, seq: number): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh, I = c.inner;
  const p = `transformer.h.${layer}.`;
  const a = layerNorm(h, seq, E, get(w, p + 'ln_1.weight', E), get(w, p + 'ln_1.bias', E), c.eps);
  const qkv = conv1d(a, seq, E, 3 * E, get(w, p + 'attn.c_attn.weight', E * 3 * E), get(w, p + 'attn.c_attn.bias', 3 * E));
  let scale = c.scaleAttnWeights ? 1 / Math.sqrt(d) : 1;
  if (c.scaleByInverseLayerIdx) scale /= layer + 1;
  const out = new Float64Array(seq * E);
  const probs = new Float64Array(seq);
  for (let hd = 0; hd < nh; hd++) {
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += qkv[i * 3 * E + hd * d + t]! * qkv[j * 3 * E + E + hd * d + t]!;
        probs[j] = dot * scale;
        if (probs[j]! > max) max = probs[j]!;
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) { probs[j] = Math.exp(probs[j]! - max); sum += probs[j]!; }
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) acc += (probs[j]! / sum) * qkv[j * 3 * E + 2 * E + hd * d + t]!;
        out[i * E + hd * d + t] = acc;
      }
    }
  }
  const proj = conv1d(out, seq, E, E, get(w, p + 'attn.c_proj.weight', E * E), get(w, p + 'attn.c_proj.bias', E));
  const h1 = new Float64Array(seq * E);
  for (let i = 0; i < seq * E; i++) h1[i] = h[i]! + proj[i]!;
  const m = layerNorm(h1, seq, E, get(w, p + 'ln_2.weight', E), get(w, p + 'ln_2.bias', E), c.eps);
  const fc = conv1d(m, seq, E, I, get(w, p + 'mlp.c_fc.weight', E * I), get(w, p + 'mlp.c_fc.bias', I));
  for (let i = 0; i < fc.length; i++) fc[i] = act(c.act, fc[i]!);
  const down = conv1d(fc, seq, I, E, get(w, p + 'mlp.c_proj.weight', I * E), get(w, p + 'mlp.c_proj.bias', E));
  const h2 = new Float64Array(seq * E);
  for (let i = 0; i < seq * E; i++) h2[i] = h1[i]! + down[i]!;
  return h2;
}

/** wte[id] + wpe[s]. */
export function gpt2RefEmbed(c: Gpt2RefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden;
  if (ids.length > c.positions) fail(`gpt2 reference: ${ids.length} tokens > n_positions ${c.positions}`);
  const wte = get(w, 'transformer.wte.weight', c.vocab * E), wpe = get(w, 'transformer.wpe.weight', c.positions * E);
  const h = new Float64Array(ids.length * E);
  ids.forEach((id, s) => {
    if (!(id >= 0 && id < c.vocab)) fail(`gpt2 reference: token ${id} outside [0, ${c.vocab})`);
    for (let i = 0; i < E; i++) h[s * E + i] = wte[id * E + i]! + wpe[s * E + i]!;
  });
  return h;
}

/** Logits [seq][vocab]. */
export function gpt2RefForward(c: Gpt2RefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, V = c.vocab, seq = ids.length;
  let h = gpt2RefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = gpt2RefBlock(c, w, l, h, seq);
  const n = layerNorm(h, seq, E, get(w, 'transformer.ln_f.weight', E), get(w, 'transformer.ln_f.bias', E), c.eps);
  const head = w('lm_head.weight') ?? get(w, 'transformer.wte.weight', V * E); // nn.Linear [vocab, hidden]
  const rows: Float64Array[] = [];
  for (let s = 0; s < seq; s++) {
    const r = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let acc = 0;
      for (let i = 0; i < E; i++) acc += n[s * E + i]! * head[v * E + i]!;
      r[v] = acc;
    }
    rows.push(r);
  }
  return rows;
}
