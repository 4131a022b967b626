/**
 * Runtime fast paths: the buffer graph (cache read in place, values transposed) and GroupQueryAttention in-place KV
 * decode vs the plain Concat graphs (GQA, sliding window,
 * left-padded batches, ALiBi, cache growth, multi-token steps), the opt-in quantized lm_head, the compiled-graph
 * cache, `gptq bench` and `gptq chat` (piped stdin).
 */
import { test, after } from 'node:test';
import { benchModel } from '../src/eval/speed.ts';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, loadFloatWeights, type KvCache, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { checkLmHeadBits, dequantizeHead, quantizeHead } from '../src/runtime/lm-head.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import type { GraphBuilder } from '../src/graph/builder.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { makeLlamaCheckpoint, type LlamaOpts } from './synth.ts';
import { makeBloomCheckpoint } from './archs/bloom.synth.ts';
import { ROOT, cliArgs, maxAbsDiff, maxRelDiff, randn, refNll, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-runtime-');
after(() => work.cleanup());
const NOCACHE: LoadOptions = { graphCache: false, onLog: () => {} };

let n = 0;
async function llama(o: LlamaOpts): Promise<string> {
  const dir = join(work.path, `m${n++}`);
  await makeLlamaCheckpoint(dir, o);
  return dir;
}

/**
 * Drive both models through the same steps (batched prefill with left padding, then decode) and return the largest
 * logit difference over every step; also checks full-sequence logits.
 */
async function comparePaths(dir: string, prompts: number[][], steps: number, mode: 'buffer' | 'gqa'): Promise<{ step: number; full: number; fast: CausalLM }> {
  const fast = await CausalLM.load(dir, { ...NOCACHE, attention: mode });
  const plain = await CausalLM.load(dir, { ...NOCACHE, attention: 'plain' });
  assert.equal(fast.attention, mode);
  assert.equal(plain.attention, 'plain');
  const V = fast.cfg.vocabSize, B = prompts.length, L = Math.max(...prompts.map((p) => p.length));
  const ids = prompts.map((p) => [...new Array(L - p.length).fill(0), ...p]);
  const mask = prompts.map((p) => [...new Array(L - p.length).fill(0), ...new Array(p.length).fill(1)]);
  let a = await fast.forwardStep(ids, fast.emptyCache(B), mask.map((r) => [...r]));
  let b = await plain.forwardStep(ids, plain.emptyCache(B), mask.map((r) => [...r]));
  let step = maxAbsDiff(a.logits, b.logits);
  for (let s = 0; s < steps; s++) {
    const next = Array.from({ length: B }, (_, r) => [(s * 13 + r * 7 + 5) % V]);
    for (const row of mask) row.push(1);
    a = await fast.forwardStep(next, a.cache, mask.map((r) => [...r]));
    b = await plain.forwardStep(next, b.cache, mask.map((r) => [...r]));
    step = Math.max(step, maxAbsDiff(a.logits, b.logits));
  }
  const same = prompts.map((p) => p.slice(0, Math.min(...prompts.map((q) => q.length))));
  const full = maxAbsDiff(await fast.logits(same), await plain.logits(same));
  await plain.dispose();
  return { step, full, fast };
}

const PROMPTS = [
  Array.from({ length: 11 }, (_, i) => (i * 7 + 3) % 64),
  Array.from({ length: 4 }, (_, i) => (i * 5 + 1) % 64),
  Array.from({ length: 8 }, (_, i) => (i * 3 + 2) % 64),
];

for (const mode of ['buffer', 'gqa'] as const) test(`${mode} path = plain path: llama with grouped kv heads, left-padded batch of 3, 12 decode steps`, async () => {
  const dir = await llama({ seed: 11, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 });
  const { step, full, fast } = await comparePaths(dir, PROMPTS, 12, mode);
  assert.ok(step <= 1e-4, `step ${step}`);
  assert.ok(full <= 1e-4, `full ${full}`);
  await fast.dispose();
});

for (const mode of ['buffer', 'gqa'] as const) test(`${mode} path = plain path: mistral with sliding window 5 (prompt and decode longer than the window)`, async () => {
  const dir = await llama({ modelType: 'mistral', seed: 12, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 1, vocab: 64, slidingWindow: 5 });
  const { step, full, fast } = await comparePaths(dir, PROMPTS, 10, mode);
  assert.ok(step <= 1e-4, `step ${step}`);
  assert.ok(full <= 1e-4, `full ${full}`);
  await fast.dispose();
});

for (const mode of ['buffer', 'gqa'] as const) test(`${mode} path = plain path: bloom (ALiBi bias as attention_bias), left-padded batch`, async () => {
  const dir = join(work.path, 'bloom');
  await makeBloomCheckpoint(dir, { hidden: 64, layers: 2, heads: 4, vocab: 64, seed: 5 });
  const { step, full, fast } = await comparePaths(dir, PROMPTS, 6, mode);
  assert.ok(step <= 1e-4, `step ${step}`);
  assert.ok(full <= 1e-4, `full ${full}`);
  await fast.dispose();
});

for (const mode of ['buffer', 'gqa'] as const) test(`${mode} cache: growth past a small capacity, multi-token steps (batch 1 and 2), clone, other forms`, async () => {
  const dir = await llama({ seed: 13, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 });
  const fast = await CausalLM.load(dir, { ...NOCACHE, attention: mode });
  const plain = await CausalLM.load(dir, { ...NOCACHE, attention: 'plain' });
  const ids = Array.from({ length: 20 }, (_, i) => (i * 11 + 4) % 64);
  const want = await plain.logits([ids]);
  const V = 64;
  const row = (s: number) => want.subarray(s * V, (s + 1) * V);
  // capacity 3 → grows several times; chunks of 3 tokens after a non-empty cache (batch 1: one GQA call each)
  let c: KvCache = fast.emptyCache(1, 3);
  let r: { logits: Float32Array; cache: KvCache } = { logits: new Float32Array(0), cache: c };
  for (let s = 0; s < ids.length; s += 3) {
    const chunk = ids.slice(s, s + 3);
    r = await fast.forwardStep([chunk], r.cache);
    assert.ok(maxAbsDiff(r.logits, row(s + chunk.length - 1)) <= 1e-4, `chunk at ${s}`);
  }
  assert.ok(r.cache.capacity! >= ids.length);
  // a clone continues independently of the original
  c = fast.cloneCache(r.cache);
  const x = await fast.forwardStep([[7]], c);
  const y = await fast.forwardStep([[7]], r.cache);
  assert.ok(maxAbsDiff(x.logits, y.logits) <= 1e-6);
  // batch 2, 4 new tokens after a cache of 6 (gqa: fed token by token internally), same as the plain path
  const two = [ids.slice(0, 10), ids.slice(5, 15)];
  let a = await fast.forwardStep(two.map((p) => p.slice(0, 6)), fast.emptyCache(2));
  let b = await plain.forwardStep(two.map((p) => p.slice(0, 6)), plain.emptyCache(2));
  a = await fast.forwardStep(two.map((p) => p.slice(6)), a.cache);
  b = await plain.forwardStep(two.map((p) => p.slice(6)), b.cache);
  assert.ok(maxAbsDiff(a.logits, b.logits) <= 1e-4);
  assert.equal(a.cache.length, 10);
  // a buffer-form cache handed to the plain model is compacted, and vice versa
  const m1 = await plain.forwardStep([[3], [4]], a.cache);
  const m2 = await fast.forwardStep([[3], [4]], b.cache);
  assert.ok(maxAbsDiff(m1.logits, m2.logits) <= 1e-4);
  // and the other buffer form (values transposed ↔ not)
  const other = await CausalLM.load(dir, { ...NOCACHE, attention: mode === 'gqa' ? 'buffer' : 'gqa' });
  const m3 = await other.forwardStep([[3], [4]], a.cache);
  assert.equal(!!m3.cache.valuesTransposed, mode === 'gqa');
  assert.ok(maxAbsDiff(m1.logits, m3.logits) <= 1e-4);
  await fast.dispose(); await plain.dispose(); await other.dispose();
});

test('default (buffer) path on stories260K: greedy generation (batched, left-padded) identical to the plain path', async () => {
  const fast = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'auto' });
  const plain = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'plain' });
  assert.equal(fast.attention, 'buffer');
  const prompts = [[1, 403, 407, 261, 378], [1, 84], [1, 346, 261, 300]];
  const a = await generate(fast, prompts, { maxNewTokens: 24 });
  const b = await generate(plain, prompts, { maxNewTokens: 24 });
  assert.deepEqual(a.tokens, b.tokens);
  await fast.dispose(); await plain.dispose();
});

