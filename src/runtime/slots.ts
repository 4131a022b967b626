/**
 * KV slots for continuous batching (the TGI / vLLM serving loop, on the KV-slot graph of src/models/attention-slots.ts).
 *
 * One preallocated buffer per layer and K/V of maxSlots × kvH × capacity × d fp32: memory is fixed at
 * maxSlots × capacity positions (`bytes`), whatever the requests do. Each slot (one request) holds its own number of
 * positions, always from position 0 of its row. The buffers are laid out [maxSlots, kvH, width, d]: `width` is the
 * longest slot rounded up to a multiple of `widthStep` (64; at most capacity), so that a run can read rows as one
 * contiguous view [B, kvH, width, d] and the graph attends over exactly `width` positions in place (no copy of the
 * cache, src/models/attention-slots.ts). When a slot outgrows the width, or the longest slot falls to half of it,
 * the live positions are moved to the new width (a copy of the used cache, at most once per `widthStep` tokens).
 * Requests join (`acquire`) and leave (`release`) between steps; `extend` appends a chunk of prompt tokens to one
 * slot (a batch-1 run on a zero-copy view of its row), `step` appends one token to each of several slots in one
 * batched run, whatever their lengths (the graph masks each row's unused positions). The graph reads the buffers and returns only the new keys/values, which are written here at each row's
 * own length.
 *
 * Rows and slots: a batched run needs its slots in rows 0..n−1 (the run binds the first n rows as one tensor), so
 * `step` first moves slots that sit in higher rows into the free or non-participating low rows (copying only their
 * used positions). With a stable set of decoding requests nothing moves.
 *
 * Row independence: every op of the graph treats rows independently (the mask and attention are per row; MatMul
 * and MatMulNBits compute each output row from its own input row), so a request's logits do not depend on which other
 * requests share the step. Bit-for-bit equality with a batch-1 run additionally needs kernels whose summation order does
 * not depend on the number of rows; test/slots.test.ts pins that for fp32 models.
 */
import * as ort from '../platform/ort.ts';
import { fail } from '../errors.ts';
import type { CausalLM } from './causal-lm.ts';

/** One request's place in the cache. */
export interface Slot {
  /** positions held (tokens whose keys/values are cached) */
  readonly length: number;
  /** the LoRA adapter this slot's runs use (null = the base model; CausalLM.adapters) */
  readonly adapter: string | null;
}

interface SlotState extends Slot { length: number; row: number; live: boolean; adapter: string | null }

/** Options of SlotCache. */
export interface SlotCacheOptions {
  /**
   * `step` runs at least this many rows, adding throw-away rows (nothing is written for them): with 2, a step's numbers
   * do not depend on how many requests share it, since MatMulNBits computes a single row with a different kernel than
   * several (bit-identical for any number ≥ 2; see src/serve/engine.ts). Default 1.
   */
  minRows?: number;
  /**
   * Granularity of the buffers' row width in positions (default 64): a run attends over at most widthStep − 1
   * positions more than the longest slot needs, and the live cache is moved to a new width at most once per
   * widthStep tokens of the longest slot.
   */
  widthStep?: number;
}

export class SlotCache {
  /** per layer: keys / values [maxSlots, kvH, capacity, d] */
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  /** row → slot in it */
  private readonly rows: (SlotState | undefined)[];
  /** positions per row and head in the current layout [rows, kvH, width, d] */
  private width_: number;
  readonly minRows: number;
  readonly widthStep: number;
  /** Bytes of the KV buffers (all layers, keys and values). */
  readonly bytes: number;
  /** How often the row width grew and shrank (each a move of the live cache). */
  readonly widthChanges = { grew: 0, shrank: 0 };

  /**
   * @param model loaded with `attention: 'slots'`
   * @param maxSlots rows (concurrent requests)
   * @param capacity positions per slot (prompt + generated tokens of one request)
   */
  constructor(private readonly model: CausalLM, readonly maxSlots: number, readonly capacity: number, o: SlotCacheOptions = {}) {
    const minRows = (this.minRows = o.minRows ?? 1), widthStep = (this.widthStep = o.widthStep ?? 64);
    if (model.attention !== 'slots') fail(`SlotCache: the model must be loaded with attention "slots" (it uses "${model.attention}")`);
    if (!(Number.isInteger(maxSlots) && maxSlots >= 1)) fail(`SlotCache: maxSlots must be a positive integer, got ${maxSlots}`);
    if (!(Number.isInteger(capacity) && capacity >= 1)) fail(`SlotCache: capacity must be a positive integer, got ${capacity}`);
    const { numLayers, numKvHeads: kvH, headDim: d } = model.cfg;
    if (!(Number.isInteger(minRows) && minRows >= 1)) fail(`SlotCache: minRows must be a positive integer, got ${minRows}`);
    if (!(Number.isInteger(widthStep) && widthStep >= 1)) fail(`SlotCache: widthStep must be a positive integer, got ${widthStep}`);
    this.width_ = Math.min(capacity, widthStep);
    const n = Math.max(maxSlots, minRows) * kvH * capacity * d;
    this.bytes = 2 * numLayers * n * 4;
    const make = () => Array.from({ length: numLayers }, () => new Float32Array(n));
    this.keys = make();
    this.values = make();
    this.rows = new Array(maxSlots).fill(undefined);
  }

