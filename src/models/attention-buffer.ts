/**
 * Attention of the runtime's default CPU KV-cache graphs (kvMode 'buffer', src/graph/model-graph.ts): the cache is read
 * IN PLACE from buffers the runtime owns, and the graph returns only the new keys/values.
 *
 * Layout: the runtime keeps one buffer per layer and K/V with room for `capacity` positions, of which the first P are
 * valid: keys head-major [B, kvH, capacity, d], values transposed [B, kvH, d, capacity]. Each run feeds the whole
 * buffers as they are (onnxruntime-node passes typed arrays to the kernels without a copy); P is the attention mask's
 * length minus the new tokens. The outputs `present.<i>.key/value` are the S new keys and values [B, kvH, S, d]
 * (after rotary); the runtime writes them at positions P..P+S−1 (the values transposed as it writes them).
 *
 * Two ways to attend, chosen per run by an ONNX If on the shapes (the same function; tests compare both with the plain
 * graph):
 * - decode (S = 1 after a non-empty cache): the cached keys are the left operand of one batched product per layer,
 *   K [B·kvH, capacity, d] × qᵀ with the rep = heads / kvHeads query heads of a kv head as its d × rep right operand,
 *   and the cached values likewise, V [B·kvH, d, capacity] × probabilitiesᵀ. MLAS streams a GEMM's left operand from
 *   where it lies and packs only the right one (here a few KB), so each cached key and value is read once per step and
 *   never copied. With the cache as the right operand (q·Kᵀ and p·V over position-major buffers, the graph before
 *   this one) MLAS packed every cached key and value first: a decode step of a 1B shape (8 layers, 4 kv heads of 64)
 *   at 2048 positions spent 3.8–4.5 ms in these products, against 2.1–2.6 ms now (ORT's per-op profile, `npm run
 *   bench:profile -- --ort-profile`), near the rate at which MatMulNBits streams the weights.
 *   The new key is scored separately. The scores of all capacity positions and the new key's are concatenated to
 *   [B, heads, 1, capacity + 1] for the layer's additive mask (padding, sliding window and ALiBi biases exactly as in
 *   `attention()`), into which capacity − P columns of -max-float are inserted before its last one, and the softmax.
 *   Positions P..capacity−1 thus get probability exactly 0 and add nothing to the values' product (the runtime keeps
 *   them finite: zeros, or what an earlier run wrote there, set back to zero when that run failed; it grows the
 *   capacity by a sixteenth, so the extra reads stay small).
 * - prompts (S > 1, or an empty cache): com.microsoft.GroupQueryAttention (head_dim a multiple of 8; batch 1 or an
 *   empty cache, the kernel's limits) on the first P positions of the cache as [B, kvH, P, d] (one copy per prompt
 *   chunk, not per token): its CPU kernel works head by head, so a chunk's scores stay in cache, where the unfused graph
 *   would write all heads' scores to memory several times (measured 1.7× the CPU time at 256 new tokens after 1280).
 *   Otherwise `attention()` on the concatenated keys.
 *
 * Why (issue 17): GroupQueryAttention appending in place (attention-gqa.ts, kvMode 'gqa') makes onnxruntime-node copy
 * every bound present buffer back to JS after each run (the whole capacity of every layer, every token), and its CPU
 * kernel scores each query head by a [1, d]·[d, T] product: at 2048 cached tokens a decode step of a 1B-shape model
 * spent more CPU there than in its 4-bit matmuls (ORT's per-op profile, `npm run bench:profile`).
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
  /** P, the number of valid cached positions (int64 [1]: the attention mask's length minus the new tokens) */
  past: string;
  /** values shared by every layer (built by the first one; all layers have the same B, S, P, heads) */
  shared?: { decode: string; gqaOk: string; scores4: string; scores3: string; split: string; keys: string; values: string; fill: string };
  /**
   * each layer mask (by name) with `fill` columns of -max-float inserted before its last: [.., capacity + 1] in decode
   * runs, a scalar 0 in the others (see bufferAttention)
   */
  padded: Map<string, string>;
  calls: number;
}

/**
 * The `LayerContext.fusedAttention` implementation for a graph whose past KV inputs are the runtime's buffers, keys
 * [B, kvH, capacity, d] and values [B, kvH, d, capacity] (first P positions valid).
 */
