/** Whole-model and single-layer graphs for any ArchDefinition. */
import { GraphBuilder } from './builder.ts';
import { causalMask, dim, positionMask, useFusedNorms } from '../models/blocks.ts';
import { rotaryEmbedding, type Rope } from '../models/rope.ts';
import { gqaAttention, GqaUnsupportedError, type GqaState } from '../models/attention-gqa.ts';
import { slotAttention, type SlotState } from '../models/attention-slots.ts';
import { bufferAttention, type BufferState } from '../models/attention-buffer.ts';
import type { ArchDefinition, LayerContext, WeightSource } from '../models/types.ts';
import type { ModelConfig } from '../io/config.ts';

export interface ModelGraphOptions {
  /** past/present KV inputs+outputs and an attention_mask/position_ids input (generation). */
  kvCache: boolean;
  /** only the last position's logits [B,1,V] (generation) instead of [B,S,V] (perplexity). */
  lastLogitsOnly?: boolean;
  /**
   * How kvCache graphs keep the cache. 'concat' (default): past [B,kvH,P,d] in, present [B,kvH,P+S,d] out, grown by
   * Concat. 'gqa': past and present are one preallocated buffer [B,kvH,capacity,d] that the caller binds to the same
   * memory; com.microsoft.GroupQueryAttention appends the new positions in place (src/models/attention-gqa.ts).
   * Throws GqaUnsupportedError when some layer cannot run that way.
   * 'slots' (continuous batching, src/runtime/slots.ts): past inputs are read-only buffer views [B,kvH,T,d], all T
   * positions read in place; attention_mask [B,T] marks the real keys of each row including the S new
   * ones, which are the last S ones of the row (rows have their own lengths: ones then zeros; left padding also
   * works), position_ids are the new tokens' positions, and the presents are only the S new keys/values [B,kvH,S,d]
   * for the caller to write into its buffers at the same indices (src/models/attention-slots.ts). Throws
   * GqaUnsupportedError when a layer does not compute its attention with attention().
   * 'buffer' (the CPU default, src/models/attention-buffer.ts): past inputs are the runtime's whole buffers, keys
   * [B,kvH,capacity,d] and values transposed [B,kvH,d,capacity], of which the first P are valid, attention_mask
   * [B,P+S], and the presents are only the S new keys and values [B,kvH,S,d] (the runtime transposes the values as it
   * writes them). Throws GqaUnsupportedError when a layer does not compute its attention with attention().
   */
  kvMode?: 'concat' | 'gqa' | 'slots' | 'buffer';
  /**
   * Add an int64 scalar input `num_logits_to_keep`: logits of the last N positions [B,N,V] (N = S: all; 1: next-token
   * only), so one graph serves perplexity, prefill and decode. Overrides lastLogitsOnly.
   */
  logitsToKeepInput?: boolean;
  /**
   * Use ORT CPU kernels for whole blocks (same fp32 math): SimplifiedLayerNormalization for RMSNorm and
   * com.microsoft.RotaryEmbedding for applyRope. Fewer nodes per decode step; CPU EP only.
   */
  fusedOps?: boolean;
  /**
   * Add an int64 input `labels` [B,L] and an output `nll` [B,L] = −log softmax(logits[b,l])[labels[b,l]] for the
   * first L ≤ N returned positions (fp32 like the logits: LogSoftmax over all N, GatherElements with the shorter
   * indices, no copy of the logits), so perplexity reads B·L floats instead of the [B,N,V] logits. Calls that want
   * no NLL feed labels [B,0].
   */
  nllOutput?: boolean;
  /**
   * With nllOutput: also an output `argmax` [B,L] int64 = argmax over the vocabulary of logits[b,l] for the same first
   * L positions (ONNX ArgMax, first index on ties like torch.argmax): the greedy token, so loglikelihood scoring can
   * tell whether a continuation is the greedy one (lm-eval's is_greedy) without the logits leaving ONNX Runtime.
   */
  argmaxOutput?: boolean;
}

export { GqaUnsupportedError };

/** Names of the KV tensors of layer i. */
export const kvNames = (i: number) => ({
  pastKey: `past_key_values.${i}.key`, pastValue: `past_key_values.${i}.value`,
  presentKey: `present.${i}.key`, presentValue: `present.${i}.value`,
});

/**
 * input_ids [B,S] → logits. With kvCache: inputs position_ids [B,S], attention_mask [B,P+S] and past KV
 * [B,kvH,P,d] per layer; outputs present KV [B,kvH,P+S,d] (kvMode 'gqa': both [B,kvH,capacity,d], one buffer;
 * 'slots': past [B,kvH,T,d] (T = attention_mask's length), present the new [B,kvH,S,d]; 'buffer': past keys
 * [B,kvH,capacity,d] and values [B,kvH,d,capacity] (first T − S positions valid), present the new keys and values
 * [B,kvH,S,d]).
 */
