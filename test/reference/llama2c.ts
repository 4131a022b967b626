/**
 * A second, separately written Llama forward in the structure of karpathy's llama2.c `run.c`:
 * one token at a time, a per-layer KV cache, flat "run state" buffers (x, xb, xb2, hb, hb2, q, att,
 * logits) and the run.c helpers rmsnorm / matmul / softmax. TEST ORACLE ONLY — it exists to
 * cross-check `refForward` (test/reference/llama-ref.ts), so it deliberately shares no code with it
 * (only the RefConfig / Weights types).
 *
 * RoPE pairing — read this before comparing with run.c:
 *   run.c rotates adjacent pairs (2i, 2i+1) of each head with frequency theta^(-2i/headDim),
 *   because Meta's original checkpoints store q/k rows in "interleaved" order. Hugging Face
 *   checkpoints (including ../shared/models/stories260K, converted from stories260K.bin) have the
 *   q_proj/k_proj rows PERMUTED by the converter into "rotate_half" order: within a head, the pair
 *   that run.c sees at (2i, 2i+1) lives at (i, i + headDim/2). So on HF weights this file rotates
 *   the pairs (i, i + headDim/2) with frequency index i — the same rotation as run.c, only addressed
 *   through the permuted layout. Using (2i, 2i+1) on HF weights would be wrong.
 *
 * Extras beyond run.c, so it can cross-check qwen2/mistral-style configs too: q/k/v (and o) biases,
 * optional mlp biases, a sliding window over the KV cache (the `window` most recent positions,
 * including the current one), cfg.invFreq / cfg.attentionScaling, and cfg.rmsNormEps instead of
 * run.c's hard-coded 1e-5.
 */
import type { RefConfig, Weights } from './llama-ref.ts';

// ----- run.c helpers (float64) -----------------------------------------------------------------

/** o = weight * (x / sqrt(mean(x^2) + eps)) */
function rmsnorm(o: Float64Array, x: Float64Array, weight: Float32Array, size: number, eps: number): void {
  let ss = 0;
  for (let j = 0; j < size; j++) ss += x[j]! * x[j]!;
  ss /= size;
  ss += eps;
  ss = 1 / Math.sqrt(ss);
  for (let j = 0; j < size; j++) o[j] = weight[j]! * (ss * x[j]!);
}

/** In-place softmax over x[0..size). */
function softmax(x: Float64Array, size: number): void {
  let maxVal = x[0]!;
  for (let i = 1; i < size; i++) if (x[i]! > maxVal) maxVal = x[i]!;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    x[i] = Math.exp(x[i]! - maxVal);
    sum += x[i]!;
  }
  for (let i = 0; i < size; i++) x[i] = x[i]! / sum;
}

/** W (d,n) @ x (n,) -> xout (d,)   (run.c matmul; same layout as HF [out,in]) */
function matmul(xout: Float64Array, x: Float64Array, w: Float32Array, n: number, d: number): void {
  for (let i = 0; i < d; i++) {
    let val = 0;
    for (let j = 0; j < n; j++) val += w[i * n + j]! * x[j]!;
    xout[i] = val;
  }
}

function addBias(x: Float64Array, b: Float32Array | undefined): void {
  if (!b) return;
  for (let i = 0; i < b.length; i++) x[i] = x[i]! + b[i]!;
}

// ----- weights, in run.c's TransformerWeights shape ---------------------------------------------

interface LayerWeights {
  rmsAtt: Float32Array; rmsFfn: Float32Array;
  wq: Float32Array; wk: Float32Array; wv: Float32Array; wo: Float32Array;
  bq?: Float32Array; bk?: Float32Array; bv?: Float32Array; bo?: Float32Array;
  w1: Float32Array; w2: Float32Array; w3: Float32Array; // gate, down, up
  b1?: Float32Array; b2?: Float32Array; b3?: Float32Array;
}

function get(w: Weights, name: string, size: number): Float32Array {
  const t = w(name);
  if (!t) throw new Error(`llama2c: missing tensor ${name}`);
  if (t.length !== size) throw new Error(`llama2c: ${name} has ${t.length} elements, expected ${size}`);
  return t;
}

/** llama2.c-style forward with a KV cache. Call `forward(token, pos)` for pos = 0, 1, 2, ... */
export class Llama2c {
  readonly cfg: RefConfig;
  readonly seqLen: number;
  private readonly tokenEmbeddingTable: Float32Array;
  private readonly layers: LayerWeights[];
  private readonly rmsFinal: Float32Array;
  private readonly wcls: Float32Array;
  private readonly freqs: Float64Array;
  // run state
  private readonly x: Float64Array; private readonly xb: Float64Array; private readonly xb2: Float64Array;
  private readonly hb: Float64Array; private readonly hb2: Float64Array;
  private readonly q: Float64Array; private readonly att: Float64Array;
  private readonly keyCache: Float64Array; private readonly valueCache: Float64Array;

