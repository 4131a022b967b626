import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { loadText, readTextFile, evalTokens, calibrationSamples, resolveDatasetPath, wikitextRows, wikitextFileText, loadEvalText, calibrationData, WIKITEXT2_RAW } from '../src/io/datasets.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { mulberry32, randint, PythonRandom } from '../src/io/random.ts';
import { GptqError } from '../src/errors.ts';
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { refConfigFromJson, refNll } from './reference/llama-ref.ts';

/** Reference values from Python (scripts/fixtures/make_dataset_fixtures.py). */
const REF = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'datasets', 'reference.json'), 'utf8'));
const WIKI = join(SHARED, 'data', 'wikitext-2-raw', 'wiki.test.raw');
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
/** Tokenizing the 1.3 MB wikitext2 text takes seconds: done once for the tests that need it. */
const memo = new Map<string, number[]>();
const encodeOnce = (tok: TextTokenizer, text: string) => { let ids = memo.get(text); if (!ids) memo.set(text, (ids = tok.encode(text))); return ids; };

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

test('PythonRandom gives exactly CPython random\'s numbers (seed, randint, getrandbits, random)', () => {
  for (const c of REF.python_random) {
    const r = new PythonRandom(c.seed);
    for (const [a, b, v] of c.randint) assert.equal(r.randint(a, b), v, `seed ${c.seed} randint(${a}, ${b})`);
    for (const [k, v] of c.getrandbits) assert.equal(r.getrandbits(k), v, `seed ${c.seed} getrandbits(${k})`);
    for (const v of c.random) assert.equal(r.random(), v);
  }
  assert.throws(() => new PythonRandom(0).randint(0, -1), /empty range/);
});

test('calibration windows are exactly gptq datautils.py\'s (get_c4 over documents, get_wikitext2 over joined rows)', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const docs = await readTextFile(EMBEDDED_C4);
  for (const c of REF.gptq_c4_calibration) {
    const s = calibrationSamples(tok, docs, { nsamples: c.nsamples, seqlen: c.seqlen, seed: c.seed });
    assert.equal(s.concatenated, false);
    assert.deepEqual(s.inputIds.map((x) => Array.from(x)), c.samples.map((x: { ids: number[] }) => x.ids), `seed ${c.seed} seqlen ${c.seqlen}`);
  }
  if (SKIP_SHARED) return;
  const rows = wikitextRows(readFileSync(WIKI, 'utf8'), 'test').rows;
  const w = REF.gptq_wikitext2_calibration;
  const s = calibrationSamples((x) => encodeOnce(tok, x), rows, { nsamples: w.starts.length, seqlen: w.seqlen, seed: w.seed, mode: 'joined' });
  assert.deepEqual(s.inputIds.map((x) => Array.from(x)), w.windows);
});

test('calibrationData: c4 → train split (embedded stand-in, noted); wikitext2 → wiki.train.raw, never the test split', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  await isolated(async () => {
    const notes: string[] = [];
    const c = await calibrationData(tok, 'c4', { nsamples: 2, seqlen: 64, onNote: (m) => notes.push(m) });
    assert.deepEqual(c.inputIds.map((x) => Array.from(x)), REF.gptq_c4_calibration[0].samples.slice(0, 2).map((x: { ids: number[] }) => x.ids));
    assert.match(notes.join(), /embedded c4_demo\.jsonl .* stand-in for en\/c4-train\.00000-of-01024\.json\.gz/);
    const t = tmpDir();
    try {
      // only a test split: calibrating on it would leak the evaluation text
      writeFileSync(join(t.path, 'wiki.test.raw'), ' \n = T = \n \n test text . \n');
      await assert.rejects(calibrationData(tok, 'wikitext2', { datasetPath: t.path, seqlen: 4 }), /dataset wikitext2 \(train split, which GPTQ calibrates on\): not found in .*wiki\.train\.raw/);
      const train = ' \n = A = \n \n' + ' once upon a time there was a cat . \n'.repeat(20);
      writeFileSync(join(t.path, 'wiki.train.raw'), train);
      const s = await calibrationData(tok, 'wikitext2', { datasetPath: t.path, nsamples: 3, seqlen: 16, seed: 5 });
      const all = tok.encode(wikitextRows(train, 'train').rows.join('\n\n'));
      const r = new PythonRandom(5);
      assert.deepEqual(s.inputIds.map((x) => Array.from(x)), [0, 1, 2].map(() => { const a = r.randint(0, all.length - 17); return all.slice(a, a + 16); }));
    } finally { t.cleanup(); }
  });
});

