/**
 * KV slots for continuous batching (src/runtime/slots.ts, graph kvMode 'slots'): chunked prefill, batched decode over
 * rows of different lengths, requests joining and leaving (rows moved and swapped), checked at every step against
 * the plain Concat graph run on each request's whole sequence alone (an independent path: full-sequence graph,
 * causal mask from the key index). Also: row independence (a row's logits are bit-identical alone and batched), the
 * forwardStep/generate path of a 'slots' model, and the existing graphs' bytes unchanged by the new option.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CausalLM, loadFloatWeights, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { SlotCache, type Slot } from '../src/runtime/slots.ts';
import { generate } from '../src/runtime/generate.ts';
import { buildCausalLM } from '../src/graph/model-graph.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import { archFor } from '../src/models/registry.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { makeBloomCheckpoint } from './archs/bloom.synth.ts';
import { ROOT, maxAbsDiff, quantizeStories, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-slots-');
after(() => work.cleanup());
const NOCACHE: LoadOptions = { graphCache: false, onLog: () => {} };

/**
 * Drive a SlotCache through joins, chunked prefills, batched steps, leaves (moves) and a swap without a free row;
 * after every run compare each request's logits with the plain graph on its whole sequence. Returns the largest
 * difference.
 */
async function slotScenario(dir: string): Promise<number> {
  const m = await CausalLM.load(dir, { ...NOCACHE, attention: 'slots' });
  const ref = await CausalLM.load(dir, { ...NOCACHE, attention: 'plain' });
  assert.equal(m.attention, 'slots');
  const V = m.cfg.vocabSize;
  const cache = new SlotCache(m, 3, 40, { widthStep: 4 }); // the row width follows the longest slot in steps of 4: the cache moves often
  const seqs = new Map<Slot, number[]>();
  let worst = 0;
  const check = async (slot: Slot, logits: Float32Array) => {
    const seq = seqs.get(slot)!;
    assert.equal(slot.length, seq.length);
    const full = await ref.logits([seq]);
    worst = Math.max(worst, maxAbsDiff(logits, full.subarray((seq.length - 1) * V, seq.length * V)));
  };
  const tok = (k: number) => (k * 37 + 11) % V;
  let k = 0;
  const extend = async (slot: Slot, n: number) => {
    const ids = Array.from({ length: n }, () => tok(k++));
    seqs.get(slot)!.push(...ids);
    await check(slot, await cache.extend(slot, ids));
  };
  const step = async (slots: Slot[]) => {
    const ids = slots.map(() => tok(k++));
    slots.forEach((s, i) => seqs.get(s)!.push(ids[i]!));
    const logits = await cache.step(slots, ids);
    for (const [i, s] of slots.entries()) await check(s, logits.subarray(i * V, (i + 1) * V));
  };
  const join_ = () => { const s = cache.acquire()!; seqs.set(s, []); return s; };

  const a = join_();
  await extend(a, 3); await extend(a, 6); // chunked prefill
  const b = join_();
  await extend(b, 2);
  for (let i = 0; i < 3; i++) await step([a, b]);
  const c = join_();
  await extend(c, 4);
  await step([b, a]); // order differs from the rows
  await extend(c, 5); // prefill continues between decode steps
  for (let i = 0; i < 2; i++) await step([a, b, c]);
  assert.equal(cache.acquire(), undefined, 'all 3 slots taken');
  cache.release(a); // row 0 frees: c moves down at the next step
  await assert.rejects(cache.step([a], [1]), /released/);
  await step([c, b]);
  const d = join_(); // takes the free row 2
  await extend(d, 7);
  await step([d, b]); // d is in row 2, row 0 holds c (not stepping), no free row: d and c swap
  for (let i = 0; i < 3; i++) await step([b, c, d]);
  await step([c]);
  // a long slot widens the layout (moving the short one in row 1), leaves, and the layout shrinks (moving it back)
  for (const s of [b, c, d]) cache.release(s);
  const x = join_(), y = join_();
  await extend(y, 3);
  await extend(x, 30);
  await step([x, y]);
  assert.equal(cache.width, 32);
  cache.release(x);
  await step([y]);
  assert.equal(cache.width, 8);
  await step([y]);
  assert.ok(cache.bytes === 2 * m.cfg.numLayers * 3 * m.cfg.numKvHeads * 40 * m.cfg.headDim * 4);
  await assert.rejects(cache.extend(y, new Array(40).fill(1)), /exceed the slot capacity 40/);
  await m.dispose(); await ref.dispose();
  return worst;
}

let n = 0;
async function llama(o: Parameters<typeof makeLlamaCheckpoint>[1]): Promise<string> {
  const dir = join(work.path, `m${n++}`);
  await makeLlamaCheckpoint(dir, o);
  return dir;
}

test('KV slots = plain graph per request: llama (grouped kv heads), chunked prefill, joins, leaves, moves, swap', async () => {
  const worst = await slotScenario(await llama({ seed: 21, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 64 }));
  assert.ok(worst <= 1e-4, `max |Δlogit| ${worst}`);
});

test('KV slots = plain graph per request: mistral with sliding window 5 (positions, not buffer indices, set the window)', async () => {
  const worst = await slotScenario(await llama({ modelType: 'mistral', seed: 22, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 1, vocab: 64, slidingWindow: 5 }));
  assert.ok(worst <= 1e-4, `max |Δlogit| ${worst}`);
});

