/**
 * `gptq serve` / serve(): the official `openai` client against real servers on 127.0.0.1 (ephemeral ports), each
 * started and closed by the test. Checks the generated text against the library's own greedy `generate` on the plain
 * graphs (an independent path), streaming reassembly, stop strings, usage counts, 16 concurrent streaming clients
 * equal to their sequential runs (fp32 and 4-bit GPTQ at accuracy level 4), cancel frees the slot, 429, context
 * limit, auth, body limit, a fuzz of bad bodies, and the CLI (started, asked, stopped by SIGTERM).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { serve, type Server } from '../src/serve/server.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { StopAwareStream, TextStream } from '../src/runtime/text-stream.ts';
import { mulberry32 } from '../src/io/random.ts';
import { ROOT, quantizeStories, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-serve-');
const quiet = { graphCache: false as const, onLog: () => {} };
/** stories260K plus a chat template (the embedded copy has none) */
const CHAT = join(work.path, 'stories-chat');
const TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
let tok: TextTokenizer;
let ref: CausalLM;
let main: Server;
let client: OpenAI;
const servers: Server[] = [];

async function start(o: Partial<Parameters<typeof serve>[0]> = {}): Promise<Server> {
  const s = await serve({ model: CHAT, port: 0, ...quiet, ...o });
  servers.push(s);
  return s;
}
const clientOf = (s: Server, apiKey = 'none') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });

/** Greedy reference: generate() on the plain graphs, cut like the server (eos ends, text cut before a stop string). */
/** The text of `out` generated after `prompt`, as a continuation: decode(prompt + out) − decode(prompt) (issue 10 §3). */
function continuation(prompt: number[], out: number[]): string {
  const p = tok.decode(prompt), all = tok.decode([...prompt, ...out]);
  assert.ok(all.startsWith(p), 'the prompt decodes to a prefix of the whole');
  return all.slice(p.length);
}

async function reference(ids: number[], maxTokens: number, stop: string[] = []): Promise<{ text: string; tokens: number; finish: string }> {
  const r = await generate(ref, [ids], { maxNewTokens: maxTokens, eosTokenIds: [2] });
  const toks = r.tokens[0]!;
  for (let k = 1; k <= toks.length; k++) {
    const t = continuation(ids, toks.slice(0, k));
    const cut = Math.min(...stop.map((s) => t.indexOf(s)).filter((i) => i >= 0));
    if (Number.isFinite(cut)) return { text: t.slice(0, cut), tokens: k, finish: 'stop' };
  }
  return { text: continuation(ids, toks), tokens: toks.length, finish: r.finishReason[0] === 'eos' ? 'stop' : 'length' };
}

before(async () => {
  cpSync(STORIES, CHAT, { recursive: true });
  const cfgPath = join(CHAT, 'tokenizer_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), chat_template: TEMPLATE }));
  tok = await TextTokenizer.fromDir(CHAT);
  ref = await CausalLM.load(CHAT, { ...quiet, attention: 'plain' });
  main = await start({ maxBatch: 8, maxQueue: 64, prefillChunk: 4, widthStep: 8 }); // the slots' row width grows and shrinks every 8 positions
  client = clientOf(main);
});

after(async () => {
  for (const s of servers) await s.close();
  await ref.dispose();
  work.cleanup();
});

test('StopAwareStream holds back a possible stop prefix and cuts at the earliest stop string', () => {
  let out = '';
  const s = new StopAwareStream(['lily', 'the'], (d) => { out += d; });
  assert.equal(s.push('a l'), false);
  assert.equal(out, 'a '); // "l" could start "lily"
  assert.equal(s.push('o'), false);
  assert.equal(out, 'a lo');
  // both stops appear in one piece; "the" (listed second) comes first: nothing after it is ever written
  assert.equal(s.push('t in the park with lily'), true);
  assert.equal(out, 'a lot in ');
  assert.equal(s.final(), 'a lot in ');
  assert.equal(out, 'a lot in ');
  assert.throws(() => new StopAwareStream([''], () => {}), /empty stop/);
  // TextStream: token ids in, the same text out as decoding all at once
  const ids = tok.encode('Once upon a time, there was a little girl named Lily.', { addSpecialTokens: false });
  let streamed = '';
  const ts = new TextStream(tok, [], (d) => { streamed += d; });
  for (const id of ids) ts.push(id);
  assert.equal(ts.finish(), tok.decode(ids));
  assert.equal(streamed, tok.decode(ids));
});

test('/health, /v1/models, chat completion = greedy generate on the plain graphs, usage counts', async () => {
  assert.deepEqual(await (await fetch(`${main.url}/health`)).json(), { status: 'ok' });
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories-chat']);
  const messages = [{ role: 'system' as const, content: 'Tell a story.' }, { role: 'user' as const, content: 'Once upon a time' }];
  const r = await client.chat.completions.create({ model: 'stories-chat', messages, max_tokens: 40, temperature: 0 });
  const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
  const want = await reference(ids, 40);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.message.role, 'assistant');
  assert.equal(r.choices[0]!.message.content, want.text);
  assert.ok(want.text.length > 20, want.text);
  assert.equal(r.choices[0]!.finish_reason, want.finish);
  assert.deepEqual(r.usage, { prompt_tokens: ids.length, completion_tokens: want.tokens, total_tokens: ids.length + want.tokens });
});

