/**
 * `gptq eval MODEL --task …` and `gptq compare A B --task …`: evaluation tasks (src/eval/evaluate.ts) with a results
 * table on stdout (compare: the two models side by side), the lm-eval-shaped results JSON with --json / --output.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { MODEL_ARG, modelDir } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { evaluate, TASK_NAMES, type EvalResults, type EvaluateOptions, type TaskSpecObject } from '../eval/evaluate.ts';
import { isHubId } from '../io/hub.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { loadFlags, loadOptions } from './load-flags.ts';
import { commandHelp, didYouMean, JSON_FLAG, parseCommand, type CommandSpec, type FlagValues } from './flags.ts';
import { createOutput, type Output } from './output.ts';
import { fail } from '../errors.ts';

const T = 'tasks', A = 'AutoGPTQ tasks (language_modeling, sequence_classification, text_summarization)', O = 'output';

const EVAL_FLAGS = [
  { name: 'task', short: 't', type: 'string', multiple: true, metavar: 'TASK[=DATA[,FEWSHOT]]', group: T,
    help: `task to run (repeat for several): ${TASK_NAMES.join(', ')}. DATA: a .jsonl/.json/.csv/.parquet file, a folder of split files (test.jsonl, train.jsonl, …) or a Hub dataset id owner/name[:config] (default: the task's Hub dataset, downloaded once to the cache); FEWSHOT: where few-shot examples come from when DATA is one file` },
  { name: 'num-fewshot', type: 'int', min: 0, metavar: 'N', default: 0, group: T, help: 'few-shot examples per document (multiple-choice tasks), drawn as lm-eval draws them' },
  { name: 'limit', type: 'number', gt: 0, metavar: 'N', group: T, defaultText: 'all', help: 'documents per task: the first N, or a fraction < 1 of them (rounded up), as lm-eval' },
  { name: 'fewshot-seed', type: 'int', min: 0, max: 2 ** 32 - 1, metavar: 'S', default: 1234, group: T, help: 'seed of the few-shot draws (lm-eval\'s fewshot_random_seed)' },
  { name: 'batch-size', type: 'int', min: 1, metavar: 'N', group: T, defaultText: 'auto (≤ 8192 tokens per run)', help: 'rows per ONNX Runtime run when scoring' },
  { name: 'max-length', type: 'int', min: 2, metavar: 'N', group: T, defaultText: 'max_position_embeddings', help: 'longest scored window; longer requests lose tokens on the left (lm-eval\'s max_length)' },
  { name: 'prompt-column', type: 'string', metavar: 'NAME', default: 'prompt', group: A, help: 'column holding the prompt' },
  { name: 'label-column', type: 'string', metavar: 'NAME', default: 'label', group: A, help: 'column holding the label (continuation, class or reference summary)' },
  { name: 'classes', type: 'string', metavar: 'A,B,…', group: A, defaultText: 'the distinct labels', help: 'sequence_classification: the class texts, comma-separated' },
  { name: 'method', type: 'string', oneOf: ['loglikelihood', 'generate'], default: 'loglikelihood', group: A, help: 'sequence_classification: pick the class by loglikelihood, or by greedy generation mapped to the nearest class (AutoGPTQ\'s)' },
  { name: 'max-new-tokens', type: 'int', min: 1, metavar: 'N', default: 128, group: A, help: 'text_summarization: tokens to generate at most' },
  { name: 'output', short: 'o', type: 'string', metavar: 'FILE', group: O, help: 'write the results JSON (lm-eval\'s shape) to FILE' },
  { name: 'overwrite', type: 'boolean', group: O, help: 'replace FILE of --output when it exists' },
  { name: 'log-samples', type: 'boolean', group: O, help: 'include per-document requests, loglikelihoods and scores in the results JSON (lm-eval\'s --log_samples)' },
  JSON_FLAG,
  ...loadFlags(0),
] as const;

export const COMMAND = {
  name: 'eval',
  description: `Evaluation tasks: lm-evaluation-harness multiple choice by loglikelihood (acc, acc_norm; lm-eval 0.4.13's
prompts, few-shot draws and scoring) and AutoGPTQ's language modeling (ppl), sequence classification (acc) and text
summarization (ROUGE-1/2/L). Prints a table; --json or --output give lm-eval's results JSON.`,
  positionals: [MODEL_ARG],
  flags: EVAL_FLAGS,
  epilog: `examples:
  gptq eval --task arc_easy --task hellaswag --limit 200            Hub datasets (cached; HF_HUB_OFFLINE=1 after the first run)
  gptq eval ./model --task piqa=./piqa --num-fewshot 5              folder with validation.jsonl and train.jsonl
  gptq eval ./model --task sequence_classification=sst2.csv --prompt-column sentence --classes negative,positive`,
} as const satisfies CommandSpec;

export const COMPARE = {
  name: 'compare',
  description: `Run the same evaluation tasks on two models (e.g. fp and its GPTQ checkpoint) and print them side by side
with the difference B − A. Flags as gptq eval; the two models are loaded one after the other.`,
  positionals: [{ name: 'a', help: 'first model (directory or Hub id), e.g. the fp checkpoint', required: true }, { name: 'b', help: 'second model, e.g. the quantized one', required: true }],
  flags: EVAL_FLAGS,
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);
export const COMPARE_HELP = commandHelp(COMPARE);

type Values = FlagValues<typeof EVAL_FLAGS>;

/** `NAME[=DATA[,FEWSHOT]]` → a task spec (DATA `owner/name:config` names a Hub config). */
export function parseTaskFlag(s: string, v: Pick<Values, 'prompt-column' | 'label-column' | 'classes' | 'method' | 'max-new-tokens'>): TaskSpecObject {
  const eq = s.indexOf('=');
  const task = (eq < 0 ? s : s.slice(0, eq)).trim();
  if (!TASK_NAMES.includes(task)) {
    const d = didYouMean(task, TASK_NAMES);
    fail(`--task ${JSON.stringify(s)}: unknown task ${JSON.stringify(task)}${d ? `; did you mean ${d}?` : ''} (known: ${TASK_NAMES.join(', ')})`);
  }
  const spec: TaskSpecObject = { task };
  if (eq >= 0) {
    const [data, fewshot, ...rest] = s.slice(eq + 1).split(',');
    if (!data || rest.length) fail(`--task ${JSON.stringify(s)}: expected TASK=DATA or TASK=DATA,FEWSHOT`);
    const colon = data.lastIndexOf(':');
    if (!existsSync(data) && colon > 0 && isHubId(data.slice(0, colon))) { spec.data = data.slice(0, colon); spec.config = data.slice(colon + 1); } else spec.data = data;
    if (fewshot) spec.fewshotData = fewshot;
  }
  if (['language_modeling', 'sequence_classification', 'text_summarization'].includes(task)) {
    if (!spec.data) fail(`--task ${task}: needs data (--task ${task}=FILE)`);
    Object.assign(spec, {
      promptColumn: v['prompt-column'], labelColumn: v['label-column'], method: v.method as 'loglikelihood' | 'generate', maxNewTokens: v['max-new-tokens'],
      ...(v.classes ? { classes: v.classes.split(',').map((c) => c.trim()).filter(Boolean) } : {}),
    });
  }
  return spec;
}