test('wikitext2 from the Hub\'s parquet, per split (cached, offline): calibration on the train rows; the default ppl text = "\\n\\n".join(test rows)', async () => {
  await isolated(async () => {
    // what a completed download of Salesforce/wikitext leaves in the cache (test/eval.test.ts does the same for test)
    const repo = join(process.env.GPTQJS_CACHE!, 'datasets', 'Salesforce--wikitext', 'main');
    mkdirSync(join(repo, 'wikitext-2-raw-v1'), { recursive: true });
    const PARQUET = join(ROOT, 'test', 'fixtures', 'eval', 'tables', 'wikitext.parquet');
    const rows = ['', ' = Robert Boulter = \n', '', ' Robert Boulter is an English actor . \n'];
    const put = (splits: string[]) => {
      const files = splits.map((split) => {
        const path = `wikitext-2-raw-v1/${split}-00000-of-00001.parquet`;
        copyFileSync(PARQUET, join(repo, path));
        return { path, size: readFileSync(PARQUET).length };
      });
      writeFileSync(join(repo, '.gptqjs-listing.json'), JSON.stringify({ files }));
    };
    put(['train']);
    // calibration: get_wikitext2 windows of "\n\n".join(train rows), one char = one token here
    const chars = (t: string) => [...t].map((c) => c.codePointAt(0)!);
    const all = chars(rows.join('\n\n'));
    const cal = await calibrationData(chars, 'wikitext2', { nsamples: 3, seqlen: 8, seed: 0 });
    const r = new PythonRandom(0);
    assert.deepEqual(cal.inputIds.map((x) => Array.from(x)), [0, 1, 2].map(() => { const a = r.randint(0, all.length - 9); return all.slice(a, a + 8); }));
    // no test split in the cache: `gptq ppl` without --dataset measures the embedded C4 sample (never the train rows)
    const notes: string[] = [];
    assert.equal((await loadEvalText(undefined, { onNote: (m) => notes.push(m) })).source, EMBEDDED_C4);
    assert.match(notes.join(), /no local wikitext2 \(wiki\.test\.raw not found .*wikitext-2-raw-v1 test/);
    put(['train', 'test']);
    const d = await loadEvalText(undefined);
    assert.equal(d.kind, 'wikitext2');
    assert.equal(d.source, join(repo, 'wikitext-2-raw-v1', 'test-00000-of-00001.parquet'));
    assert.equal(d.text, rows.join('\n\n'));
  });
});

test('gptq ppl with no dataset: a Hub that does not answer costs probeTimeoutMs, then the embedded C4 sample; offline env: no request at all', async () => {
  await isolated(async () => {
    let calls = 0;
    const hang = ((_: unknown, init?: RequestInit) => { calls++; return new Promise((_r, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason))); }) as typeof fetch;
    const notes: string[] = [];
    const d = await loadEvalText(undefined, { fetch: hang, onNote: (m) => notes.push(m) }); // GPTQJS_OFFLINE=1 (isolated)
    assert.equal(d.source, EMBEDDED_C4);
    assert.equal(calls, 0);
    assert.match(notes.join(), /offline \(HF_HUB_OFFLINE\/GPTQJS_OFFLINE\)/);
    delete process.env.GPTQJS_OFFLINE;
    const t0 = performance.now();
    const n2: string[] = [];
    const e = await loadEvalText(undefined, { fetch: hang, probeTimeoutMs: 200, onNote: (m) => n2.push(m) });
    assert.equal(e.source, EMBEDDED_C4);
    assert.equal(calls, 1);
    assert.ok(performance.now() - t0 < 3000, `${performance.now() - t0} ms`);
    assert.match(n2.join(), /cannot list files on the Hub \(no answer within 0\.2 s\)\); measuring the embedded C4 sample instead/);
  });
});

