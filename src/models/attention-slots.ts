/**
 * Attention of the runtime's KV-slot graphs (kvMode 'slots', src/graph/causal-lm.ts): continuous batching, where every
 * row of a step is a different request with its own cache length (src/runtime/slots.ts, `gptq serve`).
 *
 * The cache is a set of preallocated buffers [B, kvH, capacity, d] that the graph only READS: the step takes their
 * first T positions (Slice, a copy), scatters the S new keys/values of row b into that copy at the row's own next
 * positions (ScatterElements at indices start_b … start_b + S − 1, where start_b + S is the end of row b's last run of
 * mask ones: a row's length, or T for left-padded rows) and attends over the T keys with the step's additive mask,
 * which hides each row's unused positions (see `positionMask`). So every row's keys sit at the same indices as in a
 * run of that row alone, and the only difference batching makes to a row is masked keys after its own: exact zeros in
 * the softmax and the probability·V sum. The graph outputs only the new keys/values [B, kvH, S, d] (after rotary) as
 * `present.<i>.key/value`; the runtime writes them into its buffers at the same positions.
 *
 * Why not GroupQueryAttention appending in place (attention-gqa.ts): its present outputs must be bound to the whole
 * buffer, and onnxruntime-node returns a fresh copy of every bound output after each run — for serving-sized buffers
 * (slots × context) that copy costs more than the step (measured in the notes of issue 13). Reading the buffers as
 * inputs costs no copy, and plain ops run on every execution provider.
 */
import { attention } from './blocks.ts';
import type { LayerContext } from './types.ts';

/** Graph-wide values of the slot attention, plus a count of layers that used it. */
export interface SlotState {
  /** int64 [1]: T, how many buffer positions the step attends over (attention_mask's length) */
  total: string;
  /** int64 [B,1,S,1]: buffer index of each new token (start_b + s) */
  newIndex: string;
  /** newIndex expanded to the new keys' shape [B, kvH, S, d] (built by the first layer) */
  expanded?: string;
  calls: number;
}

/** The `LayerContext.fusedAttention` implementation for a graph whose past KV inputs are read-only [B, kvH, capacity, d] buffers. */
export function slotAttention(state: SlotState): NonNullable<LayerContext['fusedAttention']> {
  return (ctx, q, k, v, heads, kvHeads, d, scale) => {
    const { g } = ctx;
    if (!ctx.past) throw new Error('slot attention needs the KV-cache inputs');
    const idx = (state.expanded ??= g.op('Expand', [state.newIndex, g.op('Shape', [k])]));
    const keys = (buf: string, fresh: string) => g.op('ScatterElements', [g.op('Slice', [buf, g.constI64([0]), state.total, g.constI64([2])]), idx, fresh], { axis: 2 });
    const inner: LayerContext = { ...ctx, fusedAttention: undefined, past: undefined };
    const out = attention(inner, q, keys(ctx.past.key, k), keys(ctx.past.value, v), heads, kvHeads, d, scale);
    ctx.present = { key: k, value: v };
    state.calls++;
    return out;
  };
}
