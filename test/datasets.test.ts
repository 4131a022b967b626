import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';
import { loadText, readTextFile, evalTokens, calibrationSamples, resolveDatasetPath } from '../src/io/datasets.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { mulberry32, randint } from '../src/io/random.ts';
import { GptqError } from '../src/errors.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const EMBEDDED_C4 = join(ROOT, 'assets', 'c4_demo.jsonl');
/** Run with GPTQJS_DATASETS unset / offline so results do not depend on the caller's environment. */
async function isolated<T>(fn: () => Promise<T>): Promise<T> {
  const saved = { d: process.env.GPTQJS_DATASETS, o: process.env.GPTQJS_OFFLINE, c: process.env.GPTQJS_CACHE };
  const cache = tmpDir();
  delete process.env.GPTQJS_DATASETS;
  process.env.GPTQJS_OFFLINE = '1';
  process.env.GPTQJS_CACHE = cache.path;
  try { return await fn(); } finally {
    for (const [k, v] of [['GPTQJS_DATASETS', saved.d], ['GPTQJS_OFFLINE', saved.o], ['GPTQJS_CACHE', saved.c]] as const)
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    cache.cleanup();
  }
}
/** Whitespace tokenizer over integers: "3 4 5" → [3, 4, 5]. */
const numTok = (s: string) => s.split(/\s+/).filter(Boolean).map(Number);
const isWindowOf = (w: Int32Array, ids: ArrayLike<number>) => {
  outer: for (let a = 0; a + w.length <= ids.length; a++) {
    for (let k = 0; k < w.length; k++) if (ids[a + k] !== w[k]) continue outer;
    return true;
  }
  return false;
};

test('mulberry32 matches test/helpers rng and randint is inclusive', async () => {
  const { rng } = await import('./helpers.ts');
  const a = mulberry32(7), b = rng(7);
  for (let i = 0; i < 5; i++) assert.equal(a(), b());
  const r = mulberry32(1), seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(randint(r, 2, 4));
  assert.deepEqual([...seen].sort(), [2, 3, 4]);
});

test('wikitext2 raw file: CRLF normalised, one document per line', { skip: SKIP_SHARED }, async () => {
  const path = join(SHARED, 'data', 'wikitext-2-raw', 'wiki.test.raw');
  const docs = await readTextFile(path);
  const raw = readFileSync(path, 'utf8');
  assert.equal(docs.length, raw.split('\r\n').length - (raw.endsWith('\r\n') ? 1 : 0));
  assert.equal(docs[0], ' = Robert Boulter = ');
  assert.ok(docs.every((d) => !d.includes('\r')));
  await isolated(async () => {
    const byName = await loadText('wikitext2', { datasetPath: join(SHARED, 'data') });
    assert.deepEqual(byName, docs);
    process.env.GPTQJS_DATASETS = join(SHARED, 'data', 'wikitext-2-raw');
    assert.equal((await loadText('wikitext2')).length, docs.length);
  });
});

test('c4 by name: embedded asset, GPTQJS_DATASETS dir, datasetPath dir with c4*.jsonl', async () => {
  await isolated(async () => {
    assert.equal(await resolveDatasetPath('c4'), EMBEDDED_C4);
    const docs = await loadText('c4');
    assert.equal(docs.length, 300);
    assert.ok(docs[0]!.startsWith('Don’t think you need all the bells and whistles?'));
    const t = tmpDir();
    try {
      writeFileSync(join(t.path, 'c4-small.jsonl'), '{"text":"alpha"}\n\n{"text":"beta","url":"x"}\n');
      assert.deepEqual(await loadText('c4', { datasetPath: t.path }), ['alpha', 'beta']);
      mkdirSync(join(t.path, 'env', 'c4'), { recursive: true });
      copyFileSync(EMBEDDED_C4, join(t.path, 'env', 'c4', 'c4_demo.jsonl'));
      process.env.GPTQJS_DATASETS = join(t.path, 'env');
      assert.equal(await resolveDatasetPath('c4'), join(t.path, 'env', 'c4', 'c4_demo.jsonl'));
      assert.equal((await loadText('c4', { limit: 5 })).length, 5);
    } finally { t.cleanup(); }
    // an explicit datasetPath must hold the data (no silent fallback to the embedded c4)
    const e = tmpDir();
    try {
      await assert.rejects(loadText('c4', { datasetPath: e.path }), (err: Error) => err instanceof GptqError && err.message.includes(`dataset c4: not found in ${e.path}`));
      await assert.rejects(loadText('c4', { datasetPath: join(e.path, 'nope') }), /dataset path .*nope does not exist/);
    } finally { e.cleanup(); }
    // wikitext2 with nothing local: clear error (no download of parquet)
    await assert.rejects(loadText('wikitext2'), (e: Error) => e instanceof GptqError && /wikitext2: wiki\.test\.raw not found/.test(e.message));
  });
});

test('file formats and errors', async () => {
  const t = tmpDir();
  const f = (name: string, body: string) => { const p = join(t.path, name); writeFileSync(p, body); return p; };
  try {
    assert.deepEqual(await loadText(f('a.txt', 'one\r\ntwo\r\n\r\nthree\r\n')), ['one', 'two', '', 'three']);
    assert.deepEqual(await loadText(f('b.json', '["x", {"text": "y"}]')), ['x', 'y']);
    assert.deepEqual(await loadText(f('c.jsonl', '{"text":"p"}\r\n{"text":"q"}')), ['p', 'q']);
    const bad = async (p: string, re: RegExp) => assert.rejects(loadText(p), (e: Error) => e instanceof GptqError && re.test(e.message) && e.message.includes(p));
    await bad(f('empty.txt', ''), /contains no text/);
    await bad(f('blank.txt', '\n \n'), /contains no text/);
    await bad(f('d.jsonl', '{"text":"ok"}\n{"body":"no"}\n'), /d\.jsonl:2: expected an object with a string "text" field/);
    await bad(f('e.jsonl', '{"text":"ok"}\n{oops\n'), /e\.jsonl:2: not valid JSON/);
    await bad(f('g.json', '{"text":"x"}'), /expected a JSON array/);
    await bad(f('h.json', '[1]'), /item 0/);
    await bad(f('i.jsonl', ''), /contains no text/);
    await assert.rejects(loadText(join(t.path, 'missing.txt')), /dataset .*missing\.txt: no such file \(known names: wikitext2, c4\)/);
  } finally { t.cleanup(); }
});