test('perplexity text by name/file (loadEvalText); gptq ppl with no dataset falls back to the embedded C4 sample, with a note', async () => {
  await isolated(async () => {
    const notes: string[] = [];
    const d = await loadEvalText(undefined, { onNote: (m) => notes.push(m) });
    assert.equal(d.kind, 'c4');
    assert.equal(d.source, EMBEDDED_C4);
    assert.equal([...d.text].length, REF.c4_eval.chars); // Python counts code points
    assert.equal(sha256(d.text), REF.c4_eval.sha256);
    assert.equal(d.maxTokens!(512), 256 * 512);
    assert.match(notes.join(), /no local wikitext2 .*embedded C4 sample/);
    // c4 by name: the validation shard when there is one, else the embedded sample as a stand-in
    const n2: string[] = [];
    assert.equal((await loadEvalText('c4', { onNote: (m) => n2.push(m) })).source, EMBEDDED_C4);
    assert.match(n2.join(), /stand-in for en\/c4-validation\.00000-of-00008\.json\.gz/);
    const t = tmpDir();
    try {
      const docs = Array.from({ length: 1200 }, (_, i) => JSON.stringify({ text: `doc ${i}` })).join('\n');
      writeFileSync(join(t.path, 'c4-validation.00000-of-00008.json.gz'), gzipSync(docs));
      const v = await loadEvalText('c4', { datasetPath: t.path });
      assert.equal(v.text, Array.from({ length: 1100 }, (_, i) => `doc ${i}`).join(' '));
      // a plain text file is measured as it is; JSON lines are joined with blank lines
      writeFileSync(join(t.path, 'story.txt'), 'line one\r\n\r\nline two\r\n');
      assert.equal((await loadEvalText(join(t.path, 'story.txt'))).text, 'line one\n\nline two\n');
      writeFileSync(join(t.path, 'docs.jsonl'), '{"text":"a"}\n{"text":"b"}\n');
      assert.equal((await loadEvalText(join(t.path, 'docs.jsonl'))).text, 'a\n\nb');
      // an explicit --dataset-path without wikitext2 is an error, not a silent fallback
      await assert.rejects(loadEvalText(undefined, { datasetPath: t.path }), /wikitext2: not found in/);
    } finally { t.cleanup(); }
  });
  const tok = await TextTokenizer.fromDir(STORIES);
  const d = await loadEvalText('c4');
  assert.equal(tok.encode(d.text).length, REF.c4_eval.stories260kTokens);
});

test('mulberry32 matches test/helpers rng and randint is inclusive', async () => {
  const { rng } = await import('./helpers.ts');
  const a = mulberry32(7), b = rng(7);
  for (let i = 0; i < 5; i++) assert.equal(a(), b());
  const r = mulberry32(1), seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(randint(r, 2, 4));
  assert.deepEqual([...seen].sort(), [2, 3, 4]);
});

test('wikitext2: the shared CRLF copy without blank lines gives exactly the HF wikitext-2-raw-v1 test rows', { skip: SKIP_SHARED }, async () => {
  const raw = readFileSync(WIKI, 'utf8');
  assert.equal(raw.split('\r\n').filter((l) => l.trim() === '').length, 1); // only the empty string after the last CRLF
  const r = wikitextRows(raw, 'test');
  assert.equal(r.reconstructed, true);
  assert.equal(r.verified, true);
  // the published facts: 4358 rows, num_bytes, and the original file's size and sha256
  assert.equal(r.rows.length, WIKITEXT2_RAW.test.rows);
  assert.equal(r.rows.length, REF.wikitext2_test.rows);
  assert.equal(r.rows.filter((x) => x === '').length, REF.wikitext2_test.blankRows);
  assert.equal(Buffer.byteLength(r.rows.join(''), 'utf8'), WIKITEXT2_RAW.test.textBytes);
  const file = wikitextFileText(r.rows);
  assert.equal(Buffer.byteLength(file, 'utf8'), 1290590);
  assert.equal(sha256(file), REF.wikitext2_test.fileSha256);
  assert.deepEqual(r.rows.slice(0, 12), REF.wikitext2_test.rowsHead);
  // the original file itself (LF, blank lines " ") gives the same rows, not reconstructed
  const again = wikitextRows(file, 'test');
  assert.deepEqual(again, { rows: r.rows, reconstructed: false, verified: true });
  // by name, with a note; GPTQ's text is "\n\n".join(rows)
  await isolated(async () => {
    const notes: string[] = [];
    const rows = await loadText('wikitext2', { datasetPath: join(SHARED, 'data'), onNote: (m) => notes.push(m) });
    assert.deepEqual(rows, r.rows);
    assert.match(notes.join('\n'), /put back the 1467 blank rows: the 4358 rows are exactly HF wikitext-2-raw-v1 test/);
    const e = await loadEvalText('wikitext2', { datasetPath: join(SHARED, 'data') });
    assert.equal(e.kind, 'wikitext2');
    assert.equal([...e.text].length, REF.wikitext2_test.joinedChars);
    assert.equal(sha256(e.text), REF.wikitext2_test.joinedSha256);
    assert.equal((await loadEvalText(WIKI)).text, e.text); // a file named wiki.test.raw is wikitext2 too
    // the name with an explicit file of another name: still the wikitext2 rows
    const t = tmpDir();
    try {
      copyFileSync(WIKI, join(t.path, 'wt2.txt'));
      assert.equal((await loadEvalText('wikitext2', { datasetPath: join(t.path, 'wt2.txt') })).text, e.text);
    } finally { t.cleanup(); }
  });
});

