/** Shared graph blocks for decoder-only transformers. All tensors fp32, hidden layout [B, S, H]. */
import { F, type GraphBuilder } from '../graph/builder.ts';
import { applyRope, applyRopeInterleaved } from './rope.ts';
import type { LayerContext, LinearSpec, WeightSource } from './types.ts';

const fusedNormGraphs = new WeakSet<GraphBuilder>();
/**
 * Make `rmsNorm` emit ORT's SimplifiedLayerNormalization (one kernel, same fp32 math) in graph `g` — the runtime's CPU
 * graphs use it; ORT's optimizer does not fuse the decomposed form below.
 */
export function useFusedNorms(g: GraphBuilder): void { fusedNormGraphs.add(g); }

/** RMSNorm: x / sqrt(mean(x²) + eps) · (w + offset). offset 1 for Gemma-style (1 + w). */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number, offset = 0): string {
  const w = offset ? g.op('Add', [weight, g.constF(offset)]) : weight;
  if (fusedNormGraphs.has(g)) return g.op('SimplifiedLayerNormalization', [x, w], { axis: -1, epsilon: F(eps) });
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x]), g.constI64([-1])], { keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constF(eps)])])]);
  return g.op('Mul', [g.op('Mul', [x, inv]), w]);
}

/** LayerNorm over the last axis. */
export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number): string {
  return g.op('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: F(eps) });
}

/** LayerNorm with checkpoint tensors `<name>.weight` and `<name>.bias` (both [n]). */
export function layerNormAt(g: GraphBuilder, w: WeightSource, name: string, x: string, n: number, eps: number): string {
  return layerNorm(g, x, w.tensor(g, `${name}.weight`, [n]), w.tensor(g, `${name}.bias`, [n]), eps);
}

/** RMSNorm with checkpoint tensor `<name>.weight` [n] (offset 1: Gemma-style (1 + w)). */
export function rmsNormAt(g: GraphBuilder, w: WeightSource, name: string, x: string, n: number, eps: number, offset = 0): string {
  return rmsNorm(g, x, w.tensor(g, `${name}.weight`, [n]), eps, offset);
}

/** [B,S,heads*d] → [B,heads,S,d] */
export function splitHeads(g: GraphBuilder, x: string, heads: number, d: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.constI64([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
}

/** [B,heads,S,d] → [B,S,heads*d] */
export function mergeHeads(g: GraphBuilder, x: string, heads: number, d: number): string {
  return g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), g.constI64([0, 0, heads * d])]);
}

/**
 * Scaled dot-product attention with GQA, additive mask and optional KV cache.
 * q [B,H,S,d], k/v [B,kvH,S,d]. GQA without copying K/V: q is viewed as [B,kvH,rep·S,d].
 */
export function attention(ctx: LayerContext, q: string, k: string, v: string, heads: number, kvHeads: number, d: number, scale = 1 / Math.sqrt(d)): string {
  if (ctx.fusedAttention) return ctx.fusedAttention(ctx, q, k, v, heads, kvHeads, d, scale); // runtime decode graphs (attention-gqa.ts)
  const { g } = ctx;
  if (ctx.past) {
    k = g.op('Concat', [ctx.past.key, k], { axis: 2 });
    v = g.op('Concat', [ctx.past.value, v], { axis: 2 });
    ctx.present = { key: k, value: v };
  }
  const rep = heads / kvHeads;
  const qg = rep === 1 ? q : g.op('Reshape', [q, g.constI64([0, kvHeads, -1, d])]);
  let scores = g.op('MatMul', [g.op('Mul', [qg, g.constF(scale)]), g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]);
  if (rep !== 1) scores = g.op('Reshape', [scores, g.constI64([0, heads, -1, 0])]); // [B,H,S,T]
  if (ctx.softcap) scores = softcapped(g, scores, ctx.softcap);
  const probs = g.op('Softmax', [g.op('Add', [scores, ctx.mask])], { axis: -1 });
  const pg = rep === 1 ? probs : g.op('Reshape', [probs, g.constI64([0, kvHeads, -1, 0])]);
  const out = g.op('MatMul', [pg, v]);
  return rep === 1 ? out : g.op('Reshape', [out, g.constI64([0, heads, -1, d])]);
}