test('buffer cache: positions past the valid length never count (junk there; the NaN a failed run wrote there is cleared)', async () => {
  // the buffer graph's decode step reads the whole capacity; positions ≥ P are masked out (keys) and get probability 0
  // (values)
  const dir = await llama({ seed: 15, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 });
  const cfg = await loadModelConfig(dir), w = await loadFloatWeights(dir);
  const emb = w.get('model.embed_tokens.weight')!.slice();
  emb[9 * 64] = Infinity; // token 9's embedding: its keys/values and everything after it become NaN
  // past the NaN/Inf check of checkpoint tensors (the way activations that overflow would get there)
  class Unchecked extends InitializerWeights {
    override tensor(g: GraphBuilder, name: string, shape: readonly number[]): string {
      return name === 'model.embed_tokens.weight' ? g.init(name, 'float32', shape, emb) : super.tensor(g, name, shape);
    }
  }
  const m = await CausalLM.fromWeights(cfg, () => new Unchecked((k) => w.get(k)), { attention: 'buffer' });
  const plain = await CausalLM.load(dir, { ...NOCACHE, attention: 'plain' });
  assert.equal(m.attention, 'buffer');
  const ids = [1, 5, 7, 11, 13, 17, 19, 23];
  const want = await plain.logits([ids]);
  const row = (s: number) => want.subarray(s * 64, (s + 1) * 64);
  // junk (large finite values) past the valid length of a truncated cache
  let r = await m.forwardStep([ids.slice(0, 6)], m.emptyCache(1));
  const short = m.truncateCache(r.cache, 3);
  assert.ok(short.capacity! > 6 && short.valuesTransposed);
  const cap = short.capacity!, d = cfg.headDim, rows = cfg.numKvHeads; // keys [rows, cap, d], values [rows·d, cap]: positions ≥ 3 filled
  for (const k of short.keys) for (let j = 0; j < rows; j++) k.fill(1e30, (j * cap + 3) * d, (j + 1) * cap * d);
  for (const v of short.values) for (let j = 0; j < rows * d; j++) v.fill(-1e30, j * cap + 3, (j + 1) * cap);
  r = await m.forwardStep([[ids[3]!]], short);
  assert.ok(maxAbsDiff(r.logits, row(3)) <= 1e-4, 'junk past the cache');
  // a run that fails (NaN logits) after P = 4 writes NaN at 4..6; going on from the cache of length 4 must not see it
  await assert.rejects(m.forwardStep([[9, 9, 9]], r.cache), /logits hold NaN/);
  for (let s = 4; s < ids.length; s++) {
    r = await m.forwardStep([[ids[s]!]], r.cache);
    assert.ok(maxAbsDiff(r.logits, row(s)) <= 1e-4, `after the failed run, position ${s}`);
  }
  await m.dispose(); await plain.dispose();
});

