/**
 * Rotary position embeddings (RoPE) and every `rope_scaling` type of 🤗 Transformers, as
 * transformers/modeling_rope_utils.py (5.18) computes them:
 *
 * | rope_type  | inverse frequencies (dim = rotaryDim, base = rope_theta, θᵢ = base^(−2i/dim))      | cos/sin scale |
 * |------------|-------------------------------------------------------------------------------------|---------------|
 * | default    | θᵢ                                                                                   | 1             |
 * | linear     | θᵢ / factor                                                                          | 1             |
 * | dynamic    | NTK: base' = base·(factor·L/maxPos − (factor − 1))^(dim/(dim−2)) when L > maxPos      | 1             |
 * | yarn       | blend of θᵢ (extrapolation) and θᵢ/factor (interpolation) over a linear ramp between   | attention_factor (mscale) |
 * |            | the correction dims of beta_fast / beta_slow rotations at original_max_position_embeddings |  |
 * | longrope   | θᵢ / short_factorᵢ while L ≤ original_max_position_embeddings, else θᵢ / long_factorᵢ   | attention_factor |
 * | llama3     | θᵢ kept for short wavelengths, /factor for long ones, smoothed in between             | 1             |
 *
 * L is the length of the current forward call, max(position_ids) + 1 over the whole batch (dynamic_rope_update). For
 * dynamic and longrope the graphs compute the frequencies in-graph from the call's position ids, so one graph serves
 * every length: a full forward uses its own L, and each KV step uses the L of its new positions while the cached keys
 * keep the rotation they were written with — exactly what Transformers' per-call update gives for a full forward and
 * for monotonically growing cached decoding. (Transformers additionally remembers a grown table between calls while L
 * stays between maxPos and the longest L seen; a stateless graph cannot, and generation never hits that case.)
 * The serving graph (kvMode 'slots') takes L per row instead — each row is a separate request, so it gets the
 * frequencies of its own length, as in a run alone, whatever else shares the step.
 *
 * Frequencies here are computed in float64 and rounded to fp32 once; Transformers computes them in fp32 (differences
 * of an ulp). cos/sin use HF's rotate_half layout (frequencies repeated over both halves); GPT-J's rotate_every_two
 * layout reads the same tables (applyRopeInterleaved).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig, RopeScaling } from '../io/model-config.ts';
import { fail } from '../errors.ts';

/** The rope_type values gptqjs computes (Transformers' ROPE_INIT_FUNCTIONS except gemma4's "proportional"). */
export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'] as const;

export interface RopeParams {
  /** rotaryDim/2 inverse frequencies: for dynamic those of L ≤ max_position_embeddings, for longrope the short ones. */
  invFreq: Float64Array;
  /** Multiplier of cos and sin (Transformers' attention_scaling: yarn and longrope; else 1). */
  attentionScaling: number;
  /** True when the frequencies depend on the call's sequence length (dynamic, longrope): see ropeInvFreqForSeqLen. */
  dynamic: boolean;
}

/** base^(−2i/dim), i < dim/2. */
function baseInvFreq(base: number, dim: number): Float64Array {
  const o = new Float64Array(dim >> 1);
  for (let i = 0; i < o.length; i++) o[i] = 1 / base ** ((2 * i) / dim);
  return o;
}

