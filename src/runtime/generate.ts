/**
 * Autoregressive generation over a CausalLM with KV cache, at the token-id level: batching (left padding), stop
 * tokens/strings/criteria, streaming, cancellation. The text-level API (CausalLM.generate/stream/chat) is
 * src/runtime/text.ts on top of this. Decoding follows Transformers' `GenerationMixin._sample`: per step, logits
 * processors (repetition penalty → temperature → top-k → top-p, src/runtime/sampling.ts), then greedy or sampling;
 * a row stops at an eos token (not included in its output) or when a stopping criterion holds.
 */
import { fail } from '../errors.ts';
import { mulberry32 } from '../io/random.ts';
import { StreamDecoder, type Detokenizer } from '../io/tokenizer.ts';
import type { CausalLM, KvCache } from './causal-lm.ts';
import { applyRepetitionPenalty, checkGenerationOptions, sampleToken, type SamplingOptions } from './sampling.ts';

/** Why a row stopped: an eos token, a stop string/criterion, maxNewTokens, or AbortSignal (stopOnAbortSignal). */
export type FinishReason = 'eos' | 'stop' | 'length' | 'abort';

export interface GenerateOptions extends SamplingOptions {
  /** Default 64 (the CLI and the text-level API pick their own). Capped where a learned position table ends
   *  (CausalLM.positionLimit: prompt + cache + new tokens ≤ max_position_embeddings; rows then finish 'length'). */
  maxNewTokens?: number;
  /**
   * Stop a row when it produces one of these ids (not included in its output). Default: the model's
   * `CausalLM.eosTokenIds` (generation_config.json, else config.json, else the tokenizer's eos_token, as
   * Transformers' GenerationConfig does); `[]` never stops early (benchmarks).
   */
  eosTokenIds?: number[];
  /** Stop when the generated text contains one of these (needs `tokenizer`, or `decode`). */
  stopStrings?: string[];
  /**
   * Decode each row's text incrementally (a StreamDecoder per row, the row's prompt as context): gives onText,
   * GenerateResult.text and stop strings without decoding a row's whole output again per token.
   */
  tokenizer?: Detokenizer;
  /** For `tokenizer` (default true, as TextTokenizer.decode). */
  skipSpecialTokens?: boolean;
  /**
   * Called with (row, text) as a row's text grows (needs `tokenizer`); a row's pieces concatenate to
   * decode(prompt + generated) minus decode(prompt), the last piece coming when the row finishes. Called by
   * generateTokens() too: a token's piece comes before that token is yielded (and before generate()'s onToken).
   */
  onText?: (row: number, text: string) => void;
  /** Without `tokenizer`: stop strings are looked for in decode(generated ids), run after every token. */
  decode?: (ids: number[]) => string;
  /**
   * Called after each produced token of a row with that row's tokens so far; `true` stops the row with finishReason
   * 'stop' (Transformers' StoppingCriteria, per row).
   */
  stoppingCriteria?: (row: number, tokens: number[]) => boolean;
  /** Sampling PRNG seed (mulberry32); default 0. */
  seed?: number;
  /** Left-padding id (masked out, so any valid id works). Default: the model's `padTokenId`. */
  padTokenId?: number;
  /** Called with (row, token) as each token is produced. */
  onToken?: (row: number, token: number) => void;
  /**
   * Continue after this cache (e.g. the previous turn of a chat, see CausalLM.truncateCache): its positions, all real
   * tokens, precede every prompt. Its batch must equal the number of prompts. The cache may be updated in place.
   */
  cache?: KvCache;
  /**
   * Cancels generation; checked before the prefill and before every decode step (one ONNX Runtime run is not
   * interrupted). An aborted signal makes generate() throw `signal.reason` (a DOMException named "AbortError" unless
   * the caller gave another reason), as fetch() and node-llama-cpp do — unless `stopOnAbortSignal` is set.
   */
  signal?: AbortSignal;
  /** On abort, return what was generated so far with finishReason 'abort' instead of throwing (node-llama-cpp's name). */
  stopOnAbortSignal?: boolean;
}

export interface GenerateResult {
  /** Generated ids per row (without the prompt, without eos). */
  tokens: number[][]; finishReason: FinishReason[]; prefillMs: number; decodeMs: number; steps: number;
  /** Each row's generated text (with `tokenizer`): decode(prompt + tokens) minus decode(prompt). */
  text?: string[];
  /**
   * The cache after the run: it holds (cached prefix +) padded prompts + every generated token except the last one
   * of each row (the last sampled token is never fed back).
   */
  cache: KvCache;
}

/** One produced token of one row (eos tokens are not reported). */
export interface TokenEvent { row: number; token: number }

/** Generate continuations for each prompt (token ids [B][S_b]). Prompts of different length are left-padded. */
export async function generate(model: CausalLM, prompts: number[][], o: GenerateOptions = {}): Promise<GenerateResult> {
  const it = generateTokens(model, prompts, o);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    o.onToken?.(r.value.row, r.value.token);
  }
}