test('buffer path, prompts longer than one run (chunks of 256): logits, NLL/argmax and prefill+decode = plain path', async () => {
  const fast = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'buffer', nll: true });
  const plain = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'plain', nll: true });
  const row = (n: number, k: number) => Array.from({ length: n }, (_, i) => 1 + ((i * k + 7) % 500));
  const ids = [row(300, 13), row(300, 29)];
  assert.ok(maxAbsDiff(await fast.logits(ids), await plain.logits(ids)) <= 1e-4);
  const a = await fast.nllArgmax(ids), b = await plain.nllArgmax(ids);
  assert.equal(a.nll.length, 2 * 299);
  assert.ok(maxAbsDiff(a.nll, b.nll) <= 1e-4);
  assert.deepEqual(a.argmax, b.argmax);
  // left-padded batch: 520 and 300 tokens → three runs of 256/256/8
  const prompts = [row(520, 11), row(300, 3)];
  const x = await generate(fast, prompts, { maxNewTokens: 6, eosTokenIds: [] });
  const y = await generate(plain, prompts, { maxNewTokens: 6, eosTokenIds: [] });
  assert.deepEqual(x.tokens, y.tokens);
  assert.equal(x.cache.length, 520 + 5);
  await fast.dispose(); await plain.dispose();
});