  constructor(cfg: RefConfig, w: Weights, seqLen: number) {
    this.cfg = cfg;
    this.seqLen = seqLen;
    const dim = cfg.hiddenSize, hidden = cfg.intermediateSize, hs = cfg.headDim;
    const qDim = cfg.numHeads * hs, kvDim = cfg.numKvHeads * hs;
    this.tokenEmbeddingTable = get(w, 'model.embed_tokens.weight', cfg.vocabSize * dim);
    this.layers = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const b = (n: string, size: number, on: boolean | undefined): Float32Array | undefined => (on ? get(w, p + n, size) : undefined);
      const bo = w(p + 'self_attn.o_proj.bias');
      this.layers.push({
        rmsAtt: get(w, p + 'input_layernorm.weight', dim),
        rmsFfn: get(w, p + 'post_attention_layernorm.weight', dim),
        wq: get(w, p + 'self_attn.q_proj.weight', qDim * dim),
        wk: get(w, p + 'self_attn.k_proj.weight', kvDim * dim),
        wv: get(w, p + 'self_attn.v_proj.weight', kvDim * dim),
        wo: get(w, p + 'self_attn.o_proj.weight', dim * qDim),
        bq: b('self_attn.q_proj.bias', qDim, cfg.attentionBias),
        bk: b('self_attn.k_proj.bias', kvDim, cfg.attentionBias),
        bv: b('self_attn.v_proj.bias', kvDim, cfg.attentionBias),
        ...(bo ? { bo } : {}),
        w1: get(w, p + 'mlp.gate_proj.weight', hidden * dim),
        w2: get(w, p + 'mlp.down_proj.weight', dim * hidden),
        w3: get(w, p + 'mlp.up_proj.weight', hidden * dim),
        b1: b('mlp.gate_proj.bias', hidden, cfg.mlpBias),
        b2: b('mlp.down_proj.bias', dim, cfg.mlpBias),
        b3: b('mlp.up_proj.bias', hidden, cfg.mlpBias),
      });
    }
    this.rmsFinal = get(w, 'model.norm.weight', dim);
    this.wcls = cfg.tieWordEmbeddings ? this.tokenEmbeddingTable : get(w, 'lm_head.weight', cfg.vocabSize * dim);
    // frequency for rotation index i in [0, hs/2): theta^(-2i/hs), or the configured override
    this.freqs = new Float64Array(hs / 2);
    for (let i = 0; i < hs / 2; i++) this.freqs[i] = cfg.invFreq ? cfg.invFreq[i]! : 1 / Math.pow(cfg.ropeTheta, (2 * i) / hs);