export function buildCausalLM(arch: ArchDefinition, cfg: ModelConfig, w: WeightSource, o: ModelGraphOptions): GraphBuilder {
  const g = new GraphBuilder(`${cfg.modelType}_causal_lm`);
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = dim(g, ids, 1);
  let positions: string, mask: string, maskOf: (window: number | null) => string;
  const pasts: { key: string; value: string }[] = [];
  const gqa = o.kvCache && o.kvMode === 'gqa', slots = o.kvCache && o.kvMode === 'slots', buffer = o.kvCache && o.kvMode === 'buffer';
  const kvLen = gqa || buffer ? 'capacity' : slots ? 'total' : 'past', presentLen = gqa ? 'capacity' : slots || buffer ? 'seq' : 'total';
  /** [B,kvH,len,d]; values [B,kvH,d,len] for 'buffer' */
  const kvShape = (len: string, value = false) => (buffer && value ? ['batch', cfg.numKvHeads, cfg.headDim, len] : ['batch', cfg.numKvHeads, len, cfg.headDim]);
  let gqaState: GqaState | undefined, slotState: SlotState | undefined, bufferState: BufferState | undefined;
  if (o.kvCache) {
    positions = g.input('position_ids', 'int64', ['batch', 'seq']);
    const am = g.input('attention_mask', 'int64', ['batch', 'total']);
    for (let i = 0; i < cfg.numLayers; i++) {
      const n = kvNames(i);
      pasts.push({
        key: g.input(n.pastKey, 'float32', kvShape(kvLen)),
        value: g.input(n.pastValue, 'float32', kvShape(kvLen, true)),
      });
    }
    const T = dim(g, am, 1);
    if (slots) {
      maskOf = (window) => positionMask(g, positions, am, window);
      mask = maskOf(cfg.slidingWindow);
      // row b's new tokens go to buffer indices end_b − S … end_b − 1, end_b = 1 + the index of its last mask one
      const end = g.op('ReduceMax', [g.op('Mul', [am, g.op('Range', [g.constI64(1), g.op('Add', [T, g.constI64(1)]), g.constI64(1)])]), g.constI64([1])], { keepdims: 1 }); // [B,1]
      const newIndex = g.op('Add', [g.op('Unsqueeze', [g.op('Sub', [end, S]), g.constI64([2, 3])]), g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0, 1, 3])])]); // [B,1,S,1]
      slotState = { newIndex, decode: g.op('Equal', [S, g.constI64(1)]), calls: 0 };
    } else {
      maskOf = (window) => causalMask(g, S, T, am, window);
      mask = maskOf(cfg.slidingWindow);
    }
    if (gqa || buffer) {
      const total = g.op('Cast', [T], { to: 6 }); // int32 scalar
      const B = g.op('Shape', [ids], { start: 0, end: 1 });
      const seqlensK = g.op('Expand', [g.op('Sub', [total, g.op('Cast', [g.constI64(1)], { to: 6 })]), B]);
      if (gqa) gqaState = { seqlensK, totalLength: total, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, calls: 0 };
      else {
        const past = g.op('Sub', [g.op('Shape', [am], { start: 1, end: 2 }), g.op('Shape', [ids], { start: 1, end: 2 })]);
        bufferState = { seqlensK, total, past, kvHeads: cfg.numKvHeads, headDim: cfg.headDim, padded: new Map(), calls: 0 };
      }
    }
  } else {
    positions = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
    maskOf = (window) => causalMask(g, S, S, undefined, window);
    mask = maskOf(cfg.slidingWindow);
  }
  // slots: every row is its own request, so length-dependent RoPE (dynamic, longrope) follows each row's own length
  const { maskWith, ropeWith } = variants(g, maskOf, cfg, positions, !!o.fusedOps, mask, slots);
  if (o.fusedOps) useFusedNorms(g);
  let h = arch.embed(g, cfg, w, ids, positions);
  const r = ropeWith(cfg);
  const fusedAttention = gqaState ? gqaAttention(gqaState) : slotState ? slotAttention(slotState) : bufferState ? bufferAttention(bufferState) : undefined;
  const hook = gqaState ?? slotState ?? bufferState;
  for (let i = 0; i < cfg.numLayers; i++) {
    const ctx: LayerContext = { g, cfg, w, prefix: `${arch.layersBlockName}${i}.`, layerIndex: i, rope: r, mask, maskWith, ropeWith, past: pasts[i], fusedAttention };
    const calls = hook?.calls ?? 0;
    h = arch.layer(ctx, h);
    if (hook && hook.calls !== calls + 1) {
      throw new GqaUnsupportedError(`${cfg.modelType} layer ${i} does not compute its attention with attention() exactly once`);
    }
    if (o.kvCache) {
      const n = kvNames(i);
      g.output(ctx.present!.key, 'float32', kvShape(presentLen), n.presentKey);
      g.output(ctx.present!.value, 'float32', kvShape(presentLen), n.presentValue);
    }
  }
  let logitsLen: string | number = 'seq';
  if (o.logitsToKeepInput) {
    const keep = g.input('num_logits_to_keep', 'int64', []);
    h = g.op('Slice', [h, g.op('Unsqueeze', [g.op('Neg', [keep]), g.constI64([0])]), g.constI64([2 ** 62]), g.constI64([1])]);
    logitsLen = 'keep';
  } else if (o.lastLogitsOnly) {
    h = g.op('Slice', [h, g.constI64([-1]), g.constI64([2 ** 62]), g.constI64([1])]);
    logitsLen = 1;
  }
  const logits = g.output(arch.head(g, cfg, w, h), 'float32', ['batch', logitsLen, cfg.vocabSize], 'logits');
  if (o.nllOutput) {
    const labels = g.input('labels', 'int64', ['batch', 'labels']);
    const picked = g.op('GatherElements', [g.op('LogSoftmax', [logits], { axis: -1 }), g.op('Unsqueeze', [labels, g.constI64([-1])])], { axis: -1 });
    g.output(g.op('Neg', [g.op('Squeeze', [picked, g.constI64([-1])])]), 'float32', ['batch', 'labels'], 'nll');
    if (o.argmaxOutput) {
      const L = g.op('Shape', [labels], { start: 1, end: 2 });
      const first = g.op('Slice', [logits, g.constI64([0]), L, g.constI64([1])]);
      g.output(g.op('ArgMax', [first], { axis: -1, keepdims: 0 }), 'int64', ['batch', 'labels'], 'argmax');
    }
  }
  return o.fusedOps ? g.prune() : g;
}

