/**
 * `serve()`: an OpenAI-compatible HTTP server over one model with continuous batching (src/serve/engine.ts) — the
 * role of Text-Generation-Inference / llama.cpp's llama-server / GPTQModel's serve().
 *
 * Endpoints: GET /v1/models, POST /v1/chat/completions (chat template), POST /v1/completions — streaming (SSE
 * `data: {…}` chunks, `data: [DONE]`, stream_options.include_usage) or not —, GET /health, GET /metrics (Prometheus
 * text). Errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}} with 400 (bad request field,
 * context exceeded), 401 (API key), 404/405 (route), 413 (body too large), 429 (queue full), 500 (model failure).
 *
 * HTTP is Node's own `http` module: the server has six routes, SSE responses and client-disconnect handling work on
 * the raw request/response in any framework, and the security-facing part stays free of extra dependencies (the body
 * limit, the constant-time key check and the error bodies are a few lines each).
 *
 * Security: binds 127.0.0.1 unless told otherwise; optional bearer key (`apiKey`) checked in constant time (SHA-256 of
 * both, crypto.timingSafeEqual) on every route but /health; request bodies over `bodyLimit` are refused; no request
 * field is used as a path (the model is chosen at start; `model` must equal the served id).
 *
 * LoRA adapters (ServeOptions.adapters, `gptq serve --adapter name=DIR`): each is served as the id "<model id>:<name>"
 * next to the base id (listed by /v1/models); a request's `model` picks one, and requests of different adapters decode
 * in the same batched step (per-row lora_gate, src/runtime/lora.ts).
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { freemem } from 'node:os';
import { basename, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fail, GptqError } from '../errors.ts';
import { resolveModelDir } from '../io/hub.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import type { CausalLM, LoadOptions } from '../runtime/causal-lm.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { chatPrompt } from '../runtime/chat-prompt.ts';
import { BatchEngine, CancelledError, QueueFullError, type GenerationRequest, type Submitted } from './engine.ts';
import { ServeMetrics } from './metrics.ts';
import { ApiError, parseChat, parseCompletion, responses, usage } from './openai.ts';

export interface ServeOptions extends Omit<LoadOptions, 'attention'> {
  /** Model directory or Hub id (downloaded to the cache). */
  model: string;
  /** Id served at /v1/models and expected in requests' `model` (default: the Hub id, or the directory's name). */
  modelId?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port (see Server.port). */
  port?: number;
  /** KV slots, i.e. requests generating at once (default 8). */
  maxBatch?: number;
  /** Requests waiting for a slot before 429 (default 64). */
  maxQueue?: number;
  /** Context per request, prompt + generated tokens (default min(max_position_embeddings, 2048)). */
  ctx?: number;
  /** Prompt tokens prefilled between two decode steps (default 256). */
  prefillChunk?: number;
  /** Granularity in positions of the KV slots' row width (default 64; SlotCacheOptions.widthStep). */
  widthStep?: number;
  /** Bearer key required on every route but /health. */
  apiKey?: string;
  /** Request body limit in bytes (default 4 MiB). */
  bodyLimit?: number;
}

export interface Server {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  host: string;
  port: number;
  modelId: string;
  model: CausalLM;
  engine: BatchEngine;
  metrics: ServeMetrics;
  /** Stop listening, end open requests (streams get an error event), free the model. */
  close(): Promise<void>;
}

const ROUTES: Record<string, string[]> = {
  '/health': ['GET'], '/metrics': ['GET'], '/v1/models': ['GET'], '/v1/chat/completions': ['POST'], '/v1/completions': ['POST'],
};

/**
 * Load a model (KV-slot graphs) and serve it. Resolves once listening. Throws GptqError for a model that cannot be
 * served (no tokenizer.json, a KV cache that does not fit in memory) or bad options.
 */
