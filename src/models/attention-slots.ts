/**
 * Attention of the runtime's KV-slot graphs (kvMode 'slots', src/graph/model-graph.ts): continuous batching, where every
 * row of a step is a different request with its own cache length (src/runtime/slots.ts, `gptq serve`).
 *
 * The cache is a set of buffers [B, kvH, T, d] that the graph only READS, IN PLACE: T is attention_mask's length, and
 * the runtime feeds views of exactly T positions per row (src/runtime/slots.ts keeps its rows T positions apart, T a
 * multiple of its widthStep, 64, that grows and shrinks with the longest request). Row b's S new tokens belong at
 * buffer indices start_b … start_b + S − 1 (start_b + S = the end of row b's last run of mask ones: a row's length,
 * or T for left-padded rows); those buffer positions hold stale values until the runtime writes the new keys/values
 * there after the run. So the scores are computed in two parts and put together by index:
 *
 *   scores  = scale·q·Kᵀ over the T buffer positions (com.microsoft.FusedMatMul on the buffer view: no copy), then the
 *             new keys' scores scale·q·kᵀ [B, heads, S, S] scattered (ScatterElements) into columns start_b + s
 *   probs   = softmax(softcap(scores) + mask)          (the layer's additive mask [B, 1|heads, S, T], as attention())
 *   output  = probs′·V + p_new·v  where p_new = probs at the new columns (GatherElements) and probs′ = probs with those
 *             columns zeroed (ScatterElements), so the buffer's stale values at the new positions are never used.
 *
 * Every row's keys keep the indices they have in a run of that row alone; the only difference batching makes to a row
 * is masked keys after its own: exact zeros in the softmax and in probs′·V. Query head j·rep + r uses kv head j
 * (grouped-query attention without repeating K/V: the queries of one kv head are one [rep·S, d] matrix, as in
 * attention()). The copies per layer are of the scores/probs ([B, heads, S, T]), not of the cache ([B, kvH, T, d]).
 *
 * That is the decode step (S = 1, chosen by an ONNX If on the shapes). Prompt chunks (S > 1: SlotCache.extend runs
 * them one request at a time) and heads that are not a multiple of the kv heads use `attention()` on copies of the
 * buffers with the new keys/values scattered in (ScatterElements): for a chunk of one row the copy is small, and
 * scoring S stale buffer positions plus S new ones would cost more (measured: 128-token chunks 300 vs 268 ms).
 *
 * The graph outputs only the new keys/values [B, kvH, S, d] (after rotary) as `present.<i>.key/value`.
 *
 * Why not GroupQueryAttention with per-row seqlens_k (attention-gqa.ts): without a shared past/present buffer its CPU
 * kernel zero-fills and copies the cache into a present buffer each layer (measured at batch 16: 12.2 ms per step, no
 * faster than copying the cache with Slice + ScatterElements), and binding the present outputs to the buffers makes
 * onnxruntime-node copy every bound output back after each run.
 */
import { F, type GraphBuilder } from '../graph/builder.ts';
import { attention, softcapped } from './blocks.ts';
import type { LayerContext } from './types.ts';

/** Graph-wide values of the slot attention, plus a count of layers that used it. */
export interface SlotState {
  /** int64 [B,1,S,1]: buffer index of each new token (start_b + s) */
  newIndex: string;
  /** bool scalar: S = 1 (a decode step: the buffers are read in place) */
  decode: string;
  /**
   * Index tensors every layer of one head geometry uses, built once in the main graph by its first layer (key
   * "heads/kvHeads/d"): `keys` newIndex expanded to the new keys [B, kvH, S, d]; for the in-place path `scores` the new
   * keys' score columns [B, heads, S, S] and `zeros` float zeros of that shape.
   */
  shared?: Map<string, { keys: string; scores?: string; zeros?: string }>;
  calls: number;
}

/** The `LayerContext.fusedAttention` implementation for a graph whose past KV inputs are read-only [B, kvH, T, d] buffer views. */
export function slotAttention(state: SlotState): NonNullable<LayerContext['fusedAttention']> {
  return (ctx, q, k, v, heads, kvHeads, d, scale) => {
    const { g } = ctx;
    if (!ctx.past) throw new Error('slot attention needs the KV-cache inputs');
    const past = ctx.past;
    ctx.present = { key: k, value: v };
    state.calls++;
    const geometry = `${heads}/${kvHeads}/${d}`, shared = (state.shared ??= new Map());
    const sh = shared.get(geometry) ?? shared.set(geometry, (() => {
      const keys = g.op('Expand', [state.newIndex, g.op('Shape', [k])]);
      if (heads % kvHeads !== 0) return { keys }; // only the copying path
      const bhss = g.op('Concat', [g.op('Shape', [q], { start: 0, end: 3 }), g.op('Shape', [q], { start: 2, end: 3 })], { axis: 0 });
      return { keys, scores: g.op('Expand', [g.op('Transpose', [state.newIndex], { perm: [0, 1, 3, 2] }), bhss]), zeros: g.op('ConstantOfShape', [bhss]) };
    })()).get(geometry)!;
    // copies of the buffers with the new keys/values scattered in, then attention(): for prompt chunks
    const copied = (b: GraphBuilder): string[] => {
      const keys = (buf: string, fresh: string) => b.op('ScatterElements', [buf, sh.keys, fresh], { axis: 2 });
      const inner: LayerContext = { ...ctx, g: b, fusedAttention: undefined, past: undefined };
      return [attention(inner, q, keys(past.key, k), keys(past.value, v), heads, kvHeads, d, scale)];
    };
    if (heads % kvHeads !== 0) return copied(g)[0]!;
    // the buffers read in place: for decode steps (S = 1)
    const inPlace = (b: GraphBuilder): string[] => {
      const rep = heads / kvHeads;
      const grouped = (t: string) => (rep === 1 ? t : b.op('Reshape', [t, b.constI64([0, kvHeads, -1, 0])])); // [B, heads, n, m] → [B, kvH, rep·n, m]
      const perHead = (t: string) => (rep === 1 ? t : b.op('Reshape', [t, b.constI64([0, heads, -1, 0])])); // the inverse
      const qg = grouped(q);
      const sBuf = perHead(b.ms('FusedMatMul', [qg, past.key], { transB: 1, alpha: F(scale) })[0]!); // [B, heads, S, T]
      const sNew = perHead(b.ms('FusedMatMul', [qg, k], { transB: 1, alpha: F(scale) })[0]!); // [B, heads, S, S]
      const idx = sh.scores!; // [B, heads, S, S]
      let scores = b.op('ScatterElements', [sBuf, idx, sNew], { axis: 3 });
      if (ctx.softcap) scores = softcapped(b, scores, ctx.softcap);
      const probs = b.op('Softmax', [b.op('Add', [scores, ctx.mask])], { axis: -1 });
      const pNew = b.op('GatherElements', [probs, idx], { axis: 3 });
      const pBuf = b.op('ScatterElements', [probs, idx, sh.zeros!], { axis: 3 });
      const out = b.op('Add', [b.op('MatMul', [grouped(pBuf), past.value]), b.op('MatMul', [grouped(pNew), v])]); // [B, kvH, rep·S, d]
      return [rep === 1 ? out : b.op('Reshape', [out, b.op('Shape', [q])])];
    };
    return g.ifElse(state.decode, inPlace, copied, ['float32'])[0]!;
  };
}
