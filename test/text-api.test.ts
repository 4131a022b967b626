/**
 * The text-level API (CausalLM.load → generate / stream / chat; src/runtime/text.ts) checked against the id-level
 * generate() + tokenizer decode it is built on, on the embedded stories260K (greedy from <s>: "Once upon a time,
 * there was a little girl named Lily.").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, GptqError, generate, generateTokens, GPTQModel, Checkpoint } from '../src/index.ts';
import { StopAwareStream } from '../src/runtime/text-stream.ts';
import { DEFAULT_MODEL_DIR } from '../src/paths.ts';
import { SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';

/** The embedded model copied to a temp dir, with files replaced/added. */
function modelWith(files: Record<string, string>): { dir: string; cleanup: () => void } {
  const t = tmpDir('gptqjs-text-');
  const dir = join(t.path, 'model');
  cpSync(DEFAULT_MODEL_DIR, dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return { dir, cleanup: t.cleanup };
}

test('CausalLM.load() is the embedded model; generate("") is the greedy story, equal to id-level generate + decode', async () => {
  await using lm = await CausalLM.load();
  assert.equal(lm.source, DEFAULT_MODEL_DIR);
  assert.deepEqual([lm.eosTokenIds, lm.bosTokenId, lm.padTokenId], [[2], 1, 2]);
  const r = await lm.generate('', { maxNewTokens: 24 });
  assert.ok(r.text.startsWith('Once upon a time, there was a little girl named Lily.'), r.text);
  const ids = await generate(lm, [[1]], { maxNewTokens: 24 });
  assert.deepEqual(r.tokenIds, ids.tokens[0]);
  assert.equal(r.text, lm.tokenizer!.decode(ids.tokens[0]!));
  assert.deepEqual([r.finishReason, r.promptTokens, r.completionTokens], ['length', 1, 24]);
});

test('continuations keep the space SentencePiece puts in the next token (decode(prompt+out) − decode(prompt))', async () => {
  await using lm = await CausalLM.load();
  const r = await lm.generate('The cat', { maxNewTokens: 12 });
  const prompt = lm.tokenizer!.encode('The cat');
  const full = lm.tokenizer!.decode([...prompt, ...r.tokenIds]);
  assert.equal('The cat' + r.text, full);
  assert.ok(r.text.startsWith(' '), JSON.stringify(r.text));
});

test('stream() pieces join to generate()\'s text; the return value is the result; break stops generation', async () => {
  await using lm = await CausalLM.load();
  const whole = await lm.generate('Lily', { maxNewTokens: 30 });
  const pieces: string[] = [];
  const it = lm.stream('Lily', { maxNewTokens: 30 });
  let r = await it.next();
  while (!r.done) { pieces.push(r.value); r = await it.next(); }
  assert.ok(pieces.length > 10);
  assert.equal(pieces.join(''), whole.text);
  assert.deepEqual(r.value, whole);
  let n = 0;
  for await (const _ of lm.stream('Lily', { maxNewTokens: 30 })) if (++n === 3) break;
  assert.equal(n, 3);
});

test('stop strings: text ends before the first stop string (finishReason "stop"), also when streaming', async () => {
  await using lm = await CausalLM.load();
  const free = await lm.generate('', { maxNewTokens: 40 });
  const cut = free.text.indexOf(' named');
  assert.ok(cut > 0);
  const r = await lm.generate('', { maxNewTokens: 40, stop: [' named', 'xyz'] });
  assert.equal(r.text, free.text.slice(0, cut));
  assert.equal(r.finishReason, 'stop');
  assert.ok(r.completionTokens < 40);
  let streamed = '';
  for await (const p of lm.stream('', { maxNewTokens: 40, stop: ' named' })) streamed += p;
  assert.equal(streamed, r.text);
  await assert.rejects(lm.stream('', { stop: [''] }).next(), GptqError);
  await assert.rejects(lm.generate('', { stop: [''] }), GptqError);
});

test('StopAwareStream: a tail that may start a stop string waits; cut at the stop string; trim holds edge whitespace', () => {
  const feed = (stops: string[], pieces: string[], trim = false) => {
    const writes: string[] = [];
    let now = '';
    const t = new StopAwareStream(stops, (s) => { now += s; }, { trim });
    const stopped = pieces.map((x) => { now = ''; const r = t.push(x); writes.push(now); return r; });
    now = '';
    const value = t.final();
    return { writes: [...writes, now], stopped, value };
  };
  // gptq chat's fallback transcript: the reply ends at "\nUser:", which may arrive split over pieces
  assert.deepEqual(feed(['\nUser:'], [' Hello', ' world', '\n', 'Us', 'er: hi'], true),
    { writes: ['Hello', ' world', '', '', '', ''], stopped: [false, false, false, false, true], value: 'Hello world' });
  // without trim: a held-back prefix ("a" of "ab") comes out once it cannot start the stop string, or at the end
  assert.deepEqual(feed(['ab'], ['xa', 'c', 'a']), { writes: ['x', 'ac', '', 'a'], stopped: [false, false, false], value: 'xaca' });
  // trim: trailing whitespace waits for more text; at the end it is dropped (written text = trimmed value)
  assert.deepEqual(feed([], ['\n a ', 'b', '  '], true), { writes: ['a', ' b', '', ''], stopped: [false, false, false], value: 'a b' });
});

test('generateTokens with a tokenizer: a token\'s text (onText) has arrived when the token is yielded', async () => {
  await using lm = await CausalLM.load();
  const tok = lm.tokenizer!;
  const prompt = tok.encode('Once upon');
  let text = '';
  const ids: number[] = [];
  const it = generateTokens(lm, [prompt], { maxNewTokens: 12, tokenizer: tok, onText: (_, piece) => { text += piece; } });
  for (let r = await it.next(); !r.done; r = await it.next()) {
    ids.push(r.value.token);
    // stories260K's greedy text has no byte-fallback pieces, so nothing is held back between tokens
    assert.equal(text, tok.decode([...prompt, ...ids]).slice(tok.decode(prompt).length), `after token ${ids.length}`);
  }
  assert.ok(text.startsWith(' a time'), text);
});

test('a batch of prompts (left-padded) gives each prompt\'s own greedy result', async () => {
  await using lm = await CausalLM.load();
  const prompts = ['Once upon a time', 'The cat sat', 'Lily'];
  const batch = await lm.generate(prompts, { maxNewTokens: 16 });
  assert.equal(batch.length, 3);
  for (const [i, p] of prompts.entries()) assert.deepEqual(batch[i], await lm.generate(p, { maxNewTokens: 16 }));
  assert.deepEqual(await lm.generate([], {}), []);
});

test('eos from generation_config.json ends generation by default (not included); eosTokenIds [] overrides', async () => {
  // the 6th greedy token from <s> becomes the eos id
  let sixth: number;
  { await using lm = await CausalLM.load(); sixth = (await generate(lm, [[1]], { maxNewTokens: 6, eosTokenIds: [] })).tokens[0]![5]!; }
  const m = modelWith({ 'generation_config.json': JSON.stringify({ bos_token_id: 1, eos_token_id: [sixth, 2] }) });
  try {
    await using lm = await CausalLM.load(m.dir);
    assert.deepEqual(lm.eosTokenIds, [sixth, 2]);
    const r = await lm.generate('', { maxNewTokens: 20 });
    assert.deepEqual([r.finishReason, r.completionTokens], ['eos', 5]);
    assert.equal(r.text, 'Once upon a time,'.slice(0, r.text.length));
    assert.equal((await generate(lm, [[1]], { maxNewTokens: 20 })).finishReason[0], 'eos');
    assert.equal((await lm.generate('', { maxNewTokens: 20, eosTokenIds: [] })).completionTokens, 20);
  } finally { m.cleanup(); }
});

test('sampling settings default to generation_config.json (do_sample, temperature, top_k); seed makes it repeatable', async () => {
  const m = modelWith({ 'generation_config.json': JSON.stringify({ bos_token_id: 1, eos_token_id: 2, do_sample: true, temperature: 1.3, top_k: 20 }) });
  try {
    await using lm = await CausalLM.load(m.dir);
    const a = await lm.generate('', { maxNewTokens: 30, seed: 7 });
    const ids = await generate(lm, [[1]], { maxNewTokens: 30, seed: 7, temperature: 1.3, topK: 20, topP: 1 });
    assert.deepEqual(a.tokenIds, ids.tokens[0]);
    assert.deepEqual(await lm.generate('', { maxNewTokens: 30, seed: 7 }), a);
    const greedy = await lm.generate('', { maxNewTokens: 30, temperature: 0 });
    assert.deepEqual(greedy.tokenIds, (await generate(lm, [[1]], { maxNewTokens: 30 })).tokens[0]);
    assert.notDeepEqual(a.tokenIds, greedy.tokenIds);
  } finally { m.cleanup(); }
});

test('maxNewTokens is capped by the context (max_position_embeddings 512)', async () => {
  await using lm = await CausalLM.load();
  const prompt = 'Once upon a time '.repeat(60);
  const p = lm.tokenizer!.encode(prompt).length;
  const r = await lm.generate(prompt, { maxNewTokens: 400, eosTokenIds: [] });
  assert.deepEqual([r.promptTokens, r.completionTokens, r.finishReason], [p, 512 - p, 'length']);
  await assert.rejects(lm.generate('Once upon a time '.repeat(130)), /context is 512/);
});

test('AbortSignal: throws its AbortError at the next step; stopOnAbortSignal returns the text so far', async () => {
  await using lm = await CausalLM.load();
  const full = await lm.generate('', { maxNewTokens: 40 });
  const ac = new AbortController();
  let n = 0;
  await assert.rejects(async () => { for await (const _ of lm.stream('', { maxNewTokens: 40, signal: ac.signal })) if (++n === 5) ac.abort(); },
    (e: Error) => e.name === 'AbortError');
  assert.equal(n, 5);
  await assert.rejects(lm.generate('', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  const ac2 = new AbortController();
  let text = '';
  const it = lm.stream('', { maxNewTokens: 40, signal: ac2.signal, stopOnAbortSignal: true });
  let r = await it.next();
  while (!r.done) { text += r.value; if (text.length >= 10) ac2.abort(); r = await it.next(); }
  assert.equal(r.value.finishReason, 'abort');
  assert.ok(r.value.completionTokens < 40);
  assert.equal(r.value.text, text);
  assert.ok(full.text.startsWith(text));
});

test('chat(): messages through the chat template, reply as a message; no template → the transcript of gptq chat / serve, one note', async () => {
  const template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  const m = modelWith({ 'chat_template.jinja': template });
  try {
    await using lm = await CausalLM.load(m.dir);
    const messages = [{ role: 'user', content: 'Tell me a story about Lily.' }];
    const r = await lm.chat(messages, { maxNewTokens: 20 });
    const rendered = 'user: Tell me a story about Lily.\nassistant:';
    const plain = await lm.generate(rendered, { maxNewTokens: 20, addSpecialTokens: false });
    assert.deepEqual(r.message, { role: 'assistant', content: plain.text });
    assert.equal(r.promptTokens, lm.tokenizer!.encode(rendered, { addSpecialTokens: false }).length);
    let streamed = '';
    for await (const p of lm.stream(messages, { maxNewTokens: 20 })) streamed += p;
    assert.equal(streamed, r.text);
  } finally { m.cleanup(); }
  await using lm = await CausalLM.load();
  const logged: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => { logged.push(String(s)); return true; }) as typeof process.stderr.write;
  let r, again;
  try {
    r = await lm.chat([{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Tell me about Lily.' }], { maxNewTokens: 40 });
    again = await lm.chat([{ role: 'user', content: 'hi' }], { maxNewTokens: 4 });
  } finally { process.stderr.write = write; }
  assert.ok(again);
  // = the transcript generated as text, cut at "\nUser:" (chat-prompt.ts, as gptq chat and the server)
  const plain = await lm.generate('Be kind.\n\nUser: Tell me about Lily.\nAssistant:', { maxNewTokens: 40, stop: ['\nUser:'] });
  assert.equal(r.message.content, plain.text);
  assert.equal(r.finishReason, plain.finishReason);
  assert.deepEqual(logged.filter((l) => /chat template/.test(l)), [`[gptqjs] ${DEFAULT_MODEL_DIR} has no chat template; using a plain "User: …\\nAssistant: …" transcript (a reply ends at eos or "User:")\n`]);
});

test('model without tokenizer.json: text methods fail with one line naming the model; the id level works', { skip: SKIP_SHARED }, async () => {
  await using lm = await CausalLM.load(join(SHARED, 'models', 'tiny-gpt2'));
  await assert.rejects(lm.generate('hi'), (e: Error) => e instanceof GptqError && /tiny-gpt2 has no tokenizer\.json/.test(e.message));
  assert.equal((await generate(lm, [[1, 2]], { maxNewTokens: 3, eosTokenIds: [] })).tokens[0]!.length, 3);
});

test('one disposal method: dispose() (idempotent) and await using, on CausalLM, GPTQModel, Checkpoint', async () => {
  const lm = await CausalLM.load();
  await lm.dispose();
  await lm.dispose();
  await assert.rejects(lm.nll([[1, 2, 3]]), /disposed/);
  let escaped: Checkpoint | undefined;
  {
    await using ck = await Checkpoint.open(DEFAULT_MODEL_DIR);
    escaped = ck;
    assert.ok(ck.names().length > 0);
  }
  await assert.rejects(escaped.read(escaped.names()[0]!), /closed/);
  {
    await using q = await GPTQModel.fromPretrained(DEFAULT_MODEL_DIR);
    assert.equal(typeof q[Symbol.asyncDispose], 'function');
  }
  assert.equal(JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'config.json'), 'utf8')).model_type, 'llama');
});

test('sampling options out of range are refused in one line naming the option (text and id level), as the CLI flags are', async () => {
  await using lm = await CausalLM.load();
  const ids = lm.tokenizer!.encode('Once');
  const cases: [Record<string, number>, RegExp][] = [
    [{ temperature: -1 }, /`temperature` \(CLI: --temperature\) must be a number ≥ 0/], [{ topP: 5 }, /`topP` .* in \(0, 1\], got 5/],
    [{ topP: 0 }, /`topP`/], [{ topK: -3 }, /`topK` .* integer ≥ 0/], [{ topK: 2.5 }, /`topK`/],
    [{ repetitionPenalty: 0 }, /`repetitionPenalty` .* > 0/], [{ maxNewTokens: 0 }, /`maxNewTokens` .* integer ≥ 1/],
    [{ seed: -1 }, /`seed` .* integer ≥ 0/], [{ temperature: Number.NaN }, /`temperature`/],
  ];
  for (const [o, re] of cases) {
    await assert.rejects(lm.generate('Once', { maxNewTokens: 3, ...o }), (e: unknown) => e instanceof GptqError && re.test(e.message), JSON.stringify(o));
    await assert.rejects(generate(lm, [ids], { maxNewTokens: 3, ...o }), (e: unknown) => e instanceof GptqError && re.test(e.message), `id level ${JSON.stringify(o)}`);
  }
  // the edges of each range are accepted
  const ok = await lm.generate('Once', { maxNewTokens: 2, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, seed: 0 });
  assert.equal(ok.completionTokens, 2);
});