export async function serve(o: ServeOptions): Promise<Server> {
  const { model: modelArg, modelId: idArg, host: hostArg, port: portArg, maxBatch: batchArg, maxQueue, ctx: ctxArg, prefillChunk, widthStep, apiKey, bodyLimit: limitArg, ...load } = o;
  const log = o.onLog ?? ((m: string) => process.stderr.write(`[gptqjs] ${m}\n`));
  const host = hostArg ?? '127.0.0.1', port = portArg ?? 8080;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) fail(`port must be an integer in [0, 65535], got ${port}`);
  const bodyLimit = limitArg ?? 4 * 1024 * 1024;
  if (!(Number.isInteger(bodyLimit) && bodyLimit > 0)) fail(`bodyLimit must be a positive integer (bytes), got ${bodyLimit}`);
  if (apiKey !== undefined && apiKey.length === 0) fail('apiKey is empty');
  const dir = await resolveModelDir(modelArg);
  // resolveModelDir returns a local folder as given (it wins over a Hub id of the same shape, e.g. assets/stories260K)
  // and a Hub id as its cache folder: the id is the folder's name, or the Hub id
  const modelId = idArg ?? (dir === modelArg ? basename(resolve(dir)) : modelArg);
  const { model, tokenizer: tok, gen } = await loadAnyModel(dir, { ...load, attention: 'slots' });
  let engine: BatchEngine;
  try {
    if (!tok) fail(`${dir} has no tokenizer.json: serve needs one`);
    const ctx = ctxArg ?? Math.min(model.cfg.maxPositionEmbeddings || 2048, 2048);
    if (!(Number.isInteger(ctx) && ctx >= 2)) fail(`ctx must be an integer ≥ 2, got ${ctx}`);
    if (ctx > model.positionLimit) fail(`ctx ${ctx}: ${model.positionTable}; ctx must be ≤ ${model.positionLimit}`);
    const maxBatch = batchArg ?? 8;
    const { numLayers: L, numKvHeads: kvH, headDim: d } = model.cfg;
    const kvBytes = 2 * L * Math.max(maxBatch, 2) * kvH * ctx * d * 4;
    if (kvBytes > 0.9 * freemem()) {
      fail(`the KV cache (${maxBatch} slots × ${ctx} positions = ${(kvBytes / 1e9).toFixed(2)} GB) does not fit in free memory (${(freemem() / 1e9).toFixed(2)} GB): lower --ctx or --max-batch`);
    }
    const metrics = new ServeMetrics();
    engine = new BatchEngine(model, tok, {
      maxBatch, maxQueue, capacity: ctx, prefillChunk, widthStep, metrics,
      onError: (e) => log(`model run failed: ${(e as Error)?.message ?? e}`),
    });
    log(`KV slots: ${maxBatch} × ${ctx} positions, ${(engine.slots.bytes / 1e6).toFixed(1)} MB (fp32)`);
    const maxPos = model.cfg.maxPositionEmbeddings;
    if (maxPos && ctx > maxPos) log(`warning: ctx ${ctx} > max_position_embeddings ${maxPos}: the model was not trained on positions beyond ${maxPos} (Transformers warns the same)`);
    const eos = ([] as number[]).concat(gen.eosTokenId ?? model.cfg.eosTokenId ?? tok.eosId ?? []);
    const keyHash = apiKey === undefined ? undefined : createHash('sha256').update(apiKey).digest();
    const http = createServer((req, res) => {
      handle(req, res, { engine, metrics, tok, modelId, eos, keyHash, bodyLimit, log }).catch((e) => {
        log(`request failed: ${(e as Error)?.message ?? e}`);
        if (!res.headersSent) sendError(res, new ApiError(500, 'internal server error', 'server_error'));
        else res.destroy();
      });
    });
    http.on('clientError', (_e, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); else socket.destroy(); });
    await new Promise<void>((res, rej) => { http.once('error', rej); http.listen(port, host, () => { http.off('error', rej); res(); }); });
    const addr = http.address() as AddressInfo;
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    if (!isLoopback(addr.address) && !keyHash) log(`listening on ${addr.address} (not loopback) without an API key: anyone who can reach it can use it`);
    return {
      url: `http://${shown}:${addr.port}`, host: addr.address, port: addr.port, modelId, model, engine, metrics,
      close: () => closeAll(http, engine, model),
    };
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

async function closeAll(http: HttpServer, engine: BatchEngine, model: CausalLM): Promise<void> {
  const closed = new Promise<void>((r) => http.close(() => r()));
  await engine.close(); // in-flight requests end (their responses get an error / close)
  http.closeIdleConnections();
  setTimeout(() => http.closeAllConnections(), 1000).unref();
  await closed;
  await model.dispose();
}

