/**
 * Evaluation building blocks: Python's random.sample (few-shot draws) vs CPython, ROUGE vs torchmetrics, tables
 * (Parquet snappy/zstd with nested columns, CSV, JSON, JSONL, folders of splits, Hub dataset repos through a fake Hub
 * and offline from the cache, wikitext2 from the Hub's parquet), the in-graph argmax / is_greedy against the logits,
 * lm-eval's tokenization rules, AutoGPTQ's tasks, and the errors of bad input.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tmpDir } from './helpers.ts';
import { PythonRandom } from '../src/io/random.ts';
import { rouge, rougeTokens } from '../src/eval/rouge.ts';
import { loadSplit, readTable, readTextColumn } from '../src/io/tables.ts';
import { readTextFile } from '../src/io/datasets.ts';
import { resolveDataset } from '../src/io/hub.ts';
import { loadAnyModel } from '../src/runtime/load.ts';
import { encodePair, scoreEncoded } from '../src/eval/loglikelihood.ts';
import { evaluate } from '../src/eval/evaluate.ts';
import { closestLabel } from '../src/eval/autogptq-tasks.ts';
import { hellaswagPreprocess, MULTIPLE_CHOICE_TASKS, buildRequests } from '../src/eval/multiple-choice.ts';
import { generate } from '../src/runtime/generate.ts';
import type { CausalLM } from '../src/runtime/causal-lm.ts';
import type { TextTokenizer } from '../src/io/tokenizer.ts';

const FIX = join(ROOT, 'test', 'fixtures', 'eval');
const TABLES = join(FIX, 'tables');

test('PythonRandom.sample equals CPython random.Random(seed).sample (both algorithms, big seeds)', () => {
  const draws = JSON.parse(readFileSync(join(FIX, 'python_random.json'), 'utf8')) as { seed: number; n: number; k: number; sample: number[] }[];
  let rnd: PythonRandom | undefined, seed: number | undefined;
  for (const d of draws) {
    if (d.seed !== seed) { seed = d.seed; rnd = new PythonRandom(BigInt(d.seed)); }
    assert.deepEqual(rnd!.sample(Array.from({ length: d.n }, (_, i) => i), d.k), d.sample, `seed ${d.seed} n ${d.n} k ${d.k}`);
  }
  assert.equal(draws.length, 40);
  assert.throws(() => new PythonRandom(1).sample([1, 2], 3), /sample larger than population/);
});

test('ROUGE-1/2/L (P, R, F) equal torchmetrics ROUGEScore (rouge_score definitions) within 1e-6', () => {
  const ref = JSON.parse(readFileSync(join(FIX, 'rouge_torchmetrics.json'), 'utf8')) as Record<string, string | number>[];
  for (const r of ref) {
    const s = rouge(r.prediction as string, r.reference as string);
    for (const k of ['rouge-1', 'rouge-2', 'rouge-l'] as const) for (const f of ['p', 'r', 'f'] as const)
      assert.ok(Math.abs(s[k][f] - (r[`${k}_${f}`] as number)) < 1e-6, `${JSON.stringify(r.prediction)} vs ${JSON.stringify(r.reference)} ${k}.${f}: ${s[k][f]} vs ${r[`${k}_${f}`]}`);
  }
  assert.deepEqual(rougeTokens('Café, 3 DOGS!'), ['caf', '3', 'dogs']); // rouge_score drops non-[a-z0-9]
});

test('tables: Parquet (snappy, zstd; nested struct/list, int64) equals the rows pyarrow wrote; CSV casts numbers; JSON/JSONL', async () => {
  const rows = JSON.parse(readFileSync(join(TABLES, 'rows.json'), 'utf8'));
  assert.deepEqual(await readTable(join(TABLES, 'test-00000-of-00001.parquet')), rows);
  assert.deepEqual(await readTable(join(TABLES, 'zstd.parquet')), rows);
  assert.deepEqual(await readTable(join(TABLES, 'zstd.parquet'), { limit: 2 }), rows.slice(0, 2));
  assert.deepEqual(await readTable(join(TABLES, 'flat.csv')), rows.map((r: any) => ({ id: r.id, question: r.question, score: r.score })));
  assert.deepEqual(await readTable(join(TABLES, 'rows.json')), rows);
  const t = tmpDir();
  try {
    writeFileSync(join(t.path, 'a.jsonl'), '{"text":"a"}\n\n{"text":"b"}\r\n');
    assert.deepEqual(await readTable(join(t.path, 'a.jsonl')), [{ text: 'a' }, { text: 'b' }]);
    writeFileSync(join(t.path, 'lines.json'), '{"text":"a"}\n{"text":"b"}\n'); // JSON Lines in .json, as 🤗 datasets accepts
    assert.deepEqual(await readTextColumn(join(t.path, 'lines.json')), ['a', 'b']);
    writeFileSync(join(t.path, 'bad.jsonl'), '{"text":"a"}\n[1]\n');
    await assert.rejects(readTable(join(t.path, 'bad.jsonl')), /bad\.jsonl:2: expected a JSON object/);
    writeFileSync(join(t.path, 'bad.parquet'), 'PAR1 not really');
    await assert.rejects(readTable(join(t.path, 'bad.parquet')), /bad\.parquet: cannot read Parquet/);
    await assert.rejects(readTable(join(t.path, 'x.xlsx')), /table .*x\.xlsx does not exist/);
    writeFileSync(join(t.path, 'x.xlsx'), '');
    await assert.rejects(readTable(join(t.path, 'x.xlsx')), /unknown format \.xlsx/);
    await assert.rejects(readTextColumn(join(TABLES, 'zstd.parquet')), /row 0 has no string "text" column \(columns: id, question, choices, score, big\)/);
  } finally { t.cleanup(); }
});

test('loadSplit: a folder of split files (first split found), a Hub dataset repo via the cache, offline afterwards', async () => {
  const r = await loadSplit(join(FIX, 'tasks', 'piqa'), ['test', 'validation']);
  assert.equal(r.split, 'validation');
  assert.equal(r.rows.length, 20);
  await assert.rejects(loadSplit(join(FIX, 'tasks', 'piqa'), 'test'), /no file for split test/);
  const t = tmpDir();
  const parquet = new Uint8Array(readFileSync(join(TABLES, 'test-00000-of-00001.parquet')));
  const files: Record<string, Uint8Array> = { 'cfg/test-00000-of-00001.parquet': parquet, 'other/test-00000-of-00001.parquet': new Uint8Array([1]), 'README.md': new Uint8Array([1]) };
  const calls: string[] = [];
  const HUB = 'https://hub.test';
  const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    calls.push(url);
    if (url.startsWith(`${HUB}/api/datasets/org/ds/tree/main`)) return Response.json(Object.entries(files).map(([path, b]) => ({ type: 'file', path, size: b.length, oid: 'x' })));
    const res = `${HUB}/datasets/org/ds/resolve/main/`;
    if (url.startsWith(res)) {
      const body = files[decodeURIComponent(url.slice(res.length))];
      if (!body) return new Response('no', { status: 404 });
      if (new Headers(init?.headers).get('range') === 'bytes=0-0') return new Response(body.slice(0, 1), { status: 206, headers: { 'Content-Range': `bytes 0-0/${body.length}`, ETag: '"e"' } });
      return new Response(body, { status: 200 });
    }
    return Response.json({ error: 'not found' }, { status: 404 });
  }) as typeof fetch;
  const noFetch = (async () => { throw new Error('network used'); }) as unknown as typeof fetch;
  try {
    const hub = { cacheDir: t.path, hubUrl: HUB, fetch: fakeFetch, offline: false };
    const got = await loadSplit('org/ds', ['test'], { ...hub, config: 'cfg' });
    assert.deepEqual(got.rows, JSON.parse(readFileSync(join(TABLES, 'rows.json'), 'utf8')));
    assert.ok(calls.some((u) => u.includes('cfg/test-00000-of-00001.parquet')) && !calls.some((u) => u.includes('resolve/main/other')), 'only the config\'s file is downloaded');
    // second time: from the cache, no network, also offline
    assert.deepEqual((await loadSplit('org/ds', 'test', { cacheDir: t.path, hubUrl: HUB, fetch: noFetch, offline: true, config: 'cfg' })).rows.length, 3);
    await assert.rejects(loadSplit('org/ds', 'train', { cacheDir: t.path, hubUrl: HUB, fetch: noFetch, offline: true, config: 'cfg' }), /dataset org\/ds \(split train of config cfg, revision main\) is not in cache .* and offline/);
    await assert.rejects(loadSplit('org/ds', 'train', { ...hub, config: 'cfg' }), /dataset org\/ds: no file for split train of config cfg on the Hub/);
  } finally { t.cleanup(); }
});

test('wikitext2 from the Hub\'s parquet (cached, offline): rows are the documents readTextFile returns', async () => {
  const t = tmpDir();
  try {
    const dir = join(t.path, 'datasets', 'Salesforce--wikitext', 'main', 'wikitext-2-raw-v1');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(TABLES, 'wikitext.parquet'), join(dir, 'test-00000-of-00001.parquet'));
    const size = readFileSync(join(dir, 'test-00000-of-00001.parquet')).length;
    // what a completed download leaves: the file and the repo listing
    writeFileSync(join(t.path, 'datasets', 'Salesforce--wikitext', 'main', '.gptqjs-listing.json'), JSON.stringify({ files: [{ path: 'wikitext-2-raw-v1/test-00000-of-00001.parquet', size }] }));
    const p = await resolveDataset('wikitext2', { cacheDir: t.path, offline: true, fetch: (async () => { throw new Error('network used'); }) as unknown as typeof fetch });
    assert.equal(p, join(dir, 'test-00000-of-00001.parquet'));
    assert.deepEqual(await readTextFile(p), ['', ' = Robert Boulter = \n', '', ' Robert Boulter is an English actor . \n']);
    await assert.rejects(readTextFile(join(TABLES, 'zstd.parquet')), /has no string "text" column/);
  } finally { t.cleanup(); }
});

test('HellaSwag preprocessing and Winogrande partial scoring requests', () => {
  assert.equal(hellaswagPreprocess(' Fun [step] day: Tom went. [title] Fun day.  she '), 'Fun day: Tom went.. Fun day. she');
  const hs = MULTIPLE_CHOICE_TASKS.hellaswag!;
  const doc = hs.processDoc!({ activity_label: 'Playing', ctx_a: 'Tom ran.', ctx_b: 'SHE Jumped', endings: ['a [x]b', 'c'], label: '1' });
  assert.equal(doc.query, 'Playing: Tom ran. She jumped'); // Python str.capitalize lower-cases the rest
  const wg = MULTIPLE_CHOICE_TASKS.winogrande!;
  const r = buildRequests(wg, { sentence: 'Tom gave Sue a cake because _ was hungry.', option1: 'Tom', option2: 'Sue', answer: '2' }, 0, []);
  assert.deepEqual(r.requests, [
    { context: 'Tom gave Sue a cake because Tom', continuation: ' was hungry.' },
    { context: 'Tom gave Sue a cake because Sue', continuation: ' was hungry.' },
  ]);
  assert.equal(r.gold, 1);
  assert.throws(() => buildRequests(wg, { sentence: 'no blank', option1: 'a', option2: 'b', answer: '1' }, 0, []), /sentence has no blank/);
  assert.throws(() => buildRequests(MULTIPLE_CHOICE_TASKS.arc_easy!, { question: 'q', choices: { text: ['a'], label: ['A'] }, answerKey: 'B' }, 0, []), /answerKey "B" is not one of choices.label/);
  assert.equal(closestLabel('positiv', ['negative', 'positive']), 1);
  assert.equal(closestLabel('zzz', ['ab', 'cd']), 0); // first on ties, as AutoGPTQ
});

let model: CausalLM, tokenizer: TextTokenizer;
before(async () => {
  const m = await loadAnyModel(join(ROOT, 'assets', 'stories260K'), { nll: true, graphCache: false });
  model = m.model; tokenizer = m.tokenizer!;
});
after(async () => { await model?.release(); });

test('nllArgmax: NLL and argmax equal a float64 log-softmax / argmax of the logits; is_greedy true exactly for greedy continuations', async () => {
  const ids = [tokenizer.encode('Once upon a time, there was a little girl'), tokenizer.encode('Tom liked to play with his red ball in the park')];
  const S = Math.min(ids[0]!.length, ids[1]!.length);
  const rows = ids.map((r) => r.slice(0, S));
  const V = model.cfg.vocabSize;
  const logits = await model.logits(rows);
  const { nll, argmax } = await model.nllArgmax(rows);
  for (let b = 0; b < 2; b++) for (let s = 0; s < S - 1; s++) {
    const row = logits.subarray((b * S + s) * V, (b * S + s + 1) * V);
    let mx = -Infinity, am = 0, sum = 0;
    row.forEach((x, i) => { if (x > mx) { mx = x; am = i; } });
    row.forEach((x) => { sum += Math.exp(x - mx); });
    const ref = -(row[rows[b]![s + 1]!]! - mx - Math.log(sum));
    assert.ok(Math.abs(nll[b * (S - 1) + s]! - ref) < 1e-4, `nll [${b},${s}]`);
    assert.equal(argmax[b * (S - 1) + s], am, `argmax [${b},${s}]`);
  }
  // the greedy continuation of a prompt is greedy; change its last token and it is not
  const prompt = tokenizer.encode('Once upon a time');
  const g = (await generate(model, [prompt], { maxNewTokens: 6, temperature: 0 })).tokens[0]!;
  const changed = [...g.slice(0, -1), (g.at(-1)! + 1) % V];
  const [a, b] = await scoreEncoded(model, [{ context: prompt, continuation: g }, { context: prompt, continuation: changed }], { batchSize: 2 });
  assert.equal(a!.isGreedy, true);
  assert.equal(b!.isGreedy, false);
  assert.ok(a!.loglikelihood > b!.loglikelihood);
});

test('batched scoring (padding, window truncation) gives the rows\' unbatched loglikelihoods', async () => {
  const reqs = ['Lily', 'Once upon a time, there was a big dog named Max who liked to run', 'The sun'].map((c) => encodePair(tokenizer, c, ' was happy.'));
  const one = await Promise.all(reqs.map(async (r) => (await scoreEncoded(model, [r], { batchSize: 1 }))[0]!));
  const all = await scoreEncoded(model, reqs, { batchSize: 3 });
  all.forEach((r, i) => assert.ok(Math.abs(r.loglikelihood - one[i]!.loglikelihood) < 1e-4, `row ${i}`));
  // window: only the last maxLength+1 tokens are kept (lm-eval), so a short window equals scoring that suffix
  const long = reqs[1]!, L = 8;
  const [w] = await scoreEncoded(model, [long], { maxLength: L });
  const suffix = [...long.context, ...long.continuation].slice(-(L + 1));
  const [direct] = await scoreEncoded(model, [{ context: suffix.slice(0, suffix.length - long.continuation.length), continuation: long.continuation }], { maxLength: 64 });
  assert.ok(Math.abs(w!.loglikelihood - direct!.loglikelihood) < 1e-5);
  await assert.rejects(scoreEncoded(model, [{ context: [1], continuation: [] }]), /request 0 has an empty continuation/);
  await assert.rejects(scoreEncoded(model, [{ context: [1], continuation: new Array(20).fill(5) }], { maxLength: 8 }), /continuation of 20 tokens is longer than the model's max length 8/);
});

test('encodePair: trailing context spaces move to the continuation; empty context is BOS', () => {
  const a = encodePair(tokenizer, 'Lily went ', 'home');
  const b = encodePair(tokenizer, 'Lily went', ' home');
  assert.deepEqual(a, b);
  const e = encodePair(tokenizer, '', 'Lily went home');
  assert.deepEqual(e.context, [tokenizer.bosId]);
  assert.deepEqual(e.continuation, tokenizer.encode('Lily went home', { addSpecialTokens: false }));
  // text starting with the BOS string is not given a second BOS (lm-eval's has_bos_prefix)
  assert.deepEqual(encodePair(tokenizer, '<s>Lily', ' went').context.filter((t) => t === tokenizer.bosId).length, 1);
});

test('AutoGPTQ tasks: language_modeling loss = mean NLL of the label tokens; classification by loglikelihood and by generation; summarization ROUGE', async () => {
  const t = tmpDir();
  try {
    const lm = join(t.path, 'lm.jsonl');
    writeFileSync(lm, ['Once upon a time, there was', 'Tom and Lily went to the'].map((p, i) => JSON.stringify({ prompt: p, label: [' a little girl.', ' park to play.'][i] })).join('\n'));
    const r = await evaluate({ model, tokenizer }, [{ task: 'language_modeling', data: lm }], { logSamples: true });
    const samples = r.samples!.language_modeling as { loss: number; tokens: number; prompt: string; label: string }[];
    for (const s of samples) {
      const ctx = tokenizer.encode(s.prompt), cont = tokenizer.encode(s.label, { addSpecialTokens: false });
      const nll = await model.nll([[...ctx, ...cont]]);
      let sum = 0;
      for (let j = ctx.length - 1; j < ctx.length + cont.length - 1; j++) sum += nll[j]!;
      assert.ok(Math.abs(s.loss - sum / cont.length) < 1e-5);
      assert.equal(s.tokens, cont.length);
    }
    const ppl = r.results.language_modeling!['ppl,none'] as number;
    assert.ok(Math.abs(ppl - Math.exp((samples[0]!.loss + samples[1]!.loss) / 2)) < 1e-9);
    assert.equal(r.higher_is_better.language_modeling!.ppl, false);

    const cls = join(t.path, 'cls.csv');
    writeFileSync(cls, 'text,sentiment\n"Lily was very happy and smiled. She felt",happy\n"Tom cried because he lost his toy. He felt",sad\n"The dog played in the sun. It was",happy\n');
    for (const method of ['loglikelihood', 'generate'] as const) {
      const c = await evaluate({ model, tokenizer }, [{ task: 'sequence_classification', data: cls, promptColumn: 'text', labelColumn: 'sentiment', method }], { logSamples: true });
      const s = c.samples!.sequence_classification as { acc: number; pred: number; gold: number; generated?: string; loglikelihoods?: number[] }[];
      assert.equal(s.length, 3);
      for (const x of s) {
        if (method === 'loglikelihood') assert.equal(x.pred, x.loglikelihoods![0]! >= x.loglikelihoods![1]! ? 0 : 1);
        else assert.equal(x.pred, closestLabel(x.generated!.toLowerCase().trim(), ['happy', 'sad']));
      }
      assert.equal(c.results.sequence_classification!['acc,none'], s.reduce((a, x) => a + x.acc, 0) / 3);
    }
    await assert.rejects(evaluate({ model, tokenizer }, [{ task: 'sequence_classification', data: cls, promptColumn: 'nope' }]), /row 0 has no string column "nope"/);

    const sum = join(t.path, 'sum.jsonl');
    writeFileSync(sum, JSON.stringify({ prompt: 'Once upon a time', label: 'there was a little girl named Lily' }) + '\n');
    const sr = await evaluate({ model, tokenizer }, [{ task: 'text_summarization', data: sum, maxNewTokens: 12 }], { logSamples: true });
    const s0 = (sr.samples!.text_summarization as { generated: string; label: string }[])[0]!;
    const expect = rouge(s0.generated.toLowerCase().trim(), s0.label.toLowerCase().trim());
    assert.equal(sr.results.text_summarization!['rouge-1_f,none'], expect['rouge-1'].f);
    assert.equal(sr.results.text_summarization!['rouge-l_r,none'], expect['rouge-l'].r);
    assert.ok(expect['rouge-1'].f > 0, `the story model continues the story: ${JSON.stringify(s0.generated)}`);
  } finally { t.cleanup(); }
});

test('evaluate: bad input fails in one line naming the task / file', async () => {
  const m = { model, tokenizer };
  await assert.rejects(evaluate(m, ['nope']), /unknown task "nope" \(known: arc_easy/);
  await assert.rejects(evaluate(m, [{ task: 'language_modeling' }]), /language_modeling needs data/);
  await assert.rejects(evaluate(m, [{ task: 'piqa', data: join(FIX, 'tasks', 'piqa', 'validation.jsonl') }], { numFewshot: 2 }), /needs few-shot examples: .* is a single file/);
  await assert.rejects(evaluate(m, [{ task: 'piqa', data: join(FIX, 'tasks', 'piqa') }], { numFewshot: 10 }), /10 examples requested, the few-shot split has 10 documents \(lm-eval draws n \+ 1/);
  await assert.rejects(evaluate(m, [{ task: 'arc_easy', data: join(FIX, 'lm-eval') }]), /dataset folder .*lm-eval: no file for split test or validation/);
  await assert.rejects(evaluate(m, [{ task: 'arc_easy', data: join(FIX, 'tasks', 'piqa') }]), /arc_easy: validation document 0 \(validation.jsonl\): document field "question" must be a string, got nothing \(fields: goal, sol1, sol2, label\)/);
  // single file + a few-shot file
  const r = await evaluate(m, [{ task: 'piqa', data: join(FIX, 'tasks', 'piqa', 'validation.jsonl'), fewshotData: join(FIX, 'tasks', 'piqa', 'train.jsonl') }], { numFewshot: 1, limit: 2 });
  assert.deepEqual(r['n-shot'], { piqa: 1 });
});

test('evaluate(dir, …) loads the model itself (and releases it): same results as a loaded model', async () => {
  const spec = [{ task: 'winogrande', data: join(FIX, 'tasks', 'winogrande') }];
  const a = await evaluate(join(ROOT, 'assets', 'stories260K'), spec, { limit: 4, load: { graphCache: false } });
  const b = await evaluate({ model, tokenizer }, spec, { limit: 4 });
  assert.deepEqual(a.results, b.results);
  assert.equal(a.config.model_args, join(ROOT, 'assets', 'stories260K'));
});
