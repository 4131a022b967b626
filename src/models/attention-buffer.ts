/**
 * Attention of the runtime's default CPU KV-cache graphs (kvMode 'buffer', src/graph/causal-lm.ts): the cache is read
 * IN PLACE from buffers the runtime owns, and the graph returns only the new keys/values.
 *
 * Layout: the runtime keeps one buffer per layer and K/V, POSITION-major [capacity, B, kvH, d], so that the P cached
 * positions are one contiguous prefix; each step feeds that prefix as the past input [P, B, kvH, d] (a zero-copy view:
 * onnxruntime-node passes typed-array views to the kernels as they are). Scores over the cache come from
 * com.microsoft.FusedMatMul with transBatchB (the [P, B·kvH, d] view is read as B·kvH matrices [P, d] through strides,
 * ORT's MatMulComputeHelper: no transpose, no copy) and alpha = the score scale; the query heads of one kv head are
 * one matrix [rep·S, d] (rep = heads / kvHeads), so each cached key is read once per kv head, by a small GEMM, not
 * once per query head by a GEMV. The S new keys are scored separately, both parts are concatenated to [B, heads, S,
 * P+S] for the layer's additive mask and the softmax (the same mask and the same function as the plain graph's
 * `attention()`: padding, sliding window and ALiBi biases unchanged), and the probabilities times values are again
 * two products, added. The outputs `present.<i>.key/value` are the new keys/values [S, B, kvH, d] (after rotary); the
 * runtime writes them after its P positions (one contiguous copy).
 *
 * Why (issue 17): GroupQueryAttention appending in place (attention-gqa.ts) makes onnxruntime-node copy every bound
 * present buffer back to JS after each run (the whole capacity of every layer, every token), and its CPU kernel scores
 * each query head by a [1, d]·[d, T] product: at 2048 cached tokens the decode step of a 1B-shape model spent more
 * time there than in the 4-bit matmuls (notes/h-perf.md: per-op profile). This graph copies nothing in proportion to
 * the context but the score rows.
 *
 * An empty cache is fed as one masked dummy position (FusedMatMul with transBatchB divides by the leading dimension);
 * the runtime prepends a 0 to the attention mask for it, so every query still sees exactly its real keys.
 */
import { F } from '../graph/builder.ts';
import { GqaUnsupportedError } from './attention-gqa.ts';
import type { LayerContext } from './types.ts';

/** Graph-wide values of the buffer attention, plus a count of layers that used it. */
export interface BufferState {
  /** expected KV geometry (the graph's past inputs are declared with it) */
  kvHeads: number; headDim: number;
  /** int64 shape tensors shared by every layer (built by the first one; all layers have the same B, S, P, heads) */
  shapes?: { grouped: string; fresh: string; scores4: string; scores3: string; split: string; q: string };
  calls: number;
}

/** The `LayerContext.fusedAttention` implementation for a graph whose past KV inputs are position-major views [P, B, kvH, d]. */
export function bufferAttention(state: BufferState): NonNullable<LayerContext['fusedAttention']> {
  return (ctx, q, k, v, heads, kvHeads, d, scale) => {
    const { g } = ctx;
    if (!ctx.past) throw new GqaUnsupportedError('buffer attention needs the KV-cache inputs');
    if (heads % kvHeads !== 0) throw new GqaUnsupportedError(`${heads} heads are not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== state.kvHeads || d !== state.headDim) {
      throw new GqaUnsupportedError(`layer attention has ${kvHeads} kv heads of ${d}, the cache ${state.kvHeads} of ${state.headDim}`);
    }
    const rep = heads / kvHeads;
    const sh = (state.shapes ??= (() => {
      const S = g.op('Shape', [q], { start: 2, end: 3 }), P = g.op('Shape', [ctx.past.key], { start: 0, end: 1 });
      const cat = (xs: string[]) => g.op('Concat', xs, { axis: 0 });
      const repS = g.op('Mul', [S, g.constI64([rep])]);
      return {
        grouped: cat([g.constI64([-1]), repS, g.constI64([d])]), // q → [B·kvH, rep·S, d]
        fresh: cat([g.constI64([-1]), S, g.constI64([d])]), // new k/v → [B·kvH, S, d]
        scores4: cat([g.op('Shape', [q], { start: 0, end: 3 }), g.constI64([-1])]), // → [B, heads, S, T]
        scores3: cat([g.constI64([-1]), repS, g.op('Add', [P, S])]), // → [B·kvH, rep·S, T]
        split: cat([P, S]),
        q: g.op('Shape', [q]),
      };
    })());
    // query head j·rep + r of row b is row r·S + s of group b·kvH + j (a reshape of [B, heads, S, d])
    const qg = g.op('Reshape', [q, sh.grouped]);
    const past = (t: string) => g.op('Reshape', [t, g.constI64([0, -1, d])]); // [P, B·kvH, d]
    const fresh = (t: string) => g.op('Reshape', [t, sh.fresh]);
    const sPast = g.ms('FusedMatMul', [qg, past(ctx.past.key)], { transB: 1, transBatchB: 1, alpha: F(scale) })[0]!; // [B·kvH, rep·S, P]
    const sNew = g.ms('FusedMatMul', [qg, fresh(k)], { transB: 1, alpha: F(scale) })[0]!; // [B·kvH, rep·S, S]
    const scores = g.op('Reshape', [g.op('Concat', [sPast, sNew], { axis: 2 }), sh.scores4]);
    const probs = g.op('Reshape', [g.op('Softmax', [g.op('Add', [scores, ctx.mask])], { axis: -1 }), sh.scores3]);
    const [pPast, pNew] = g.opN('Split', [probs, sh.split], 2, { axis: 2 });
    const out = g.op('Add', [g.ms('FusedMatMul', [pPast!, past(ctx.past.value)], { transBatchB: 1 })[0]!, g.op('MatMul', [pNew!, fresh(v)])]);
    // the new keys/values, position-major [S, B, kvH, d], for the runtime to write after its P positions
    ctx.present = { key: g.op('Transpose', [k], { perm: [2, 0, 1, 3] }), value: g.op('Transpose', [v], { perm: [2, 0, 1, 3] }) };
    state.calls++;
    return g.op('Reshape', [out, sh.q]); // [B, heads, S, d]
  };
}