const isLoopback = (a: string) => a === '::1' || a.startsWith('127.') || a === '::ffff:127.0.0.1';

interface Ctx {
  engine: BatchEngine; metrics: ServeMetrics; tok: TextTokenizer; modelId: string; eos: number[];
  keyHash?: Buffer; bodyLimit: number; log: (m: string) => void;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return; // the client left
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError, headers: Record<string, string> = {}): void {
  sendJson(res, e.status, e.body(), headers);
}

async function handle(req: IncomingMessage, res: ServerResponse, c: Ctx): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  const methods = ROUTES[path];
  res.on('close', () => c.metrics.requests.inc({ route: methods ? path : 'other', status: String(res.statusCode) }));
  try {
    if (!methods) throw new ApiError(404, `no route ${req.method} ${path.slice(0, 200)}`, 'invalid_request_error', null, 'not_found');
    if (!methods.includes(req.method ?? '')) {
      res.setHeader('Allow', methods.join(', '));
      throw new ApiError(405, `${req.method} is not allowed on ${path} (use ${methods.join(', ')})`, 'invalid_request_error', null, 'method_not_allowed');
    }
    if (path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (c.keyHash && !authorized(req, c.keyHash)) {
      throw new ApiError(401, 'missing or wrong API key (send "Authorization: Bearer <key>")', 'invalid_request_error', null, 'invalid_api_key');
    }
    if (path === '/metrics') {
      const m = await c.metrics.text();
      res.writeHead(200, { 'Content-Type': m.contentType });
      return void res.end(m.body);
    }
    if (path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: servedIds(c).map((id) => ({ id, object: 'model', created: 0, owned_by: 'gptqjs' })) });
    }
    const body = await readJson(req, c.bodyLimit);
    await generation(path === '/v1/chat/completions' ? 'chat' : 'completion', body, res, c);
  } catch (e) {
    if (res.headersSent) throw e;
    if (e instanceof ApiError) {
      // a body we did not read whole: close the connection after the answer
      return sendError(res, e, e.status === 413 ? { Connection: 'close' } : {});
    }
    throw e;
  }
}

function authorized(req: IncomingMessage, keyHash: Buffer): boolean {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/i.exec(h);
  const given = createHash('sha256').update(m ? m[1]! : '').digest();
  return timingSafeEqual(given, keyHash) && !!m;
}

/** The request body as JSON; ApiError 413 over `limit` bytes, 400 for invalid JSON. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const len = Number(req.headers['content-length']);
  const tooLarge = () => new ApiError(413, `request body over the limit of ${limit} bytes`, 'invalid_request_error', null, 'request_too_large');
  if (Number.isFinite(len) && len > limit) { req.resume(); throw tooLarge(); }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolveP, reject) => {
    req.on('data', (ch: Buffer) => {
      size += ch.length;
      if (size > limit) { req.removeAllListeners('data'); req.resume(); reject(tooLarge()); return; }
      chunks.push(ch);
    });
    req.on('end', () => resolveP());
    req.on('error', reject);
    req.on('close', () => { if (!req.complete) reject(new ApiError(400, 'the request body was cut off', 'invalid_request_error', null, 'incomplete_body')); });
  });
  const text = Buffer.concat(chunks).toString('utf8');
  try { return JSON.parse(text); } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON (${String((e as Error).message).split('\n')[0]!.slice(0, 200)})`, 'invalid_request_error', null, 'invalid_json');
  }
}

/** The served model ids: the base model's, then "<id>:<adapter>" per loaded LoRA adapter. */
const servedIds = (c: Ctx) => [c.modelId, ...c.engine.model.adapters.map((a) => `${c.modelId}:${a}`)];

