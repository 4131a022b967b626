/**
 * Independent float64 reference forward for Llama-family decoders (llama / mistral / qwen2).
 *
 * TEST ORACLE ONLY. Written with plain loops straight from the math of Hugging Face
 * transformers' modeling_llama.py (and the mistral / qwen2 variants), so that our ONNX graphs
 * can be checked against something that shares no code with them. Clarity beats speed here.
 *
 * Conventions (all as in transformers):
 *  - Linear weights are HF `[out, in]` row-major: y[o] = sum_i W[o*in + i] * x[i] (+ b[o]).
 *  - Hidden states are `[seq, hidden]` row-major Float64Arrays.
 *  - RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)).
 *  - RoPE in the "rotate_half" convention: inv_freq[i] = theta^(-2i/d), i < d/2;
 *    cos/sin(pos * inv_freq) are duplicated over both halves of the head
 *    (`emb = cat(freqs, freqs)`), then
 *      q' = q * cos + rotate_half(q) * sin,   rotate_half(x) = cat(-x[d/2:], x[:d/2])
 *    with cos and sin multiplied by `attentionScaling` (HF's rope "attention_factor", 1 by default).
 *    HF computes inv_freq and cos/sin in float32; this reference keeps float64 throughout.
 *  - GQA: query head h reads kv head floor(h / (numHeads / numKvHeads)) (HF repeat_kv).
 *  - Attention scale 1/sqrt(headDim); causal. Sliding window (current transformers
 *    masking_utils: `sliding_window_overlay` AND causal): key j is visible to query i iff
 *    i - window < j <= i, i.e. exactly `window` keys including the query position itself.
 *  - MLP: down(silu(gate(x)) * up(x)), silu(x) = x * sigmoid(x).
 *  - lm_head.weight, or model.embed_tokens.weight when word embeddings are tied.
 */
import { fail } from '../../src/errors.ts';

export type LayerType = 'full_attention' | 'sliding_attention';

export interface RefConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (qwen2; llama `attention_bias`). o_proj bias is used when present in the weights. */
  attentionBias?: boolean;
  /** gate/up/down carry biases (llama `mlp_bias`). */
  mlpBias?: boolean;
  /** Sliding-window size in tokens; null/undefined = full causal attention. */
  slidingWindow?: number | null;
  /** Per-layer attention kind (HF `layer_types`); when absent and slidingWindow is set, every layer slides. */
  layerTypes?: LayerType[];
  /** Optional override of the rotary inverse frequencies (length headDim/2), e.g. for rope scaling. */
  invFreq?: Float64Array;
  /** Multiplies cos and sin (HF rope `attention_factor`); default 1. */
  attentionScaling?: number;
}

/** Looks up an HF tensor by name, e.g. 'model.layers.0.self_attn.q_proj.weight' ([out,in] row-major). */
export type Weights = (name: string) => Float32Array | undefined;

// ---------------------------------------------------------------------------------------------
// config.json → RefConfig

