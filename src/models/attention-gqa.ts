/**
 * Attention of the runtime's KV-cache graphs on ONNX Runtime's com.microsoft.GroupQueryAttention (CPU EP).
 *
 * Why: the plain graph (`attention()` in blocks.ts) grows the cache with Concat, so every decode step copies the whole
 * cache into a new present tensor (and JS hands it back as the next past). GroupQueryAttention instead writes the new
 * keys/values into a preallocated buffer [B, kvH, capacity, d]: the runtime binds the same memory as past input and
 * present output (ORT detects the shared buffer and appends in place), so a step touches only the new positions.
 *
 * Semantics, as in ORT's CPU kernel (contrib_ops/cpu/bert/gqa_attention_base.h): per row b the buffer holds
 * seqlens_k[b] + 1 = total_sequence_length valid positions, the S new ones are appended at total − S, query s sees
 * keys [0, total − S + s] (causal), scores = scale·q·kᵀ + attention_bias. We feed every row the same total (left
 * padding stays in the buffer, as in the Concat graph) and pass the layer's own additive mask `ctx.mask`
 * [B|1, 1|heads, S, total] as attention_bias, so padding, sliding windows and ALiBi biases are exactly those of the
 * plain path. Rotary stays in the architecture code (position_ids from the attention mask), so left-padded rows get
 * the same positions as in the plain path.
 *
 * The kernel's limits (checked by the runtime, which falls back to the plain graph or to token-by-token steps):
 * fp32 on CPU; head_dim a multiple of 8; a multi-token step after a non-empty cache only with batch 1.
 */
import { F } from '../graph/builder.ts';
import type { LayerContext } from './types.ts';

/** Thrown while building when a layer's attention cannot run on GroupQueryAttention (the runtime falls back). */
export class GqaUnsupportedError extends Error {}

/** Graph-wide inputs of GroupQueryAttention, computed once per graph, plus a count of layers that used it. */
export interface GqaState {
  /** int32 [B]: total − 1 for every row */
  seqlensK: string;
  /** int32 scalar: total sequence length (past + new) */
  totalLength: string;
  /** expected KV geometry (the graph's past/present inputs are declared with it) */
  kvHeads: number; headDim: number;
  calls: number;
}

/** The `LayerContext.fusedAttention` implementation for a graph whose past KV inputs are [B, kvH, capacity, d] buffers. */
export function gqaAttention(state: GqaState): NonNullable<LayerContext['fusedAttention']> {
  return (ctx, q, k, v, heads, kvHeads, d, scale) => {
    const { g } = ctx;
    if (!ctx.past) throw new GqaUnsupportedError('GroupQueryAttention needs the KV-cache inputs');
    if (d % 8 !== 0) throw new GqaUnsupportedError(`head_dim ${d} is not a multiple of 8`);
    if (heads % kvHeads !== 0) throw new GqaUnsupportedError(`${heads} heads are not a multiple of ${kvHeads} kv heads`);
    if (kvHeads !== state.kvHeads || d !== state.headDim) {
      throw new GqaUnsupportedError(`layer attention has ${kvHeads} kv heads of ${d}, the cache ${state.kvHeads} of ${state.headDim}`);
    }
    // [B, n, S, d] → [B, S, n·d] (BSNH, what the op reads)
    const flat = (t: string, n: number) => g.op('Reshape', [g.op('Transpose', [t], { perm: [0, 2, 1, 3] }), g.constI64([0, 0, n * d])]);
    const [out, presentKey, presentValue] = g.ms('GroupQueryAttention', [
      flat(q, heads), flat(k, kvHeads), flat(v, kvHeads), ctx.past.key, ctx.past.value,
      state.seqlensK, state.totalLength,
      '', '', // cos_cache, sin_cache: rotary is applied by the architecture code
      '', // position_ids
      ctx.mask, // attention_bias
    ], { num_heads: heads, kv_num_heads: kvHeads, scale: F(scale), ...(ctx.softcap ? { softcap: F(ctx.softcap) } : {}) }, 3);
    ctx.present = { key: presentKey!, value: presentValue! };
    state.calls++;
    return g.op('Transpose', [g.op('Reshape', [out!, g.constI64([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
  };
}