test('generate continues after a cached prefix (chat turns): same tokens as generating from the whole text', async () => {
  for (const attention of ['buffer', 'gqa', 'plain'] as const) {
    const m = await CausalLM.load(STORIES, { ...NOCACHE, attention });
    const prefix = [1, 403, 407, 261, 378, 300], more = [346, 261];
    const whole = await generate(m, [[...prefix, ...more]], { maxNewTokens: 10 });
    const first = await generate(m, [prefix], { maxNewTokens: 5 });
    // keep the prompt part of the cache only, then continue with the new tokens
    const cache = m.truncateCache(first.cache, prefix.length);
    const cont = await generate(m, [more], { maxNewTokens: 10, cache });
    assert.deepEqual(cont.tokens, whole.tokens, attention);
    if (attention === 'buffer') {
      // a long cache cut back to a short prefix is copied into a buffer sized for it (decode reads the whole buffer)
      const long = await generate(m, [prefix], { maxNewTokens: 300, eosTokenIds: [] });
      assert.ok(long.cache.capacity! >= 305);
      const again = await generate(m, [more], { maxNewTokens: 10, cache: m.truncateCache(long.cache, prefix.length) });
      assert.deepEqual(again.tokens, whole.tokens);
      assert.ok(again.cache.capacity! < 150, `capacity ${again.cache.capacity}`);
    }
    assert.equal(cont.cache.length, prefix.length + more.length + 9);
    await m.dispose();
  }
});

test('head_dim not a multiple of 8: auto runs the buffer graph (= plain); gqa refuses', async () => {
  const dir = await llama({ seed: 14, hidden: 24, intermediate: 32, layers: 1, heads: 4, kvHeads: 2, vocab: 32 }); // head_dim 6
  const m = await CausalLM.load(dir, NOCACHE);
  assert.equal(m.attention, 'buffer');
  const plain = await CausalLM.load(dir, { ...NOCACHE, attention: 'plain' });
  const ids = [[1, 5, 9, 13, 17, 21]];
  assert.ok(maxAbsDiff(await m.logits(ids), await plain.logits(ids)) <= 1e-5);
  const r = await generate(m, ids, { maxNewTokens: 6, eosTokenIds: [] }), q = await generate(plain, ids, { maxNewTokens: 6, eosTokenIds: [] });
  assert.deepEqual(r.tokens, q.tokens);
  await m.dispose(); await plain.dispose();
  await assert.rejects(CausalLM.load(dir, { ...NOCACHE, attention: 'gqa' }), /head_dim 6 is not a multiple of 8/);
});

test('quantizeHead: int8/int4 round trip within half a step per block; padding and zero rows exact', () => {
  const N = 5, K = 70; // K not a multiple of the block (32)
  const w = randn(N * K, 3, 0.5);
  w.fill(0, K, 2 * K); // a zero row
  for (const bits of [8, 4] as const) {
    const h = quantizeHead(w, N, K, bits);
    const d = dequantizeHead(h);
    for (let r = 0; r < N; r++) for (let k = 0; k < K; k++) {
      const blk = Math.floor(k / 32), s = h.scales[r * Math.ceil(K / 32) + blk]!;
      assert.ok(Math.abs(d[r * K + k]! - w[r * K + k]!) <= s / 2 + 1e-7, `bits ${bits} [${r},${k}]`);
    }
    for (let k = 0; k < K; k++) assert.equal(d[K + k], 0);
  }
});

test('lm-head opt-in: MatMulNBits head = fp32 graph with the dequantized head (4-bit exact at level 0; 8-bit close)', async () => {
  const dir = await llama({ seed: 15, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 96 });
  const cfg = await loadModelConfig(dir);
  const fp = await loadFloatWeights(dir);
  const ids = [Array.from({ length: 9 }, (_, i) => (i * 17 + 2) % 96)];
  const base = await (await CausalLM.load(dir, NOCACHE)).logits(ids);
  for (const bits of [4, 8] as const) {
    const logs: string[] = [];
    const m = await CausalLM.load(dir, { graphCache: false, onLog: (s) => logs.push(s), lmHeadBits: bits });
    assert.ok(logs.some((s) => s.includes('lm-head') && s.includes('not exact')), 'the opt-in is logged');
    assert.deepEqual(m.lmHead, { bits, accuracyLevel: bits === 8 ? 4 : 0 });
    const w = new Map(fp);
    w.set('lm_head.weight', dequantizeHead(quantizeHead(fp.get('lm_head.weight')!, 96, 64, bits)));
    const ref = await CausalLM.fromWeights(cfg, () => new InitializerWeights((k) => w.get(k)), { attention: 'plain' });
    const got = await m.logits(ids);
    const d = maxAbsDiff(got, await ref.logits(ids));
    if (bits === 4) assert.ok(d <= 1e-4, `4-bit head vs dequantized fp32: ${d}`);
    else assert.ok(d <= 5e-2, `8-bit head (int8 activations) vs dequantized fp32: ${d}`);
    const dBase = maxAbsDiff(got, base); // the price of the opt-in on random weights, for the record
    assert.ok(dBase > 0 && dBase < 0.5, `vs fp head: ${dBase}`);
    await m.dispose(); await ref.dispose();
  }
});

