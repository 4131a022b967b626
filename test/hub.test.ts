import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, tmpDir } from './helpers.ts';
import { resolveModelDir, resolveDataset, modelCacheDir, isHubId } from '../src/io/hub.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { readTextFile } from '../src/io/datasets.ts';
import { GptqError } from '../src/errors.ts';
import type { DownloadProgress } from '../src/progress.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const HUB = 'https://hub.test';

interface FakeRepo { id: string; kind?: 'model' | 'dataset'; files: Record<string, Uint8Array> }
/** A fetch that serves repos like the Hub's tree API and resolve URLs (Range probe + full GET). */
function fakeHub(repos: FakeRepo[], o: { truncate?: string } = {}) {
  const calls: { url: string; range: string | null; auth: string | null }[] = [];
  const fn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input instanceof Request ? input.url : input);
    const h = new Headers(init?.headers);
    calls.push({ url, range: h.get('range'), auth: h.get('authorization') });
    for (const r of repos) {
      const prefix = r.kind === 'dataset' ? `datasets/${r.id}` : r.id;
      const tree = `${HUB}/api/${r.kind ?? 'model'}s/${r.id}/tree/main?`;
      if (url.startsWith(tree))
        return Response.json(Object.entries(r.files).map(([path, b]) => ({ type: 'file', path, size: b.length, oid: 'x' })));
      const res = `${HUB}/${prefix}/resolve/main/`;
      if (url.startsWith(res)) {
        const path = decodeURIComponent(url.slice(res.length));
        const body = r.files[path];
        if (!body) return new Response('not found', { status: 404, headers: { 'X-Error-Code': 'EntryNotFound' } });
        if (h.get('range') === 'bytes=0-0')
          return new Response(body.slice(0, 1), { status: 206, headers: { 'Content-Range': `bytes 0-0/${body.length}`, ETag: '"e"' } });
        return new Response(o.truncate === path ? body.slice(0, body.length - 1) : body, { status: 200 });
      }
    }
    return Response.json({ error: 'Repository not found' }, { status: 404 });
  };
  return { fetch: fn as typeof fetch, calls };
}
const noFetch = (async () => { throw new Error('network used'); }) as unknown as typeof fetch;
const storiesFiles = () => Object.fromEntries(readdirSync(STORIES).map((f) => [f, new Uint8Array(readFileSync(join(STORIES, f)))]));

async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  try { return await fn(); } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

test('local directories pass through; bad paths error', async () => {
  assert.equal(await resolveModelDir(STORIES, { fetch: noFetch }), STORIES);
  await assert.rejects(resolveModelDir(join(STORIES, 'config.json'), { fetch: noFetch }), /is a file; expected a model directory/);
  await assert.rejects(resolveModelDir('./no/such/dir', { fetch: noFetch }), /model directory \.\/no\/such\/dir does not exist/);
  assert.equal(isHubId('meta-llama/Llama-3.2-1B'), true);
  assert.equal(isHubId('a/b/c'), false);
  assert.equal(isHubId('../x'), false);
});

test('offline with an empty cache: clear error, no network', async () => {
  const t = tmpDir();
  try {
    await withEnv({ HF_HUB_OFFLINE: '1', GPTQJS_OFFLINE: undefined }, async () => {
      await assert.rejects(resolveModelDir('org/model', { cacheDir: t.path, fetch: noFetch }),
        (e: Error) => e instanceof GptqError && /model org\/model \(revision main\) is not in cache .* and offline/.test(e.message));
      await assert.rejects(resolveDataset('c4', { cacheDir: t.path, fetch: noFetch }), /dataset c4 is not in cache .* and offline/);
    });
    await withEnv({ HF_HUB_OFFLINE: undefined, GPTQJS_OFFLINE: 'true' }, () =>
      assert.rejects(resolveModelDir('org/model', { cacheDir: t.path, fetch: noFetch }), /and offline/));
    await withEnv({ HF_HUB_OFFLINE: undefined, GPTQJS_OFFLINE: undefined }, () =>
      assert.rejects(resolveModelDir('org/model', { cacheDir: t.path, fetch: noFetch, offline: true }), /and offline/));
  } finally { t.cleanup(); }
});