/**
 * One decoder layer as its own graph (calibration, src/quant/calibrate.ts): input hidden_in [B,S,hidden] → output
 * hidden_out (unless `withHidden` is false), causal, positions 0..S−1, weights from `w` (any layer: `layerIndex` picks
 * per-layer variants). `hiddenType` float16: hidden_in/hidden_out are stored as fp16 (cast at the edges; the layer runs
 * in fp32). Returned unpruned: the caller adds its outputs and prunes.
 */
export function buildDecoderLayer(arch: ArchDefinition, cfg: ModelConfig, w: WeightSource, o: { withHidden?: boolean; layerIndex?: number; hiddenType?: 'float32' | 'float16' } = {}): GraphBuilder {
  const g = new GraphBuilder(`${cfg.modelType}_layer`);
  const half = o.hiddenType === 'float16';
  const xin = g.input('hidden_in', half ? 'float16' : 'float32', ['batch', 'seq', cfg.hiddenSize]);
  const x = half ? g.op('Cast', [xin], { to: 1 }) : xin;
  const S = dim(g, x, 1);
  const positions = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  const { maskWith, ropeWith } = variants(g, (window) => causalMask(g, S, S, undefined, window), cfg, positions, false);
  // built in this order (rope, then mask) as before these variants existed: graph bytes unchanged
  const ctx: LayerContext = { g, cfg, w, prefix: `${arch.layersBlockName}0.`, layerIndex: o.layerIndex ?? 0, rope: ropeWith(cfg), mask: maskWith(cfg.slidingWindow), maskWith, ropeWith };
  const out = arch.layer(ctx, x);
  if (o.withHidden ?? true) g.output(half ? g.op('Cast', [out], { to: 10 }) : out, half ? 'float16' : 'float32', ['batch', 'seq', cfg.hiddenSize], 'hidden_out');
  return g;
}

/**
 * LayerContext.maskWith / ropeWith of one graph: each mask (per sliding window) and rotary embedding (per config
 * object) is built on first use and shared by every layer asking for it.
 */
function variants(g: GraphBuilder, maskOf: (window: number | null) => string, cfg: ModelConfig, positions: string, fused: boolean, mask?: string, perRowLength = false) {
  const masks = new Map<number | null, string>(mask === undefined ? [] : [[cfg.slidingWindow, mask]]), ropes = new Map<ModelConfig, Rope>();
  const maskWith = (window: number | null): string => masks.get(window) ?? masks.set(window, maskOf(window)).get(window)!;
  const ropeWith = (c: ModelConfig): Rope => ropes.get(c) ?? ropes.set(c, rotaryEmbedding(g, c, positions, fused, perRowLength)).get(c)!;
  return { maskWith, ropeWith };
}