/** The --task flags as specs; a task given more than once is named after its data: language_modeling(c4.jsonl). */
export function taskSpecs(v: Values): TaskSpecObject[] {
  const specs = v.task.map((t) => parseTaskFlag(t, v));
  const count = (t: unknown) => specs.filter((x) => x.task === t).length;
  for (const s of specs) if (count(s.task) > 1) s.name = `${s.task as string}(${s.data ? basename(s.data.replace(/[\\/]+$/, '')) : 'default'})`;
  return specs;
}

/** Metrics of a results entry, in display order: value and stderr. */
function metricsOf(r: Record<string, number | string>): { metric: string; value: number; stderr?: number | string }[] {
  return Object.keys(r).filter((k) => k.endsWith(',none') && !k.includes('_stderr,')).map((k) => {
    const m = k.slice(0, -',none'.length);
    return { metric: m, value: r[k] as number, stderr: r[`${m}_stderr,none`] };
  });
}

const fmt = (x: number | string | undefined) => (typeof x === 'number' ? (Math.abs(x) >= 100 ? x.toFixed(2) : x.toFixed(4)) : x ?? '');

const taskWidth = (r: EvalResults) => Math.max(24, ...Object.keys(r.results).map((t) => t.length + 2));

/** The results table of one run. */
export function resultsTable(r: EvalResults): string {
  const tw = taskWidth(r);
  const L = [`${'task'.padEnd(tw)}${'n'.padStart(6)}  ${'shots'.padStart(5)}  ${'metric'.padEnd(12)}${'value'.padStart(10)}   stderr`];
  for (const [task, res] of Object.entries(r.results)) {
    metricsOf(res).forEach((m, i) => {
      const head = i === 0 ? `${task.padEnd(tw)}${String(r['n-samples'][task]!.effective).padStart(6)}  ${String(r['n-shot'][task]).padStart(5)}  ` : ' '.repeat(tw + 6 + 2 + 5 + 2);
      L.push(`${head}${m.metric.padEnd(12)}${fmt(m.value).padStart(10)}${m.stderr !== undefined ? `   ± ${fmt(m.stderr)}` : ''}`);
    });
  }
  return L.join('\n');
}

