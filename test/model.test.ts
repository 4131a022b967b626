import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { refConfigFromJson, refForward } from './reference/llama-ref.ts';
import { ROOT, maxRelDiff, pplOf, refNll } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');

function maxDiff(lg: Float32Array, ref: Float64Array[], V: number, offset = 0): number {
  let md = 0;
  ref.forEach((row, s) => { for (let v = 0; v < V; v++) md = Math.max(md, Math.abs(lg[(offset + s) * V + v]! - row[v]!)); });
  return md;
}

async function parity(dir: string, prompts: number[][]): Promise<{ full: number; step: number }> {
  const m = await CausalLM.load(dir);
  const w = await loadFloatWeights(dir);
  const rc = refConfigFromJson(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const V = m.cfg.vocabSize;
  let full = 0, step = 0;
  for (const ids of prompts) {
    const ref = refForward(rc, (n) => w.get(n), ids);
    full = Math.max(full, maxDiff(await m.logits([ids]), ref, V));
    // KV cache: prefill half the prompt, then one token at a time; each step must match the full forward.
    const h = Math.ceil(ids.length / 2);
    let r = await m.forwardStep([ids.slice(0, h)], m.emptyCache(1));
    step = Math.max(step, maxDiff(r.logits, [ref[h - 1]!], V));
    for (let s = h; s < ids.length; s++) {
      r = await m.forwardStep([[ids[s]!]], r.cache);
      step = Math.max(step, maxDiff(r.logits, [ref[s]!], V));
    }
  }
  await m.dispose();
  return { full, step };
}

test('stories260K: ORT logits match the float64 reference (≤1e-4), KV decode matches at every step', async () => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const prompts = ['Once upon a time, there was', 'The cat sat on the mat and looked at the big red ball.', 'Lily'].map((s) => tok.encode(s));
  const { full, step } = await parity(STORIES, prompts);
  assert.ok(full <= 1e-4, `full forward max |Δlogit| ${full}`);
  assert.ok(step <= 1e-4, `kv-cache step max |Δlogit| ${step}`);
});

test('stories260K: greedy from <s> reproduces the llama2.c story', async () => {
  const m = await CausalLM.load(STORIES);
  const tok = await TextTokenizer.fromDir(STORIES);
  const streamed: number[] = [];
  const r = await generate(m, [[1]], { maxNewTokens: 16, eosTokenIds: [2], onToken: (_, t) => streamed.push(t) });
  const text = tok.decode(r.tokens[0]!);
  assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily.'), text);
  assert.deepEqual(streamed, r.tokens[0]);
  await m.dispose();
});

test('stories260K: in-graph NLL (labels → nll) = float64 log-softmax of model.logits() (≤1e-5 rel); buffer/gqa/plain × main graph/separate session; perplexity() uses it', async (t) => {
  const tok = await TextTokenizer.fromDir(STORIES);
  const text = readFileSync(join(ROOT, 'assets', 'c4_demo.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 4).map((l) => JSON.parse(l).text as string).join('\n');
  const tokens = tok.encode(text), S = 128;
  assert.ok(tokens.length >= 3 * S, `${tokens.length} tokens`);
  const rows = [0, 1, 2].map((b) => tokens.slice(b * S, (b + 1) * S));
  for (const attention of ['buffer', 'gqa', 'plain'] as const) for (const nll of [true, false]) {
    const what = `${attention}, ${nll ? 'nll in the main graph' : 'separate nll session'}`;
    const m = await CausalLM.load(STORIES, { attention, nll });
    assert.equal(m.attention, attention);
    const V = m.cfg.vocabSize;
    const ref = refNll(await m.logits(rows), rows, V);
    const got = await m.nll(rows);
    assert.equal(got.length, 3 * (S - 1));
    const d = maxRelDiff(got, ref);
    // perplexity(): 3 windows in batches of 2 (a partial last batch) = exp(mean of the reference window means)
    const r = await perplexity(m, tokens.slice(0, 3 * S + 5), { seqlen: S, batch: 2 });
    const want = pplOf(ref, 3);
    t.diagnostic(`${what}: max rel Δnll ${d.toExponential(2)}, ppl ${r.ppl} vs reference ${want}`);
    assert.ok(d <= 1e-5, `${what}: max |Δnll|/max(|nll|,1) ${d}`);
    assert.equal(r.windows, 3);
    assert.ok(Math.abs(r.ppl - want) / want <= 1e-6, `${what}: ppl ${r.ppl} vs reference ${want}`);
    await assert.rejects(m.nll([[1, V]]), /outside the vocabulary/);
    await assert.rejects(m.nll([[1]]), /at least 2 tokens/);
    await m.dispose();
  }
});

test('batched generation with left padding equals one-by-one generation', async () => {
  const m = await CausalLM.load(STORIES);
  const tok = await TextTokenizer.fromDir(STORIES);
  const prompts = [tok.encode('Tom had a red ball'), tok.encode('One day')];
  const batched = await generate(m, prompts, { maxNewTokens: 12 });
  for (let i = 0; i < prompts.length; i++) {
    const single = await generate(m, [prompts[i]!], { maxNewTokens: 12 });
    assert.deepEqual(batched.tokens[i], single.tokens[0]);
  }
  await m.dispose();
});