/**
 * generate() as an async generator: yields each produced token as it is sampled and returns the GenerateResult.
 * Leaving the loop early (`break`, `return()`) stops generation after the current step. `onToken` is not called.
 */
export async function* generateTokens(model: CausalLM, prompts: number[][], o: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult, void> {
  checkGenerationOptions(o);
  const B = prompts.length, V = model.cfg.vocabSize;
  if (B === 0) throw new Error('generate: no prompts');
  const L = Math.max(...prompts.map((p) => p.length));
  if (L === 0) throw new Error('generate: empty prompt');
  const pad = o.padTokenId ?? model.padTokenId;
  const ids = prompts.map((p) => [...new Array(L - p.length).fill(pad), ...p]);
  const P0 = o.cache?.length ?? 0;
  // A learned position table ends generation where it ends (finish 'length'), as the text API caps at the context.
  const room = model.positionLimit - P0 - L;
  if (room < 1) fail(`generate: ${P0 ? `${P0} cached + ` : ''}${L} prompt tokens leave no position for a new token: ${model.positionTable}`);
  const maxNew = Math.min(o.maxNewTokens ?? 64, room);
  if (o.cache && o.cache.batch !== B) throw new Error(`generate: cache has batch ${o.cache.batch}, ${B} prompts given`);
  const mask = prompts.map((p) => [...new Array(P0).fill(1), ...new Array(L - p.length).fill(0), ...new Array(p.length).fill(1)]);
  const rand = mulberry32(o.seed ?? 0);
  const out: number[][] = prompts.map(() => []);
  const done: (FinishReason | null)[] = prompts.map(() => null);
  const eos = new Set(o.eosTokenIds ?? model.eosTokenIds);
  const tok = o.tokenizer;
  const streams = tok && prompts.map((p) => new StreamDecoder(tok, { skipSpecialTokens: o.skipSpecialTokens, prompt: p }));
  const texts = prompts.map(() => '');
  const stops = o.stopStrings?.filter((x) => x.length) ?? [];
  const longestStop = Math.max(0, ...stops.map((x) => x.length));
  /** Append a row's new text; true once it contains a stop string (searched only where the new text can end one). */
  const addText = (b: number, piece: string): boolean => {
    if (!piece) return false;
    const from = Math.max(0, texts[b]!.length - longestStop + 1);
    texts[b] += piece;
    o.onText?.(b, piece);
    return stops.some((x) => texts[b]!.includes(x, from));
  };
  /** End a row; its decoder's held-back text comes out now (a stop string completed by it makes the reason 'stop'). */
  const finish = (b: number, why: FinishReason) => {
    done[b] = streams && addText(b, streams[b]!.flush()) ? 'stop' : why;
  };
  /** true: stop (aborted with stopOnAbortSignal); throws the signal's reason otherwise. */
  const aborted = (): boolean => {
    if (!o.signal?.aborted) return false;
    if (!o.stopOnAbortSignal) o.signal.throwIfAborted();
    for (let b = 0; b < B; b++) if (!done[b]) finish(b, 'abort');
    return true;
  };
  const t0 = performance.now();
  let prefillMs = 0, steps = 0;
  let cache = o.cache ?? model.emptyCache(B, L + maxNew);
  if (!aborted()) {
    let logits: Float32Array;
    ({ logits, cache } = await model.forwardStep(ids, cache, mask));
    prefillMs = performance.now() - t0;
    for (; steps < maxNew; steps++) {
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        if (done[b]) { next.push(pad); continue; }
        const row = logits.slice(b * V, (b + 1) * V);
        applyRepetitionPenalty(row, [...prompts[b]!, ...out[b]!], o.repetitionPenalty ?? 1);
        const t = sampleToken(row, o, rand);
        next.push(t);
        if (eos.has(t)) { finish(b, 'eos'); continue; }
        out[b]!.push(t);
        // the token's text goes out (onText) before the token is yielded, so a consumer has it at the yield
        const stopText = streams ? addText(b, streams[b]!.push(t)) : false;
        yield { row: b, token: t };
        if (stopText || o.stoppingCriteria?.(b, out[b]!)) finish(b, 'stop');
        else if (!streams && stops.length && o.decode) {
          const text = o.decode(out[b]!);
          if (stops.some((x) => text.includes(x))) finish(b, 'stop');
        }
      }
      if (done.every(Boolean) || steps === maxNew - 1) {
        steps++;
        for (let b = 0; b < B; b++) if (!done[b]) finish(b, 'length');
        break;
      }
      if (aborted()) { steps++; break; }
      for (let b = 0; b < B; b++) mask[b]!.push(done[b] ? 0 : 1);
      ({ logits, cache } = await model.forwardStep(next.map((t) => [t]), cache, mask));
    }
  }
  return {
    tokens: out, finishReason: done.map((d) => d ?? 'length'), prefillMs, decodeMs: performance.now() - t0 - prefillMs, steps, cache,
    ...(streams ? { text: texts } : {}),
  };
}
