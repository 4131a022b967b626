/**
 * Multiple-choice tasks scored by loglikelihood, as lm-evaluation-harness 0.4.13 defines and scores them
 * (lm_eval/api/task.py ConfigurableTask: fewshot_context / build_qa_turn / construct_requests / process_results;
 * lm_eval/api/samplers.py ContextSampler; lm_eval/tasks/{arc,hellaswag,piqa,winogrande}):
 *   - requests: (context, target_delimiter + choice) per choice; "multiple input" tasks (Winogrande: doc_to_text
 *     returns the gold index) score the same continuation after one context per choice — partial evaluation: each
 *     option fills the blank, the score is the loglikelihood of the sentence after the blank.
 *   - few-shot: `description` + n examples drawn by Python's random.Random(fewshotSeed).sample from the few-shot split
 *     (the task's fewshot split, else train, else validation, else test), each "question + target_delimiter + answer
 *     + fewshot_delimiter"; lm-eval draws n + 1 and drops the evaluated document when the few-shot split equals the
 *     test split (both unset counts as equal, as in lm-eval, e.g. HellaSwag/PIQA/Winogrande).
 *   - metrics: acc = [argmax loglikelihood = gold]; acc_norm = [argmax loglikelihood / len(choice) = gold], len in
 *     Unicode code points of the choice text (Python len(str)); mean over documents, stderr = sample std / √n.
 */
import { fail } from '../errors.ts';
import type { Row } from '../io/tables.ts';
import type { LoglikelihoodRequest, LoglikelihoodResult } from './loglikelihood.ts';
import { PythonRandom } from '../io/random.ts';

export interface MultipleChoiceTask {
  kind: 'multiple_choice';
  /** Task name (results key), e.g. "arc_easy". */
  task: string;
  /** lm-eval's metadata.version. */
  version: number;
  /** Default data: a Hub dataset id (lm-eval's dataset_path) and config (dataset_name). */
  datasetPath?: string;
  datasetName?: string;
  trainingSplit?: string;
  validationSplit?: string;
  testSplit?: string;
  fewshotSplit?: string;
  /** lm-eval's process_docs, per document. */
  processDoc?: (doc: Row) => Row;
  /** The question; a number means "multiple input": the gold index, with the contexts from docToChoice. */
  docToText: (doc: Row) => string | number;
  /** Gold choice index, or the gold choice text (multiple input: the continuation scored after each context). */
  docToTarget: (doc: Row) => string | number;
  docToChoice: (doc: Row) => string[];
  /** Text before the few-shot examples, used as is (lm-eval: system message, no delimiter). Default "". */
  description?: string;
  /** Default " ". */
  targetDelimiter?: string;
  /** Default "\n\n". */
  fewshotDelimiter?: string;
  /** Reported metrics (lm-eval's metric_list). */
  metrics: readonly ('acc' | 'acc_norm')[];
}

const str = (doc: Row, k: string): string => {
  const v = doc[k];
  if (typeof v !== 'string') fail(`document field "${k}" must be a string, got ${v === undefined ? 'nothing' : JSON.stringify(v)} (fields: ${Object.keys(doc).join(', ')})`);
  return v;
};
/** lm-eval's rendered-template rule: an all-digit target string becomes an int. */
const intOf = (doc: Row, k: string): number => {
  const v = doc[k];
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return fail(`document field "${k}" must be an integer (or a string of digits), got ${JSON.stringify(v)}`);
};

/** HellaSwag's preprocess (lm_eval/tasks/hellaswag/utils.py): strip, " [title]" → ". ", drop [..] artifacts, "  " → " ". */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[[^\n]*?\]/g, '').replaceAll('  ', ' ');
}
/** Python's str.capitalize(): first character upper case, the rest lower case. */
const capitalize = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1).toLowerCase() : s);