function num(cfg: any, key: string, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail(`config.json: missing numeric field "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`config.json: field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function defaultInvFreq(theta: number, headDim: number): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  return inv;
}

/**
 * Builds a RefConfig from an HF config.json object. Understands llama / mistral / qwen2 field
 * names: qwen2 ⇒ q/k/v biases; mistral `sliding_window`; qwen2 `use_sliding_window` +
 * `max_window_layers` (or explicit `layer_types`); rope scaling types "linear" and "llama3"
 * are folded into `invFreq`. Anything else that would change the math is rejected.
 */
export function refConfigFromJson(configJson: any): RefConfig {
  if (configJson === null || typeof configJson !== 'object') fail('config.json: expected a JSON object');
  const c = configJson;
  const modelType: string = c.model_type ?? 'llama';
  if (!['llama', 'mistral', 'qwen2'].includes(modelType)) fail(`config.json: model_type "${modelType}" is not supported by the reference forward (llama, mistral, qwen2)`);
  const act = c.hidden_act ?? c.hidden_activation ?? 'silu';
  if (act !== 'silu') fail(`config.json: hidden_act "${act}" is not supported (silu only)`);

  const hiddenSize = num(c, 'hidden_size');
  const numHeads = num(c, 'num_attention_heads');
  const numKvHeads = num(c, 'num_key_value_heads', numHeads);
  const headDim = num(c, 'head_dim', Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) fail(`config.json: num_attention_heads ${numHeads} not divisible by num_key_value_heads ${numKvHeads}`);
  if (headDim % 2 !== 0) fail(`config.json: head_dim ${headDim} must be even for RoPE`);
  if ((c.partial_rotary_factor ?? 1) !== 1) fail('config.json: partial_rotary_factor != 1 is not supported');

  const rope = c.rope_scaling ?? null;
  const ropeParams = c.rope_parameters ?? null; // transformers v5 layout
  const ropeTheta = num(c, 'rope_theta', ropeParams?.rope_theta ?? 10000);
  const scaling = rope ?? ropeParams;
  const ropeType: string = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';

  const cfg: RefConfig = {
    hiddenSize,
    intermediateSize: num(c, 'intermediate_size'),
    numLayers: num(c, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: num(c, 'vocab_size'),
    rmsNormEps: num(c, 'rms_norm_eps', 1e-6),
    ropeTheta,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    attentionBias: modelType === 'qwen2' ? true : c.attention_bias === true,
    mlpBias: c.mlp_bias === true,
    slidingWindow: null,
  };

  if (ropeType === 'linear') {
    const factor = num(scaling, 'factor');
    const inv = defaultInvFreq(ropeTheta, headDim);
    for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / factor;
    cfg.invFreq = inv;
  } else if (ropeType === 'llama3') {
    // transformers modeling_rope_utils._compute_llama3_parameters
    const factor = num(scaling, 'factor');
    const lowFreqFactor = num(scaling, 'low_freq_factor');
    const highFreqFactor = num(scaling, 'high_freq_factor');
    const oldContextLen = num(scaling, 'original_max_position_embeddings');
    const lowFreqWavelen = oldContextLen / lowFreqFactor;
    const highFreqWavelen = oldContextLen / highFreqFactor;
    const inv = defaultInvFreq(ropeTheta, headDim);
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highFreqWavelen) continue; // high frequency: unchanged
      if (wavelen > lowFreqWavelen) { inv[i] = f / factor; continue; } // low frequency: divided
      const smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      inv[i] = (1 - smooth) * (f / factor) + smooth * f;
    }
    cfg.invFreq = inv;
  } else if (ropeType !== 'default') {
    fail(`config.json: rope scaling type "${ropeType}" is not supported by the reference forward`);
  }

  const numLayers = cfg.numLayers;
  if (modelType === 'mistral') {
    cfg.slidingWindow = c.sliding_window ?? null;
  } else if (modelType === 'qwen2') {
    // Qwen2Config: sliding_window only counts when use_sliding_window; layers >= max_window_layers slide.
    const window = c.use_sliding_window ? (c.sliding_window ?? null) : null;
    cfg.slidingWindow = window;
    if (window !== null) {
      const maxWindowLayers = num(c, 'max_window_layers', 28);
      cfg.layerTypes = Array.from({ length: numLayers }, (_, i): LayerType => (i >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
    }
  } else if (c.sliding_window != null) {
    fail('config.json: sliding_window on a llama config is not supported');
  }
  if (Array.isArray(c.layer_types)) {
    if (c.layer_types.length !== numLayers) fail(`config.json: layer_types has ${c.layer_types.length} entries, expected ${numLayers}`);
    for (const t of c.layer_types) if (t !== 'full_attention' && t !== 'sliding_attention') fail(`config.json: unknown layer type "${t}"`);
    cfg.layerTypes = c.layer_types.slice();
    if (cfg.layerTypes!.includes('sliding_attention') && cfg.slidingWindow == null) {
      cfg.slidingWindow = c.sliding_window ?? fail('config.json: layer_types has sliding_attention but sliding_window is null');
    }
  }
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// building blocks

function need(w: Weights, name: string, size: number): Float32Array {
  const t = w(name);
  if (t === undefined) fail(`reference forward: missing tensor ${name}`);
  if (t.length !== size) fail(`reference forward: tensor ${name} has ${t.length} elements, expected ${size}`);
  return t;
}

function optional(w: Weights, name: string, size: number): Float32Array | undefined {
  const t = w(name);
  if (t !== undefined && t.length !== size) fail(`reference forward: tensor ${name} has ${t.length} elements, expected ${size}`);
  return t;
}

/** y[s, o] = sum_i x[s, i] * W[o, i] + b[o]  for W stored [out, in]. */
function linear(x: Float64Array, seq: number, inF: number, outF: number, W: Float32Array, b?: Float32Array): Float64Array {
  const y = new Float64Array(seq * outF);
  for (let s = 0; s < seq; s++) {
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += x[s * inF + i]! * W[o * inF + i]!;
      y[s * outF + o] = b ? acc + b[o]! : acc;
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, seq: number, dim: number, weight: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(seq * dim);
  for (let s = 0; s < seq; s++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[s * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[s * dim + i] = weight[i]! * (x[s * dim + i]! * inv);
  }
  return y;
}

function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/** The rotary inverse frequencies in use (override or theta^(-2i/d)). */
export function refInvFreq(cfg: RefConfig): Float64Array {
  const inv = cfg.invFreq ?? defaultInvFreq(cfg.ropeTheta, cfg.headDim);
  if (inv.length !== cfg.headDim / 2) fail(`reference forward: invFreq has ${inv.length} entries, expected ${cfg.headDim / 2}`);
  return inv;
}

/** cos/sin tables [seq, headDim] with the frequencies duplicated over both halves (HF `cat(freqs, freqs)`). */
export function refRopeTables(cfg: RefConfig, seq: number): { cos: Float64Array; sin: Float64Array } {
  const d = cfg.headDim;
  const half = d / 2;
  const inv = refInvFreq(cfg);
  const scale = cfg.attentionScaling ?? 1;
  const cos = new Float64Array(seq * d);
  const sin = new Float64Array(seq * d);
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < d; i++) {
      const angle = p * inv[i % half]!;
      cos[p * d + i] = Math.cos(angle) * scale;
      sin[p * d + i] = Math.sin(angle) * scale;
    }
  }
  return { cos, sin };
}

/** In-place RoPE on a [seq, nHeads*headDim] projection: x*cos + rotate_half(x)*sin per head. */
function applyRotary(x: Float64Array, seq: number, nHeads: number, d: number, cos: Float64Array, sin: Float64Array): void {
  const half = d / 2;
  const rotated = new Float64Array(d);
  for (let p = 0; p < seq; p++) {
    for (let h = 0; h < nHeads; h++) {
      const base = p * nHeads * d + h * d;
      // rotate_half(x) = cat(-x2, x1)
      for (let i = 0; i < half; i++) {
        rotated[i] = -x[base + half + i]!;
        rotated[half + i] = x[base + i]!;
      }
      for (let i = 0; i < d; i++) {
        x[base + i] = x[base + i]! * cos[p * d + i]! + rotated[i]! * sin[p * d + i]!;
      }
    }
  }
}

function layerWindow(cfg: RefConfig, layerIdx: number): number | null {
  const win = cfg.slidingWindow ?? null;
  if (win === null) return null;
  if (cfg.layerTypes && cfg.layerTypes[layerIdx] !== 'sliding_attention') return null;
  return win;
}

/** Whether key position j is visible to query position i (HF causal ∧ sliding_window_overlay). */
export function refVisible(i: number, j: number, window: number | null): boolean {
  if (j > i) return false;
  if (window !== null && !(j > i - window)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// model

/** One decoder layer on hidden [seq*hiddenSize] at positions 0..seq-1; returns the new hidden state. */
export function refDecoderLayer(cfg: RefConfig, w: Weights, layerIdx: number, hidden: Float64Array, seq: number): Float64Array {
  const H = cfg.hiddenSize, I = cfg.intermediateSize;
  const nH = cfg.numHeads, nKv = cfg.numKvHeads, d = cfg.headDim;
  const qDim = nH * d, kvDim = nKv * d;
  if (hidden.length !== seq * H) fail(`refDecoderLayer: hidden has ${hidden.length} values, expected ${seq}*${H}`);
  if (nH % nKv !== 0) fail(`refDecoderLayer: numHeads ${nH} not divisible by numKvHeads ${nKv}`);
  const p = `model.layers.${layerIdx}.`;

  // --- self attention block
  const x1 = rmsNorm(hidden, seq, H, need(w, p + 'input_layernorm.weight', H), cfg.rmsNormEps);
  const bias = (name: string, size: number): Float32Array | undefined =>
    cfg.attentionBias ? need(w, p + `self_attn.${name}.bias`, size) : undefined;
  const q = linear(x1, seq, H, qDim, need(w, p + 'self_attn.q_proj.weight', qDim * H), bias('q_proj', qDim));
  const k = linear(x1, seq, H, kvDim, need(w, p + 'self_attn.k_proj.weight', kvDim * H), bias('k_proj', kvDim));
  const v = linear(x1, seq, H, kvDim, need(w, p + 'self_attn.v_proj.weight', kvDim * H), bias('v_proj', kvDim));

  const { cos, sin } = refRopeTables(cfg, seq);
  applyRotary(q, seq, nH, d, cos, sin);
  applyRotary(k, seq, nKv, d, cos, sin);

  const groups = nH / nKv;
  const scale = 1 / Math.sqrt(d);
  const window = layerWindow(cfg, layerIdx);
  const attnOut = new Float64Array(seq * qDim);
  const scores = new Float64Array(seq);
  for (let h = 0; h < nH; h++) {
    const kvh = Math.floor(h / groups);
    for (let i = 0; i < seq; i++) {
      let max = -Infinity;
      for (let j = 0; j < seq; j++) {
        if (!refVisible(i, j, window)) { scores[j] = -Infinity; continue; }
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[i * qDim + h * d + t]! * k[j * kvDim + kvh * d + t]!;
        scores[j] = dot * scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let sum = 0;
      for (let j = 0; j < seq; j++) {
        const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
        scores[j] = e;
        sum += e;
      }
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j < seq; j++) acc += (scores[j]! / sum) * v[j * kvDim + kvh * d + t]!;
        attnOut[i * qDim + h * d + t] = acc;
      }
    }
  }
  const o = linear(attnOut, seq, qDim, H, need(w, p + 'self_attn.o_proj.weight', H * qDim), optional(w, p + 'self_attn.o_proj.bias', H));
  const h1 = new Float64Array(seq * H);
  for (let i = 0; i < seq * H; i++) h1[i] = hidden[i]! + o[i]!;

  // --- MLP block
  const x2 = rmsNorm(h1, seq, H, need(w, p + 'post_attention_layernorm.weight', H), cfg.rmsNormEps);
  const mb = (name: string, size: number): Float32Array | undefined => (cfg.mlpBias ? need(w, p + `mlp.${name}.bias`, size) : undefined);
  const gate = linear(x2, seq, H, I, need(w, p + 'mlp.gate_proj.weight', I * H), mb('gate_proj', I));
  const up = linear(x2, seq, H, I, need(w, p + 'mlp.up_proj.weight', I * H), mb('up_proj', I));
  const act = new Float64Array(seq * I);
  for (let i = 0; i < seq * I; i++) act[i] = silu(gate[i]!) * up[i]!;
  const down = linear(act, seq, I, H, need(w, p + 'mlp.down_proj.weight', H * I), mb('down_proj', H));
  const out = new Float64Array(seq * H);
  for (let i = 0; i < seq * H; i++) out[i] = h1[i]! + down[i]!;
  return out;
}

/** Embedding lookup: [seq*hiddenSize]. */
export function refEmbed(cfg: RefConfig, w: Weights, ids: number[]): Float64Array {
  const H = cfg.hiddenSize;
  const emb = need(w, 'model.embed_tokens.weight', cfg.vocabSize * H);
  const out = new Float64Array(ids.length * H);
  ids.forEach((id, s) => {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) fail(`reference forward: token id ${id} at position ${s} is outside the vocabulary [0, ${cfg.vocabSize})`);
    for (let i = 0; i < H; i++) out[s * H + i] = emb[id * H + i]!;
  });
  return out;
}

/** Final RMSNorm + lm_head (or tied embeddings) on hidden [seq*hiddenSize]: logits per position. */
export function refNormAndHead(cfg: RefConfig, w: Weights, hidden: Float64Array, seq: number): Float64Array[] {
  const H = cfg.hiddenSize, V = cfg.vocabSize;
  const normed = rmsNorm(hidden, seq, H, need(w, 'model.norm.weight', H), cfg.rmsNormEps);
  const head = cfg.tieWordEmbeddings ? need(w, 'model.embed_tokens.weight', V * H) : need(w, 'lm_head.weight', V * H);
  const logits = linear(normed, seq, H, V, head);
  const out: Float64Array[] = [];
  for (let s = 0; s < seq; s++) out.push(logits.slice(s * V, (s + 1) * V));
  return out;
}

/** Full forward: logits for every position, each [vocabSize]. */
export function refForward(cfg: RefConfig, w: Weights, ids: number[]): Float64Array[] {
  if (ids.length === 0) fail('reference forward: empty token sequence');
  let hidden = refEmbed(cfg, w, ids);
  for (let l = 0; l < cfg.numLayers; l++) hidden = refDecoderLayer(cfg, w, l, hidden, ids.length);
  return refNormAndHead(cfg, w, hidden, ids.length);
}

/** log-softmax(logits)[target], computed stably. */
export function logProb(logits: Float64Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[target]! - max - Math.log(sum);
}

/** Mean next-token NLL: positions 0..n-2 predicting ids 1..n-1 (as HF's shifted CrossEntropyLoss). */
export function refNll(cfg: RefConfig, w: Weights, ids: number[]): number {
  if (ids.length < 2) fail('refNll: need at least 2 tokens');
  const logits = refForward(cfg, w, ids);
  let total = 0;
  for (let t = 0; t + 1 < ids.length; t++) total -= logProb(logits[t]!, ids[t + 1]!);
  return total / (ids.length - 1);
}
