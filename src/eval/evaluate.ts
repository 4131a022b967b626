/**
 * `evaluate(model, tasks, opts)`: lm-evaluation-harness-style multiple-choice tasks (src/eval/multiple-choice.ts) and
 * AutoGPTQ's language-modeling / sequence-classification / text-summarization tasks (src/eval/autogptq-tasks.ts) on a
 * loaded model, with results shaped like lm-eval's results JSON (lm_eval/evaluator.py simple_evaluate):
 *   { results: { task: { alias, "acc,none", "acc_stderr,none", "acc_norm,none", … } }, group_subtasks, configs,
 *     versions, "n-shot", higher_is_better, "n-samples": { task: { original, effective } }, config, samples? }
 * Datasets: a task's default Hub dataset (downloaded once into the cache, then offline), or `data`: a JSON/JSONL/CSV/
 * Parquet file, a folder of split files, or another Hub dataset id (src/io/tables.ts).
 */
import { promises as fs } from '../platform/fs.ts';
import { fail } from '../errors.ts';
import type { HubOptions } from '../io/hub.ts';
import { loadSplit, type Row } from '../io/tables.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import type { CausalLM, LoadOptions } from '../runtime/causal-lm.ts';
import { loadAnyModel } from '../runtime/load.ts';
import type { ProgressCallback } from '../progress.ts';
import { VERSION } from '../version.ts';
import { loglikelihood, type LoglikelihoodResult } from './loglikelihood.ts';
import { buildRequests, FewshotSampler, meanStderr, MULTIPLE_CHOICE_TASKS, scoreDoc, type MultipleChoiceTask } from './multiple-choice.ts';
import { AUTOGPTQ_TASKS, runAutoGptqTask, type AutoGptqTaskKind, type AutoGptqTaskOptions } from './autogptq-tasks.ts';

/** One task to run: a name (built-in task with its default data) or an object. */
export type TaskSpec = string | TaskSpecObject;
export interface TaskSpecObject {
  /**
   * arc_easy, arc_challenge, hellaswag, piqa, winogrande (lm-eval's definitions), language_modeling,
   * sequence_classification, text_summarization (AutoGPTQ's; need `data`), or a custom MultipleChoiceTask.
   */
  task: string | MultipleChoiceTask;
  /** Results key; default the task name. */
  name?: string;
  /** Data: a table file, a folder of split files or a Hub dataset id (default: the task's Hub dataset). */
  data?: string;
  /** Hub config (subset) of `data`, e.g. "ARC-Easy" (default: the task's, when data is its default dataset). */
  config?: string;
  /** Where few-shot examples come from when `data` is a single file (a file, folder or Hub id; its train split). */
  fewshotData?: string;
  /** AutoGPTQ tasks: columns (default "prompt", "label"), classes, method, maxNewTokens, targetDelimiter. */
  promptColumn?: string;
  labelColumn?: string;
  classes?: string[];
  method?: 'loglikelihood' | 'generate';
  maxNewTokens?: number;
}

export interface EvaluateOptions {
  /** Few-shot examples per document (multiple-choice tasks); default 0. */
  numFewshot?: number;
  /** Documents per task: an integer N (first N), or a fraction in (0, 1) of the documents (rounded up), as lm-eval. */
  limit?: number;
  /** Seed of the few-shot draws (lm-eval's fewshot_random_seed); default 1234. */
  fewshotSeed?: number;
  /** Rows per ONNX Runtime run when scoring (default from a token budget). */
  batchSize?: number;
  /** Longest scored window (lm-eval's max_length); default max_position_embeddings, else 2048. */
  maxLength?: number;
  /** Return per-document details under `samples` (lm-eval's --log_samples). */
  logSamples?: boolean;
  /** Progress: task 'eval' events (and 'download' while a Hub dataset downloads). */
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Hub access for dataset downloads (cache dir, offline, token, fetch). */
  hub?: HubOptions;
  /** Loading options when `model` is a directory (nll is always on). */
  load?: LoadOptions;
}

/** lm-eval-shaped results; metric keys are "<metric>,none" (lm-eval's metric,filter). */
export interface EvalResults {
  results: Record<string, Record<string, number | string>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number>;
  'n-shot': Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  'n-samples': Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  samples?: Record<string, unknown[]>;
  /** Wall time of the whole evaluation, seconds. */
  total_evaluation_time_seconds: string;
}