const label = (dir: string, r: EvalResults) => {
  const q = r.config.quantization as { bits: number; groupSize: number } | null;
  return `${basename(dir.replace(/[\\/]+$/, '')) || dir} (${q ? `GPTQ ${q.bits}-bit g${q.groupSize}` : 'fp'})`;
};

/** compare: both models' metrics side by side, with B − A. */
export function compareTable(a: EvalResults, b: EvalResults, names: [string, string]): string {
  const w = Math.max(16, names[0].length + 2, names[1].length + 2), tw = taskWidth(a);
  const L = [`${'task'.padEnd(tw)}${'n'.padStart(6)}  ${'metric'.padEnd(12)}${names[0].padStart(w)}${names[1].padStart(w)}${'B − A'.padStart(11)}`];
  for (const [task, ra] of Object.entries(a.results)) {
    const rb = b.results[task] ?? {};
    metricsOf(ra).forEach((m, i) => {
      const vb = rb[`${m.metric},none`] as number | undefined;
      const head = i === 0 ? `${task.padEnd(tw)}${String(a['n-samples'][task]!.effective).padStart(6)}  ` : ' '.repeat(tw + 8);
      const cell = (v: number | undefined, s: unknown) => `${fmt(v)}${typeof s === 'number' ? ` ±${fmt(s).replace(/^0\./, '.')}` : ''}`;
      L.push(`${head}${m.metric.padEnd(12)}${cell(m.value, m.stderr).padStart(w)}${cell(vb, rb[`${m.metric}_stderr,none`]).padStart(w)}${(vb === undefined ? '' : `${vb - m.value >= 0 ? '+' : ''}${fmt(vb - m.value)}`).padStart(11)}`);
    });
  }
  return L.join('\n');
}

function evalOptions(v: Values, out: Output): EvaluateOptions {
  return {
    numFewshot: v['num-fewshot'], limit: v.limit, fewshotSeed: v['fewshot-seed'], batchSize: v['batch-size'], maxLength: v['max-length'],
    logSamples: v['log-samples'], onProgress: out.progress,
  };
}

async function evalOne(dirArg: string | undefined, v: Values, out: Output, command: string): Promise<{ dir: string; r: EvalResults }> {
  const dir = await modelDir(dirArg, { command, onProgress: out.progress });
  const { model, tokenizer } = await loadAnyModel(dir, { ...loadOptions(v, out.note), nll: true });
  try {
    if (!tokenizer) fail(`${dir} has no tokenizer.json: ${command} needs one`);
    if (v['max-length'] && model.cfg.maxPositionEmbeddings && v['max-length'] > model.cfg.maxPositionEmbeddings)
      fail(`--max-length ${v['max-length']}: longer than max_position_embeddings ${model.cfg.maxPositionEmbeddings} of ${dir}`);
    const tasks = taskSpecs(v);
    return { dir, r: await evaluate({ model, tokenizer }, tasks, evalOptions(v, out)) };
  } finally { await model.dispose(); }
}

async function writeOutput(v: Values, json: unknown): Promise<void> {
  if (!v.output) return;
  if (existsSync(v.output) && !v.overwrite) fail(`--output ${v.output} exists (add --overwrite to replace it)`);
  await writeFileAtomic(v.output, `${JSON.stringify(json, null, 2)}\n`);
}

function checkTasks(v: Values, cmd: string): void {
  if (!v.task.length) fail(`${cmd}: no --task given (tasks: ${TASK_NAMES.join(', ')})`);
  if (v.output && existsSync(v.output) && !v.overwrite) fail(`--output ${v.output} exists (add --overwrite to replace it)`);
}

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  checkTasks(v, 'eval');
  taskSpecs(v); // bad task flags fail before the model loads
  const out = createOutput({ json: v.json });
  const { dir, r } = await evalOne(p[0], v, out, 'eval');
  await writeOutput(v, r);
  out.result(r, `${label(dir, r)}  (${r.total_evaluation_time_seconds.slice(0, 5)} s)\n${resultsTable(r)}`);
}

export async function runCompare(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMPARE, argv);
  if (help) return console.log(COMPARE_HELP);
  checkTasks(v, 'compare');
  taskSpecs(v);
  const out = createOutput({ json: v.json });
  const a = await evalOne(p[0], v, out, 'compare');
  const b = await evalOne(p[1], v, out, 'compare');
  const json = { a: { model: a.dir, ...a.r }, b: { model: b.dir, ...b.r } };
  await writeOutput(v, json);
  out.result(json, compareTable(a.r, b.r, [`A: ${label(a.dir, a.r)}`, `B: ${label(b.dir, b.r)}`]));
}
