/**
 * Continuous batching (the scheduling loop of TGI's router / vLLM's engine) over `SlotCache`:
 *
 *   queue ──admit (free slot)──▶ prefill, ≤ prefillChunk prompt tokens per iteration (oldest request first)
 *                                 └─ last chunk: first token sampled ─▶ decode, one token per iteration for all
 *                                    decoding requests in ONE batched run ─▶ done (eos, stop string, max tokens,
 *                                    cancel): slot freed before the next iteration
 *
 * Each iteration prefills at most `prefillChunk` prompt tokens (one run per request: the rest of the oldest
 * prefilling request's prompt, then the next one's, …) and then runs one decode step, so a long prompt delays the
 * others' next token by one chunk, never by the whole prompt. The chunk trades the decoding requests' worst
 * inter-token latency (a step with prefill takes longer) against time to first token; it also bounds the attention
 * scratch of one run (heads × chunk × context floats). When no request is decoding, all waiting prompts are
 * prefilled (in runs of ≤ prefillChunk tokens, admitting arrivals in between) before the first decode step, as TGI
 * prefills a waiting batch: no running request is delayed by it (only the burst's own second tokens wait for the
 * burst's prefill), and a burst of requests decodes as one batch. Requests join and leave only between iterations. A cancelled request (client gone) leaves at the start of the next iteration. ORT runs are
 * synchronous in onnxruntime-node, so HTTP I/O is handled between runs.
 *
 * Determinism: greedy requests produce the same tokens whatever else is batched with them. The graph computes every
 * row independently; prompt chunks depend only on the prompt; each decode run has at least 2 rows (a one-request step
 * adds a throw-away row), because MatMulNBits uses a different kernel for a single row (measured: logits differ by
 * 1e-5 at accuracy level 0 and 4e-2 at level 4 between 1 row and ≥ 2 rows, bit-identical for any ≥ 2) — see
 * test/slots.test.ts and test/serve.test.ts. Sampled requests use their own PRNG (mulberry32 seeded by `seed`).
 */
import { randomInt } from '../platform/crypto.ts';
import { fail, GptqError } from '../errors.ts';
import { mulberry32 } from '../io/random.ts';
import type { CausalLM } from '../runtime/causal-lm.ts';
import { SlotCache, type Slot } from '../runtime/slots.ts';
import { applyRepetitionPenalty, sampleToken, type SamplingOptions } from '../runtime/sampling.ts';
import { TextStream } from '../runtime/text-stream.ts';
import type { Detokenizer } from '../io/tokenizer.ts';
import type { ServeMetrics } from './metrics.ts';

export interface EngineOptions {
  /** KV slots: requests generating at once (default 8) */
  maxBatch?: number;
  /** requests waiting for a slot before `submit` refuses with QueueFullError (default 64) */
  maxQueue?: number;
  /** positions per slot: prompt + generated tokens of one request (required) */
  capacity: number;
  /** prompt tokens prefilled per iteration, between two decode steps (default 256) */
  prefillChunk?: number;
  /** granularity in positions of the KV slots' row width (default 64; SlotCacheOptions.widthStep) */
  widthStep?: number;
  metrics?: ServeMetrics;
  /** engine errors (a failed model run) */
  onError?: (e: unknown) => void;
}

export interface GenerationRequest {
  /** prompt token ids (≥ 1) */
  prompt: number[];
  /** tokens to generate at most (≥ 1); prompt + maxTokens ≤ capacity */
  maxTokens: number;
  sampling?: SamplingOptions;
  /** PRNG seed for sampling (default: random) */
  seed?: number;
  /** generation ends when one of these is sampled (not part of the text) */
  eosTokenIds?: number[];
  /** generation ends when the text contains one; the text is cut before it */
  stop?: string[];
  /** text deltas as they become final (stop strings held back) */
  onText?: (delta: string) => void;
  /** LoRA adapter of this request (a name of model.adapters; null/absent = the base model) */
  adapter?: string | null;
}

/** Why a served request ended (OpenAI's finish_reason): eos or a stop string, or the token limit. */
export type ServeFinishReason = 'stop' | 'length';

export interface GenerationResult {
  text: string;
  /** generated token ids (without a final eos) */
  tokens: number[];
  finishReason: ServeFinishReason;
  promptTokens: number;
  completionTokens: number;
}

/** `submit` refused: the queue is full (HTTP 429). */
export class QueueFullError extends GptqError {}
/** The request was cancelled before it finished. */
export class CancelledError extends Error {}

interface Active {
  req: GenerationRequest;
  slot?: Slot;
  /** prompt tokens prefilled so far */
  prefilled: number;
  /** generated tokens; the last one is fed at the next decode step */
  out: number[];
  /** the token to feed next (last sampled) */
  next?: number;
  text: TextStream;
  rand: () => number;
  eos: Set<number>;
  cancelled: boolean;
  /** performance.now() at submit */
  arrived: number;
  lastToken?: number;
  resolve: (r: GenerationResult) => void;
  reject: (e: unknown) => void;
}

