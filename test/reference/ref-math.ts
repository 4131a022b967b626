/**
 * Float64 plain-loop building blocks shared by the reference forwards (test/reference/*-ref.ts).
 *
 * TEST ORACLE ONLY: shares no code with the ONNX graphs under test. Conventions (as transformers):
 *  - hidden states [seq, n] row-major Float64Arrays; nn.Linear weights [out, in]: y[o] = Σ_i W[o·in + i]·x[i] + b[o];
 *  - q [seq, heads·d] with head h in columns h·d … h·d + d − 1;
 *  - `mask` (optional, per key, 1 = real token) is the 2-D attention_mask; positions for rotary are HF generate's
 *    position_ids = cumsum(mask) − 1 (1 where masked; those rows are never compared).
 */
import { fail } from '../../src/errors.ts';

export type Weights = (name: string) => Float32Array | undefined;

/** Tensor `name` of `size` values; also looked up without its first name component (base-model checkpoints). */
export function tensor(w: Weights, name: string, size: number, who: string): Float32Array {
  const dot = name.indexOf('.');
  const t = w(name) ?? (dot > 0 ? w(name.slice(dot + 1)) : undefined);
  if (!t) fail(`${who} reference: missing ${name}`);
  if (t.length !== size) fail(`${who} reference: ${name} has ${t.length} values, expected ${size}`);
  return t;
}

export function linear(x: Float64Array, seq: number, inF: number, outF: number, W: Float32Array, b?: Float32Array): Float64Array {
  const y = new Float64Array(seq * outF);
  for (let s = 0; s < seq; s++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x[s * inF + i]! * W[o * inF + i]!;
      y[s * outF + o] = acc;
    }
  }
  return y;
}

/** (x − mean) / sqrt(var + eps) · w + b, biased variance. */
export function layerNorm(x: Float64Array, seq: number, n: number, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(seq * n);
  for (let s = 0; s < seq; s++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[s * n + i]!;
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[s * n + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) y[s * n + i] = (x[s * n + i]! - mean) * inv * w[i]! + b[i]!;
  }
  return y;
}

/** x / sqrt(mean(x²) + eps) · (offset + w). */
export function rmsNorm(x: Float64Array, seq: number, n: number, w: Float32Array, eps: number, offset: number): Float64Array {
  const y = new Float64Array(seq * n);
  for (let s = 0; s < seq; s++) {
    let ms = 0;
    for (let i = 0; i < n; i++) ms += x[s * n + i]! ** 2;
    const inv = 1 / Math.sqrt(ms / n + eps);
    for (let i = 0; i < n; i++) y[s * n + i] = x[s * n + i]! * inv * (offset + w[i]!);
  }
  return y;
}

/** erf to ~1e-15: Maclaurin series for |x| < 2.5, else the continued fraction of erfc. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 100; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated bottom-up.
  let f = ax;
  for (let k = 80; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** ACT2FN: gelu (erf), tanh-approximate gelu variants, relu, silu. */
export function act(name: string, v: number): number {
  switch (name) {
    case 'gelu': return 0.5 * v * (1 + erf(v / Math.SQRT2));
    case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_tanh': case 'gelu_fast':
      return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    case 'relu': return v > 0 ? v : 0;
    case 'silu': case 'swish': return v / (1 + Math.exp(-v));
    default: fail(`reference: activation ${name} not implemented`);
  }
}

/** position_ids as HF generate builds them from a 2-D attention mask (all ones → 0..seq−1). */
export function positionsFromMask(seq: number, mask?: number[]): number[] {
  if (!mask) return Array.from({ length: seq }, (_, i) => i);
  let c = 0;
  return mask.map((m) => { c += m; return m ? c - 1 : 1; });
}

/** In-place rotate_half rotary on [seq, heads·d] with inv_freq[i] = theta^(−2i/d). */
export function rotate(x: Float64Array, seq: number, heads: number, d: number, positions: number[], theta: number): void {
  const half = d / 2;
  for (let s = 0; s < seq; s++) {
    for (let h = 0; h < heads; h++) {
      const o = s * heads * d + h * d;
      for (let i = 0; i < half; i++) {
        const ang = positions[s]! * theta ** ((-2 * i) / d);
        const c = Math.cos(ang), sn = Math.sin(ang);
        const a = x[o + i]!, b = x[o + half + i]!;
        x[o + i] = a * c - b * sn;
        x[o + half + i] = b * c + a * sn;
      }
    }
  }
}

/**
 * Causal softmax attention: query head h reads kv head floor(h / (heads / kvHeads)); score = scale·q·k + bias(h, j);
 * key j visible to query i iff j ≤ i and mask[j]. Returns [seq, heads·d].
 */
export function causalAttention(q: Float64Array, k: Float64Array, v: Float64Array, seq: number, heads: number, kvHeads: number, d: number,
  scale: number, mask?: number[], bias?: (h: number, j: number) => number): Float64Array {
  const out = new Float64Array(seq * heads * d);
  const rep = heads / kvHeads;
  const p = new Float64Array(seq);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / rep);
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      const vis = (j: number) => j <= i && (!mask || mask[j] === 1);
      for (let j = 0; j <= i; j++) {
        if (!vis(j)) continue;
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[(i * heads + h) * d + t]! * k[(j * kvHeads + kh) * d + t]!;
        p[j] = dot * scale + (bias ? bias(h, j) : 0);
        if (p[j]! > max) max = p[j]!;
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) if (vis(j)) { p[j] = Math.exp(p[j]! - max); sum += p[j]!; }
      if (sum === 0) continue; // fully masked row (padding query): never compared
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) if (vis(j)) acc += (p[j]! / sum) * v[(j * kvHeads + kh) * d + t]!;
        out[(i * heads + h) * d + t] = acc;
      }
    }
  }
  return out;
}

/** logits rows = x · Wᵀ for W [vocab, n]. */
export function logitsRows(x: Float64Array, seq: number, n: number, vocab: number, W: Float32Array): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let s = 0; s < seq; s++) {
    const r = new Float64Array(vocab);
    for (let o = 0; o < vocab; o++) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += x[s * n + i]! * W[o * n + i]!;
      r[o] = acc;
    }
    rows.push(r);
  }
  return rows;
}

export function add(a: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + b[i]!;
  return y;
}