/** Soft-capping (Gemma 2 attention / final logits): cap·tanh(x / cap). */
export function softcapped(g: GraphBuilder, x: string, cap: number): string {
  return g.op('Mul', [g.op('Tanh', [g.op('Div', [x, g.constF(cap)])]), g.constF(cap)]);
}

export interface AttentionOpts {
  heads: number; kvHeads: number; headDim: number;
  /** Rotary on q and k: HF rotate_half (default), GPT-J rotate_every_two ('interleaved'), or none. */
  rope?: 'half' | 'interleaved' | 'none';
  /** Channels of each head that rotate (partial rotary); default headDim. */
  rotaryDim?: number;
  /** Score scale; default 1/√headDim. */
  scale?: number;
  /** qk-norm: applied to the q / k heads [B,heads,S,d] before rotary. */
  qkNorm?: (t: string, which: 'q' | 'k', heads: number) => string;
}

function ropeOf(ctx: LayerContext, t: string, o: AttentionOpts): string {
  if (o.rope === 'none') return t;
  if (o.rope === 'interleaved') return applyRopeInterleaved(ctx.g, t, ctx.rope, o.headDim, o.rotaryDim);
  return applyRope(ctx.g, t, ctx.rope, o.headDim, o.rotaryDim);
}

/** rotary(q), rotary(k) → attention → merge heads → output projection `out`. q [B,heads,S,d], k/v [B,kvHeads,S,d]. */
export function attendHeads(ctx: LayerContext, q: string, k: string, v: string, out: LinearSpec, o: AttentionOpts): string {
  const { g } = ctx;
  const { heads: nh, kvHeads: nkv, headDim: d } = o;
  const attn = attention(ctx, ropeOf(ctx, q, o), ropeOf(ctx, k, o), v, nh, nkv, d, o.scale);
  return ctx.w.linear(g, mergeHeads(g, attn, nh, d), out);
}

/** q/k/v/o projections of a self-attention block, under Transformers' names. */
export interface AttentionLinears { q_proj: LinearSpec; k_proj: LinearSpec; v_proj: LinearSpec; o_proj: LinearSpec }

/**
 * Self-attention with separate q/k/v projections of x: project → split heads → optional qk-norm → rotary →
 * attention → merge heads → output projection `o_proj`. Heads, kv heads and head_dim default to the config's.
 */
export function selfAttention(ctx: LayerContext, x: string, lin: AttentionLinears, opts: Partial<AttentionOpts> = {}): string {
  const { g, w, cfg } = ctx;
  const o: AttentionOpts = { heads: cfg.numHeads, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, ...opts };
  const heads = (spec: LinearSpec, n: number) => splitHeads(g, w.linear(g, x, spec), n, o.headDim);
  const qk = (spec: LinearSpec, which: 'q' | 'k', n: number) => {
    const t = heads(spec, n);
    return ropeOf(ctx, o.qkNorm ? o.qkNorm(t, which, n) : t, o);
  };
  const q = qk(lin.q_proj, 'q', o.heads);
  const k = qk(lin.k_proj, 'k', o.kvHeads);
  const v = heads(lin.v_proj, o.kvHeads);
  return attendHeads(ctx, q, k, v, lin.o_proj, { ...o, rope: 'none' });
}

/** Plain MLP: down(act(up(x))). */
export function mlp(g: GraphBuilder, w: WeightSource, x: string, up: LinearSpec, down: LinearSpec, act: string): string {
  return w.linear(g, activation(g, w.linear(g, x, up), act), down);
}

/**
 * Additive causal mask [B,1,S,T] (0 visible, −3.4e38 hidden) for queries at absolute positions P..P+S−1 over T=P+S keys.
 * `keyMask` [B,T] int64 (1 = real token) hides padding; `window` hides keys older than the sliding window.
 */
