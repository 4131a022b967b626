/**
 * evaluate() against lm-evaluation-harness 0.4.13 (HFLM, CPU, fp32) on stories260K and the tiny task files
 * (fixture: test/fixtures/eval/lm_eval_stories260K.json from scripts/fixtures/eval_lm_eval.py): the same requests
 * (context/continuation strings, few-shot draws included), the same token split (HFLM._encode_pair), loglikelihoods
 * within 1e-4, the same is_greedy, and identical acc/acc_norm per document and per task (with lm-eval's stderr).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';
import { loadAnyModel } from '../src/runtime/load.ts';
import { evaluate, type EvalResults } from '../src/eval/evaluate.ts';
import { encodePair } from '../src/eval/loglikelihood.ts';
import type { CausalLM } from '../src/runtime/causal-lm.ts';
import type { TextTokenizer } from '../src/io/tokenizer.ts';

const FIX = join(ROOT, 'test', 'fixtures', 'eval');
const TASKS = join(FIX, 'tasks');
interface Req { context: string; continuation: string; context_ids: number[] | null; continuation_ids: number[] | null; loglikelihood: number; is_greedy: boolean }
interface Run { task: string; num_fewshot: number; results: Record<string, number | string>; samples: { doc_id: number; requests: Req[]; acc?: number; acc_norm?: number }[] }
const ref = JSON.parse(readFileSync(join(FIX, 'lm_eval_stories260K.json'), 'utf8')) as { runs: Run[]; max_length: number };
const OURS: Record<string, string> = { tiny_arc_easy: 'arc_easy', tiny_hellaswag: 'hellaswag', tiny_piqa: 'piqa', tiny_winogrande: 'winogrande' };

let model: CausalLM, tokenizer: TextTokenizer;
const results = new Map<number, EvalResults>();
before(async () => {
  const m = await loadAnyModel(join(ROOT, 'assets', 'stories260K'), { nll: true, graphCache: false });
  model = m.model; tokenizer = m.tokenizer!;
});
after(async () => { await model?.release(); });

async function run(shots: number): Promise<EvalResults> {
  if (!results.has(shots)) {
    const tasks = Object.entries(OURS).map(([name, task]) => ({ task, name, data: join(TASKS, task) }));
    results.set(shots, await evaluate({ model, tokenizer }, tasks, { numFewshot: shots, logSamples: true, batchSize: 7 }));
  }
  return results.get(shots)!;
}

test('tokenization: our encodePair splits every 0-shot request as lm-eval HFLM._encode_pair does', () => {
  let n = 0;
  for (const r of ref.runs.filter((x) => x.num_fewshot === 0)) for (const s of r.samples) for (const q of s.requests) {
    const e = encodePair(tokenizer, q.context, q.continuation);
    assert.deepEqual(e.context, q.context_ids, `${r.task} doc ${s.doc_id} context`);
    assert.deepEqual(e.continuation, q.continuation_ids, `${r.task} doc ${s.doc_id} continuation`);
    n++;
  }
  assert.equal(n, 240);
});

for (const shots of [0, 2]) {
  test(`${shots}-shot: requests, loglikelihoods (≤1e-4), is_greedy, acc/acc_norm equal lm-eval's`, async () => {
    const ours = await run(shots);
    const rows: string[] = [];
    for (const r of ref.runs.filter((x) => x.num_fewshot === shots)) {
      const mine = ours.samples![r.task] as { doc_id: number; arguments: [string, string][]; filtered_resps: [number, boolean][]; acc: number; acc_norm?: number }[];
      assert.equal(mine.length, r.samples.length, r.task);
      let maxD = 0;
      for (const s of r.samples) {
        const m = mine[s.doc_id]!;
        assert.deepEqual(m.arguments, s.requests.map((q) => [q.context, q.continuation]), `${r.task} doc ${s.doc_id}: requests (few-shot draws) differ`);
        s.requests.forEach((q, i) => {
          const [ll, greedy] = m.filtered_resps[i]!;
          maxD = Math.max(maxD, Math.abs(ll - q.loglikelihood));
          assert.ok(Math.abs(ll - q.loglikelihood) <= 1e-4, `${r.task} doc ${s.doc_id} choice ${i}: ${ll} vs lm-eval ${q.loglikelihood}`);
          assert.equal(greedy, q.is_greedy);
        });
        assert.equal(m.acc, s.acc, `${r.task} doc ${s.doc_id} acc`);
        if (s.acc_norm !== undefined) assert.equal(m.acc_norm, s.acc_norm, `${r.task} doc ${s.doc_id} acc_norm`);
      }
      const a = ours.results[r.task]!, b = r.results;
      for (const k of ['acc,none', 'acc_norm,none', 'acc_stderr,none', 'acc_norm_stderr,none']) {
        if (b[k] === undefined) { assert.equal(a[k], undefined, `${r.task} ${k} not reported by lm-eval`); continue; }
        assert.ok(Math.abs((a[k] as number) - (b[k] as number)) < 1e-12, `${r.task} ${k}: ${a[k]} vs ${b[k]}`);
      }
      assert.deepEqual(ours['n-samples'][r.task], { original: 20, effective: 20 });
      rows.push(`${r.task.padEnd(16)} n=20  acc ${a['acc,none']} (lm-eval ${b['acc,none']})  acc_norm ${a['acc_norm,none'] ?? '-'} (lm-eval ${b['acc_norm,none'] ?? '-'})  max|Δll| ${maxD.toExponential(2)}`);
    }
    console.log(`${shots}-shot parity vs lm-eval 0.4.13:\n${rows.join('\n')}`);
  });
}

test('--limit: the first N documents (and fractions rounded up, as lm-eval)', async () => {
  const full = (await run(0)).samples!.tiny_piqa as { filtered_resps: [number, boolean][] }[];
  const r = await evaluate({ model, tokenizer }, [{ task: 'piqa', data: join(TASKS, 'piqa') }], { limit: 5, logSamples: true });
  assert.deepEqual(r['n-samples'].piqa, { original: 20, effective: 5 });
  assert.deepEqual((r.samples!.piqa as typeof full).map((x) => x.filtered_resps.map((y) => y[0])), full.slice(0, 5).map((x) => x.filtered_resps.map((y) => y[0])));
  const f = await evaluate({ model, tokenizer }, [{ task: 'piqa', data: join(TASKS, 'piqa') }], { limit: 0.21 });
  assert.deepEqual(f['n-samples'].piqa, { original: 20, effective: 5 }); // ceil(20 · 0.21)
});