test('cache hits need no network (also offline); GPTQJS_CACHE is the default cache', async () => {
  const t = tmpDir();
  try {
    const dir = modelCacheDir('org/model', { cacheDir: t.path, revision: 'v1.0' });
    assert.equal(dir, join(t.path, 'models', 'org--model', 'v1.0'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    // incomplete (no manifest) is not a hit
    await assert.rejects(resolveModelDir('org/model', { cacheDir: t.path, revision: 'v1.0', offline: true }), /not in cache/);
    writeFileSync(join(dir, '.gptqjs-complete.json'), '{}');
    assert.equal(await resolveModelDir('org/model', { cacheDir: t.path, revision: 'v1.0', offline: true, fetch: noFetch }), dir);
    await withEnv({ GPTQJS_CACHE: t.path }, async () => {
      assert.equal(await resolveModelDir('org/model', { revision: 'v1.0', fetch: noFetch }), dir);
      const wt = join(t.path, 'datasets', 'wikitext2', 'wiki.test.raw');
      mkdirSync(join(t.path, 'datasets', 'wikitext2'), { recursive: true });
      writeFileSync(wt, 'x\r\n');
      assert.equal(await resolveDataset('wikitext2', { fetch: noFetch }), wt);
    });
  } finally { t.cleanup(); }
});

test('download end to end through an injected fetch', async () => {
  const t = tmpDir();
  const files = storiesFiles();
  const hub = fakeHub([{ id: 'karpathy/stories260K', files }]);
  const opts = { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false, accessToken: 'hf_test' };
  try {
    const dir = await resolveModelDir('karpathy/stories260K', opts);
    assert.equal(dir, join(t.path, 'models', 'karpathy--stories260K', 'main'));
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model'])
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, f))), files[f], f);
    assert.ok(!existsSync(join(dir, 'README.md')), 'README.md is not a model file');
    assert.ok(readdirSync(dir).every((f) => !f.includes('.tmp-')), 'no temp files left');
    assert.ok(hub.calls.every((c) => c.auth === 'Bearer hf_test'));
    assert.equal((await loadModelConfig(dir)).hiddenSize, 64);
    assert.deepEqual((await TextTokenizer.fromDir(dir)).encode('Once upon'), [1, 403, 407]);
    const n = hub.calls.length;
    assert.equal(await resolveModelDir('karpathy/stories260K', opts), dir);
    assert.equal(hub.calls.length, n, 'second resolve is a cache hit');
    // another revision is a separate cache entry
    await assert.rejects(resolveModelDir('karpathy/stories260K', { ...opts, revision: 'dev' }), /cannot list files/);
  } finally { t.cleanup(); }
});

test('interrupted downloads resume; truncated bodies are rejected and leave nothing behind', async () => {
  const t = tmpDir();
  const files = storiesFiles();
  try {
    const bad = fakeHub([{ id: 'o/m', files }], { truncate: 'model.safetensors' });
    await assert.rejects(resolveModelDir('o/m', { cacheDir: t.path, fetch: bad.fetch, hubUrl: HUB, offline: false }),
      (e: Error) => e instanceof GptqError && /model\.safetensors: got \d+ of \d+ bytes/.test(e.message));
    const dir = modelCacheDir('o/m', { cacheDir: t.path });
    assert.ok(!existsSync(join(dir, 'model.safetensors')));
    assert.ok(!existsSync(join(dir, '.gptqjs-complete.json')));
    assert.ok(readdirSync(dir).every((f) => !f.includes('.tmp-')));
    assert.equal(statSync(join(dir, 'config.json')).size, files['config.json']!.length);
    const before = new Set(readdirSync(dir));
    assert.ok(before.has('generation_config.json'));
    const good = fakeHub([{ id: 'o/m', files }]);
    await resolveModelDir('o/m', { cacheDir: t.path, fetch: good.fetch, hubUrl: HUB, offline: false });
    const fetched = good.calls.filter((c) => c.url.includes('/resolve/') && !c.range).map((c) => c.url.split('/').pop()!);
    assert.ok(fetched.includes('model.safetensors'));
    assert.ok(fetched.every((f) => !before.has(f)), `only missing files are downloaded again: ${fetched}`);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))), files['model.safetensors']);
  } finally { t.cleanup(); }
});