test('evalTokens: "\\n\\n"-joined documents tokenized once; c4 joins 1100 docs with spaces', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const docs = ['Once upon a time.', 'There was a cat.'];
  const ids = evalTokens(tok, docs, 'wikitext2');
  assert.ok(ids instanceof Int32Array);
  assert.deepEqual(Array.from(ids), tok.encode('Once upon a time.\n\nThere was a cat.'));
  assert.equal(ids[0], 1);
  assert.deepEqual(Array.from(evalTokens((s) => tok.encode(s), docs)), Array.from(ids));
  const many = Array.from({ length: 1200 }, (_, i) => String(i));
  assert.deepEqual(Array.from(evalTokens(numTok, many, 'c4')), Array.from({ length: 1100 }, (_, i) => i));
  assert.throws(() => evalTokens(numTok, []), /no documents/);
});

test('calibration (gptq C4 method): windows of documents longer than seqlen, deterministic by seed', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const docs = await readTextFile(EMBEDDED_C4);
  const enc = (s: string) => tok.encode(s);
  const a = calibrationSamples(enc, docs, { nsamples: 8, seqlen: 64, seed: 0 });
  const b = calibrationSamples(enc, docs, { nsamples: 8, seqlen: 64, seed: 0 });
  const c = calibrationSamples(enc, docs, { nsamples: 8, seqlen: 64, seed: 1 });
  assert.equal(a.inputIds.length, 8);
  assert.equal(a.concatenated, false);
  assert.deepEqual(a.inputIds, b.inputIds);
  assert.notDeepEqual(a.inputIds, c.inputIds);
  const encoded = docs.map(enc);
  for (const w of a.inputIds) {
    assert.equal(w.length, 64);
    assert.ok(encoded.some((ids) => ids.length > 64 && isWindowOf(w, ids)));
  }
  assert.deepEqual(a.attentionMask.map((m) => m.length), Array(8).fill(64));
  assert.ok(a.attentionMask.every((m) => m.every((x) => x === 1)));
});

test('calibration: strict length > seqlen, window start in [0, len-seqlen-1]', () => {
  // docs of exactly seqlen tokens are never picked; a doc of seqlen+1 tokens always gives its first window
  const docs = ['1 2 3 4', '5 6 7 8', '10 11 12 13 14'];
  const s = calibrationSamples(numTok, docs, { nsamples: 20, seqlen: 4, seed: 3 });
  assert.equal(s.concatenated, false);
  for (const w of s.inputIds) assert.deepEqual(Array.from(w), [10, 11, 12, 13]);
});

test('calibration: falls back to "\\n\\n"-joined documents when none is long enough', () => {
  const docs = ['1 2 3', '4 5', '6 7 8 9'];
  const s = calibrationSamples(numTok, docs, { nsamples: 5, seqlen: 4, seed: 0 });
  assert.equal(s.concatenated, true);
  assert.equal(s.inputIds.length, 5);
  const all = numTok(docs.join('\n\n'));
  for (const w of s.inputIds) { assert.equal(w.length, 4); assert.ok(isWindowOf(w, all)); }
  const starts = new Set(s.inputIds.map((w) => w[0]));
  assert.ok(starts.size > 1, 'windows at several offsets');
  assert.throws(() => calibrationSamples(numTok, ['1 2', '3'], { seqlen: 8 }),
    (e: Error) => e instanceof GptqError && /2 documents give only 3 tokens .*fewer than seqlen 8/.test(e.message));
  assert.throws(() => calibrationSamples(numTok, [], { seqlen: 8 }), /0 documents/);
  assert.throws(() => calibrationSamples(numTok, ['1'], { seqlen: 0 }), /seqlen must be a positive integer/);
});

test('calibration: pre-tokenized examples and string examples are truncated to seqlen', () => {
  const ex = [{ inputIds: [1, 2, 3, 4, 5], attentionMask: [1, 1, 1, 0, 0] }, { inputIds: Int32Array.from([7, 8]) }];
  const s = calibrationSamples(numTok, ex, { seqlen: 3 });
  assert.deepEqual(s.inputIds.map((x) => Array.from(x)), [[1, 2, 3], [7, 8]]);
  assert.deepEqual(s.attentionMask.map((x) => Array.from(x)), [[1, 1, 1], [1, 1]]);
  assert.equal(s.concatenated, false);
  const st = calibrationSamples(numTok, ['1 2 3 4', '5'], { seqlen: 2, mode: 'examples' });
  assert.deepEqual(st.inputIds.map((x) => Array.from(x)), [[1, 2], [5]]);
  assert.throws(() => calibrationSamples(numTok, [{ inputIds: [] }], { seqlen: 2 }), /example 0 is empty/);
  assert.throws(() => calibrationSamples(numTok, [{ inputIds: [1, 2], attentionMask: [1] }], { seqlen: 2 }), /attentionMask length 1 != inputIds length 2/);
});