test('graph cache: second load is a hit and reads no weights; a rewritten checkpoint misses; fallback recorded', async () => {
  const cacheDir = join(work.path, 'graph-cache');
  const dir = await llama({ seed: 16, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 });
  const o: LoadOptions = { graphCache: cacheDir, onLog: () => {} };
  const ids = [[1, 2, 3, 4, 5]];
  const a = await CausalLM.load(dir, o);
  assert.equal(a.loadInfo.graphCache, 'miss');
  const b = await CausalLM.load(dir, o);
  assert.equal(b.loadInfo.graphCache, 'hit');
  assert.equal(b.attention, 'buffer');
  assert.equal(maxAbsDiff(await a.logits(ids), await b.logits(ids)), 0);
  // other options → other entries
  const c = await CausalLM.load(dir, { ...o, lmHeadBits: 8 });
  assert.equal(c.loadInfo.graphCache, 'miss');
  // the checkpoint changes (new mtime) → miss
  const st = join(dir, 'model.safetensors');
  const later = new Date(Date.now() + 5000);
  utimesSync(st, later, later);
  const d = await CausalLM.load(dir, o);
  assert.equal(d.loadInfo.graphCache, 'miss');
  for (const m of [a, b, c, d]) await m.dispose();
  // a model that cannot use GroupQueryAttention (head_dim 6): the refusal is remembered, the second load fails without
  // building; the default (buffer) graph runs it, a hit the second time
  const odd = await llama({ seed: 17, hidden: 24, intermediate: 32, layers: 1, heads: 4, kvHeads: 2, vocab: 32 });
  await assert.rejects(CausalLM.load(odd, { ...o, attention: 'gqa' }), /head_dim 6 is not a multiple of 8/);
  assert.ok(readdirSync(cacheDir).some((x) => x.endsWith('.unsupported')));
  await assert.rejects(CausalLM.load(odd, { ...o, attention: 'gqa' }), /recorded in the graph cache/);
  const e = await CausalLM.load(odd, o);
  const f = await CausalLM.load(odd, o);
  assert.equal(e.attention, 'buffer');
  assert.equal(f.attention, 'buffer');
  assert.equal(f.loadInfo.graphCache, 'hit');
  await e.dispose(); await f.dispose();
});

test('lm head default: 8-bit for GPTQ checkpoints at accuracy level 4 (logged, = an explicit lmHeadBits 8), 0 keeps the exact head; level 0 and fp checkpoints keep theirs', async () => {
  const dir = join(work.path, 'stories-q4-head');
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'quantize', STORIES, '--out', dir, '--bits', '4',
    '--group-size', '32', '--method', 'rtn', '--nsamples', '2', '--seqlen', '32'], { stdio: 'pipe' });
  const logs: string[] = [];
  const def = await CausalLM.load(dir, { graphCache: false, onLog: (s) => logs.push(s), accuracyLevel: 4 });
  assert.deepEqual(def.lmHead, { bits: 8, accuracyLevel: 4 });
  assert.ok(logs.some((s) => s.includes('lm-head') && s.includes('default for quantized checkpoints')), logs.join('\n'));
  const asked = await CausalLM.load(dir, { ...NOCACHE, accuracyLevel: 4, lmHeadBits: 8 });
  const exact = await CausalLM.load(dir, { ...NOCACHE, accuracyLevel: 4, lmHeadBits: 0 });
  assert.equal(exact.lmHead, undefined);
  const level0 = await CausalLM.load(dir, NOCACHE);
  assert.equal(level0.lmHead, undefined);
  await level0.dispose();
  const ids = [[1, 403, 407, 261, 378, 300, 346, 261]];
  const [a, b, c] = [await def.logits(ids), await asked.logits(ids), await exact.logits(ids)];
  assert.equal(maxAbsDiff(a, b), 0);
  const d = maxAbsDiff(a, c);
  assert.ok(d > 0 && d < 0.5, `8-bit head vs the checkpoint's: ${d}`);
  const fp = await CausalLM.load(STORIES, NOCACHE);
  assert.equal(fp.lmHead, undefined);
  assert.throws(() => checkLmHeadBits(16), /lmHeadBits must be 8, 4 or 0/);
  for (const m of [def, asked, exact, fp]) await m.dispose();
});