async function generation(kind: 'chat' | 'completion', body: unknown, res: ServerResponse, c: Ctx): Promise<void> {
  const p = kind === 'chat' ? parseChat(body, servedIds(c)) : parseCompletion(body, servedIds(c));
  let ids: number[], stops: string[] = [];
  try {
    if ('messages' in p) ({ ids, stops } = chatPrompt(c.tok, p.messages));
    else ids = typeof p.prompt === 'string' ? c.tok.encode(p.prompt) : p.prompt;
  } catch (e) {
    if (e instanceof GptqError) throw new ApiError(400, e.message, 'invalid_request_error', kind === 'chat' ? 'messages' : 'prompt', 'invalid_value');
    throw e;
  }
  const ctx = c.engine.capacity, V = c.engine.model.cfg.vocabSize;
  const param = kind === 'chat' ? 'messages' : 'prompt';
  if (ids.length === 0) throw new ApiError(400, 'the prompt is empty (0 tokens)', 'invalid_request_error', param, 'invalid_value');
  const badId = ids.find((t) => !(t >= 0 && t < V));
  if (badId !== undefined) throw new ApiError(400, `prompt token id ${badId} is outside the vocabulary [0, ${V})`, 'invalid_request_error', 'prompt', 'invalid_value');
  if (ids.length >= ctx) {
    throw new ApiError(400, `the prompt has ${ids.length} tokens; this server's context is ${ctx} tokens (prompt + max_tokens)`, 'invalid_request_error', param, 'context_length_exceeded');
  }
  // defaults as OpenAI: chat up to the context, completions 16
  const maxTokens = p.maxTokens ?? (kind === 'chat' ? ctx - ids.length : Math.min(16, ctx - ids.length));
  if (ids.length + maxTokens > ctx) {
    throw new ApiError(400, `prompt (${ids.length} tokens) + max_tokens (${maxTokens}) = ${ids.length + maxTokens} exceeds this server's context of ${ctx} tokens`, 'invalid_request_error', 'max_tokens', 'context_length_exceeded');
  }
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const greq: GenerationRequest = {
    prompt: ids, maxTokens, sampling: p.sampling, seed: p.seed, eosTokenIds: p.ignoreEos ? [] : c.eos, stop: [...stops, ...p.stop],
    adapter: p.model === c.modelId ? null : p.model.slice(c.modelId.length + 1),
  };
  const sse = (obj: unknown) => { if (!res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
  if (p.stream) {
    greq.onText = (delta) => {
      if (!delta) return;
      sse(kind === 'chat' ? responses.chatChunk(id, p.model, { content: delta }, null, p.includeUsage) : responses.completionChunk(id, p.model, delta, null, p.includeUsage));
    };
  }
  if (res.destroyed) return; // the client left while its body was read
  let h: Submitted;
  try { h = c.engine.submit(greq); } catch (e) {
    if (e instanceof QueueFullError) throw new ApiError(429, `server busy: ${e.message}; retry later`, 'rate_limit_error', null, 'queue_full');
    if (e instanceof GptqError) throw new ApiError(400, e.message, 'invalid_request_error', null, 'invalid_value');
    throw e;
  }
  // client gone (socket closed before the answer ended): cancel at once, the slot is freed before the next step
  res.on('close', () => { if (!res.writableFinished) h.cancel(); });
  if (p.stream) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    if (kind === 'chat') sse(responses.chatChunk(id, p.model, { role: 'assistant', content: '' }, null, p.includeUsage));
  }
  let r;
  try { r = await h.done; } catch (e) {
    if (e instanceof CancelledError && res.destroyed) return; // the client left
    const err = new ApiError(e instanceof CancelledError ? 503 : 500, e instanceof CancelledError ? `generation stopped: ${e.message}` : 'the model run failed', 'server_error', null, null);
    if (!p.stream) return sendError(res, err);
    sse(err.body());
    return void res.end();
  }
  if (res.destroyed) return; // finished while the client was leaving
  const u = usage(r.promptTokens, r.completionTokens);
  if (!p.stream) {
    return sendJson(res, 200, kind === 'chat' ? responses.chat(id, p.model, r.text, r.finishReason, u) : responses.completion(id, p.model, r.text, r.finishReason, u));
  }
  sse(kind === 'chat' ? responses.chatChunk(id, p.model, {}, r.finishReason, p.includeUsage) : responses.completionChunk(id, p.model, '', r.finishReason, p.includeUsage));
  if (p.includeUsage) sse(responses.usageChunk(id, p.model, kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', u));
  res.end('data: [DONE]\n\n');
}
