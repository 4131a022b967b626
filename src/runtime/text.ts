/**
 * Text-level generation: prompts and chat messages in, text out — what `CausalLM.generate/stream/chat` run.
 *
 * Names and defaults follow Transformers' `generate()`/GenerationConfig (maxNewTokens, temperature, topK, topP,
 * repetitionPenalty, doSample; sampling settings default to the model's generation_config.json), transformers.js'
 * text-generation pipeline (chat messages rendered with the tokenizer's chat template) and node-llama-cpp / the
 * OpenAI API for what they add: `stop` strings cut from the returned text, `finishReason`, prompt/completion token
 * counts, and AbortSignal cancellation that throws the signal's reason (or returns with finishReason 'abort' when
 * `stopOnAbortSignal` is set).
 */
import { fail } from '../errors.ts';
import { StreamDecoder, type ChatMessage, type TextTokenizer } from '../io/tokenizer.ts';
import type { CausalLM } from './causal-lm.ts';
import { generate, generateTokens, type FinishReason, type GenerateOptions } from './generate.ts';
import type { SamplingOptions } from './sampling.ts';

export interface TextGenerationOptions extends SamplingOptions {
  /**
   * Most tokens to generate. Default: generation_config.json `max_new_tokens`, else 256; always capped so that
   * prompt + output fit the model's context (config.json `max_position_embeddings`; finishReason 'length').
   */
  maxNewTokens?: number;
  /**
   * Sampling temperature; > 0 samples, 0 is greedy. Default: the model's generation_config.json — `temperature` when
   * it sets `do_sample: true`, else greedy (Transformers' default). topK/topP/repetitionPenalty default to it too.
   */
  temperature?: number;
  /** Stop when the text contains one of these; the stop string and what follows are not returned (OpenAI's `stop`). */
  stop?: string | string[];
  /** Sampling seed (mulberry32). Default: a random seed per call, so repeated sampling calls differ. */
  seed?: number;
  /** Cancel: throws `signal.reason` (an AbortError) at the next step, or returns with finishReason 'abort' (below). */
  signal?: AbortSignal;
  /** On abort, return the text so far with finishReason 'abort' instead of throwing. */
  stopOnAbortSignal?: boolean;
  /** Plain prompts: add the tokenizer's special tokens (Llama: BOS) like Transformers' tokenizer(); default true. */
  addSpecialTokens?: boolean;
  /** Override the stop ids (default: the model's eos ids, CausalLM.eosTokenIds). */
  eosTokenIds?: number[];
}

export interface TextGenerationResult {
  /** The generated text (without the prompt, eos, or a stop string and what followed it). */
  text: string;
  /** 'eos': the model ended; 'stop': a stop string; 'length': maxNewTokens or the context ran out; 'abort'. */
  finishReason: FinishReason;
  /** Tokens in the prompt (after the chat template / special tokens). */
  promptTokens: number;
  /** Tokens generated (eos not counted). */
  completionTokens: number;
  /** The generated token ids. */
  tokenIds: number[];
}

export interface ChatOptions extends TextGenerationOptions {
  /** Extra variables for the chat template (e.g. `{ enable_thinking: false }`, `tools`). */
  templateVariables?: Record<string, unknown>;
}

export interface ChatResult extends TextGenerationResult {
  /** The reply as a message to append to the conversation. */
  message: { role: 'assistant'; content: string };
}

/** Default maxNewTokens when neither the call nor generation_config.json sets one. */
export const DEFAULT_MAX_NEW_TOKENS = 256;

function tokenizerOf(lm: CausalLM): TextTokenizer {
  return lm.tokenizer ?? fail(`${lm.source ?? 'this model'} has no tokenizer.json: text generation needs one (use generate(model, ids) with token ids)`);
}

/** Prompt ids: plain text (special tokens per addSpecialTokens) or chat messages through the chat template. */
function promptIds(lm: CausalLM, input: string | ChatMessage[], o: ChatOptions): number[] {
  const tok = tokenizerOf(lm);
  let ids: number[];
  if (typeof input === 'string') ids = tok.encode(input, { addSpecialTokens: o.addSpecialTokens ?? true });
  else {
    if (!Array.isArray(input)) fail('chat: messages must be an array of { role, content }');
    if (!tok.chatTemplate) fail(`${lm.source ?? 'this model'} has no chat template (tokenizer_config.json chat_template or chat_template.jinja): use generate() with a plain prompt`);
    ids = tok.encode(tok.applyChatTemplate(input, { addGenerationPrompt: true, extra: o.templateVariables }), { addSpecialTokens: false });
  }
  if (ids.length === 0) {
    // Transformers starts an empty prompt from bos_token_id.
    const bos = lm.bosTokenId;
    if (bos === undefined) fail('generate: the prompt is empty and the model has no bos_token_id to start from');
    ids = [bos];
  }
  return ids;
}

/** Id-level options for prompts of up to `longest` tokens: the call's options over generation_config.json. */
function idOptions(lm: CausalLM, longest: number, o: TextGenerationOptions): GenerateOptions {
  const gen = lm.generationConfig;
  const context = lm.cfg.maxPositionEmbeddings;
  if (longest >= context) fail(`the prompt has ${longest} tokens; the model's context is ${context} (config.json max_position_embeddings)`);
  const want = o.maxNewTokens ?? gen.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  if (!(Number.isInteger(want) && want >= 0)) fail(`maxNewTokens must be a non-negative integer, got ${want}`);
  const sample = o.temperature !== undefined ? o.temperature > 0 && o.doSample !== false : (o.doSample ?? gen.doSample);
  return {
    maxNewTokens: Math.min(want, context - longest),
    doSample: sample,
    temperature: sample ? (o.temperature ?? gen.temperature) : 0,
    topK: o.topK ?? gen.topK, topP: o.topP ?? gen.topP, repetitionPenalty: o.repetitionPenalty ?? gen.repetitionPenalty,
    seed: o.seed ?? Math.floor(Math.random() * 2 ** 32),
    eosTokenIds: o.eosTokenIds, signal: o.signal, stopOnAbortSignal: o.stopOnAbortSignal,
  };
}