  /** Positions each row holds in the current layout: what the next run attends over (grows and shrinks with the longest slot). */
  get width(): number { return this.width_; }

  /** Slots in use. */
  get used(): number { return this.rows.filter(Boolean).length; }

  /**
   * A free slot (length 0), or undefined when all are taken. `adapter`: the LoRA adapter its runs use (a name of
   * model.adapters; default the model's own, CausalLM.adapter); throws GptqError for one that is not loaded.
   */
  acquire(adapter: string | null = this.model.adapter): Slot | undefined {
    this.model.withAdapter(adapter); // checks the name
    const row = this.rows.findIndex((r) => !r);
    if (row < 0) return undefined;
    const s: SlotState = { length: 0, row, live: true, adapter };
    this.rows[row] = s;
    return s;
  }

  /** Give a slot back (its positions are forgotten). */
  release(slot: Slot): void {
    const s = this.state(slot, 'release');
    this.rows[s.row] = undefined;
    s.live = false;
  }

  /**
   * Append `ids` (a prompt chunk) to one slot: a batch-1 run over its row. Returns the logits of the last new position
   * [V]. Throws when the slot would exceed `capacity`.
   */
  async extend(slot: Slot, ids: readonly number[]): Promise<Float32Array> {
    const s = this.state(slot, 'extend');
    const S = ids.length, P = s.length, T = P + S;
    if (S === 0) fail('SlotCache.extend: no tokens');
    if (T > this.capacity) fail(`SlotCache.extend: ${T} positions exceed the slot capacity ${this.capacity}`);
    const pos = new BigInt64Array(S);
    for (let j = 0; j < S; j++) pos[j] = BigInt(P + j);
    const W = this.fit(T);
    const r = await this.run(s.row, 1, [...ids], S, pos, new BigInt64Array(W).fill(1n, 0, T), [P]);
    s.length = T;
    return r;
  }

  /**
   * Append one token to each slot (tokens[i] to slots[i]) in one batched run. Returns logits [n, V], row i for
   * slots[i]. Throws when a slot is full.
   */
  async step(slots: readonly Slot[], tokens: readonly number[]): Promise<Float32Array> {
    const st = slots.map((s) => this.state(s, 'step'));
    const n = st.length;
    if (n === 0 || tokens.length !== n) fail(`SlotCache.step: ${n} slots and ${tokens.length} tokens`);
    if (new Set(st).size !== n) fail('SlotCache.step: a slot is given twice');
    for (const s of st) if (s.length + 1 > this.capacity) fail(`SlotCache.step: a slot is full (capacity ${this.capacity})`);
    this.gather(st);
    // rows 0..n−1 now hold the slots; feed them in row order
    const order = st.map((_, i) => i).sort((a, b) => st[a]!.row - st[b]!.row);
    const B = Math.max(n, this.minRows), T = this.fit(Math.max(...st.map((s) => s.length)) + 1);
    const ids: number[] = [], pos = new BigInt64Array(B), mask = new BigInt64Array(B * T), starts: number[] = [];
    order.forEach((i, row) => {
      const s = st[i]!;
      ids.push(tokens[i]!);
      pos[row] = BigInt(s.length);
      mask.fill(1n, row * T, row * T + s.length + 1); // its own positions and the new one, then a hole
      starts.push(s.length);
    });
    for (let row = n; row < B; row++) { ids.push(0); mask[row * T] = 1n; starts.push(-1); } // throw-away rows
    const logits = await this.run(0, B, ids, 1, pos, mask, starts);
    for (const s of st) s.length++;
    const V = this.model.cfg.vocabSize, out = new Float32Array(n * V);
    order.forEach((i, row) => out.set(logits.subarray(row * V, (row + 1) * V), i * V));
    return out;
  }

  /**
   * The row width for a run that needs `need` positions in some row: grows the layout when `need` exceeds the width,
   * shrinks it when every slot (and `need`) fits in half of it. Returns the width, the mask length of the run.
   */
  private fit(need: number): number {
    const longest = Math.max(need, ...this.rows.map((s) => s?.length ?? 0));
    const w = Math.min(this.capacity, Math.ceil(longest / this.widthStep) * this.widthStep);
    if (w > this.width_ || w <= this.width_ / 2) this.relayout(w);
    return this.width;
  }