/** The task names evaluate() knows. */
export const TASK_NAMES = [...Object.keys(MULTIPLE_CHOICE_TASKS), ...AUTOGPTQ_TASKS];

const limitOf = (n: number, limit?: number) => {
  if (limit === undefined) return n;
  if (!(limit > 0)) fail(`limit must be > 0, got ${limit}`);
  return limit < 1 ? Math.ceil(n * limit) : Math.min(n, Math.floor(limit));
};

/** A model already loaded, with its tokenizer (CausalLM.load gives both). */
export interface EvalModel { model: CausalLM; tokenizer: TextTokenizer }

/**
 * Evaluate `model` on `tasks`. `model`: a model directory (loaded here with the NLL output, released at the end), or
 * { model, tokenizer } already loaded (load with LoadOptions.nll so that scoring runs on the main session).
 * Metrics (per task, keys "<metric>,none" and "<metric>_stderr,none"):
 *   - multiple choice (lm-eval 0.4.13, lm_eval/api/task.py process_results): acc = fraction of documents whose gold
 *     choice has the highest loglikelihood (natural log, summed over its tokens); acc_norm = the same with each
 *     loglikelihood divided by the choice's length in Unicode code points; stderr = sample std / √n.
 *   - language_modeling: ppl = exp(mean over samples of the mean label-token NLL), loss = that mean (nats/token).
 *   - sequence_classification: acc (+ stderr). text_summarization: rouge-{1,2,l}_{f,p,r} (rouge_score definitions).
 * `samples` (logSamples): per document the requests [context, continuation], filtered_resps [loglikelihood,
 * is_greedy] per request and the document's scores, as lm-eval's --log_samples.
 * Throws GptqError naming the task / split / file / field for unknown tasks, missing data or bad documents.
 */
export async function evaluate(model: string | EvalModel, tasks: readonly TaskSpec[], o: EvaluateOptions = {}): Promise<EvalResults> {
  if (!tasks.length) fail('evaluate: no tasks');
  const numFewshot = o.numFewshot ?? 0, seed = o.fewshotSeed ?? 1234;
  if (!(Number.isInteger(numFewshot) && numFewshot >= 0)) fail(`numFewshot must be an integer ≥ 0, got ${numFewshot}`);
  let loaded: EvalModel, own = false;
  if (typeof model === 'string') {
    const m = await loadAnyModel(model, { ...o.load, nll: true });
    if (!m.tokenizer) { await m.model.dispose(); fail(`${model} has no tokenizer.json: evaluation needs one`); }
    loaded = { model: m.model, tokenizer: m.tokenizer };
    own = true;
  } else loaded = model;
  const t0 = performance.now();
  const out: EvalResults = {
    results: {}, group_subtasks: {}, configs: {}, versions: {}, 'n-shot': {}, higher_is_better: {}, 'n-samples': {},
    config: {
      model: 'gptqjs', model_args: typeof model === 'string' ? model : loaded.model.cfg.path,
      batch_size: o.batchSize ?? 'auto', limit: o.limit ?? null, fewshot_seed: seed, max_length: o.maxLength ?? (loaded.model.cfg.maxPositionEmbeddings || 2048),
      // GPTQ/AWQ: bits + group size; bitsandbytes/AQLM (no GPTQ settings): the stored bits per weight, no group size
      quantization: loaded.model.quantization ? {
        method: loaded.model.quantization.method,
        bits: loaded.model.quantization.quantizeConfig?.bits ?? loaded.model.quantization.modules[0]?.bits ?? null,
        groupSize: loaded.model.quantization.quantizeConfig?.groupSize ?? null,
      } : null,
      gptqjs_version: VERSION,
    },
    total_evaluation_time_seconds: '0',
  };
  if (o.logSamples) out.samples = {};
  try {
    for (const spec of tasks) {
      const s: TaskSpecObject = typeof spec === 'string' ? { task: spec } : spec;
      const def = typeof s.task === 'string' ? MULTIPLE_CHOICE_TASKS[s.task] : s.task;
      const name = s.name ?? (typeof s.task === 'string' ? s.task : s.task.task);
      if (out.results[name]) fail(`evaluate: task ${name} given twice (give one of them a different name)`);
      if (def) await runMultipleChoice(def, name, s, loaded, o, numFewshot, seed, out);
      else if (AUTOGPTQ_TASKS.includes(s.task as AutoGptqTaskKind)) await runAutoGptq(s.task as AutoGptqTaskKind, name, s, loaded, o, out);
      else fail(`evaluate: unknown task ${JSON.stringify(s.task)} (known: ${TASK_NAMES.join(', ')})`);
    }
  } finally {
    if (own) await loaded.model.dispose();
  }
  out.total_evaluation_time_seconds = String((performance.now() - t0) / 1000);
  return out;
}