const arc = (task: string, config: string): MultipleChoiceTask => ({
  kind: 'multiple_choice', task, version: 1, datasetPath: 'allenai/ai2_arc', datasetName: config,
  trainingSplit: 'train', validationSplit: 'validation', testSplit: 'test',
  docToText: (d) => `Question: ${str(d, 'question')}\nAnswer:`,
  docToTarget: (d) => {
    const c = d.choices as { label?: unknown[] } | undefined, i = c?.label?.indexOf(d.answerKey) ?? -1;
    if (i < 0) fail(`ARC document: answerKey ${JSON.stringify(d.answerKey)} is not one of choices.label ${JSON.stringify(c?.label)}`);
    return i;
  },
  docToChoice: (d) => {
    const t = (d.choices as { text?: unknown } | undefined)?.text;
    if (!Array.isArray(t) || !t.every((x) => typeof x === 'string')) fail('ARC document: choices.text must be a list of strings');
    return t as string[];
  },
  metrics: ['acc', 'acc_norm'],
});

/** lm-eval's task configs for ARC-Easy/Challenge, HellaSwag, PIQA and Winogrande (lm_eval/tasks, 0.4.13). */
export const MULTIPLE_CHOICE_TASKS: Record<string, MultipleChoiceTask> = {
  arc_easy: arc('arc_easy', 'ARC-Easy'),
  arc_challenge: arc('arc_challenge', 'ARC-Challenge'),
  hellaswag: {
    kind: 'multiple_choice', task: 'hellaswag', version: 1, datasetPath: 'Rowan/hellaswag',
    trainingSplit: 'train', validationSplit: 'validation',
    processDoc: (d) => {
      const ctx = `${str(d, 'ctx_a')} ${capitalize(str(d, 'ctx_b'))}`;
      const endings = d.endings;
      if (!Array.isArray(endings) || !endings.every((x) => typeof x === 'string')) fail('HellaSwag document: endings must be a list of strings');
      return { ...d, query: hellaswagPreprocess(`${str(d, 'activity_label')}: ${ctx}`), choices: (endings as string[]).map(hellaswagPreprocess), gold: intOf(d, 'label') };
    },
    docToText: (d) => str(d, 'query'),
    docToTarget: (d) => intOf(d, 'label'),
    docToChoice: (d) => d.choices as string[],
    metrics: ['acc', 'acc_norm'],
  },
  piqa: {
    kind: 'multiple_choice', task: 'piqa', version: 1, datasetPath: 'baber/piqa',
    trainingSplit: 'train', validationSplit: 'validation',
    docToText: (d) => `Question: ${str(d, 'goal')}\nAnswer:`,
    docToTarget: (d) => intOf(d, 'label'),
    docToChoice: (d) => [str(d, 'sol1'), str(d, 'sol2')],
    metrics: ['acc', 'acc_norm'],
  },
  winogrande: {
    kind: 'multiple_choice', task: 'winogrande', version: 1, datasetPath: 'allenai/winogrande', datasetName: 'winogrande_xl',
    trainingSplit: 'train', validationSplit: 'validation',
    docToText: (d) => {
      const a = str(d, 'answer');
      if (a !== '1' && a !== '2') fail(`Winogrande document: answer must be "1" or "2", got ${JSON.stringify(a)}`);
      return a === '1' ? 0 : 1;
    },
    docToTarget: (d) => str(d, 'sentence').slice(blank(d) + 1).trim(),
    docToChoice: (d) => { const s = str(d, 'sentence'), i = blank(d); return [s.slice(0, i) + str(d, 'option1'), s.slice(0, i) + str(d, 'option2')]; },
    metrics: ['acc'],
  },
};

function blank(d: Row): number {
  const i = str(d, 'sentence').indexOf('_');
  if (i < 0) fail(`Winogrande document: sentence has no blank "_": ${JSON.stringify(d.sentence)}`);
  return i;
}

/** Python's `==` on documents (JSON-like values): key order does not matter. */
function sameDoc(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameDoc(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && sameDoc((a as Row)[k], (b as Row)[k]));
  }
  return false;
}