test('KV slots = plain graph per request: bloom (ALiBi positions with holes in the mask)', async () => {
  const dir = join(work.path, 'bloom');
  await makeBloomCheckpoint(dir, { hidden: 64, layers: 2, heads: 4, vocab: 64, seed: 23 });
  const worst = await slotScenario(dir);
  assert.ok(worst <= 1e-4, `max |Δlogit| ${worst}`);
});

test('KV slots: a row\'s logits are bit-identical alone and in a batch of 4 (fp32 stories260K)', async () => {
  const m = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'slots' });
  const V = m.cfg.vocabSize;
  // other rows shorter and much longer than row 0, lengths crossing SIMD-width multiples
  const prompts = [[1, 403, 411, 263, 291], [1, 90, 7], Array.from({ length: 30 }, (_, i) => (i * 17 + 5) % 500), [1, 22]];
  const alone = new SlotCache(m, 4, 64, { widthStep: 8 }), batched = new SlotCache(m, 4, 64, { widthStep: 8 }); // widths differ: 8…32 vs 32…56
  const sa = alone.acquire()!;
  await alone.extend(sa, prompts[0]!);
  const sb = prompts.map(() => batched.acquire()!);
  for (const [i, s] of sb.entries()) await batched.extend(s, prompts[i]!);
  for (let t = 0; t < 20; t++) {
    const la = await alone.step([sa], [100 + t]);
    const lb = await batched.step(sb, sb.map((_, i) => 100 + t + 3 * i * (i > 0 ? 1 : 0)));
    assert.deepEqual(Array.from(la), Array.from(lb.subarray(0, V)), `step ${t}`);
  }
  await m.dispose();
});

test('attention "slots": forwardStep / generate / logits match the plain graphs (stories260K, left-padded batch)', async () => {
  const slots = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'slots' });
  const plain = await CausalLM.load(STORIES, { ...NOCACHE, attention: 'plain' });
  const prompts = [[1, 403, 411, 263], [1, 90], [1, 365, 254, 322, 437, 300]];
  const a = await generate(slots, prompts, { maxNewTokens: 30 });
  const b = await generate(plain, prompts, { maxNewTokens: 30 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.ok(maxAbsDiff(await slots.logits([prompts[2]!]), await plain.logits([prompts[2]!])) <= 1e-5);
  assert.throws(() => new SlotCache(plain, 2, 8), /attention "slots"/);
  await slots.dispose(); await plain.dispose();
});

test('the kvMode "slots" option leaves the existing graphs byte-identical (their cache keys hash their options)', async () => {
  // sha256 of the stories260K graphs of each existing option set, as built before kvMode 'slots' existed
  const cfg = await loadModelConfig(STORIES);
  const fp = await loadFloatWeights(STORIES);
  const hash = (o: object) => createHash('sha256').update(buildCausalLM(archFor(cfg.modelType), cfg, new InitializerWeights((k) => fp.get(k)), o as never).toBytes()).digest('hex').slice(0, 16);
  assert.equal(hash({ kvCache: true, kvMode: 'gqa', logitsToKeepInput: true, fusedOps: true }), '18f71cf8d9ae7760');
  assert.equal(hash({ kvCache: false, fusedOps: true }), '2d17ee21f55ac3c5');
  assert.equal(hash({ kvCache: true, lastLogitsOnly: true, fusedOps: true }), 'b29117a3e824ccc0');
  assert.equal(hash({ kvCache: false, fusedOps: true, nllOutput: true }), '3223e7309cc592a7');
});

test('KV slots on 4-bit GPTQ (MatMulNBits, accuracy level 0 and 4): a 1-row step differs from a batched one (level 0), minRows 2 makes every step bit-identical', async () => {
  const dir = await quantizeStories(STORIES, join(work.path, 'stories-q4'), { nsamples: 8, seqlen: 64 });
  const prompts = [[1, 403, 411, 263, 291], [1, 90, 7], Array.from({ length: 30 }, (_, i) => (i * 17 + 5) % 500), [1, 22]];
  for (const accuracyLevel of [0, 4] as const) {
    const m = await CausalLM.load(dir, { ...NOCACHE, attention: 'slots', accuracyLevel });
    assert.ok(m.quantization);
    const V = m.cfg.vocabSize;
    /** largest |Δ| between row 0 stepped alone and stepped with 3 others, over 6 steps */
    const diff = async (minRows: number) => {
      const alone = new SlotCache(m, 4, 64, { minRows, widthStep: 8 }), batched = new SlotCache(m, 4, 64, { minRows, widthStep: 8 });
      const sa = alone.acquire()!;
      await alone.extend(sa, prompts[0]!);
      const sb = prompts.map(() => batched.acquire()!);
      for (const [i, s] of sb.entries()) await batched.extend(s, prompts[i]!);
      let worst = 0;
      for (let t = 0; t < 6; t++) {
        const la = await alone.step([sa], [100 + t]);
        const lb = await batched.step(sb, sb.map((_, i) => 100 + t + i));
        for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(la[v]! - lb[v]!));
      }
      return worst;
    };
    // level 0: MatMulNBits has a separate single-row kernel (here |Δ| ~1e-6; the 1B-shape bench model: 1e-5 at level 0,
    // 4e-2 at level 4 — measured in the notes of issue 13); at this model's small shapes level 4 happens to agree
    if (accuracyLevel === 0) assert.ok(await diff(1) > 0, 'one row and four rows gave identical logits (no separate single-row kernel any more?)');
    assert.equal(await diff(2), 0, `accuracy ${accuracyLevel}`);
    await m.dispose();
  }
});