/** Eval docs and few-shot docs of a multiple-choice task (lm-eval: eval = test split, else validation). */
async function taskDocs(t: MultipleChoiceTask, s: TaskSpecObject, o: EvaluateOptions, numFewshot: number) {
  const data = s.data ?? t.datasetPath;
  if (!data) fail(`${t.task}: no data (give a file, folder or Hub dataset id)`);
  const config = s.config ?? (s.data === undefined ? t.datasetName : undefined);
  const evalSplits = [t.testSplit, t.validationSplit].filter((x): x is string => !!x);
  const hub = { ...o.hub, onProgress: o.onProgress, config };
  const ev = await loadSplit(data, evalSplits.length ? evalSplits : ['test'], hub);
  let fewshot: Row[] = [];
  if (numFewshot > 0) {
    const fsSplits = [t.fewshotSplit, t.trainingSplit, t.validationSplit, t.testSplit].filter((x): x is string => !!x).slice(0, t.fewshotSplit ? 1 : undefined);
    const src = s.fewshotData ?? data;
    if (!s.fewshotData && (await fs.stat(data).catch(() => null))?.isFile())
      fail(`${t.task}: --num-fewshot ${numFewshot} needs few-shot examples: ${data} is a single file (give a folder with a train split, or a few-shot file)`);
    fewshot = (await loadSplit(src, fsSplits, { ...hub, config: s.fewshotData ? undefined : config })).rows;
    if (t.processDoc) fewshot = fewshot.map(t.processDoc);
  }
  let docs = ev.rows;
  if (t.processDoc) docs = docs.map(t.processDoc);
  return { docs, fewshot, split: ev.split, files: ev.files };
}

async function runMultipleChoice(t: MultipleChoiceTask, name: string, s: TaskSpecObject, m: EvalModel, o: EvaluateOptions, numFewshot: number, seed: number, out: EvalResults): Promise<void> {
  const { docs: all, fewshot, split, files } = await taskDocs(t, s, o, numFewshot);
  if (!all.length) fail(`${name}: the ${split} split has no documents`);
  const n = limitOf(all.length, o.limit);
  const sampler = new FewshotSampler(fewshot, seed);
  const excludeEval = t.fewshotSplit === t.testSplit; // lm-eval: fewshot_cfg.split == config.test_split
  const docs = all.slice(0, n).map((doc, i) => {
    try { return buildRequests(t, doc, i, numFewshot ? sampler.sample(numFewshot, excludeEval ? doc : undefined) : []); } catch (e) {
      if ((e as Error).name === 'GptqError') fail(`${name}: ${split} document ${i} (${files.join(', ')}): ${(e as Error).message}`);
      throw e;
    }
  });
  const flat = docs.flatMap((d) => d.requests);
  const res = await loglikelihood(m.model, m.tokenizer, flat, { batchSize: o.batchSize, maxLength: o.maxLength, onProgress: o.onProgress, taskName: name, signal: o.signal });
  let k = 0;
  const per = docs.map((d) => {
    const r = res.slice(k, k + d.requests.length);
    k += d.requests.length;
    return { d, r, score: scoreDoc(d, r) };
  });
  const metrics: Record<string, number | string> = { alias: name };
  for (const metric of t.metrics) {
    const { mean, stderr } = meanStderr(per.map((p) => p.score[metric]));
    metrics[`${metric},none`] = mean;
    metrics[`${metric}_stderr,none`] = Number.isNaN(stderr) ? 'N/A' : stderr;
  }
  out.results[name] = metrics;
  out.group_subtasks[name] = [];
  out.configs[name] = {
    task: name, dataset_path: s.data ?? t.datasetPath, dataset_name: s.config ?? (s.data === undefined ? t.datasetName : undefined) ?? null,
    training_split: t.trainingSplit ?? null, validation_split: t.validationSplit ?? null, test_split: t.testSplit ?? null, eval_split: split,
    description: t.description ?? '', target_delimiter: t.targetDelimiter ?? ' ', fewshot_delimiter: t.fewshotDelimiter ?? '\n\n',
    num_fewshot: numFewshot, output_type: 'multiple_choice', metric_list: t.metrics.map((x) => ({ metric: x, aggregation: 'mean', higher_is_better: true })),
    metadata: { version: t.version },
  };
  out.versions[name] = t.version;
  out['n-shot'][name] = numFewshot;
  out.higher_is_better[name] = Object.fromEntries(t.metrics.map((x) => [x, true]));
  out['n-samples'][name] = { original: all.length, effective: n };
  if (out.samples) out.samples[name] = per.map(({ d, r, score }) => sampleLog(d.docId, d.doc, d.gold, d.requests, r, score, t.metrics));
}