/** lm-eval's ContextSampler with its Random(seed): `sample(n, evalDoc)`. */
export class FewshotSampler {
  private readonly rnd: PythonRandom;
  constructor(private readonly docs: readonly Row[], seed: number) { this.rnd = new PythonRandom(seed); }

  sample(n: number, evalDoc?: Row): Row[] {
    if (n === 0) return [];
    const draw = (pool: readonly Row[], k: number) => {
      if (k > pool.length) fail(`few-shot: ${n} examples requested, the few-shot split has ${this.docs.length} documents${evalDoc ? ' (lm-eval draws n + 1 when the few-shot split is the test split, to drop the evaluated document)' : ''}`);
      return this.rnd.sample(pool, k);
    };
    if (!evalDoc) return draw(this.docs, n);
    let res = draw(this.docs, n + 1).filter((x) => !sameDoc(x, evalDoc)).slice(0, n);
    if (res.length < n) res = draw(this.docs.filter((x) => !sameDoc(x, evalDoc)), n);
    return res;
  }
}

/** One document's requests: contexts (one, or one per choice for multiple input) and continuations. */
export interface DocRequests { docId: number; doc: Row; requests: LoglikelihoodRequest[]; choices: string[]; gold: number; multipleInput: boolean }

/**
 * The loglikelihood requests of one document with its few-shot context (lm-eval's fewshot_context + construct_requests
 * for plain text, no chat template). `shots`: few-shot documents already drawn.
 */
export function buildRequests(t: MultipleChoiceTask, doc: Row, docId: number, shots: readonly Row[]): DocRequests {
  const td = t.targetDelimiter ?? ' ', fd = t.fewshotDelimiter ?? '\n\n';
  let prefix = t.description ?? '';
  const text = t.docToText(doc), choices = t.docToChoice(doc);
  const multipleInput = typeof text === 'number';
  for (const s of shots) {
    let q = t.docToText(s);
    const c = t.docToChoice(s), a = t.docToTarget(s);
    if (typeof q === 'number') q = c[q]!;
    // build_qa_turn: "q" + target_delimiter, then the answer (a choice when the target is an index) + fewshot_delimiter
    const answer = typeof a === 'number' && !multipleInput ? c[a] : a;
    if (typeof q !== 'string' || typeof answer !== 'string') fail(`${t.task}: few-shot document has no question/answer text`);
    prefix += a === '' ? q : q + td + answer + fd;
  }
  const target = t.docToTarget(doc);
  let requests: LoglikelihoodRequest[];
  if (multipleInput) {
    if (typeof target !== 'string') fail(`${t.task}: multiple-input documents need a string target (the text after the blank)`);
    requests = choices.map((ctx) => ({ context: prefix + ctx, continuation: `${td}${target}` }));
  } else requests = choices.map((c) => ({ context: prefix + (text as string), continuation: `${td}${c}` }));
  // process_results: gold is doc_to_text for multiple input, else doc_to_target (an index, or a choice text)
  const g = multipleInput ? text : target;
  const gold = typeof g === 'number' ? (g < choices.length ? g : -100) : choices.indexOf(g);
  return { docId, doc, requests, choices, gold: gold < 0 ? -100 : gold, multipleInput };
}

/** acc / acc_norm of one document from its choices' loglikelihoods (lm-eval process_results, single target). */
export function scoreDoc(d: DocRequests, results: readonly LoglikelihoodResult[]): { acc: number; acc_norm: number } {
  const lls = results.map((r) => r.loglikelihood);
  const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best]! ? i : best), 0); // first max, as np.argmax
  const pred = argmax(lls);
  const predNorm = argmax(lls.map((ll, i) => ll / [...d.choices[i]!].length));
  return { acc: pred === d.gold ? 1 : 0, acc_norm: predNorm === d.gold ? 1 : 0 };
}

/** lm-eval's mean and its stderr (sample standard deviation / √n; NaN for n < 2, printed "N/A" by lm-eval). */
export function meanStderr(xs: readonly number[]): { mean: number; stderr: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, stderr: NaN };
  const v = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { mean, stderr: Math.sqrt(v) / Math.sqrt(n) };
}
