/** Autoregressive generation over a CausalLM with KV cache: batching (left padding), stop tokens/strings, streaming. */
import { mulberry32 } from '../io/random.ts';
import { StreamDecoder, type Detokenizer } from '../io/tokenizer.ts';
import type { CausalLM, KvCache } from './causal-lm.ts';
import { applyRepetitionPenalty, sampleToken, type SamplingOptions } from './sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** Stop when any of these token ids is produced (e.g. eos). */
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
   * decode(prompt + generated) minus decode(prompt), the last piece coming when the row finishes.
   */
  onText?: (row: number, text: string) => void;
  /** Without `tokenizer`: stop strings are looked for in decode(generated ids), run after every token. */
  decode?: (ids: number[]) => string;
  seed?: number;
  padTokenId?: number;
  /** Called with (row, token) as each token is produced. */
  onToken?: (row: number, token: number) => void;
  /**
   * Continue after this cache (e.g. the previous turn of a chat, see CausalLM.truncateCache): its positions, all real
   * tokens, precede every prompt. Its batch must equal the number of prompts. The cache may be updated in place.
   */
  cache?: KvCache;
}

export interface GenerateResult {
  tokens: number[][]; finishReason: ('eos' | 'stop' | 'length')[]; prefillMs: number; decodeMs: number; steps: number;
  /** Each row's generated text (with `tokenizer`): decode(prompt + tokens) minus decode(prompt). */
  text?: string[];
  /**
   * The cache after the run: it holds (cached prefix +) padded prompts + every generated token except the last one
   * of each row (the last sampled token is never fed back).
   */
  cache: KvCache;
}

/** Generate continuations for each prompt (token ids). Prompts of different length are left-padded. */
export async function generate(model: CausalLM, prompts: number[][], o: GenerateOptions = {}): Promise<GenerateResult> {
  const B = prompts.length, maxNew = o.maxNewTokens ?? 64, V = model.cfg.vocabSize;
  const L = Math.max(...prompts.map((p) => p.length));
  if (L === 0) throw new Error('generate: empty prompt');
  const pad = o.padTokenId ?? 0;
  const ids = prompts.map((p) => [...new Array(L - p.length).fill(pad), ...p]);
  const P0 = o.cache?.length ?? 0;
  if (o.cache && o.cache.batch !== B) throw new Error(`generate: cache has batch ${o.cache.batch}, ${B} prompts given`);
  const mask = prompts.map((p) => [...new Array(P0).fill(1), ...new Array(L - p.length).fill(0), ...new Array(p.length).fill(1)]);
  const rand = mulberry32(o.seed ?? 0);
  const out: number[][] = prompts.map(() => []);
  const done: (GenerateResult['finishReason'][number] | null)[] = prompts.map(() => null);
  const eos = new Set(o.eosTokenIds ?? []);
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
  const finish = (b: number, why: 'eos' | 'stop' | 'length') => {
    done[b] = why;
    if (streams) addText(b, streams[b]!.flush());
  };
  const t0 = performance.now();
  let { logits, cache } = await model.forwardStep(ids, o.cache ?? model.emptyCache(B, L + maxNew), mask);
  const prefillMs = performance.now() - t0;
  let steps = 0;
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
      o.onToken?.(b, t);
      if (streams) { if (addText(b, streams[b]!.push(t))) finish(b, 'stop'); }
      else if (stops.length && o.decode) {
        const text = o.decode(out[b]!);
        if (stops.some((x) => text.includes(x))) done[b] = 'stop';
      }
    }
    if (done.every(Boolean) || steps === maxNew - 1) {
      steps++;
      for (let b = 0; b < B; b++) if (!done[b]) finish(b, 'length');
      break;
    }
    for (let b = 0; b < B; b++) mask[b]!.push(done[b] ? 0 : 1);
    ({ logits, cache } = await model.forwardStep(next.map((t) => [t]), cache, mask));
  }
  return {
    tokens: out, finishReason: done.map((d) => d ?? 'length'), prefillMs, decodeMs: performance.now() - t0 - prefillMs, steps, cache,
    ...(streams ? { text: texts } : {}),
  };
}