function sampleLog(docId: number, doc: Row, target: number, reqs: { context: string; continuation: string }[], r: LoglikelihoodResult[], score: Record<string, number>, metrics: readonly string[]) {
  return {
    doc_id: docId, doc, target, arguments: reqs.map((q) => [q.context, q.continuation]),
    filtered_resps: r.map((x) => [x.loglikelihood, x.isGreedy]), ...Object.fromEntries(metrics.map((mm) => [mm, score[mm]])),
  };
}

async function runAutoGptq(kind: AutoGptqTaskKind, name: string, s: TaskSpecObject, m: EvalModel, o: EvaluateOptions, out: EvalResults): Promise<void> {
  if (!s.data) fail(`${name}: ${kind} needs data (a file, folder or Hub dataset id with prompt/label columns)`);
  // AutoGPTQ's get_dataloader: the "evaluation" split, else "test", else "train"
  const ev = await loadSplit(s.data, ['evaluation', 'test', 'train'], { ...o.hub, onProgress: o.onProgress, config: s.config });
  const n = limitOf(ev.rows.length, o.limit);
  const ao: AutoGptqTaskOptions = {
    promptColumn: s.promptColumn ?? 'prompt', labelColumn: s.labelColumn ?? 'label', classes: s.classes, method: s.method,
    maxNewTokens: s.maxNewTokens, batchSize: o.batchSize, maxLength: o.maxLength, onProgress: o.onProgress, signal: o.signal,
  };
  const r = await runAutoGptqTask(kind, name, m.model, m.tokenizer, ev.rows.slice(0, n), ao);
  const metrics: Record<string, number | string> = { alias: name };
  for (const [k, v] of Object.entries(r.metrics)) metrics[`${k},none`] = v;
  if (kind === 'sequence_classification') {
    const { stderr } = meanStderr(r.samples.map((x) => x.acc as number));
    metrics['acc_stderr,none'] = Number.isNaN(stderr) ? 'N/A' : stderr;
  }
  out.results[name] = metrics;
  out.group_subtasks[name] = [];
  out.configs[name] = {
    task: name, output_type: kind, dataset_path: s.data, dataset_name: s.config ?? null, eval_split: ev.split,
    prompt_column: ao.promptColumn, label_column: ao.labelColumn,
    ...(kind === 'sequence_classification' ? { method: ao.method ?? 'loglikelihood', classes: ao.classes ?? null } : {}),
    ...(kind === 'text_summarization' ? { max_new_tokens: ao.maxNewTokens ?? 128 } : {}),
    source: `AutoGPTQ auto_gptq/eval_tasks/${kind}_task.py`,
  };
  out.versions[name] = 1;
  out['n-shot'][name] = 0;
  out.higher_is_better[name] = r.higherIsBetter;
  out['n-samples'][name] = { original: ev.rows.length, effective: n };
  if (out.samples) out.samples[name] = r.samples;
}