test('wikitext2 rows: a hand-made file, with and without blank lines, joins to the exact GPTQ text', () => {
  // the WikiText layout: blank line, title, blank line, paragraphs; a section heading between blank lines
  const original = ' \n = T = \n \n Para one . \n Para two . \n \n = = S = = \n \n Last . \n \n';
  const stripped = ' = T = \r\n Para one . \r\n Para two . \r\n = = S = = \r\n Last . \r\n';
  const want = ['', ' = T = \n', '', ' Para one . \n', ' Para two . \n', '', ' = = S = = \n', '', ' Last . \n', ''];
  for (const [text, reconstructed] of [[original, false], [stripped, true]] as const) {
    const r = wikitextRows(text, 'test');
    assert.deepEqual(r.rows, want);
    assert.equal(r.reconstructed, reconstructed);
    assert.equal(r.verified, false);
  }
  // every row keeps its "\n" and blank rows add "\n\n" more: 5 newlines after a heading, 3 between paragraphs
  assert.equal(want.join('\n\n'), '\n\n = T = \n\n\n\n\n Para one . \n\n\n Para two . \n\n\n\n\n = = S = = \n\n\n\n\n Last . \n\n\n');
  assert.equal(wikitextFileText(want), original);
  // a second article title gets two blank lines before it; the file's last line without "\n" keeps none
  assert.deepEqual(wikitextRows(' = A = \n x \n = B = \n y', 'test').rows, ['', ' = A = \n', '', ' x \n', '', '', ' = B = \n', '', ' y\n', '']);
  assert.deepEqual(wikitextRows(' \n = A = \n y', 'test').rows, ['', ' = A = \n', ' y']);
  // Python's str.strip(): a line of tabs/spaces is a blank row; CR-only line ends are newlines too
  assert.deepEqual(wikitextRows('a\r \t \rb\n', 'test').rows, ['a\n', '', 'b\n']);
});

test('wikitext2 perplexity text: stories260K tokens and a float64-reference perplexity of its first windows', { skip: SKIP_SHARED }, async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const e = await loadEvalText(WIKI);
  const ids = encodeOnce(tok, e.text);
  assert.equal(ids.length, REF.wikitext2_test.stories260kTokens); // 815059 (the pre-fix text gave 809239)
  assert.deepEqual(ids.slice(0, 32), REF.wikitext2_test.first32);
  assert.deepEqual(ids.slice(-8), REF.wikitext2_test.last8);
  const m = await CausalLM.load(STORIES, { nll: true });
  try {
    const S = 256;
    const r = await perplexity(m, ids, { seqlen: S, maxWindows: 2 });
    const w = await loadFloatWeights(STORIES);
    const rc = refConfigFromJson(JSON.parse(readFileSync(join(STORIES, 'config.json'), 'utf8')));
    const ref = Math.exp((refNll(rc, (n) => w.get(n), ids.slice(0, S)) + refNll(rc, (n) => w.get(n), ids.slice(S, 2 * S))) / 2);
    assert.ok(Math.abs(r.ppl - ref) / ref < 1e-6, `${r.ppl} vs float64 reference ${ref}`);
    assert.ok(Math.abs(ref - 95.93695) < 1e-4, String(ref)); // pinned: the first 2×256 tokens of the recipe text
  } finally { await m.dispose(); }
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
    // .json: an array, or JSON lines like the C4 shards (c4-validation.00000-of-00008.json[.gz])
    assert.deepEqual(await loadText(f('g.json', '{"text":"x"}\n{"text":"y","url":"u"}\n')), ['x', 'y']);
    const gz = join(t.path, 'c4-validation.00000-of-00008.json.gz');
    writeFileSync(gz, gzipSync('{"text":"first"}\n{"text":"second"}\n'));
    assert.deepEqual(await loadText(gz), ['first', 'second']);
    await bad(f('g2.json', '{"a":1}'), /g2\.json:1: expected an object with a string "text" field/);
    await bad(f('bad.json.gz', 'not gzip'), /not a valid gzip file/);
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
