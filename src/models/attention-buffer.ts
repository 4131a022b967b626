/**
 * Attention of the runtime's default CPU KV-cache graphs (kvMode 'buffer', src/graph/causal-lm.ts): the cache is read
 * IN PLACE from buffers the runtime owns, and the graph returns only the new keys/values.
 *
 * Layout: the runtime keeps one buffer per layer and K/V, POSITION-major [capacity, B, kvH, d], so that the P cached
 * positions are one contiguous prefix; each run feeds that prefix as the past input [P, B, kvH, d] (a zero-copy view:
 * onnxruntime-node passes typed-array views to the kernels as they are). The outputs `present.<i>.key/value` are the S
 * new keys/values [S, B, kvH, d] (after rotary); the runtime writes them after its P positions (one contiguous copy).
 *
 * Two ways to attend, chosen per run by an ONNX If on the shapes (the same function; tests compare both with the plain
 * graph):
 * - decode (S = 1 after a non-empty cache): scores over the cache come from com.microsoft.FusedMatMul with transBatchB
 *   (the [P, B·kvH, d] view is read as B·kvH matrices [P, d] through strides, ORT's MatMulComputeHelper: no transpose,
 *   no copy) and alpha = the score scale; the query heads of one kv head are one matrix [rep, d] (rep = heads /
 *   kvHeads), so each cached key is read once per kv head by a small GEMM, not once per query head by a GEMV. The new
 *   key is scored separately; both parts are concatenated to [B, heads, 1, P+1] for the layer's additive mask and the
 *   softmax (padding, sliding window and ALiBi biases exactly as in `attention()`), then probabilities × values are two
 *   products, added. Nothing in proportion to the context is copied.
 * - prompts (S > 1, or an empty cache): com.microsoft.GroupQueryAttention (head_dim a multiple of 8; batch 1 or an
 *   empty cache, the kernel's limits) on the cache transposed to [B, kvH, P, d] (one copy per prompt chunk, not per
 *   token): its CPU kernel works head by head, so a chunk's scores stay in cache, where the unfused graph would write
 *   all heads' scores to memory several times (measured 1.7× the CPU time at 256 new tokens after 1280). Otherwise
 *   `attention()` on the concatenated keys.
 *
 * Why (issue 17): GroupQueryAttention appending in place (attention-gqa.ts, kvMode 'gqa') makes onnxruntime-node copy
 * every bound present buffer back to JS after each run (the whole capacity of every layer, every token), and its CPU
 * kernel scores each query head by a [1, d]·[d, T] product: at 2048 cached tokens a decode step of a 1B-shape model
 * spent more CPU there than in its 4-bit matmuls (notes/h-perf.md, per-op profile).
 */
import { F, type GraphBuilder } from '../graph/builder.ts';
import { GqaUnsupportedError } from './attention-gqa.ts';
import { attention, softcapped } from './blocks.ts';
import type { LayerContext } from './types.ts';