export function bufferAttention(state: BufferState): NonNullable<LayerContext['fusedAttention']> {
  return (ctx, q, k, v, heads, kvHeads, d, scale) => {
    const { g } = ctx;
    if (!ctx.past) throw new GqaUnsupportedError('buffer attention needs the KV-cache inputs');
    if (heads % kvHeads !== 0) throw new GqaUnsupportedError(`${heads} heads are not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== state.kvHeads || d !== state.headDim) {
      throw new GqaUnsupportedError(`layer attention has ${kvHeads} kv heads of ${d}, the cache ${state.kvHeads} of ${state.headDim}`);
    }
    const rep = heads / kvHeads, past = ctx.past, P = state.past;
    const sh = (state.shared ??= (() => {
      const S = g.op('Shape', [q], { start: 2, end: 3 }), B = g.op('Shape', [q], { start: 0, end: 1 });
      const cap = g.op('Shape', [past.key], { start: 2, end: 3 });
      const one = g.constI64([1]), zero = g.constI64([0]);
      const cat = (xs: string[]) => g.op('Concat', xs, { axis: 0 });
      return {
        decode: g.op('And', [g.op('Equal', [S, one]), g.op('Greater', [P, zero])]),
        gqaOk: g.op('Or', [g.op('Equal', [B, one]), g.op('Equal', [P, zero])]),
        scores4: cat([g.op('Shape', [q], { start: 0, end: 3 }), g.constI64([-1])]), // → [B, heads, S, capacity + 1]
        scores3: cat([g.constI64([-1]), g.op('Mul', [S, g.constI64([rep])]), g.op('Add', [cap, S])]), // → [B·kvH, rep·S, capacity + 1]
        split: cat([cap, S]),
        keys: cat([g.constI64([-1]), cap, g.constI64([d])]), // → [B·kvH, capacity, d]
        values: cat([g.constI64([-1, d]), cap]), // → [B·kvH, d, capacity]
        fill: g.op('Sub', [cap, P]),
      };
    })());
    // for decode, the layer's mask [.., P + 1] with capacity − P columns of -max-float inserted before its last (the
    // decode scores' order: the capacity's positions, then the new key); built once per distinct mask in its own If
    // outside the layers' (prompt runs skip it: an ALiBi mask [B, heads, S, T] padded would be tens of MB per chunk)
    let mask = state.padded.get(ctx.mask);
    if (!mask) {
      const m = ctx.mask;
      mask = g.ifElse(sh.decode, (b) => {
        const cols = (from: string, to: string) => b.op('Slice', [m, from, to, b.constI64([3])]);
        const fill = b.op('Expand', [b.constF(-3.4028234663852886e38), b.op('Concat', [b.op('Shape', [m], { start: 0, end: 3 }), sh.fill], { axis: 0 })]);
        return [b.op('Concat', [cols(b.constI64([0]), P), fill, cols(P, b.constI64([2 ** 62]))], { axis: 3 })];
      }, (b) => [b.constF(0)], ['float32'])[0]!;
      state.padded.set(ctx.mask, mask);
    }
    const decode = (b: GraphBuilder): string[] => {
      // query head j·rep + r of row b is row r of group b·kvH + j (S = 1: a reshape of [B, heads, 1, d])
      const qg = b.op('Reshape', [q, b.constI64([-1, rep, d])]);
      const fresh = (t: string) => b.op('Reshape', [t, b.constI64([-1, 1, d])]); // [B·kvH, 1, d]
      const sAll = b.ms('FusedMatMul', [b.op('Reshape', [past.key, sh.keys]), qg], { transB: 1, alpha: F(scale) })[0]!; // [B·kvH, capacity, rep]
      const sNew = b.ms('FusedMatMul', [qg, fresh(k)], { transB: 1, alpha: F(scale) })[0]!; // [B·kvH, rep, 1]
      let scores = b.op('Reshape', [b.op('Concat', [b.op('Transpose', [sAll], { perm: [0, 2, 1] }), sNew], { axis: 2 }), sh.scores4]);
      if (ctx.softcap) scores = softcapped(b, scores, ctx.softcap);
      const probs = b.op('Reshape', [b.op('Softmax', [b.op('Add', [scores, mask])], { axis: -1 }), sh.scores3]);
      const [pPast, pNew] = b.opN('Split', [probs, sh.split], 2, { axis: 2 }); // the positions ≥ P have probability 0
      const outT = b.ms('FusedMatMul', [b.op('Reshape', [past.value, sh.values]), pPast!], { transB: 1 })[0]!; // [B·kvH, d, rep]
      const out = b.op('Add', [b.op('Transpose', [outT], { perm: [0, 2, 1] }), b.op('MatMul', [pNew!, fresh(v)])]);
      return [b.op('Reshape', [out, b.op('Shape', [q])])]; // [B, heads, 1, d]
    };
    // the valid positions as [B, kvH, P, d] (copies)
    const pastKeys = (b: GraphBuilder) => b.op('Slice', [past.key, b.constI64([0]), P, b.constI64([2])]);
    const pastValues = (b: GraphBuilder) => b.op('Transpose', [b.op('Slice', [past.value, b.constI64([0]), P, b.constI64([3])])], { perm: [0, 1, 3, 2] });
    const concat = (b: GraphBuilder): string[] => {
      const inner: LayerContext = { ...ctx, g: b, fusedAttention: undefined, past: undefined };
      const all = (t: string, fresh: string) => b.op('Concat', [t, fresh], { axis: 2 });
      return [attention(inner, q, all(pastKeys(b), k), all(pastValues(b), v), heads, kvHeads, d, scale)];
    };
    const gqa = (b: GraphBuilder): string[] => {
      const flat = (t: string, n: number) => b.op('Reshape', [b.op('Transpose', [t], { perm: [0, 2, 1, 3] }), b.constI64([0, 0, n * d])]);
      const [out] = b.ms('GroupQueryAttention', [
        flat(q, heads), flat(k, kvHeads), flat(v, kvHeads), pastKeys(b), pastValues(b), state.seqlensK, state.total,
        '', '', '', ctx.mask, // no rotary cache / position ids: rotary is applied by the architecture code
      ], { num_heads: heads, kv_num_heads: kvHeads, scale: F(scale), ...(ctx.softcap ? { softcap: F(ctx.softcap) } : {}) }, 3);
      return [b.op('Transpose', [b.op('Reshape', [out!, b.constI64([0, 0, heads, d])])], { perm: [0, 2, 1, 3] })];
    };
    const prompt = (b: GraphBuilder): string[] => (d % 8 === 0 ? b.ifElse(sh.gqaOk, gqa, concat, ['float32']) : concat(b));
    const [out] = g.ifElse(sh.decode, decode, prompt, ['float32']);
    // the new keys and values [B, kvH, S, d], for the runtime to write at positions P..P+S−1
    ctx.present = { key: k, value: v };
    state.calls++;
    return out!;
  };
}
