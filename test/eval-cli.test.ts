/** `gptq eval` / `gptq compare`: results JSON (lm-eval's shape), tables, --output safety, flag errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tmpDir } from './helpers.ts';
import { compareTable, parseTaskFlag, resultsTable, taskSpecs } from '../src/cli/eval.ts';
import type { EvalResults } from '../src/eval/evaluate.ts';

const CLI = join(ROOT, 'bin', 'gptq.js');
const STORIES = join(ROOT, 'assets', 'stories260K');
const TASKS = join(ROOT, 'test', 'fixtures', 'eval', 'tasks');
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });
const FLAGS = { 'prompt-column': 'prompt', 'label-column': 'label', classes: undefined, method: 'loglikelihood', 'max-new-tokens': 128 };

test('gptq eval --json: lm-eval-shaped results equal to the parity run; --output writes them and refuses to overwrite', () => {
  const t = tmpDir();
  try {
    const out = join(t.path, 'r.json');
    const r = cli(['eval', STORIES, '--task', `piqa=${join(TASKS, 'piqa')}`, '--task', `winogrande=${join(TASKS, 'winogrande')}`, '--limit', '20', '--json', '--output', out]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as EvalResults;
    assert.deepEqual(Object.keys(j.results), ['piqa', 'winogrande']);
    // the values lm-eval 0.4.13 reports for the same files (test/fixtures/eval/lm_eval_stories260K.json, 0-shot)
    assert.equal(j.results.piqa!['acc,none'], 0.75);
    assert.equal(j.results.piqa!['acc_norm,none'], 0.85);
    assert.equal(j.results.winogrande!['acc,none'], 0.5);
    assert.ok(Math.abs((j.results.winogrande!['acc_stderr,none'] as number) - 0.11470786693528086) < 1e-12);
    for (const k of ['results', 'group_subtasks', 'configs', 'versions', 'n-shot', 'higher_is_better', 'n-samples', 'config']) assert.ok(k in j, k);
    assert.deepEqual(j['n-samples'].piqa, { original: 20, effective: 20 });
    assert.equal(j.samples, undefined);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')).results, j.results);
    assert.ok(r.stderr.split('\n').some((l) => l.startsWith('{"event":"progress","task":"eval"')), 'progress as JSON lines');
    const again = cli(['eval', STORIES, '--task', `piqa=${join(TASKS, 'piqa')}`, '--output', out]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /--output .*r\.json exists \(add --overwrite to replace it\)/);
  } finally { t.cleanup(); }
});

test('gptq compare A B: side-by-side table with B − A (same model: zero difference)', () => {
  const r = cli(['compare', STORIES, STORIES, '--task', `hellaswag=${join(TASKS, 'hellaswag')}`, '--limit', '6']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /task\s+n\s+metric\s+A: stories260K \(fp\)\s+B: stories260K \(fp\)\s+B − A/);
  assert.match(lines[1]!, /^hellaswag\s+6\s+acc\s+\S+ ±\S+\s+\S+ ±\S+\s+\+0\.0000$/);
  assert.match(lines[2]!, /^\s+acc_norm\s/);
});

test('flag errors: unknown task (did the user mean…), missing --task, AutoGPTQ task without data, Hub config syntax', () => {
  let r = cli(['eval', STORIES, '--task', 'arc_eazy']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--task "arc_eazy": unknown task "arc_eazy"; did you mean arc_easy\? \(known: arc_easy, arc_challenge/);
  r = cli(['eval', STORIES]);
  assert.match(r.stderr, /eval: no --task given/);
  r = cli(['eval', STORIES, '--task', 'text_summarization']);
  assert.match(r.stderr, /--task text_summarization: needs data/);
  assert.deepEqual(parseTaskFlag('arc_easy=allenai/ai2_arc:ARC-Challenge', FLAGS), { task: 'arc_easy', data: 'allenai/ai2_arc', config: 'ARC-Challenge' });
  assert.deepEqual(taskSpecs({ ...FLAGS, task: ['language_modeling=a/c4.jsonl', 'language_modeling=b/stories.jsonl', 'piqa'] } as any).map((x) => x.name),
    ['language_modeling(c4.jsonl)', 'language_modeling(stories.jsonl)', undefined]);
  assert.deepEqual(parseTaskFlag(`piqa=a.jsonl,b.jsonl`, FLAGS), { task: 'piqa', data: 'a.jsonl', fewshotData: 'b.jsonl' });
  assert.deepEqual(parseTaskFlag('sequence_classification=x.csv', { ...FLAGS, classes: 'neg, pos', method: 'generate' }),
    { task: 'sequence_classification', data: 'x.csv', promptColumn: 'prompt', labelColumn: 'label', method: 'generate', maxNewTokens: 128, classes: ['neg', 'pos'] });
});

test('tables: one row per metric with stderr; compare labels quantized models by bits and group size', () => {
  const r = (acc: number, q: { bits: number; groupSize: number } | null): EvalResults => ({
    results: { piqa: { alias: 'piqa', 'acc,none': acc, 'acc_stderr,none': 0.1, 'acc_norm,none': 0.5, 'acc_norm_stderr,none': 'N/A' } },
    group_subtasks: {}, configs: {}, versions: {}, 'n-shot': { piqa: 0 }, higher_is_better: {}, 'n-samples': { piqa: { original: 9, effective: 9 } },
    config: { quantization: q }, total_evaluation_time_seconds: '1',
  });
  assert.deepEqual(resultsTable(r(0.75, null)).split('\n').map((l) => l.trimEnd()), [
    'task                         n  shots  metric           value   stderr',
    'piqa                         9      0  acc             0.7500   ± 0.1000',
    '                                       acc_norm        0.5000   ± N/A',
  ]);
  const c = compareTable(r(0.75, null), r(0.5, { bits: 4, groupSize: 32 }), ['A: fp', 'B: q']).split('\n');
  assert.match(c[1]!, /piqa\s+9\s+acc\s+0\.7500 ±\.1000\s+0\.5000 ±\.1000\s+-0\.2500/);
});