  /** Move every live slot's positions from the layout of the current width to width `w`. */
  private relayout(w: number): void {
    const { numKvHeads: kvH, headDim: d } = this.model.cfg, from = this.width_;
    // growing moves blocks to higher offsets (last block first), shrinking to lower ones (first block first)
    const blocks: [number, number, number][] = [];
    for (const s of this.rows) if (s) for (let h = 0; h < kvH; h++) blocks.push([(s.row * kvH + h) * from * d, (s.row * kvH + h) * w * d, s.length * d]);
    blocks.sort((a, b) => (w > from ? b[0] - a[0] : a[0] - b[0]));
    for (const buf of [...this.keys, ...this.values]) for (const [src, dst, len] of blocks) if (src !== dst) buf.copyWithin(dst, src, src + len);
    if (w > from) this.widthChanges.grew++; else this.widthChanges.shrank++;
    this.width_ = w;
  }

  /**
   * Run rows [row0, row0 + B) with S new tokens each (ids row-major), positions [B,S], mask [B,width]; write each
   * row's new keys/values at its `starts[b]` (−1: nothing). Returns the logits [B,V].
   */
  private async run(row0: number, B: number, ids: number[], S: number, pos: BigInt64Array, mask: BigInt64Array, starts: number[]): Promise<Float32Array> {
    const { numLayers, numKvHeads: kvH, headDim: d } = this.model.cfg;
    const W = this.width, rowSize = kvH * W * d;
    if (mask.length !== B * W) throw new Error(`SlotCache.run: mask of ${mask.length} for ${B} rows of width ${W}`);
    const dims = [B, kvH, W, d];
    const view = (a: Float32Array) => new ort.Tensor('float32', a.subarray(row0 * rowSize, (row0 + B) * rowSize), dims);
    const r = await this.model.runSlots(
      new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [B, S]), new ort.Tensor('int64', pos, [B, S]),
      new ort.Tensor('int64', mask, [B, W]), this.keys.map(view), this.values.map(view),
      this.model.adapters.length ? Array.from({ length: B }, (_, b) => (starts[b]! < 0 ? null : this.rows[row0 + b]?.adapter ?? null)) : undefined);
    for (let i = 0; i < numLayers; i++) {
      for (const [src, dst] of [[r.keys[i]!, this.keys[i]!], [r.values[i]!, this.values[i]!]] as const) {
        for (let b = 0; b < B; b++) {
          if (starts[b]! < 0) continue;
          for (let h = 0; h < kvH; h++) {
            const from = (b * kvH + h) * S * d;
            dst.set(src.subarray(from, from + S * d), (((row0 + b) * kvH + h) * W + starts[b]!) * d);
          }
        }
      }
    }
    return r.logits;
  }

  /** Put the slots `st` into rows 0..n−1 (moving slots from higher rows into free or non-participating low rows). */
  private gather(st: SlotState[]): void {
    const n = st.length, want = new Set(st);
    const high = st.filter((s) => s.row >= n);
    for (let row = 0; row < n && high.length; row++) {
      const occupant = this.rows[row];
      if (occupant && want.has(occupant)) continue;
      const s = high.pop()!;
      if (occupant) this.swap(s, occupant);
      else this.moveTo(s, row);
    }
  }

  /** Copy a slot's used positions to a free row. */
  private moveTo(s: SlotState, row: number): void {
    this.copyRow(s.row, row, s.length);
    this.rows[s.row] = undefined;
    this.rows[row] = s;
    s.row = row;
  }

  private swap(a: SlotState, b: SlotState): void {
    const free = this.rows.findIndex((r) => !r);
    if (free >= 0) { // through a free row: a → free, b → a's row, a → b's row
      const ra = a.row, rb = b.row;
      this.moveTo(a, free); this.moveTo(b, ra); this.moveTo(a, rb);
      return;
    }
    // no free row (all slots in use, so n < maxSlots rows participate): swap position by position
    const { numKvHeads: kvH, headDim: d } = this.model.cfg, W = this.width;
    const len = Math.max(a.length, b.length);
    for (const buf of [...this.keys, ...this.values]) {
      for (let h = 0; h < kvH; h++) {
        const pa = (a.row * kvH + h) * W * d, pb = (b.row * kvH + h) * W * d;
        const tmp = buf.slice(pa, pa + len * d);
        buf.copyWithin(pa, pb, pb + len * d);
        buf.set(tmp, pb);
      }
    }
    [a.row, b.row] = [b.row, a.row];
    this.rows[a.row] = a; this.rows[b.row] = b;
  }

  /** Copy the first `len` positions of every head of row `from` to row `to`, in every layer's keys and values. */
  private copyRow(from: number, to: number, len: number): void {
    const { numKvHeads: kvH, headDim: d } = this.model.cfg, W = this.width;
    for (const buf of [...this.keys, ...this.values]) {
      for (let h = 0; h < kvH; h++) {
        const src = (from * kvH + h) * W * d;
        buf.copyWithin((to * kvH + h) * W * d, src, src + len * d);
      }
    }
  }

  private state(slot: Slot, what: string): SlotState {
    const s = slot as SlotState;
    if (!s.live || this.rows[s.row] !== s) fail(`SlotCache.${what}: the slot was released or belongs to another cache`);
    return s;
  }
}