test('graph cache keeps the GPTQ load info and replays load notices on a hit', async () => {
  const cacheDir = join(work.path, 'graph-cache-q');
  const dir = join(work.path, 'stories-q8');
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'quantize', STORIES, '--out', dir, '--bits', '8',
    '--group-size', '32', '--method', 'rtn', '--nsamples', '2', '--seqlen', '32'], { stdio: 'pipe' });
  const logs1: string[] = [], logs2: string[] = [];
  const a = await CausalLM.load(dir, { graphCache: cacheDir, onLog: (s) => logs1.push(s) });
  const b = await CausalLM.load(dir, { graphCache: cacheDir, onLog: (s) => logs2.push(s) });
  assert.equal(b.loadInfo.graphCache, 'hit');
  assert.deepEqual(b.quantization, a.quantization);
  assert.ok(logs1.some((s) => s.includes('dequantized to fp32')), logs1.join('\n'));
  assert.deepEqual(logs2, logs1);
  await a.dispose(); await b.dispose();
});

test('nll(): in the main graph with LoadOptions.nll (decode unchanged), else a separate session on first use, graph-cached', async () => {
  const cacheDir = join(work.path, 'graph-cache-nll');
  const dir = await llama({ seed: 18, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 });
  const o: LoadOptions = { graphCache: cacheDir, onLog: () => {} };
  const ids = [[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 63]];
  const a = await CausalLM.load(dir, o);
  const ref = refNll(await a.logits(ids), ids, 64);
  const entries = readdirSync(cacheDir).length;
  const na = await a.nll(ids); // builds the NLL variant of the main graph: one more cache entry (.onnx + .onnx.data)
  assert.ok(maxRelDiff(na, ref) <= 1e-5, `${maxRelDiff(na, ref)}`);
  assert.equal(readdirSync(cacheDir).length, entries + 2);
  assert.deepEqual(await a.nll([[5, 6, 7]]), (await a.nll([[5, 6, 7], [1, 2, 3]])).subarray(0, 2)); // session reused
  const b = await CausalLM.load(dir, o);
  assert.equal(b.loadInfo.graphCache, 'hit');
  assert.deepEqual(await b.nll(ids), na); // from the cache entry
  assert.equal(readdirSync(cacheDir).length, entries + 2);
  // LoadOptions.nll: the same graph is the main one (a cache hit now); logits and KV decode are unchanged
  const c = await CausalLM.load(dir, { ...o, nll: true });
  assert.equal(c.loadInfo.graphCache, 'hit');
  assert.equal(c.attention, 'buffer');
  assert.deepEqual(await c.nll(ids), na);
  assert.equal(maxAbsDiff(await c.logits(ids), await a.logits(ids)), 0);
  let ra = await a.forwardStep([ids[0]!.slice(0, 5)], a.emptyCache(1)), rc = await c.forwardStep([ids[0]!.slice(0, 5)], c.emptyCache(1));
  assert.equal(maxAbsDiff(ra.logits, rc.logits), 0);
  for (const t of [9, 10, 11]) {
    ra = await a.forwardStep([[t]], ra.cache); rc = await c.forwardStep([[t]], rc.cache);
    assert.equal(maxAbsDiff(ra.logits, rc.logits), 0);
  }
  for (const m of [a, b, c]) await m.dispose();
  await assert.rejects(a.nll(ids), /disposed/); // the NLL session went with the model
  // fromWeights keeps no weights for a later graph: nll defaults to true there
  const cfg = await loadModelConfig(dir), w = await loadFloatWeights(dir);
  const e = await CausalLM.fromWeights(cfg, () => new InitializerWeights((k) => w.get(k)), {});
  assert.ok(maxRelDiff(await e.nll(ids), ref) <= 1e-5);
  const f = await CausalLM.fromWeights(cfg, () => new InitializerWeights((k) => w.get(k)), { nll: false });
  await assert.rejects(f.nll(ids), /in-memory weights with nll: false/);
  await e.dispose(); await f.dispose();
});