    this.x = new Float64Array(dim);
    this.xb = new Float64Array(Math.max(dim, qDim));
    this.xb2 = new Float64Array(dim);
    this.hb = new Float64Array(hidden);
    this.hb2 = new Float64Array(hidden);
    this.q = new Float64Array(qDim);
    this.att = new Float64Array(cfg.numHeads * seqLen);
    this.keyCache = new Float64Array(cfg.numLayers * seqLen * kvDim);
    this.valueCache = new Float64Array(cfg.numLayers * seqLen * kvDim);
  }

  /** Window for layer l, or null for full causal attention. */
  private windowOf(l: number): number | null {
    const win = this.cfg.slidingWindow ?? null;
    if (win === null) return null;
    if (this.cfg.layerTypes && this.cfg.layerTypes[l] !== 'sliding_attention') return null;
    return win;
  }

  /** Processes `token` at position `pos` (positions must be fed in order); returns the logits [vocab]. */
  forward(token: number, pos: number): Float64Array {
    const c = this.cfg;
    const dim = c.hiddenSize, hiddenDim = c.intermediateSize, hs = c.headDim;
    const kvDim = c.numKvHeads * hs, qDim = c.numHeads * hs;
    const kvMul = c.numHeads / c.numKvHeads; // integer multiplier of the kv sharing in multiquery
    const half = hs / 2;
    const ropeScale = c.attentionScaling ?? 1;
    if (pos < 0 || pos >= this.seqLen) throw new Error(`llama2c: pos ${pos} outside [0, ${this.seqLen})`);
    if (!(token >= 0 && token < c.vocabSize)) throw new Error(`llama2c: token ${token} outside vocab`);
    const { x, xb, xb2, hb, hb2, q, att } = this;

    // copy the token embedding into x
    for (let i = 0; i < dim; i++) x[i] = this.tokenEmbeddingTable[token * dim + i]!;

    for (let l = 0; l < c.numLayers; l++) {
      const L = this.layers[l]!;
      // attention rmsnorm
      rmsnorm(xb, x, L.rmsAtt, dim, c.rmsNormEps);

      // key and value point to this position's slot in the kv cache
      const loff = l * this.seqLen * kvDim;
      const k = this.keyCache.subarray(loff + pos * kvDim, loff + (pos + 1) * kvDim);
      const v = this.valueCache.subarray(loff + pos * kvDim, loff + (pos + 1) * kvDim);

      // qkv matmuls for this position
      const xbIn = xb.subarray(0, dim);
      matmul(q, xbIn, L.wq, dim, qDim); addBias(q, L.bq);
      matmul(k, xbIn, L.wk, dim, kvDim); addBias(k, L.bk);
      matmul(v, xbIn, L.wv, dim, kvDim); addBias(v, L.bv);

      // RoPE: rotate pair (j, j+half) of every head by angle pos*freq[j]   (HF rotate_half layout,
      // i.e. run.c's (2j, 2j+1) pair after the converter's row permutation — see file header)
      for (let j = 0; j < half; j++) {
        const val = pos * this.freqs[j]!;
        const fcr = Math.cos(val) * ropeScale;
        const fci = Math.sin(val) * ropeScale;
        for (let h = 0; h < c.numHeads; h++) {
          const a = h * hs + j, b = a + half;
          const v0 = q[a]!, v1 = q[b]!;
          q[a] = v0 * fcr - v1 * fci;
          q[b] = v0 * fci + v1 * fcr;
        }
        for (let h = 0; h < c.numKvHeads; h++) {
          const a = h * hs + j, b = a + half;
          const v0 = k[a]!, v1 = k[b]!;
          k[a] = v0 * fcr - v1 * fci;
          k[b] = v0 * fci + v1 * fcr;
        }
      }

      // multihead attention over the cached positions
      const win = this.windowOf(l);
      const start = win === null ? 0 : Math.max(0, pos - win + 1);
      for (let h = 0; h < c.numHeads; h++) {
        const qh = h * hs;
        const ah = h * this.seqLen;
        const kvh = Math.floor(h / kvMul) * hs;
        const n = pos - start + 1;
        for (let t = start; t <= pos; t++) {
          const ko = loff + t * kvDim + kvh;
          let score = 0;
          for (let i = 0; i < hs; i++) score += q[qh + i]! * this.keyCache[ko + i]!;
          att[ah + (t - start)] = score / Math.sqrt(hs);
        }
        softmax(att.subarray(ah, ah + n), n);
        // weighted sum of the values into xb
        for (let i = 0; i < hs; i++) xb[qh + i] = 0;
        for (let t = start; t <= pos; t++) {
          const vo = loff + t * kvDim + kvh;
          const a = att[ah + (t - start)]!;
          for (let i = 0; i < hs; i++) xb[qh + i] = xb[qh + i]! + a * this.valueCache[vo + i]!;
        }
      }

      // final attention matmul, then residual
      matmul(xb2, xb.subarray(0, qDim), L.wo, qDim, dim); addBias(xb2, L.bo);
      for (let i = 0; i < dim; i++) x[i] = x[i]! + xb2[i]!;

      // ffn rmsnorm
      rmsnorm(xb, x, L.rmsFfn, dim, c.rmsNormEps);
      // w2(silu(w1(x)) * w3(x))
      matmul(hb, xb.subarray(0, dim), L.w1, dim, hiddenDim); addBias(hb, L.b1);
      matmul(hb2, xb.subarray(0, dim), L.w3, dim, hiddenDim); addBias(hb2, L.b3);
      for (let i = 0; i < hiddenDim; i++) {
        let val = hb[i]!;
        val *= 1 / (1 + Math.exp(-val)); // silu
        hb[i] = val * hb2[i]!;
      }
      matmul(xb, hb, L.w2, hiddenDim, dim); addBias(xb, L.b2);
      for (let i = 0; i < dim; i++) x[i] = x[i]! + xb[i]!;
    }

    // final rmsnorm and classifier
    rmsnorm(x, x, this.rmsFinal, dim, c.rmsNormEps);
    const logits = new Float64Array(c.vocabSize);
    matmul(logits, x, this.wcls, dim, c.vocabSize);
    return logits;
  }
}

/** Runs `ids` through a fresh Llama2c, one token per position; logits for every position. */
export function llama2cForward(cfg: RefConfig, w: Weights, ids: number[]): Float64Array[] {
  const m = new Llama2c(cfg, w, ids.length);
  return ids.map((id, pos) => m.forward(id, pos));
}