export interface Submitted {
  /** resolves when the generation ends; rejects with CancelledError after cancel(), or with the engine's error */
  done: Promise<GenerationResult>;
  /** stop generating and free the slot (before the next model run) */
  cancel(): void;
}

export class BatchEngine {
  readonly slots: SlotCache;
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly capacity: number;
  readonly prefillChunk: number;
  private readonly queue: Active[] = [];
  private readonly active: Active[] = [];
  private wake?: () => void;
  private closed = false;
  private readonly loopDone: Promise<void>;
  /** Most rows seen in one decode step. */
  maxDecodeBatch = 0;

  constructor(readonly model: CausalLM, private readonly tok: Detokenizer, private readonly o: EngineOptions) {
    this.maxBatch = o.maxBatch ?? 8;
    this.maxQueue = o.maxQueue ?? 64;
    this.capacity = o.capacity;
    this.prefillChunk = o.prefillChunk ?? 256;
    for (const [k, v] of [['maxBatch', this.maxBatch], ['capacity', this.capacity], ['prefillChunk', this.prefillChunk]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) fail(`${k} must be a positive integer, got ${v}`);
    }
    if (!(Number.isInteger(this.maxQueue) && this.maxQueue >= 0)) fail(`maxQueue must be an integer ≥ 0, got ${this.maxQueue}`);
    // decode steps run ≥ 2 rows (see the header)
    this.slots = new SlotCache(model, this.maxBatch, this.capacity, { minRows: 2, widthStep: o.widthStep });
    this.loopDone = this.loop();
  }

  /** Requests waiting for a slot. */
  get queued(): number { return this.queue.length; }
  /** Requests holding a slot. */
  get running(): number { return this.active.length; }

  /**
   * Queue a generation. Throws QueueFullError when every slot is taken and `maxQueue` requests wait, GptqError for a request that
   * cannot fit (prompt + maxTokens > capacity, empty prompt).
   */
  submit(req: GenerationRequest): Submitted {
    if (this.closed) fail('the engine is closed');
    if (!req.prompt.length) fail('empty prompt');
    if (!(Number.isInteger(req.maxTokens) && req.maxTokens >= 1)) fail(`maxTokens must be a positive integer, got ${req.maxTokens}`);
    if (req.prompt.length + req.maxTokens > this.capacity) {
      fail(`prompt (${req.prompt.length} tokens) + max tokens (${req.maxTokens}) exceed the context of ${this.capacity} tokens`);
    }
    const V = this.model.cfg.vocabSize;
    const bad = req.prompt.find((t) => !(Number.isInteger(t) && t >= 0 && t < V));
    if (bad !== undefined) fail(`prompt token ${bad} outside the vocabulary [0, ${V})`);
    this.model.withAdapter(req.adapter ?? null); // an adapter that is not loaded: one line
    if (this.active.length + this.queue.length >= this.maxBatch + this.maxQueue) { // queued requests fill free slots first
      throw new QueueFullError(`the queue is full (${this.maxQueue} requests waiting, ${this.active.length} running)`);
    }
    let a!: Active;
    const done = new Promise<GenerationResult>((resolve, reject) => {
      a = {
        req, prefilled: 0, out: [], cancelled: false, arrived: performance.now(), resolve, reject,
        // the prompt is the decoder's context: the text is decode(prompt + output) − decode(prompt), as TGI/vLLM return it
        text: new TextStream(this.tok, req.stop ?? [], (d) => req.onText?.(d), { prompt: req.prompt }),
        rand: mulberry32(req.seed ?? randomInt(2 ** 32)), eos: new Set(req.eosTokenIds ?? []),
      };
    });
    this.queue.push(a);
    this.gauges();
    this.wake?.();
    return {
      done,
      cancel: () => {
        if (a.cancelled) return;
        a.cancelled = true;
        const qi = this.queue.indexOf(a);
        if (qi >= 0) { this.queue.splice(qi, 1); this.finishWith(a, new CancelledError('cancelled')); this.gauges(); }
        this.wake?.();
      },
    };
  }