test('Hub errors: unknown repo, no safetensors, no config', async () => {
  const t = tmpDir();
  const enc = (s: string) => new TextEncoder().encode(s);
  const hub = fakeHub([{ id: 'o/bin', files: { 'config.json': enc('{}'), 'pytorch_model.bin': enc('x') } },
    { id: 'o/noconf', files: { 'model.safetensors': enc('x') } }]);
  const opts = { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false };
  try {
    await assert.rejects(resolveModelDir('o/missing', opts), (e: Error) => e instanceof GptqError && /model o\/missing: cannot list files on the Hub .*HF_TOKEN/.test(e.message) && !e.message.includes('\n'));
    await assert.rejects(resolveModelDir('o/bin', opts), /o\/bin: repo has no \.safetensors weights/);
    await assert.rejects(resolveModelDir('o/noconf', opts), /o\/noconf: repo has no config\.json/);
  } finally { t.cleanup(); }
});

test('c4 shard download: json.gz gunzipped into the cache as JSON lines', async () => {
  const t = tmpDir();
  const jsonl = '{"text":"first doc","url":"u"}\n{"text":"second doc"}\n';
  const hub = fakeHub([{ id: 'allenai/c4', kind: 'dataset', files: { 'en/c4-train.00000-of-01024.json.gz': new Uint8Array(gzipSync(jsonl)) } }]);
  try {
    const p = await resolveDataset('c4', { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false });
    assert.equal(p, join(t.path, 'datasets', 'allenai--c4', 'c4-train.00000-of-01024.jsonl'));
    assert.equal(readFileSync(p, 'utf8'), jsonl);
    assert.deepEqual(await readTextFile(p), ['first doc', 'second doc']);
    const n = hub.calls.length;
    assert.equal(await resolveDataset('c4', { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: true }), p);
    assert.equal(hub.calls.length, n);
    await assert.rejects(resolveDataset('pile', { cacheDir: t.path }), /dataset pile: unknown/);
  } finally { t.cleanup(); }
});

test('c4 validation shard (perplexity): en/c4-validation.00000-of-00008.json.gz, cached as JSON lines', async () => {
  const t = tmpDir();
  const jsonl = '{"text":"val one"}\n{"text":"val two"}\n';
  const hub = fakeHub([{ id: 'allenai/c4', kind: 'dataset', files: { 'en/c4-validation.00000-of-00008.json.gz': new Uint8Array(gzipSync(jsonl)) } }]);
  try {
    const p = await resolveDataset('c4', { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false }, 'validation');
    assert.equal(p, join(t.path, 'datasets', 'allenai--c4', 'c4-validation.00000-of-00008.jsonl'));
    assert.deepEqual(await readTextFile(p), ['val one', 'val two']);
    await assert.rejects(resolveDataset('c4', { cacheDir: t.path, offline: true }, 'test'), /c4 has no test split/);
    await assert.rejects(resolveDataset('wikitext2', { cacheDir: t.path, offline: true }, 'train'), /wikitext2: wiki\.train\.raw not found/);
  } finally { t.cleanup(); }
});