export function causalMask(g: GraphBuilder, seqLen: string, totalLen: string, keyMask?: string, window?: number | null): string {
  const past = g.op('Sub', [totalLen, seqLen]);
  const one = g.constI64(1), zero = g.constI64(0);
  const qpos = g.op('Unsqueeze', [g.op('Range', [past, totalLen, one]), g.constI64([-1])]); // [S,1]
  const kpos = g.op('Unsqueeze', [g.op('Range', [zero, totalLen, one]), g.constI64([0])]); // [1,T]
  let ok = g.op('LessOrEqual', [kpos, qpos]);
  if (window) ok = g.op('And', [ok, g.op('Greater', [kpos, g.op('Sub', [qpos, g.constI64(window)])])]);
  if (keyMask) {
    const km = g.op('Unsqueeze', [g.op('Cast', [keyMask], { to: 9 }), g.constI64([1, 2])]); // [B,1,1,T]
    ok = g.op('And', [ok, km]);
  }
  const m = g.op('Where', [ok, g.constF(0), g.constF(-3.4028234663852886e38)]);
  return keyMask ? m : g.op('Unsqueeze', [m, g.constI64([0, 1])]);
}

/**
 * Additive mask [B,1,S,T] from positions rather than from the key index: key t of row b holds the token at position
 * cumsum(keyMask[b])[t] − 1 (masked keys are skipped), query s is at positions[b,s]; a key is visible when keyMask is 1,
 * its position ≤ the query's, and (with `window`) within the sliding window. Equals `causalMask` for left-padded rows;
 * also right for rows with holes anywhere (the KV-slot graphs: row b's own cache, unused positions, then the new tokens).
 */
export function positionMask(g: GraphBuilder, positions: string, keyMask: string, window?: number | null): string {
  const kpos = g.op('Unsqueeze', [g.op('Sub', [g.op('CumSum', [keyMask, g.constI64(1)]), g.constI64(1)]), g.constI64([1, 2])]); // [B,1,1,T]
  const qpos = g.op('Unsqueeze', [positions, g.constI64([1, 3])]); // [B,1,S,1]
  let ok = g.op('And', [g.op('LessOrEqual', [kpos, qpos]), g.op('Unsqueeze', [g.op('Cast', [keyMask], { to: 9 }), g.constI64([1, 2])])]);
  if (window) ok = g.op('And', [ok, g.op('Greater', [kpos, g.op('Sub', [qpos, g.constI64(window)])])]);
  return g.op('Where', [ok, g.constF(0), g.constF(-3.4028234663852886e38)]);
}

/** Scalar int64 dim `axis` of x. */
export function dim(g: GraphBuilder, x: string, axis: number): string {
  return g.op('Squeeze', [g.op('Shape', [x], { start: axis, end: axis + 1 })], {});
}

/** SwiGLU / GeGLU MLP: down_proj(act(gate_proj(x)) · up_proj(x)). */
export function gatedMlp(g: GraphBuilder, w: WeightSource, x: string, lin: { gate_proj: LinearSpec; up_proj: LinearSpec; down_proj: LinearSpec }, act: string): string {
  const gate = w.linear(g, x, lin.gate_proj);
  const up = w.linear(g, x, lin.up_proj);
  return w.linear(g, g.op('Mul', [activation(g, gate, act), up]), lin.down_proj);
}

export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu';

