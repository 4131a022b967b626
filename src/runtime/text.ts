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
import type { ChatMessage, TextTokenizer } from '../io/tokenizer.ts';
import type { CausalLM } from './causal-lm.ts';
import { generate, generateTokens, type FinishReason, type GenerateOptions } from './generate.ts';
import { checkGenerationOptions, type SamplingOptions } from './sampling.ts';
import { StopAwareStream } from './text-stream.ts';
import { chatPrompt, transcriptNote } from './chat-prompt.ts';
import { logLine } from '../platform/os.ts';

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
  /** LoRA adapter to run with (a name of LoadOptions.adapters; null = the base model). Default: the model's (CausalLM.adapter). */
  adapter?: string | null;
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

/**
 * Prompt ids: plain text (special tokens per addSpecialTokens) or chat messages through the chat template — or, for
 * a tokenizer without one, the plain "User: … / Assistant: …" transcript of `gptq chat` and the server
 * (chat-prompt.ts, one note per model), whose stop string comes back in `stops`.
 */
function promptIds(lm: CausalLM, input: string | ChatMessage[], o: ChatOptions): { ids: number[]; stops: string[] } {
  const tok = tokenizerOf(lm);
  let ids: number[], stops: string[] = [];
  if (typeof input === 'string') ids = tok.encode(input, { addSpecialTokens: o.addSpecialTokens ?? true });
  else {
    if (!Array.isArray(input)) fail('chat: messages must be an array of { role, content }');
    ({ ids, stops } = chatPrompt(tok, input, o.templateVariables));
    if (stops.length && !noted.has(lm)) { noted.add(lm); logLine(transcriptNote(lm.source ?? 'this model')); }
  }
  if (ids.length === 0) {
    // Transformers starts an empty prompt from bos_token_id.
    const bos = lm.bosTokenId;
    if (bos === undefined) fail('generate: the prompt is empty and the model has no bos_token_id to start from');
    ids = [bos];
  }
  return { ids, stops };
}

/** Models that have said their transcript note. */
const noted = new WeakSet<CausalLM>();

/** Id-level options for prompts of up to `longest` tokens: the call's options over generation_config.json. */
function idOptions(lm: CausalLM, longest: number, o: TextGenerationOptions): GenerateOptions {
  const gen = lm.generationConfig;
  const context = lm.cfg.maxPositionEmbeddings;
  if (longest >= context) fail(`the prompt has ${longest} tokens; the model's context is ${context} (config.json max_position_embeddings)`);
  checkGenerationOptions(o); // the caller's values, before generation_config.json fills the rest
  const want = o.maxNewTokens ?? gen.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
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

const stopList = (stop: string | string[] | undefined): string[] => {
  const l = stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
  if (l.some((s) => typeof s !== 'string' || s === '')) fail('stop: expected non-empty strings');
  return l;
};

function result(text: string, ids: number[], finishReason: FinishReason, promptTokens: number): TextGenerationResult {
  return { text, finishReason, promptTokens, completionTokens: ids.length, tokenIds: ids };
}

/**
 * Id-level options that stream each row's text into `onText`: generate()'s per-row StreamDecoder with the prompt as
 * context (exact continuation text, decode(prompt + output) − decode(prompt)) and its stop-string search.
 */
function textOptions(lm: CausalLM, longest: number, o: TextGenerationOptions, onText: GenerateOptions['onText']): GenerateOptions {
  return { ...idOptions(lm, longest, o), tokenizer: tokenizerOf(lm), stopStrings: stopList(o.stop), onText };
}

/** Generate for prompts already tokenized (one batch, left-padded): one result per prompt. */
async function run(lm: CausalLM, ids: number[][], o: TextGenerationOptions): Promise<TextGenerationResult[]> {
  const stops = stopList(o.stop);
  const rows = ids.map(() => new StopAwareStream(stops, () => {}));
  const r = await generate(lm, ids, textOptions(lm, Math.max(...ids.map((p) => p.length)), o, (b, piece) => { rows[b]!.push(piece); }));
  return rows.map((row, b) => result(row.final(), r.tokens[b]!, r.finishReason[b]!, ids[b]!.length));
}

/** CausalLM.generate: one prompt → one result; a list of prompts (one batch, left-padded) → one result each. */
export async function generateText(lm: CausalLM, input: string | string[], o: TextGenerationOptions = {}): Promise<TextGenerationResult | TextGenerationResult[]> {
  const single = typeof input === 'string';
  const prompts = single ? [input] : input;
  if (!Array.isArray(prompts) || prompts.some((p) => typeof p !== 'string')) fail('generate: expected a prompt string or an array of prompt strings');
  if (prompts.length === 0) return [];
  const out = await run(lm, prompts.map((p) => promptIds(lm, p, o).ids), o);
  return single ? out[0]! : out;
}

/** CausalLM.stream: text pieces as they are generated; the generator's return value is the full result. */
export async function* streamText(lm: CausalLM, input: string | ChatMessage[], o: ChatOptions = {}): AsyncGenerator<string, TextGenerationResult, void> {
  const { ids, stops } = promptIds(lm, input, o);
  o = { ...o, stop: [...stopList(o.stop), ...stops] };
  let ready = ''; // text made safe to show by the step just run (onText comes before the token is yielded)
  const row = new StopAwareStream(stopList(o.stop), (s) => { ready += s; });
  const it = generateTokens(lm, [ids], textOptions(lm, ids.length, o, (_, piece) => { row.push(piece); }));
  try {
    for (;;) {
      const r = await it.next();
      const text = r.done ? row.final() : '';
      if (ready) { const piece = ready; ready = ''; yield piece; }
      if (r.done) return result(text, r.value.tokens[0]!, r.value.finishReason[0]!, ids.length);
    }
  } finally {
    await it.return(undefined as never); // the caller left early: end the token generator too
  }
}

/** CausalLM.chat: messages rendered with the model's chat template (add_generation_prompt; else the transcript), the reply as a message. */
export async function chatText(lm: CausalLM, messages: ChatMessage[], o: ChatOptions = {}): Promise<ChatResult> {
  const { ids, stops } = promptIds(lm, messages, o);
  const [res] = await run(lm, [ids], { ...o, stop: [...stopList(o.stop), ...stops] });
  return { ...res!, message: { role: 'assistant', content: res!.text } };
}
