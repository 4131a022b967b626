/**
 * OpenAI API request validation and response shapes for /v1/chat/completions and /v1/completions (the fields of
 * the OpenAI API reference, as vLLM / TGI / llama-server serve them). Every request field is checked: a bad one gives
 * `ApiError` (HTTP 400, body {"error": {"message", "type", "param", "code"}}) naming the field. Unknown fields are
 * ignored (clients send `user`, `metadata`, …); known fields whose behaviour is not implemented are refused when they
 * ask for something non-default (n > 1, logprobs, tools, response_format other than text, penalties, logit_bias,
 * echo, suffix, best_of > 1). Extensions (as vLLM / TGI): top_k, repetition_penalty, ignore_eos. Nothing in a request
 * names a file or path: `model` is compared with the served ids only.
 */
import type { ChatMessage } from '../io/tokenizer.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';

/** An OpenAI-style error response. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error', readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (param: string, message: string, code: string | null = 'invalid_value'): never => { throw new ApiError(400, message, 'invalid_request_error', param, code); };

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (b: Json, k: string) => b[k] !== undefined && b[k] !== null;

function num(b: Json, k: string, lo: number, hi: number, integer = false): number | undefined {
  if (!has(b, k)) return undefined;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) return bad(k, `'${k}' must be a number`, 'invalid_type');
  if (integer && !Number.isInteger(v)) return bad(k, `'${k}' must be an integer`, 'invalid_type');
  if (v < lo || v > hi) return bad(k, `'${k}' must be between ${lo} and ${hi}, got ${v}`);
  return v;
}

function bool(b: Json, k: string): boolean | undefined {
  if (!has(b, k)) return undefined;
  if (typeof b[k] !== 'boolean') return bad(k, `'${k}' must be a boolean`, 'invalid_type');
  return b[k] as boolean;
}

/** What both endpoints share, validated. */
export interface CommonParams {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** undefined: not given (the endpoint's default applies) */
  maxTokens?: number;
  sampling: SamplingOptions;
  seed?: number;
  stop: string[];
  /** extension (as vLLM): keep generating after eos, up to max_tokens (benchmarks) */
  ignoreEos: boolean;
}

/** Largest max_tokens / seed accepted before the context check (keeps arithmetic exact). */
const MAX_INT = 2 ** 31 - 1;

function common(b: Json, models: readonly string[]): CommonParams {
  if (!has(b, 'model')) bad('model', "'model' is required", 'missing_required_parameter');
  if (typeof b.model !== 'string') bad('model', "'model' must be a string", 'invalid_type');
  const model = b.model as string;
  if (!models.includes(model)) bad('model', `The model '${model.slice(0, 200)}' does not exist (served: ${models.join(', ')})`, 'model_not_found');
  const stream = bool(b, 'stream') ?? false;
  let includeUsage = false;
  if (has(b, 'stream_options')) {
    if (!isObj(b.stream_options)) bad('stream_options', "'stream_options' must be an object", 'invalid_type');
    if (!stream) bad('stream_options', "'stream_options' is only allowed with 'stream': true");
    includeUsage = bool(b.stream_options as Json, 'include_usage') ?? false;
  }
  const mt = num(b, 'max_tokens', 1, MAX_INT, true), mct = num(b, 'max_completion_tokens', 1, MAX_INT, true);
  if (mt !== undefined && mct !== undefined && mt !== mct) bad('max_tokens', "'max_tokens' and 'max_completion_tokens' differ; give one");
  const temperature = num(b, 'temperature', 0, 2), topP = num(b, 'top_p', 0, 1), topK = num(b, 'top_k', -1, MAX_INT, true);
  if (topP === 0) bad('top_p', "'top_p' must be greater than 0");
  const repetitionPenalty = num(b, 'repetition_penalty', 0, 10);
  if (repetitionPenalty === 0) bad('repetition_penalty', "'repetition_penalty' must be greater than 0");
  const seed = num(b, 'seed', -(2 ** 53), 2 ** 53, true);
  const n = num(b, 'n', 1, 128, true);
  if (n !== undefined && n > 1) bad('n', `'n' > 1 is not supported by this server (got ${n}); send ${n} requests instead`, 'unsupported_value');
  for (const k of ['frequency_penalty', 'presence_penalty']) {
    const v = num(b, k, -2, 2);
    if (v) bad(k, `'${k}' is not supported by this server (use repetition_penalty)`, 'unsupported_parameter');
  }
  if (has(b, 'logit_bias') && (!isObj(b.logit_bias) || Object.keys(b.logit_bias).length)) bad('logit_bias', "'logit_bias' is not supported by this server", 'unsupported_parameter');
  let stop: string[] = [];
  if (has(b, 'stop')) {
    const s = b.stop;
    if (typeof s === 'string') stop = [s];
    else if (Array.isArray(s) && s.every((x) => typeof x === 'string')) stop = s as string[];
    else bad('stop', "'stop' must be a string or an array of strings", 'invalid_type');
    if (stop.length > 4) bad('stop', `'stop' takes at most 4 strings, got ${stop.length}`);
    if (stop.some((x) => x.length === 0 || x.length > 1000)) bad('stop', "'stop' strings must be 1 to 1000 characters long");
  }
  return {
    model, stream, includeUsage, maxTokens: mt ?? mct, seed: seed === undefined ? undefined : seed >>> 0, stop, ignoreEos: bool(b, 'ignore_eos') ?? false,
    // OpenAI's defaults: temperature 1, top_p 1; temperature 0 is greedy
    sampling: { temperature: temperature ?? 1, topP: topP ?? 1, topK: topK !== undefined && topK > 0 ? topK : undefined, repetitionPenalty: repetitionPenalty ?? 1 },
  };
}

export interface ChatParams extends CommonParams { messages: ChatMessage[] }

const ROLES = ['system', 'developer', 'user', 'assistant'];

/** Validate a /v1/chat/completions body. */
export function parseChat(body: unknown, models: readonly string[]): ChatParams {
  if (!isObj(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request_error', null, 'invalid_type');
  const c = common(body, models);
  for (const k of ['tools', 'functions', 'tool_choice', 'function_call']) if (has(body, k)) bad(k, `'${k}' is not supported by this server`, 'unsupported_parameter');
  if (bool(body, 'logprobs')) bad('logprobs', "'logprobs' is not supported by this server", 'unsupported_parameter');
  if (has(body, 'top_logprobs')) bad('top_logprobs', "'top_logprobs' is not supported by this server", 'unsupported_parameter');
  if (has(body, 'response_format')) {
    const rf = body.response_format;
    if (!isObj(rf) || rf.type !== 'text') bad('response_format', "only 'response_format': {\"type\": \"text\"} is supported", 'unsupported_value');
  }
  if (!has(body, 'messages')) bad('messages', "'messages' is required", 'missing_required_parameter');
  if (!Array.isArray(body.messages)) bad('messages', "'messages' must be an array", 'invalid_type');
  const raw = body.messages as unknown[];
  if (raw.length === 0) bad('messages', "'messages' must contain at least one message", 'empty_array');
  const messages = raw.map((m, i): ChatMessage => {
    const p = `messages[${i}]`;
    if (!isObj(m)) return bad(p, `'${p}' must be an object`, 'invalid_type');
    if (typeof m.role !== 'string' || !ROLES.includes(m.role)) return bad(`${p}.role`, `'${p}.role' must be one of ${ROLES.join(', ')}`);
    let content: string;
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      // content parts: only text
      content = m.content.map((part, j) => {
        if (!isObj(part) || part.type !== 'text' || typeof part.text !== 'string') return bad(`${p}.content[${j}]`, `'${p}.content[${j}]' must be a text part {"type": "text", "text": "…"} (this server takes text only)`, 'unsupported_value');
        return part.text as string;
      }).join('');
    } else return bad(`${p}.content`, `'${p}.content' must be a string or an array of text parts`, 'invalid_type');
    // the chat templates of HF models know system / user / assistant; OpenAI's newer 'developer' is a system message
    return { role: m.role === 'developer' ? 'system' : m.role, content };
  });
  return { ...c, messages };
}

export interface CompletionParams extends CommonParams { prompt: string | number[] }

/** Validate a /v1/completions body (one prompt: a string or token ids; [string] / [[ids]] with one element too). */
export function parseCompletion(body: unknown, models: readonly string[]): CompletionParams {
  if (!isObj(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request_error', null, 'invalid_type');
  const c = common(body, models);
  if (has(body, 'logprobs') && body.logprobs !== 0) bad('logprobs', "'logprobs' is not supported by this server", 'unsupported_parameter');
  if (bool(body, 'echo')) bad('echo', "'echo' is not supported by this server", 'unsupported_parameter');
  if (has(body, 'suffix')) bad('suffix', "'suffix' is not supported by this server", 'unsupported_parameter');
  const bestOf = num(body, 'best_of', 1, 128, true);
  if (bestOf !== undefined && bestOf > 1) bad('best_of', "'best_of' > 1 is not supported by this server", 'unsupported_value');
  if (!has(body, 'prompt')) bad('prompt', "'prompt' is required", 'missing_required_parameter');
  let p = body.prompt;
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'number' && Number.isInteger(t));
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || isIds(p[0]))) p = p[0];
  if (Array.isArray(p) && p.length > 1 && (p.every((x) => typeof x === 'string') || p.every(isIds))) {
    bad('prompt', `one prompt per request (got ${p.length}); send one request per prompt`, 'unsupported_value');
  }
  if (typeof p === 'string') return { ...c, prompt: p };
  if (isIds(p)) return { ...c, prompt: p };
  return bad('prompt', "'prompt' must be a string, an array of token ids, or a one-element array of either", 'invalid_type');
}

const created = () => Math.floor(Date.now() / 1000);

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }
export const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

/** Response bodies (chat.completion / text_completion objects and their stream chunks). */
export const responses = {
  chat: (id: string, model: string, text: string, finish: string, u: Usage) => ({
    id, object: 'chat.completion', created: created(), model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }], usage: u,
  }),
  chatChunk: (id: string, model: string, delta: Record<string, string>, finish: string | null, withUsage: boolean) => ({
    id, object: 'chat.completion.chunk', created: created(), model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(withUsage ? { usage: null } : {}),
  }),
  completion: (id: string, model: string, text: string, finish: string, u: Usage) => ({
    id, object: 'text_completion', created: created(), model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], usage: u,
  }),
  completionChunk: (id: string, model: string, text: string, finish: string | null, withUsage: boolean) => ({
    id, object: 'text_completion', created: created(), model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...(withUsage ? { usage: null } : {}),
  }),
  usageChunk: (id: string, model: string, object: string, u: Usage) => ({ id, object, created: created(), model, choices: [], usage: u }),
};