test('the default model id of a local folder is its name, also for a relative path shaped like a Hub id (owner/name)', async () => {
  const cwd = process.cwd();
  cpSync(CHAT, join(work.path, 'models', 'stories-local'), { recursive: true });
  process.chdir(work.path);
  try {
    const s = await start({ model: 'models/stories-local' }); // before: served as "models/stories-local", the Hub-id shape
    assert.equal(s.modelId, 'stories-local');
    assert.deepEqual((await clientOf(s).models.list()).data.map((m) => m.id), ['stories-local']);
  } finally { process.chdir(cwd); }
});

test('streaming: chunks reassemble to the non-streamed text; include_usage sends a final usage chunk; [DONE]', async () => {
  const body = { model: 'stories-chat', messages: [{ role: 'user' as const, content: 'Lily and the cat' }], max_tokens: 30, temperature: 0 };
  const plain = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', finish: string | null = null, usage: unknown = null, chunks = 0, role = '';
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) { usage = ch.usage; assert.equal(ch.choices.length, 0); continue; }
    const c = ch.choices[0]!;
    if (c.delta.role) role = c.delta.role;
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(chunks > 5);
  assert.equal(role, 'assistant');
  assert.equal(text, plain.choices[0]!.message.content);
  assert.equal(finish, plain.choices[0]!.finish_reason);
  assert.deepEqual(usage, plain.usage);
  // raw SSE framing
  const raw = await (await fetch(`${main.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'stories-chat', prompt: 'Once', max_tokens: 3, stream: true }) })).text();
  assert.match(raw, /^data: \{.*\}\n\n/);
  assert.ok(raw.endsWith('data: [DONE]\n\n'), raw.slice(-40));
});

test('completions: text and finish reasons; stop strings cut before the earliest stop, also when streaming', async () => {
  const ids = tok.encode('Once upon a time');
  const full = await reference(ids, 40);
  assert.match(full.text, /little girl named Lily/); // stories260K's known greedy continuation
  const r = await client.completions.create({ model: 'stories-chat', prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
  assert.equal(r.choices[0]!.text, full.text);
  assert.equal(r.usage!.completion_tokens, full.tokens);
  const short = await client.completions.create({ model: 'stories-chat', prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
  assert.equal(short.choices[0]!.finish_reason, 'length');
  assert.equal(short.usage!.completion_tokens, 5);
  // token-id prompts are the same request
  const byIds = await client.completions.create({ model: 'stories-chat', prompt: ids, max_tokens: 5, temperature: 0 });
  assert.equal(byIds.choices[0]!.text, short.choices[0]!.text);
  for (const stop of [[' named'], [' Lily', ' little']]) {
    const want = await reference(ids, 40, stop);
    assert.equal(want.finish, 'stop');
    const s = await client.completions.create({ model: 'stories-chat', prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop });
    assert.equal(s.choices[0]!.text, want.text, JSON.stringify(stop));
    assert.equal(s.choices[0]!.finish_reason, 'stop');
    assert.equal(s.usage!.completion_tokens, want.tokens);
    let streamed = '';
    for await (const ch of await client.completions.create({ model: 'stories-chat', prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop, stream: true })) {
      streamed += ch.choices[0]?.text ?? '';
    }
    assert.equal(streamed, want.text);
  }
  assert.equal((await reference(ids, 40, [' little'])).text, ', there was a');
  // the text continues the prompt: "Once upon" + " a time" (decoded alone, the first token "▁a" lost its space)
  const upon = await client.completions.create({ model: 'stories-chat', prompt: 'Once upon', max_tokens: 3, temperature: 0 });
  assert.equal(upon.choices[0]!.text, ' a time,');
});

test('eos (generation_config.json eos_token_id) ends a reply with finish_reason stop, not counted or shown; ignore_eos runs on', async () => {
  // a copy whose eos is the token of the first "." of the greedy story, so that eos comes early
  const ids = tok.encode('Once upon a time');
  const toks = (await generate(ref, [ids], { maxNewTokens: 20 })).tokens[0]!;
  const k = toks.findIndex((t) => tok.decode([t]) === '.');
  assert.ok(k > 3, tok.decode(toks));
  const dir = join(work.path, 'stories-eos');
  cpSync(CHAT, dir, { recursive: true });
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, toks[k]] }));
  const s = await start({ model: dir });
  const c = clientOf(s);
  const r = await c.completions.create({ model: s.modelId, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
  assert.equal(r.choices[0]!.text, continuation(ids, toks.slice(0, k)));
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  assert.equal(r.usage!.completion_tokens, k);
  const on = await c.completions.create({ model: s.modelId, prompt: 'Once upon a time', max_tokens: 20, temperature: 0, ignore_eos: true } as never) as OpenAI.Completion;
  assert.equal(on.choices[0]!.text, continuation(ids, toks));
  assert.equal(on.choices[0]!.finish_reason, 'length');
  assert.equal(on.usage!.completion_tokens, 20);
});

test('sampling: the same seed gives the same text, temperature > 0 differs from greedy somewhere', async () => {
  const body = { model: 'stories-chat', prompt: 'The dog', max_tokens: 30, temperature: 1.0, top_p: 0.9 };
  const a = await client.completions.create({ ...body, seed: 7 });
  const b = await client.completions.create({ ...body, seed: 7 });
  assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  const texts = new Set<string>();
  for (let s = 0; s < 4; s++) texts.add((await client.completions.create({ ...body, seed: 100 + s })).choices[0]!.text);
  assert.ok(texts.size >= 2, 'four seeds gave one text');
});

/** 16 streaming clients at once vs the same requests one at a time; returns the largest decode batch seen. */
async function concurrentEqualsSequential(s: Server): Promise<number> {
  const c = clientOf(s);
  const r = mulberry32(5);
  const words = ['cat', 'dog', 'Lily', 'park', 'ball', 'tree', 'sun', 'happy', 'big', 'red', 'and', 'the', 'a', 'was'];
  const reqs = Array.from({ length: 16 }, (_, i) => ({
    prompt: Array.from({ length: 1 + Math.floor(r() * 12) }, () => words[Math.floor(r() * words.length)]).join(' '),
    max_tokens: 8 + ((i * 7) % 29), // requests leave at different steps
  }));
  const one = async (q: { prompt: string; max_tokens: number }, i: number) => {
    const kind = i % 2 ? 'chat' : 'completion';
    let text = '', finish = '';
    if (kind === 'chat') {
      const st = await c.chat.completions.create({ model: s.modelId, messages: [{ role: 'user', content: q.prompt }], max_tokens: q.max_tokens, temperature: 0, stream: true });
      for await (const ch of st) { text += ch.choices[0]?.delta.content ?? ''; finish = ch.choices[0]?.finish_reason ?? finish; }
    } else {
      const st = await c.completions.create({ model: s.modelId, prompt: q.prompt, max_tokens: q.max_tokens, temperature: 0, stream: true });
      for await (const ch of st) { text += ch.choices[0]?.text ?? ''; finish = ch.choices[0]?.finish_reason ?? finish; }
    }
    return `${finish}|${text}`;
  };
  const concurrent = await Promise.all(reqs.map(one));
  const batch = s.engine.maxDecodeBatch;
  // the slots' row width grew while requests were live (their caches moved); shrinking with live slots: test/slots.test.ts
  assert.ok(s.engine.slots.widthChanges.grew >= 2, `the row width grew ${s.engine.slots.widthChanges.grew} times`);
  const sequential: string[] = [];
  for (const [i, q] of reqs.entries()) sequential.push(await one(q, i));
  assert.deepEqual(concurrent, sequential);
  assert.ok(new Set(concurrent).size >= 8, 'prompts should give different texts');
  return batch;
}

test('16 concurrent streaming clients (8 slots, queue, chunked prefill) = their sequential greedy runs (fp32)', async () => {
  const batch = await concurrentEqualsSequential(main);
  assert.ok(batch >= 6, `largest decode batch ${batch}: the clients did not share steps`);
  const m = await (await fetch(`${main.url}/metrics`)).text();
  assert.match(m, /gptq_decode_batch_size_bucket\{le="8"\} \d+/);
  assert.match(m, /gptq_time_to_first_token_seconds_count \d+/);
  assert.match(m, /gptq_inter_token_latency_seconds_count \d+/);
  assert.match(m, /gptq_queue_depth 0/);
  assert.match(m, /gptq_active_slots 0/);
});

test('16 concurrent clients = sequential runs on a 4-bit GPTQ model at accuracy level 4 (decode steps always ≥ 2 rows)', async () => {
  const dir = await quantizeStories(CHAT, join(work.path, 'stories-chat-q4'), { nsamples: 8, seqlen: 64 });
  const s = await start({ model: dir, accuracyLevel: 4, maxBatch: 8, prefillChunk: 4, widthStep: 8 });
  assert.ok(s.model.quantization);
  const batch = await concurrentEqualsSequential(s);
  assert.ok(batch >= 6, `largest decode batch ${batch}`);
});

test('a burst of requests at an idle server is prefilled first and decodes in one batch from its first step', async () => {
  const s = await start({ maxBatch: 8, prefillChunk: 4 });
  const c = clientOf(s);
  const prompts = ['Once upon a time there was', 'The little dog ran to the', 'Lily and Tom went to the big', 'One day the sun was very'];
  await Promise.all(prompts.map((prompt) => c.completions.create({ model: s.modelId, prompt, max_tokens: 10, temperature: 0 })));
  const m = await (await fetch(`${s.url}/metrics`)).text();
  // 10 tokens each: the first from the prefill, 9 from decode steps of all 4 rows
  assert.match(m, /gptq_decode_batch_size_bucket\{le="2"\} 0\n/);
  assert.match(m, /gptq_decode_batch_size_count 9\n/);
  assert.match(m, /gptq_decode_batch_size_sum 36\n/);
});

test('cancel mid-stream frees the slot at once; queue full → 429; context overflow → 400 naming the limit', async () => {
  const s = await start({ maxBatch: 1, maxQueue: 1, ctx: 256 });
  const c = clientOf(s);
  const ac = new AbortController();
  const st = await c.completions.create({ model: s.modelId, prompt: 'Once', max_tokens: 240, temperature: 0, stream: true }, { signal: ac.signal });
  let n = 0;
  try { for await (const _ of st) if (++n === 3) ac.abort(); } catch (e) { assert.match(String(e), /abort/i); }
  assert.equal(n, 3);
  const t0 = Date.now();
  while (s.engine.running > 0) { assert.ok(Date.now() - t0 < 2000, 'slot not freed'); await new Promise((r) => setTimeout(r, 5)); }
  assert.match(await (await fetch(`${s.url}/metrics`)).text(), /gptq_generations_total\{reason="cancelled"\} 1/);
  const r = await c.completions.create({ model: s.modelId, prompt: 'Once', max_tokens: 5, temperature: 0 });
  assert.equal(r.usage!.completion_tokens, 5);
  // 1 slot + 1 queue place: of 4 simultaneous requests 2 are refused with 429 and an OpenAI error body
  const res = await Promise.all(Array.from({ length: 4 }, () => fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: s.modelId, prompt: 'Once', max_tokens: 30 }) })));
  const codes = res.map((x) => x.status).sort();
  assert.deepEqual(codes, [200, 200, 429, 429]);
  const bodies = await Promise.all(res.map((x) => x.text()));
  const err = JSON.parse(bodies[res.findIndex((x) => x.status === 429)]!) as { error: Record<string, string> };
  assert.equal(err.error.type, 'rate_limit_error');
  assert.equal(err.error.code, 'queue_full');
  // context: prompt + max_tokens over 256
  await assert.rejects(c.completions.create({ model: s.modelId, prompt: 'Once upon a time', max_tokens: 252 }), (e: any) => {
    assert.equal(e.status, 400);
    assert.equal(e.error.param, 'max_tokens');
    assert.equal(e.error.code, 'context_length_exceeded');
    assert.match(e.error.message, /5 tokens\) \+ max_tokens \(252\) = 257 exceeds this server's context of 256 tokens/);
    return true;
  });
});

test('API key (constant-time bearer check, /health open) and the body size limit (413)', async () => {
  const s = await start({ apiKey: 'sekret-key', bodyLimit: 2048 });
  await assert.rejects(clientOf(s, 'wrong').models.list(), (e: any) => e.status === 401 && e.error.code === 'invalid_api_key');
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
  assert.equal((await fetch(`${s.url}/metrics`)).status, 401);
  assert.equal((await clientOf(s, 'sekret-key').models.list()).data[0]!.id, 'stories-chat');
  const big = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { Authorization: 'Bearer sekret-key' }, body: JSON.stringify({ model: 'stories-chat', prompt: 'x'.repeat(4000) }) });
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'request_too_large');
});

test('bad input → 400 with an OpenAI error body naming the field; fuzz of 400 mutated bodies; the server still works', async () => {
  const s = await start({ ctx: 48, maxBatch: 4, maxQueue: 1000 });
  const post = async (path: string, body: string) => {
    const r = await fetch(`${s.url}${path}`, { method: 'POST', body });
    const text = await r.text();
    return { status: r.status, text };
  };
  const expect400 = async (path: string, body: unknown, param: string | null, re: RegExp) => {
    const r = await post(path, typeof body === 'string' ? body : JSON.stringify(body));
    assert.equal(r.status, 400, r.text);
    const e = JSON.parse(r.text).error;
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(e.param, param, r.text);
    assert.match(e.message, re);
  };
  const chat = '/v1/chat/completions', comp = '/v1/completions';
  const ok = { model: 'stories-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 };
  await expect400(chat, '{"model": "stories-chat", "messages": [', null, /not valid JSON/);
  await expect400(chat, { ...ok, model: 'other' }, 'model', /does not exist/);
  await expect400(chat, { ...ok, model: 42 }, 'model', /must be a string/);
  await expect400(chat, { ...ok, messages: [] }, 'messages', /at least one/);
  await expect400(chat, { ...ok, messages: 'hi' }, 'messages', /must be an array/);
  await expect400(chat, { ...ok, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', /must be one of/);
  await expect400(chat, { ...ok, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages[0].content[0]', /text/);
  await expect400(chat, { ...ok, max_tokens: -1 }, 'max_tokens', /between 1 and/);
  await expect400(chat, { ...ok, max_tokens: 1e12 }, 'max_tokens', /between 1 and/);
  await expect400(chat, { ...ok, max_tokens: 2.5 }, 'max_tokens', /integer/);
  await expect400(chat, { ...ok, max_tokens: 100 }, 'max_tokens', /context of 48 tokens/);
  await expect400(chat, { ...ok, temperature: 'hot' }, 'temperature', /number/);
  await expect400(chat, { ...ok, n: 2 }, 'n', /not supported/);
  await expect400(chat, { ...ok, stop: [1] }, 'stop', /string/);
  await expect400(chat, { ...ok, tools: [] }, 'tools', /not supported/);
  await expect400(chat, [1, 2], null, /JSON object/);
  await expect400(comp, { model: 'stories-chat', prompt: [999999] }, 'prompt', /outside the vocabulary/);
  await expect400(comp, { model: 'stories-chat', prompt: ['a', 'b'] }, 'prompt', /one prompt per request/);
  await expect400(comp, { model: 'stories-chat' }, 'prompt', /required/);
  assert.equal((await fetch(`${s.url}/v1/nothing`)).status, 404);
  assert.equal((await fetch(`${s.url}/v1/completions`)).status, 405);
  // fuzz: mutations of valid bodies (fields dropped, retyped, set to odd values; raw text corrupted)
  const r = mulberry32(13);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const odd = (): unknown => pick<() => unknown>([
    () => null, () => true, () => -1, () => 0, () => 1e308, () => -0.5, () => 3, () => NaN, () => '', () => 'x'.repeat(300),
    () => '\u0000\ud800', () => [], () => {}, () => ({ a: { b: [1, { c: null }] } }), () => [[[[[]]]]], () => 'stories-chat',
    () => [{ role: 'user', content: 'hi' }], () => [1, 2, 3], () => ({ include_usage: true }), () => Math.floor(r() * 60),
  ])();
  const keys = ['model', 'messages', 'prompt', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stop', 'n', 'stream', 'stream_options', 'logprobs', 'response_format', 'repetition_penalty', 'echo'];
  const statuses = new Map<number, number>();
  const N = 400;
  const bodies: [string, string][] = [];
  for (let i = 0; i < N; i++) {
    const path = r() < 0.5 ? chat : comp;
    const b: Record<string, unknown> = path === chat ? { ...ok } : { model: 'stories-chat', prompt: 'Once', max_tokens: 3 };
    for (let k = 0, n = 1 + Math.floor(r() * 3); k < n; k++) {
      const key = pick(keys);
      if (r() < 0.3) delete b[key]; else b[key] = odd();
    }
    let text = JSON.stringify(b);
    if (r() < 0.25) { // corrupt the bytes
      const at = Math.floor(r() * text.length);
      text = text.slice(0, at) + pick(['', '"', '{', '}', ']', ',', '\\', '\u00ff', 'null']) + text.slice(at + 1);
    }
    bodies.push([path, text]);
  }
  for (let i = 0; i < N; i += 20) { // 20 at a time
    const res = await Promise.all(bodies.slice(i, i + 20).map(([p, t]) => post(p, t)));
    for (const x of res) {
      statuses.set(x.status, (statuses.get(x.status) ?? 0) + 1);
      assert.ok([200, 400].includes(x.status), `${x.status} ${x.text.slice(0, 200)}`);
      if (x.status === 400) {
        const e = JSON.parse(x.text).error;
        assert.ok(typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e, x.text);
      }
    }
  }
  assert.ok((statuses.get(400) ?? 0) > 100 && (statuses.get(200) ?? 0) > 20, JSON.stringify([...statuses]));
  assert.deepEqual(await (await fetch(`${s.url}/health`)).json(), { status: 'ok' });
  const after = await clientOf(s).chat.completions.create({ ...ok, temperature: 0 } as never) as OpenAI.ChatCompletion;
  assert.equal(after.usage!.completion_tokens, 3);
  console.log(`fuzz: ${N} bodies → ${JSON.stringify(Object.fromEntries(statuses))}`);
});

test('gptq serve CLI: prints its URL, answers, stops on SIGTERM with exit code 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'serve', CHAT, '--port', '0', '--max-batch', '2', '--no-graph-cache'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '', err = '';
    child.stderr.on('data', (d) => { err += d; });
    const url = await new Promise<string>((res, rej) => {
      child.stdout.on('data', (d) => { out += d; const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out); if (m) res(m[1]!); });
      child.on('exit', (code) => rej(new Error(`exited ${code}: ${err}`)));
    });
    assert.match(out, /gptq serve: stories-chat on http:\/\/127\.0\.0\.1:\d+ \(max batch 2, context 512, queue 64\)/);
    const r = await clientOf({ url } as Server).completions.create({ model: 'stories-chat', prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
    assert.match(r.choices[0]!.text, /^, there was a little girl/);
    const code = await new Promise<number | null>((res) => { child.on('exit', res); child.kill('SIGTERM'); });
    assert.equal(code, 0, err);
    assert.match(err, /SIGTERM: shutting down/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('ctx past max_position_embeddings: a warning for a rotary model (Transformers warns); refused for a learned position table (gpt2)', async () => {
  const logs: string[] = [];
  await start({ ctx: 600, maxBatch: 2, onLog: (m: string) => logs.push(m) });
  assert.ok(logs.some((m) => /^warning: ctx 600 > max_position_embeddings 512: the model was not trained on positions beyond 512/.test(m)), logs.join('\n'));
  const t = tmpDir();
  try {
    const { makeGpt2Checkpoint } = await import('./archs/gpt2.synth.ts');
    await makeGpt2Checkpoint(t.path, { seed: 5, positions: 32 });
    cpSync(join(CHAT, 'tokenizer.json'), join(t.path, 'tokenizer.json'));
    await assert.rejects(serve({ model: t.path, port: 0, ctx: 64, ...quiet }), /ctx 64: gpt2 has a learned position table of 32 rows .*ctx must be ≤ 32/);
  } finally { t.cleanup(); }
});