const cli = (args: string[], input?: string) => spawnSync(process.execPath, cliArgs(...args), { input, encoding: 'utf8', env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });

test('gptq bench: table and --json on stories260K', () => {
  const r = cli(['bench', STORIES, '--prompt-len', '16', '--gen-len', '8', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['loadSeconds', 'prefillTokensPerSecond', 'decodeTokensPerSecond', 'msPerToken', 'peakRssMB']) assert.ok(j[k] > 0, k);
  assert.equal(j.attention, 'buffer');
  const t = cli(['bench', STORIES, '--prompt-len', '8', '--gen-len', '4', '--batch', '2', '--attention', 'plain']);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /prefill tok\/s +decode tok\/s +ms\/token +peak RSS MB/);
  assert.match(t.stdout, /plain/);
});

test('bench: default lengths fit max_position_embeddings (a note); lengths asked for past it warn as generate does', async () => {
  const notes: string[] = [];
  const d = await benchModel(STORIES, { genLen: 8, graphCache: false, onNote: (m) => notes.push(m) });
  assert.equal(d.promptLen, 504); // 512 positions − 8 generated
  assert.ok(notes.includes('note: prompt length 504 (not 512): 504 + 8 generated tokens fill max_position_embeddings 512'), notes.join('\n'));
  assert.ok(!notes.some((n) => n.startsWith('warning')));
  const w: string[] = [];
  const e = await benchModel(STORIES, { promptLen: 510, genLen: 8, graphCache: false, onNote: (m) => w.push(m) });
  assert.equal(e.promptLen, 510);
  assert.equal(w.filter((n) => /^warning: prompt 510 \+ generated 8 tokens > max_position_embeddings 512 of .*config\.json; the model was not trained on positions beyond 512/.test(n)).length, 1, w.join('\n'));
});

test('gptq chat: piped stdin on stories260K (no chat template → User:/Assistant: fallback, said so), /reset, /exit', () => {
  const r = cli(['chat', STORIES, '--max-new-tokens', '12'], 'Once upon a time\n/reset\nThe cat\n/exit\nnever read\n');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /no chat template.*User:.*Assistant:/i);
  assert.match(r.stderr, /reset/i);
  const replies = r.stdout.split('\n').filter((l) => l.startsWith('assistant> '));
  assert.equal(replies.length, 2, r.stdout);
  assert.ok(replies.every((l) => l.length > 'assistant> '.length), r.stdout);
  assert.ok(!r.stdout.includes('never read'));
});

test('gptq chat: a chat template is applied (encodeChat) and eos ends the turn', () => {
  assert.ok(existsSync(STORIES));
  const dir = join(work.path, 'stories-chat');
  execFileSync('cp', ['-r', STORIES, dir]);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = JSON.parse(execFileSync('cat', [cfgPath], { encoding: 'utf8' }));
  cfg.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  execFileSync('sh', ['-c', `cat > ${cfgPath}`], { input: JSON.stringify(cfg) });
  const r = cli(['chat', dir, '--max-new-tokens', '6', '--system', 'Be brief.', '--show-prompt'], 'Hello there\n');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /system: Be brief\.\nuser: Hello there\nassistant:/);
  assert.doesNotMatch(r.stderr, /no chat template/i);
});

test('CausalLM.load drops the weights it read once the graphs are built (JS-held array buffers after load ≪ the weights)', async () => {
  const t = tmpDir();
  try {
    // fp32 weights: 4 layers × (4·256² + 3·256·512) + 2 × 4096·256 ≈ 4.7 M floats = 18.9 MB
    await makeLlamaCheckpoint(t.path, { hidden: 256, intermediate: 512, layers: 4, heads: 4, kvHeads: 2, vocab: 4096, seed: 3 });
    const { collectGarbage } = await import('../src/gc.ts');
    await collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    const lm = await CausalLM.load(t.path, { graphCache: false });
    await collectGarbage();
    const held = process.memoryUsage().arrayBuffers - before;
    try {
      assert.ok(held < 6e6, `array buffers held after load: ${(held / 1e6).toFixed(1)} MB (the weights are 18.9 MB)`);
      assert.equal((await lm.logits([[1, 2, 3]])).length, 3 * 4096, 'the model still runs');
    } finally { await lm.dispose(); }
  } finally { t.cleanup(); }
});