/** The HF ACT2FN names `activation` understands. */
export const ACTIVATION_NAMES: readonly string[] = ['silu', 'swish', 'relu', 'gelu', 'gelu_tanh', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** Decoder layer number: ctx.layerIndex, else the trailing "<i>." of ctx.prefix (e.g. "transformer.h.3." → 3). */
export function layerIndexOf(ctx: LayerContext): number {
  if (ctx.layerIndex !== undefined) return ctx.layerIndex;
  const m = /(\d+)\.$/.exec(ctx.prefix);
  if (!m) throw new Error(`cannot tell the layer number from prefix "${ctx.prefix}"`);
  return Number(m[1]);
}

/** HF ACT2FN names: silu/swish, gelu (erf), gelu_new/gelu_pytorch_tanh (tanh approx), relu. */
export function activation(g: GraphBuilder, x: string, act: Activation | string): string {
  switch (act) {
    case 'silu': case 'swish': return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'relu': return g.op('Relu', [x]);
    case 'gelu': return g.op('Gelu', [x]);
    case 'gelu_tanh': case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_fast':
      return g.op('Gelu', [x], { approximate: 'tanh' });
    default: throw new Error(`activation "${act}" is not supported`);
  }
}

/**
 * Split a fused q/k/v projection [B,S,groups·(qPer+2)·d] stored per group as [q_0 … q_{qPer−1}, k, v] (each d wide)
 * into q [B,groups·qPer,S,d] and k, v [B,groups,S,d] (query head g·qPer + r reads kv head g, as `attention` expects).
 * BLOOM and non-multi-query Falcon: groups = heads, qPer = 1 ([heads, 3, d]); multi-query Falcon: groups = 1,
 * qPer = heads; Falcon new_decoder_architecture: groups = kv heads, qPer = heads / kv heads.
 */
export function splitFusedQkv(g: GraphBuilder, qkv: string, groups: number, qPer: number, d: number): { q: string; k: string; v: string } {
  const r = g.op('Reshape', [qkv, g.constI64([0, 0, groups, qPer + 2, d])]);
  const [q, k, v] = g.opN('Split', [r, g.constI64([qPer, 1, 1])], 3, { axis: 3 });
  const heads = (t: string, n: number) => g.op('Transpose', [g.op('Reshape', [t, g.constI64([0, 0, n, d])])], { perm: [0, 2, 1, 3] });
  return { q: heads(q!, groups * qPer), k: heads(k!, groups), v: heads(v!, groups) };
}

/**
 * ALiBi slopes (Press et al. get_slopes, as transformers build_alibi_tensor): with p the largest power of two ≤ heads,
 * heads 0..p−1 get 2^(−8(i+1)/p); the remaining heads get the odd powers 2^(−4(2i+1)/p), i.e. every other slope of 2p heads.
 */
export function alibiSlopes(heads: number): Float64Array {
  const p = 2 ** Math.floor(Math.log2(heads));
  const out = new Float64Array(heads);
  for (let i = 0; i < p; i++) out[i] = 2 ** ((-8 * (i + 1)) / p);
  for (let i = 0; i < Math.min(p, heads - p); i++) out[p + i] = 2 ** ((-4 * (2 * i + 1)) / p);
  return out;
}

const alibiCache = new WeakMap<GraphBuilder, Map<string, string>>();

/**
 * The additive mask plus the ALiBi bias slope_h · pos_j, [B|1, heads, S, T]. pos_j is key j's position as in
 * transformers build_alibi_tensor: (cumsum(attention_mask) − 1) · attention_mask, where the key mask is read off the
 * last query row of the causal additive `mask` (0 = visible; the last query sees every unpadded key). Built once per
 * graph, mask and slopes (`slopes` [heads]: BLOOM's get_slopes by default; MPT has its own rule).
 */
export function alibiMask(g: GraphBuilder, mask: string, heads: number, slopes: Float64Array = alibiSlopes(heads)): string {
  const key = `${mask}:${slopes.join(',')}`;
  let byGraph = alibiCache.get(g);
  if (!byGraph) alibiCache.set(g, (byGraph = new Map()));
  const hit = byGraph.get(key);
  if (hit) return hit;
  const last = g.op('Slice', [mask, g.constI64([-1]), g.constI64([2 ** 62]), g.constI64([2])]); // [B|1,1,1,T]
  const vis = g.op('Cast', [g.op('Equal', [last, g.constF(0)])], { to: 7 }); // int64
  const pos = g.op('Mul', [g.op('Sub', [g.op('CumSum', [vis, g.constI64(-1)]), g.constI64(1)]), vis]);
  const sl = g.init(g.fresh('alibi_slopes'), 'float32', [1, heads, 1, 1], Float32Array.from(slopes));
  const out = g.op('Add', [mask, g.op('Mul', [g.op('Cast', [pos], { to: 1 }), sl])]);
  byGraph.set(key, out);
  return out;
}