test('Hub failures name their cause: network errors are not blamed on HF_TOKEN; 401 / 403 / 404 are told apart', async () => {
  const t = tmpDir();
  const base = { cacheDir: t.path, hubUrl: HUB, offline: false };
  const netErr = (code: string) => async () => { throw new TypeError('fetch failed', { cause: Object.assign(new Error(`getaddrinfo ${code} hub.test`), { code }) }); };
  const status = (s: number) => async () => Response.json({ error: 'Repository not found' }, { status: s });
  try {
    for (const [code, words] of [['ENOTFOUND', 'DNS lookup failed'], ['ECONNREFUSED', 'connection refused'], ['ETIMEDOUT', 'connection timed out']] as const) {
      await assert.rejects(resolveModelDir('o/m', { ...base, fetch: netErr(code) }), (e: Error) =>
        e instanceof GptqError && e.message === `model o/m: cannot list files on the Hub (cannot reach ${HUB} (${code}: ${words}); check the network or proxy (HTTPS_PROXY), or set HF_HUB_OFFLINE=1 to use only the local cache)`);
    }
    await assert.rejects(resolveModelDir('o/m', { ...base, fetch: netErr('ENOTFOUND'), accessToken: 'hf_x' }), (e: Error) => !/HF_TOKEN/.test(e.message));
    await assert.rejects(resolveModelDir('o/m', { ...base, fetch: status(401) }), /HTTP 401: not found, or private\/gated and needs authentication \(no HF_TOKEN is set\)/);
    await assert.rejects(resolveModelDir('o/m', { ...base, fetch: status(401), accessToken: 'hf_x' }), /HF_TOKEN is set but was not accepted/);
    await assert.rejects(resolveModelDir('o/m', { ...base, fetch: status(403), accessToken: 'hf_x' }), /HTTP 403: access denied \(a gated repo: accept its terms/);
    await assert.rejects(resolveModelDir('o/m', { ...base, fetch: status(404) }), /HTTP 404: not found on the Hub \(check the id and revision/);
  } finally { t.cleanup(); }
});

test('download progress: one event type (task download) with bytes per file and over all files', async () => {
  const t = tmpDir();
  const files = storiesFiles();
  const hub = fakeHub([{ id: 'o/m', files }]);
  const events: DownloadProgress[] = [];
  try {
    await resolveModelDir('o/m', { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false, onProgress: (e) => { assert.equal(e.task, 'download'); events.push(e as DownloadProgress); } });
    const done = events.filter((e) => e.fileDone);
    const modelFiles = Object.keys(files).filter((f) => f !== 'README.md');
    assert.deepEqual(done.map((e) => e.file).sort(), modelFiles.sort());
    const total = modelFiles.reduce((a, f) => a + files[f]!.length, 0);
    for (const e of done) { assert.equal(e.fileBytes, files[e.file]!.length); assert.equal(e.fileSize, e.fileBytes); assert.equal(e.total, total); assert.equal(e.files, modelFiles.length); }
    assert.equal(done.at(-1)!.done, total);
    assert.equal(done.at(-1)!.eta, 0);
    assert.deepEqual(done.map((e) => e.fileIndex), modelFiles.map((_, i) => i + 1));
  } finally { t.cleanup(); }
});

test('CausalLM.load(hubId, { onProgress }): the download reports through the load options and the model runs', async () => {
  const t = tmpDir();
  const files = storiesFiles();
  const hub = fakeHub([{ id: 'o/m', files }]);
  const events: DownloadProgress[] = [];
  try {
    const lm = await CausalLM.load('o/m', { hub: { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB, offline: false }, graphCache: false,
      onProgress: (e) => { assert.equal(e.task, 'download'); events.push(e as DownloadProgress); } });
    try {
      const modelFiles = Object.keys(files).filter((f) => f !== 'README.md');
      assert.deepEqual(events.filter((e) => e.fileDone).map((e) => e.file).sort(), modelFiles.sort());
      assert.equal((await lm.generate('', { maxNewTokens: 4 })).text.length > 0, true, 'the downloaded model generates');
    } finally { await lm.dispose(); }
  } finally { t.cleanup(); }
});

test('an AutoGPTQ sharded checkpoint (gptq_model-4bit-128g.safetensors.index.json) downloads with its index', async () => {
  const t = tmpDir();
  try {
    const enc = (s: string) => new TextEncoder().encode(s);
    const shard = (name: string) => {
      const h = enc(JSON.stringify({ [name]: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }).padEnd(40));
      const b = new Uint8Array(8 + h.length + 4);
      new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
      b.set(h, 8);
      return b;
    };
    const base = 'gptq_model-4bit-128g';
    const files = {
      'config.json': enc('{}'), 'quantize_config.json': enc(JSON.stringify({ bits: 4, group_size: 128, model_file_base_name: base })),
      [`${base}.safetensors.index.json`]: enc(JSON.stringify({ weight_map: { a: `${base}-00001-of-00002.safetensors`, b: `${base}-00002-of-00002.safetensors` } })),
      [`${base}-00001-of-00002.safetensors`]: shard('a'), [`${base}-00002-of-00002.safetensors`]: shard('b'),
    };
    const hub = fakeHub([{ id: 'o/sharded', files }]);
    const dir = await resolveModelDir('o/sharded', { cacheDir: t.path, fetch: hub.fetch, hubUrl: HUB });
    assert.ok(existsSync(join(dir, `${base}.safetensors.index.json`)));
    const { Checkpoint } = await import('../src/io/safetensors.ts');
    const ck = await Checkpoint.open(dir);
    assert.deepEqual(ck.names().sort(), ['a', 'b']);
    assert.equal(ck.rule, 'quantize_config.json model_file_base_name');
    await ck.dispose();
  } finally { t.cleanup(); }
});