/** Graph-wide values of the buffer attention, plus a count of layers that used it. */
export interface BufferState {
  /** expected KV geometry (the graph's past inputs are declared with it) */
  kvHeads: number; headDim: number;
  /** GroupQueryAttention's seqlens_k (int32 [B], T − 1 for every row) and total_sequence_length (int32 scalar T) */
  seqlensK: string; total: string;
  /** values shared by every layer (built by the first one; all layers have the same B, S, P, heads) */
  shared?: { decode: string; gqaOk: string; scores4: string; scores3: string; split: string };
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
    const rep = heads / kvHeads, past = ctx.past;
    const sh = (state.shared ??= (() => {
      const S = g.op('Shape', [q], { start: 2, end: 3 }), P = g.op('Shape', [past.key], { start: 0, end: 1 }), B = g.op('Shape', [q], { start: 0, end: 1 });
      const one = g.constI64([1]), zero = g.constI64([0]);
      const cat = (xs: string[]) => g.op('Concat', xs, { axis: 0 });
      return {
        decode: g.op('And', [g.op('Equal', [S, one]), g.op('Greater', [P, zero])]),
        gqaOk: g.op('Or', [g.op('Equal', [B, one]), g.op('Equal', [P, zero])]),
        scores4: cat([g.op('Shape', [q], { start: 0, end: 3 }), g.constI64([-1])]), // → [B, heads, S, T]
        scores3: cat([g.constI64([-1]), g.op('Mul', [S, g.constI64([rep])]), g.op('Add', [P, S])]), // → [B·kvH, rep·S, T]
        split: cat([P, S]),
      };
    })());
    const decode = (b: GraphBuilder): string[] => {
      // query head j·rep + r of row b is row r of group b·kvH + j (S = 1: a reshape of [B, heads, 1, d])
      const qg = b.op('Reshape', [q, b.constI64([-1, rep, d])]);
      const cache = (t: string) => b.op('Reshape', [t, b.constI64([0, -1, d])]); // [P, B·kvH, d]
      const fresh = (t: string) => b.op('Reshape', [t, b.constI64([-1, 1, d])]); // [B·kvH, 1, d]
      const sPast = b.ms('FusedMatMul', [qg, cache(past.key)], { transB: 1, transBatchB: 1, alpha: F(scale) })[0]!; // [B·kvH, rep, P]
      const sNew = b.ms('FusedMatMul', [qg, fresh(k)], { transB: 1, alpha: F(scale) })[0]!; // [B·kvH, rep, 1]
      let scores = b.op('Reshape', [b.op('Concat', [sPast, sNew], { axis: 2 }), sh.scores4]);
      if (ctx.softcap) scores = softcapped(b, scores, ctx.softcap);
      const probs = b.op('Reshape', [b.op('Softmax', [b.op('Add', [scores, ctx.mask])], { axis: -1 }), sh.scores3]);
      const [pPast, pNew] = b.opN('Split', [probs, sh.split], 2, { axis: 2 });
      const out = b.op('Add', [b.ms('FusedMatMul', [pPast!, cache(past.value)], { transBatchB: 1 })[0]!, b.op('MatMul', [pNew!, fresh(v)])]);
      return [b.op('Reshape', [out, b.op('Shape', [q])])]; // [B, heads, 1, d]
    };
    const headMajor = (b: GraphBuilder, t: string) => b.op('Transpose', [t], { perm: [1, 2, 0, 3] }); // [B, kvH, P, d]
    const concat = (b: GraphBuilder): string[] => {
      const inner: LayerContext = { ...ctx, g: b, fusedAttention: undefined, past: undefined };
      const all = (t: string, fresh: string) => b.op('Concat', [headMajor(b, t), fresh], { axis: 2 });
      return [attention(inner, q, all(past.key, k), all(past.value, v), heads, kvHeads, d, scale)];
    };
    const gqa = (b: GraphBuilder): string[] => {
      const flat = (t: string, n: number) => b.op('Reshape', [b.op('Transpose', [t], { perm: [0, 2, 1, 3] }), b.constI64([0, 0, n * d])]);
      const [out] = b.ms('GroupQueryAttention', [
        flat(q, heads), flat(k, kvHeads), flat(v, kvHeads), headMajor(b, past.key), headMajor(b, past.value), state.seqlensK, state.total,
        '', '', '', ctx.mask, // no rotary cache / position ids: rotary is applied by the architecture code
      ], { num_heads: heads, kv_num_heads: kvHeads, scale: F(scale), ...(ctx.softcap ? { softcap: F(ctx.softcap) } : {}) }, 3);
      return [b.op('Transpose', [b.op('Reshape', [out!, b.constI64([0, 0, heads, d])])], { perm: [0, 2, 1, 3] })];
    };
    const prompt = (b: GraphBuilder): string[] => (d % 8 === 0 ? b.ifElse(sh.gqaOk, gqa, concat, ['float32']) : concat(b));
    const [out] = g.ifElse(sh.decode, decode, prompt, ['float32']);
    // the new keys/values, position-major [S, B, kvH, d], for the runtime to write after its P positions
    ctx.present = { key: g.op('Transpose', [k], { perm: [2, 0, 1, 3] }), value: g.op('Transpose', [v], { perm: [2, 0, 1, 3] }) };
    state.calls++;
    return out!;
  };
}