/**
 * Text of one row as it streams: tokens through the StreamDecoder (exact incremental detokenization), held back
 * while the tail could still become a stop string, cut at the first stop string. The decoder is primed with the
 * prompt (its text is not returned), so the continuation is decode(prompt + output) minus decode(prompt), as in
 * Transformers' text-generation pipeline: SentencePiece's "▁word" keeps its space after the prompt.
 */
class RowText {
  private text = '';
  private emitted = 0;
  /** Set once a stop string appeared: the text ends at `end`. */
  stopped = false;
  private end = Infinity;
  private readonly dec: StreamDecoder;
  constructor(tok: TextTokenizer, prompt: number[], private readonly stops: string[]) {
    this.dec = new StreamDecoder(tok);
    for (const id of prompt) this.dec.push(id);
  }

  /** Feed a token; returns the text now safe to show (never part of a stop string). */
  push(id: number): string { return this.add(this.dec.push(id), false); }
  /** After the last token: everything left (up to a stop string). */
  finish(): string { return this.add(this.dec.flush(), true); }
  /** The whole reply so far, cut at a stop string. */
  get value(): string { return this.text.slice(0, Math.min(this.end, this.text.length)); }

  private add(piece: string, last: boolean): string {
    if (!this.stopped) {
      // a stop string can only newly appear in the part that overlaps the new piece
      const from = Math.max(0, this.text.length - Math.max(0, ...this.stops.map((s) => s.length - 1)));
      this.text += piece;
      for (const s of this.stops) {
        const i = this.text.indexOf(s, from);
        if (i >= 0 && i < this.end) { this.end = i; this.stopped = true; }
      }
    }
    let safe = Math.min(this.end, this.text.length);
    if (!this.stopped && !last) {
      // hold back a tail that is the beginning of some stop string
      for (const s of this.stops) for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
        if (this.text.endsWith(s.slice(0, k))) { safe = Math.min(safe, this.text.length - k); break; }
      }
    }
    if (safe <= this.emitted) return '';
    const out = this.text.slice(this.emitted, safe);
    this.emitted = safe;
    return out;
  }
}

const stopList = (stop: string | string[] | undefined): string[] => {
  const l = stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
  if (l.some((s) => typeof s !== 'string' || s === '')) fail('stop: expected non-empty strings');
  return l;
};

function result(row: RowText, ids: number[], finishReason: FinishReason, promptTokens: number): TextGenerationResult {
  // a stop string was found: report 'stop' even if the row also hit eos/length at the same step
  return { text: row.value, finishReason: row.stopped ? 'stop' : finishReason, promptTokens, completionTokens: ids.length, tokenIds: ids };
}

/** Generate for prompts already tokenized (one batch, left-padded): one result per prompt. */
async function run(lm: CausalLM, ids: number[][], o: TextGenerationOptions): Promise<TextGenerationResult[]> {
  const tok = tokenizerOf(lm), stops = stopList(o.stop);
  const rows = ids.map((p) => new RowText(tok, p, stops));
  const r = await generate(lm, ids, {
    ...idOptions(lm, Math.max(...ids.map((p) => p.length)), o),
    onToken: (b, t) => { rows[b]!.push(t); },
    stoppingCriteria: stops.length ? (b) => rows[b]!.stopped : undefined,
  });
  return rows.map((row, b) => { row.finish(); return result(row, r.tokens[b]!, r.finishReason[b]!, ids[b]!.length); });
}

/** CausalLM.generate: one prompt → one result; a list of prompts (one batch, left-padded) → one result each. */
export async function generateText(lm: CausalLM, input: string | string[], o: TextGenerationOptions = {}): Promise<TextGenerationResult | TextGenerationResult[]> {
  const single = typeof input === 'string';
  const prompts = single ? [input] : input;
  if (!Array.isArray(prompts) || prompts.some((p) => typeof p !== 'string')) fail('generate: expected a prompt string or an array of prompt strings');
  if (prompts.length === 0) return [];
  const out = await run(lm, prompts.map((p) => promptIds(lm, p, o)), o);
  return single ? out[0]! : out;
}

/** CausalLM.stream: text pieces as they are generated; the generator's return value is the full result. */
export async function* streamText(lm: CausalLM, input: string | ChatMessage[], o: ChatOptions = {}): AsyncGenerator<string, TextGenerationResult, void> {
  const tok = tokenizerOf(lm), stops = stopList(o.stop);
  const ids = promptIds(lm, input, o);
  const row = new RowText(tok, ids, stops);
  const it = generateTokens(lm, [ids], { ...idOptions(lm, ids.length, o), stoppingCriteria: stops.length ? () => row.stopped : undefined });
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const rest = row.finish();
        if (rest) yield rest;
        return result(row, r.value.tokens[0]!, r.value.finishReason[0]!, ids.length);
      }
      const piece = row.push(r.value.token);
      if (piece) yield piece;
    }
  } finally {
    await it.return(undefined as never); // the caller left early: end the token generator too
  }
}

/** CausalLM.chat: messages rendered with the model's chat template (add_generation_prompt), the reply as a message. */
export async function chatText(lm: CausalLM, messages: ChatMessage[], o: ChatOptions = {}): Promise<ChatResult> {
  const [res] = await run(lm, [promptIds(lm, messages, o)], o);
  return { ...res!, message: { role: 'assistant', content: res!.text } };
}