/** A numeric field of the rope dict (null/absent → undefined); one-line error naming it. */
function num(cfg: ModelConfig, s: RopeScaling, key: string): number | undefined {
  const x = s.raw[key];
  if (x === undefined || x === null) return undefined;
  if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${cfg.path}: field "${s.field}.${key}" must be a number, got ${JSON.stringify(x)}`);
  return x;
}

/** A required numeric field of the rope dict. */
function need(cfg: ModelConfig, s: RopeScaling, key: string): number {
  const v = num(cfg, s, key);
  if (v === undefined) fail(`${cfg.path}: rope_scaling type "${s.type}" needs field "${s.field}.${key}"`);
  return v;
}

/** A list of rotaryDim/2 numbers (longrope's short_factor / long_factor). */
function factorList(cfg: ModelConfig, s: RopeScaling, key: string): number[] {
  const x = s.raw[key], n = cfg.rotaryDim >> 1;
  if (!Array.isArray(x) || x.length !== n || !x.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0))
    fail(`${cfg.path}: field "${s.field}.${key}" must be a list of ${n} positive numbers (rotary dims ${cfg.rotaryDim} / 2), got ${JSON.stringify(x)?.slice(0, 80)}`);
  return x as number[];
}

/**
 * original_max_position_embeddings of llama3 / yarn / longrope: a top-level config field wins (standardize_rope_params
 * gives `config.original_max_position_embeddings` priority, Phi-3 stores it there), then the rope dict's, then
 * max_position_embeddings.
 */
function originalMax(cfg: ModelConfig, s: RopeScaling): number {
  return cfg.originalMaxPositionEmbeddings ?? num(cfg, s, 'original_max_position_embeddings') ?? cfg.maxPositionEmbeddings;
}

function checkType(cfg: ModelConfig): RopeScaling | null {
  const s = cfg.ropeScaling;
  if (s && !(SUPPORTED_ROPE_TYPES as readonly string[]).includes(s.type))
    fail(`${cfg.path}: rope_scaling type ${s.type} is not supported (supported: ${SUPPORTED_ROPE_TYPES.join(', ')})`);
  return s;
}

/** _compute_yarn_parameters: (inverse frequencies, attention_factor). */
function yarn(cfg: ModelConfig, s: RopeScaling): { inv: Float64Array; scale: number } {
  const dim = cfg.rotaryDim, base = cfg.ropeTheta, orig = originalMax(cfg, s);
  if (s.raw.factor === undefined) need(cfg, s, 'factor');
  const factor = num(cfg, s, 'factor') ?? cfg.maxPositionEmbeddings / orig;
  const mscale = num(cfg, s, 'mscale'), mscaleAllDim = num(cfg, s, 'mscale_all_dim');
  const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  let scale = num(cfg, s, 'attention_factor');
  if (scale === undefined) scale = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
  const betaFast = num(cfg, s, 'beta_fast') || 32, betaSlow = num(cfg, s, 'beta_slow') || 1;
  const t = s.raw.truncate, truncate = t === undefined ? true : t === null ? false : t; // config.rope_parameters.get("truncate", True)
  if (typeof truncate !== 'boolean') fail(`${cfg.path}: field "${s.field}.truncate" must be a boolean, got ${JSON.stringify(truncate)}`);
  // find_correction_dim / find_correction_range: the dims whose wavelength makes beta_fast / beta_slow rotations in orig
  const corrDim = (rot: number) => (dim * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(base));
  let low = corrDim(betaFast), high = corrDim(betaSlow);
  if (truncate) { low = Math.floor(low); high = Math.ceil(high); }
  low = Math.max(low, 0); high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // linear_ramp_factor: prevent singularity
  const inv = new Float64Array(dim >> 1);
  for (let i = 0; i < inv.length; i++) {
    const posFreq = base ** ((2 * i) / dim);
    const extrapolation = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
    inv[i] = (1 / (factor * posFreq)) * (1 - extrapolation) + (1 / posFreq) * extrapolation;
  }
  return { inv, scale };
}

/** _compute_longrope_parameters: attention_factor and the frequencies of `factors`. */
function longrope(cfg: ModelConfig, s: RopeScaling, which: 'short_factor' | 'long_factor'): { inv: Float64Array; scale: number } {
  const orig = originalMax(cfg, s);
  const factor = num(cfg, s, 'factor') ?? cfg.maxPositionEmbeddings / orig;
  const scale = num(cfg, s, 'attention_factor') ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
  const ext = factorList(cfg, s, which), inv = baseInvFreq(cfg.ropeTheta, cfg.rotaryDim);
  for (let i = 0; i < inv.length; i++) inv[i]! /= ext[i]!;
  return { inv, scale };
}

/** Inverse frequencies of cfg's rope type for sequences within the original length (see RopeParams). */
export function ropeInvFreq(cfg: ModelConfig): RopeParams {
  const s = checkType(cfg);
  const dim = cfg.rotaryDim;
  const inv = baseInvFreq(cfg.ropeTheta, dim);
  if (!s) return { invFreq: inv, attentionScaling: 1, dynamic: false };
  switch (s.type) {
    case 'linear': { // _compute_linear_scaling_rope_parameters: positions/factor ⇔ inv_freq/factor
      const factor = need(cfg, s, 'factor');
      for (let i = 0; i < inv.length; i++) inv[i]! /= factor;
      return { invFreq: inv, attentionScaling: 1, dynamic: false };
    }
    case 'dynamic':
      need(cfg, s, 'factor');
      return { invFreq: inv, attentionScaling: 1, dynamic: true };
    case 'yarn': {
      const y = yarn(cfg, s);
      return { invFreq: y.inv, attentionScaling: y.scale, dynamic: false };
    }
    case 'longrope': {
      const l = longrope(cfg, s, 'short_factor');
      factorList(cfg, s, 'long_factor');
      return { invFreq: l.inv, attentionScaling: l.scale, dynamic: true };
    }
  }
  // llama3: _compute_llama3_parameters
  const factor = need(cfg, s, 'factor');
  const low = need(cfg, s, 'low_freq_factor');
  const high = need(cfg, s, 'high_freq_factor');
  const oldCtx = originalMax(cfg, s);
  if (!(high > low)) fail(`${cfg.path}: ${s.field}.high_freq_factor (${high}) must be > low_freq_factor (${low})`);
  const lowWavelen = oldCtx / low, highWavelen = oldCtx / high;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowWavelen ? f / factor : f;
    if (wavelen < highWavelen || wavelen > lowWavelen) { inv[i] = scaled; continue; }
    const smooth = (oldCtx / wavelen - low) / (high - low);
    inv[i] = ((1 - smooth) * scaled) / factor + smooth * scaled;
  }
  return { invFreq: inv, attentionScaling: 1, dynamic: false };
}

/**
 * The frequencies one forward call of length seqLen (= max(position_ids) + 1) uses. Only dynamic and longrope depend
 * on it: dynamic (_compute_dynamic_ntk_parameters) grows the base with L = max(seqLen, max_position_embeddings);
 * longrope switches to long_factor once seqLen > original_max_position_embeddings. The float64 twin of the in-graph
 * computation of rotaryEmbedding().
 */
export function ropeInvFreqForSeqLen(cfg: ModelConfig, seqLen: number): RopeParams {
  const p = ropeInvFreq(cfg), s = cfg.ropeScaling;
  if (!p.dynamic || !s) return p;
  if (s.type === 'longrope') {
    if (seqLen <= originalMax(cfg, s)) return p;
    return { invFreq: longrope(cfg, s, 'long_factor').inv, attentionScaling: p.attentionScaling, dynamic: true };
  }
  const factor = need(cfg, s, 'factor');
  const dim = cfg.rotaryDim, maxPos = cfg.maxPositionEmbeddings;
  const L = seqLen > maxPos ? seqLen : maxPos;
  const base = cfg.ropeTheta * ((factor * L) / maxPos - (factor - 1)) ** (dim / (dim - 2));
  return { invFreq: baseInvFreq(base, dim), attentionScaling: 1, dynamic: true };
}

/**
 * Graph value of the inverse frequencies [rotaryDim/2] for a call with position ids `positions` (int64, any shape):
 * an initializer, or for dynamic / longrope the in-graph choice by L = max(positions) + 1 (see the file comment).
 * `perRow` (positions [B,S]): each row chooses by its own L = max(positions[b]) + 1, giving [B,1,rotaryDim/2] — the
 * serving graph, where every row is a different request (as if it ran alone) rather than one batch.
 */
function invFreqValue(g: GraphBuilder, cfg: ModelConfig, p: RopeParams, positions: string, perRow: boolean): string {
  const init = (v: Float64Array) => g.init(g.fresh('inv_freq'), 'float32', [v.length], Float32Array.from(v));
  const fixed = init(p.invFreq);
  const s = cfg.ropeScaling;
  if (!p.dynamic || !s) return fixed;
  const L = perRow // int64 [B,1,1], or a scalar
    ? g.op('Add', [g.op('Unsqueeze', [g.op('ReduceMax', [positions, g.constI64([1])], { keepdims: 1 }), g.constI64([2])]), g.constI64(1)])
    : g.op('Add', [g.op('ReduceMax', [positions], { keepdims: 0 }), g.constI64(1)]);
  if (s.type === 'longrope') {
    const long = init(longrope(cfg, s, 'long_factor').inv);
    return g.op('Where', [g.op('Greater', [L, g.constI64(originalMax(cfg, s))]), long, fixed]);
  }
  // dynamic NTK, in fp32 like torch: base·((factor·L/maxPos) − (factor − 1))^(dim/(dim−2)), inv = 1 / base'^(2i/dim)
  const factor = need(cfg, s, 'factor'), dim = cfg.rotaryDim, maxPos = cfg.maxPositionEmbeddings;
  const Lf = g.op('Cast', [g.op('Max', [L, g.constI64(maxPos)])], { to: 1 });
  const ratio = g.op('Sub', [g.op('Div', [g.op('Mul', [Lf, g.constF(factor)]), g.constF(maxPos)]), g.constF(factor - 1)]);
  const base = g.op('Mul', [g.op('Pow', [ratio, g.constF(dim / (dim - 2))]), g.constF(cfg.ropeTheta)]);
  const exps = g.constF(Array.from({ length: dim >> 1 }, (_, i) => (2 * i) / dim), [dim >> 1]);
  const grown = g.op('Reciprocal', [g.op('Pow', [base, exps])]);
  return g.op('Where', [g.op('Greater', [L, g.constI64(maxPos)]), grown, fixed]);
}

/** The rotary inputs of a decoder layer (LayerContext.rope). */
export interface Rope {
  /** [B|1, 1, S, rotaryDim] */
  cos: string;
  sin: string;
  /** Runtime CPU graphs: applyRope's one-op implementation (com.microsoft.RotaryEmbedding). */
  fused?: (x: string, headDim: number, rotDim: number) => string;
}

/** cos/sin [B,1,S,rotDim] from positions [B,S] (int64) and inverse frequencies `inv` [rotDim/2] or [B,1,rotDim/2], times `scaling`. */
function ropeTables(g: GraphBuilder, positions: string, inv: string, scaling: number): { cos: string; sin: string } {
  const pos = g.op('Unsqueeze', [g.op('Cast', [positions], { to: 1 }), g.constI64([-1])]); // [B,S,1]
  const freqs = g.op('Mul', [pos, inv]); // [B,S,d/2]
  const emb = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: -1 }), g.constI64([1])]); // [B,1,S,d]
  let cos = g.op('Cos', [emb]), sin = g.op('Sin', [emb]);
  if (scaling !== 1) { cos = g.op('Mul', [cos, g.constF(scaling)]); sin = g.op('Mul', [sin, g.constF(scaling)]); }
  return { cos, sin };
}

/**
 * The rotary embedding of one graph for position ids `positions` ([B,S] or [1,S] int64): cos/sin tables of cfg's rope
 * type, and with `fused` (runtime CPU graphs) com.microsoft.RotaryEmbedding over caches computed for exactly the B·S
 * positions of this call (row b·S+s holds position_ids[b,s]; the ids index them), so positions are unbounded and
 * left-padded rows keep their own positions. `perRowLength` (positions [B,S]): dynamic / longrope frequencies chosen
 * by each row's own length (see invFreqValue).
 */
export function rotaryEmbedding(g: GraphBuilder, cfg: ModelConfig, positions: string, fused = false, perRowLength = false): Rope {
  const p = ropeInvFreq(cfg);
  const perRow = perRowLength && p.dynamic && !!cfg.ropeScaling;
  const invFreq = invFreqValue(g, cfg, p, positions, perRow);
  const attentionScaling = p.attentionScaling;
  const tables = ropeTables(g, positions, invFreq, attentionScaling);
  if (!fused) return tables;
  const half = p.invFreq.length;
  let cache: { ids: string; cos: string; sin: string } | undefined;
  const caches = (x: string) => (cache ??= (() => {
    let fr: string; // [B·S, half]
    if (perRow) {
      fr = g.op('Reshape', [g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [positions], { to: 1 }), g.constI64([-1])]), invFreq]), g.constI64([-1, half])]);
    } else {
      const inv = p.dynamic ? g.op('Unsqueeze', [invFreq, g.constI64([0])])
        : g.init(g.fresh('rope_inv_freq'), 'float32', [1, half], Float32Array.from(p.invFreq));
      fr = g.op('MatMul', [g.op('Cast', [g.op('Reshape', [positions, g.constI64([-1, 1])])], { to: 1 }), inv]);
    }
    let cos = g.op('Cos', [fr]), sin = g.op('Sin', [fr]);
    if (attentionScaling !== 1) { cos = g.op('Mul', [cos, g.constF(attentionScaling)]); sin = g.op('Mul', [sin, g.constF(attentionScaling)]); }
    const ids = g.op('Reshape', [g.op('Range', [g.constI64(0), g.op('Size', [positions]), g.constI64(1)]), g.op('Shape', [positions])]);
    // positions may be [1,S] (full-sequence graphs) while x has B rows: the op wants ids [B,S]
    const bs = g.op('Concat', [g.op('Shape', [x], { start: 0, end: 1 }), g.op('Shape', [positions], { start: 1, end: 2 })], { axis: 0 });
    return { ids: g.op('Expand', [ids, bs]), cos, sin };
  })());
  return {
    ...tables,
    fused: (x, headDim, rotDim) => {
      if (rotDim !== 2 * half) return applyRope(g, x, tables, headDim, rotDim);
      const c = caches(x);
      const slice = (a: number, b: number) => g.op('Slice', [x, g.constI64([a]), g.constI64([b]), g.constI64([-1])]);
      const out = g.ms('RotaryEmbedding', [rotDim === headDim ? x : slice(0, rotDim), c.ids, c.cos, c.sin], { interleaved: 0 })[0]!;
      return rotDim === headDim ? out : g.op('Concat', [out, slice(rotDim, headDim)], { axis: -1 });
    },
  };
}

/**
 * x·cos + rotate_half(x)·sin on the first rotDim channels of x [B,h,S,d] (partial rotary keeps the rest).
 * `rope.fused`, when the graph provides it (runtime CPU graphs: com.microsoft.RotaryEmbedding), computes the same.
 */
export function applyRope(g: GraphBuilder, x: string, rope: Rope, headDim: number, rotDim = headDim): string {
  if (rope.fused) return rope.fused(x, headDim, rotDim);
  const rot = rotDim === headDim ? x : g.op('Slice', [x, g.constI64([0]), g.constI64([rotDim]), g.constI64([-1])]);
  const half = rotDim / 2;
  const [x1, x2] = g.opN('Split', [rot, g.constI64([half, half])], 2, { axis: -1 });
  const rotated = g.op('Concat', [g.op('Neg', [x2!]), x1!], { axis: -1 });
  const out = g.op('Add', [g.op('Mul', [rot, rope.cos]), g.op('Mul', [rotated, rope.sin])]);
  if (rotDim === headDim) return out;
  const pass = g.op('Slice', [x, g.constI64([rotDim]), g.constI64([headDim]), g.constI64([-1])]);
  return g.op('Concat', [out, pass], { axis: -1 });
}

/**
 * GPT-J / CodeGen rotate_every_two rotary on the first rotDim channels of x [B,h,S,d]: channel pairs (2i, 2i+1) rotate
 * by frequency i: (x₂ᵢ·cosᵢ − x₂ᵢ₊₁·sinᵢ, x₂ᵢ₊₁·cosᵢ + x₂ᵢ·sinᵢ). `rope` is the rotate_half layout (its first
 * rotDim/2 channels are the rotDim/2 distinct frequencies).
 */
export function applyRopeInterleaved(g: GraphBuilder, x: string, rope: Rope, headDim: number, rotDim = headDim): string {
  const half = rotDim / 2;
  const freqs = (t: string) => g.op('Unsqueeze', [g.op('Slice', [t, g.constI64([0]), g.constI64([half]), g.constI64([-1])]), g.constI64([-1])]); // [B,1,S,half,1]
  const cos = freqs(rope.cos), sin = freqs(rope.sin);
  const rot = rotDim === headDim ? x : g.op('Slice', [x, g.constI64([0]), g.constI64([rotDim]), g.constI64([-1])]);
  const pairs = g.op('Reshape', [rot, g.constI64([0, 0, 0, half, 2])]); // [B,h,S,half,2]
  const [even, odd] = g.opN('Split', [pairs, g.constI64([1, 1])], 2, { axis: -1 });
  const e = g.op('Sub', [g.op('Mul', [even!, cos]), g.op('Mul', [odd!, sin])]);
  const o = g.op('Add', [g.op('Mul', [odd!, cos]), g.op('Mul', [even!, sin])]);
  const out = g.op('Reshape', [g.op('Concat', [e, o], { axis: -1 }), g.constI64([0, 0, 0, rotDim])]);
  if (rotDim === headDim) return out;
  const pass = g.op('Slice', [x, g.constI64([rotDim]), g.constI64([headDim]), g.constI64([-1])]);
  return g.op('Concat', [out, pass], { axis: -1 });
}