  /** Stop the loop; running and queued requests are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      try {
        this.reap();
        this.admit();
        if (!this.active.length) {
          await new Promise<void>((r) => { this.wake = r; });
          this.wake = undefined;
          continue;
        }
        // Nobody decoding: there is no running request to protect, so every waiting prompt (including ones that
        // arrive meanwhile, up to the free slots) is prefilled before the first decode step, and a burst of requests
        // decodes in one batch from its first step. Else: at most prefillChunk prompt tokens before the next step.
        const burst = !this.active.some((a) => a.next !== undefined);
        for (let budget = burst ? Infinity : this.prefillChunk, turns = 0; budget > 0;) {
          if (burst) { this.reap(); this.admit(); }
          const pre = this.active.find((a) => a.prefilled < a.req.prompt.length);
          if (!pre) {
            // the rest of a burst: requests that arrived during the last (synchronous) model run are read by the
            // HTTP server in the next event-loop turns; wait two turns for them before the first decode step
            if (burst && turns < 2 && this.active.length < this.maxBatch) { turns++; await new Promise((r) => setImmediate(r)); continue; }
            break;
          }
          turns = 0;
          budget -= await this.prefill(pre, Math.min(budget, this.prefillChunk));
        }
        this.reap();
        const dec = this.active.filter((a) => a.next !== undefined);
        if (dec.length) await this.decode(dec);
        await new Promise((r) => setImmediate(r)); // HTTP I/O between iterations
      } catch (e) {
        // a failed run fails the requests in flight; the loop goes on with the next ones
        this.o.onError?.(e);
        for (const a of this.active.splice(0)) { if (a.slot) this.slots.release(a.slot); this.finishWith(a, e); }
        this.gauges();
      }
    }
    for (const a of [...this.active.splice(0), ...this.queue.splice(0)]) { if (a.slot) this.slots.release(a.slot); this.finishWith(a, new CancelledError('server shutting down')); }
    this.gauges();
  }

  /** Drop cancelled requests, freeing their slots. */
  private reap(): void {
    for (let i = this.active.length - 1; i >= 0; i--) {
      const a = this.active[i]!;
      if (!a.cancelled) continue;
      this.active.splice(i, 1);
      this.slots.release(a.slot!);
      this.finishWith(a, new CancelledError('cancelled'));
    }
    this.gauges();
  }

  private admit(): void {
    while (this.queue.length && this.active.length < this.maxBatch) {
      const a = this.queue.shift()!;
      a.slot = this.slots.acquire(a.req.adapter ?? null)!;
      this.active.push(a);
      this.o.metrics?.promptTokens.inc(a.req.prompt.length);
    }
    this.gauges();
  }

  /** Prefill up to `max` more prompt tokens of `a` in one run; returns how many. */
  private async prefill(a: Active, max: number): Promise<number> {
    const p = a.req.prompt, n = Math.min(max, p.length - a.prefilled);
    const t0 = performance.now();
    const logits = await this.slots.extend(a.slot!, p.slice(a.prefilled, a.prefilled + n));
    this.o.metrics?.stepSeconds.observe({ kind: 'prefill' }, (performance.now() - t0) / 1000);
    a.prefilled += n;
    if (a.prefilled === p.length) this.emit(a, logits);
    return n;
  }

  private async decode(rows: Active[]): Promise<void> {
    const t0 = performance.now();
    const logits = await this.slots.step(rows.map((a) => a.slot!), rows.map((a) => a.next!));
    this.o.metrics?.stepSeconds.observe({ kind: 'decode' }, (performance.now() - t0) / 1000);
    this.o.metrics?.decodeBatch.observe(rows.length);
    this.maxDecodeBatch = Math.max(this.maxDecodeBatch, rows.length);
    const V = this.model.cfg.vocabSize;
    rows.forEach((a, i) => this.emit(a, logits.subarray(i * V, (i + 1) * V)));
  }

  /** Sample the next token of `a` from its logits [V]; finish it on eos / stop string / max tokens. */
  private emit(a: Active, logits: Float32Array): void {
    const s = a.req.sampling ?? {};
    applyRepetitionPenalty(logits, [...a.req.prompt, ...a.out], s.repetitionPenalty ?? 1); // logits: this step's own copy
    const t = sampleToken(logits, s, a.rand);
    const now = performance.now();
    const m = this.o.metrics;
    if (m) {
      m.generatedTokens.inc();
      if (a.lastToken === undefined) m.ttft.observe((now - a.arrived) / 1000);
      else m.itl.observe((now - a.lastToken) / 1000);
    }
    a.lastToken = now;
    let reason: ServeFinishReason | undefined;
    if (a.eos.has(t)) reason = 'stop';
    else {
      a.out.push(t);
      if (a.text.push(t)) reason = 'stop';
      else if (a.out.length >= a.req.maxTokens) reason = 'length';
    }
    if (!reason) { a.next = t; return; }
    this.active.splice(this.active.indexOf(a), 1);
    this.slots.release(a.slot!);
    const text = a.text.finish();
    m?.finished.inc({ reason });
    a.resolve({ text, tokens: a.out, finishReason: reason, promptTokens: a.req.prompt.length, completionTokens: a.out.length });
    this.gauges();
  }

  private finishWith(a: Active, e: unknown): void {
    this.o.metrics?.finished.inc({ reason: e instanceof CancelledError ? 'cancelled' : 'error' });
    a.reject(e);
  }

  private gauges(): void {
    this.o.metrics?.queueDepth.set(this.queue.length);
    this.o.metrics?.activeSlots.set(this.active.length);
  }
}
