/**
 * AutoGPTQ's three evaluation tasks (auto_gptq/eval_tasks: language_modeling_task.py, sequence_classification_task.py,
 * text_summarization_task.py, _base.py, _utils/data_utils.py), on rows with a prompt and a label column:
 *   - language_modeling: per-sample loss = mean next-token NLL of the label tokens after the prompt; metric
 *     ppl = exp(mean loss) (AutoGPTQ's name).
 *   - sequence_classification: accuracy ("acc") of the predicted class. method "generate" is AutoGPTQ's: greedy
 *     generation of max(class token counts) new tokens, the text lower-cased and stripped, mapped to the class at the
 *     smallest Levenshtein distance (first on ties). method "loglikelihood" (default): the class whose text, after
 *     the target delimiter, has the highest loglikelihood after the prompt (lm-eval's multiple-choice rule).
 *   - text_summarization: greedy generation (maxNewTokens, default 128, stops at EOS), lower-cased and stripped,
 *     ROUGE-1/2/L precision, recall and F1 per sample (src/eval/rouge.ts), averaged ("rouge-1_f" = AutoGPTQ's
 *     rouge-1.f, …).
 * Deliberate differences, each because AutoGPTQ's behaviour is an accident of its batching code: samples are the first
 * `limit` rows (AutoGPTQ draws 128 with an unseeded random.sample); the label is tokenized without special tokens
 * (AutoGPTQ's separate tokenizer(labels) puts a BOS token inside the sequence for Llama-style tokenizers); the loss is
 * per sample, not per padded data block; ROUGE is rouge_score's (AutoGPTQ calls the `rouge` package, whose ROUGE-N
 * counts distinct n-grams and whose ROUGE-L is summary-level). Prompts that do not fit are cut from the left
 * (AutoGPTQ's truncate_prompt).
 */
import { distance } from 'fastest-levenshtein';
import { fail } from '../errors.ts';
import type { Row } from '../io/tables.ts';
import type { CausalLM } from '../runtime/causal-lm.ts';
import { generate } from '../runtime/generate.ts';
import { etaSeconds, type EvalProgress } from '../progress.ts';
import { encodePair, scoreEncoded, type EvalTokenizer, type ScoreOptions } from './loglikelihood.ts';
import { meanRouge, rouge } from './rouge.ts';

export type AutoGptqTaskKind = 'language_modeling' | 'sequence_classification' | 'text_summarization';
export const AUTOGPTQ_TASKS: readonly AutoGptqTaskKind[] = ['language_modeling', 'sequence_classification', 'text_summarization'];

export interface AutoGptqTaskOptions extends ScoreOptions {
  promptColumn: string;
  labelColumn: string;
  /** sequence_classification: the class texts (default: the distinct labels of the rows, in order of appearance). */
  classes?: string[];
  /** sequence_classification: default 'loglikelihood'. */
  method?: 'loglikelihood' | 'generate';
  /** sequence_classification (loglikelihood): text between prompt and class, default " ". */
  targetDelimiter?: string;
  /** text_summarization: default 128 (AutoGPTQ's GenerationConfig). */
  maxNewTokens?: number;
  /** Prompts per generate() call, default 8. */
  generateBatch?: number;
}

export interface AutoGptqSample { docId: number; prompt: string; label: string; [k: string]: unknown }
export interface AutoGptqTaskResult { metrics: Record<string, number>; samples: AutoGptqSample[]; higherIsBetter: Record<string, boolean> }

const norm = (s: string) => s.toLowerCase().trim();

function columns(rows: readonly Row[], o: AutoGptqTaskOptions, task: string): { prompt: string; label: string }[] {
  return rows.map((r, i) => {
    const p = r[o.promptColumn], l = r[o.labelColumn];
    if (typeof p !== 'string') fail(`${task}: row ${i} has no string column "${o.promptColumn}" (columns: ${Object.keys(r).join(', ')}; --prompt-column)`);
    if (typeof l !== 'string' && typeof l !== 'number') fail(`${task}: row ${i} has no column "${o.labelColumn}" (columns: ${Object.keys(r).join(', ')}; --label-column)`);
    return { prompt: p, label: String(l) };
  });
}

/** Greedy generations of `prompts` (token ids), `maxNew` tokens at most, prompts cut from the left to fit the model. */
async function generateAll(model: CausalLM, tok: EvalTokenizer, prompts: number[][], maxNew: number, o: AutoGptqTaskOptions, task: string): Promise<string[]> {
  const maxPos = model.cfg.maxPositionEmbeddings || Infinity;
  if (maxNew >= maxPos) fail(`${task}: ${maxNew} new tokens do not fit the model's ${maxPos} positions`);
  const B = o.generateBatch ?? 8, out: string[] = [], t0 = performance.now();
  for (let i = 0; i < prompts.length; i += B) {
    o.signal?.throwIfAborted();
    const batch = prompts.slice(i, i + B).map((p) => (p.length + maxNew > maxPos ? p.slice(p.length + maxNew - maxPos) : p));
    const r = await generate(model, batch, { maxNewTokens: maxNew, temperature: 0, eosTokenIds: tok.eosId === undefined ? [] : [tok.eosId] });
    for (const t of r.tokens) out.push(tok.decode(t, { skipSpecialTokens: true }));
    const done = Math.min(i + B, prompts.length), elapsed = (performance.now() - t0) / 1000;
    const e: EvalProgress = { task: 'eval', evalTask: task, stage: 'generate', done, total: prompts.length, elapsed, eta: etaSeconds(elapsed, done, prompts.length) };
    o.onProgress?.(e);
  }
  return out;
}

/** Run one AutoGPTQ task on `rows`. */
export async function runAutoGptqTask(kind: AutoGptqTaskKind, name: string, model: CausalLM, tok: EvalTokenizer, rows: readonly Row[], o: AutoGptqTaskOptions): Promise<AutoGptqTaskResult> {
  const data = columns(rows, o, name);
  if (!data.length) fail(`${name}: no rows`);
  const so: ScoreOptions = { ...o, taskName: name };
  if (kind === 'language_modeling') {
    const maxLength = o.maxLength ?? (model.cfg.maxPositionEmbeddings || 2048);
    const enc = data.map((d) => ({ context: tok.encode(d.prompt), continuation: tok.encode(d.label, { addSpecialTokens: false }) }));
    const keep = enc.map((e, i) => i).filter((i) => enc[i]!.continuation.length > 0 && enc[i]!.context.length > 0);
    if (!keep.length) fail(`${name}: every label is empty`);
    // AutoGPTQ truncates the label when it alone exceeds the sample length; keep its first maxLength tokens
    const res = await scoreEncoded(model, keep.map((i) => ({ context: enc[i]!.context, continuation: enc[i]!.continuation.slice(0, maxLength) })), { ...so, maxLength });
    const samples = keep.map((i, k) => ({ docId: i, ...data[i]!, loss: -res[k]!.loglikelihood / res[k]!.tokens, tokens: res[k]!.tokens }));
    const loss = samples.reduce((a, s) => a + s.loss, 0) / samples.length;
    return { metrics: { ppl: Math.exp(loss), loss }, samples, higherIsBetter: { ppl: false, loss: false } };
  }
  if (kind === 'sequence_classification') {
    const classes = (o.classes ?? [...new Set(data.map((d) => d.label))]).map(norm);
    if (classes.length < 2) fail(`${name}: need at least 2 classes, got ${JSON.stringify(classes)} (--classes)`);
    const gold = data.map((d, i) => {
      const g = classes.indexOf(norm(d.label));
      if (g < 0) fail(`${name}: row ${i} label ${JSON.stringify(d.label)} is not one of the classes ${JSON.stringify(classes)}`);
      return g;
    });
    let pred: number[], extra: Record<string, unknown>[];
    if ((o.method ?? 'loglikelihood') === 'generate') {
      const maxNew = Math.max(...classes.map((c) => tok.encode(c).length)); // AutoGPTQ: tokenizer(classes), special tokens included
      const texts = await generateAll(model, tok, data.map((d) => tok.encode(d.prompt)), maxNew, o, name);
      pred = texts.map((t) => closestLabel(norm(t), classes));
      extra = texts.map((t) => ({ generated: t }));
    } else {
      const td = o.targetDelimiter ?? ' ';
      const res = await scoreEncoded(model, data.flatMap((d) => classes.map((c) => encodePair(tok, d.prompt, td + c))), so);
      pred = data.map((_, i) => {
        const lls = classes.map((_, j) => res[i * classes.length + j]!.loglikelihood);
        return lls.reduce((b, x, j) => (x > lls[b]! ? j : b), 0);
      });
      extra = data.map((_, i) => ({ loglikelihoods: classes.map((_, j) => res[i * classes.length + j]!.loglikelihood) }));
    }
    const samples = data.map((d, i) => ({ docId: i, ...d, gold: gold[i], pred: pred[i], acc: pred[i] === gold[i] ? 1 : 0, ...extra[i] }));
    return { metrics: { acc: samples.reduce((a, s) => a + s.acc, 0) / samples.length }, samples, higherIsBetter: { acc: true } };
  }
  const maxNew = o.maxNewTokens ?? 128;
  const texts = await generateAll(model, tok, data.map((d) => tok.encode(d.prompt)), maxNew, o, name);
  const scores = texts.map((t, i) => rouge(norm(t), norm(data[i]!.label)));
  const m = meanRouge(scores);
  const metrics: Record<string, number> = {}, hib: Record<string, boolean> = {};
  for (const k of ['rouge-1', 'rouge-2', 'rouge-l'] as const) for (const f of ['f', 'p', 'r'] as const) { metrics[`${k}_${f}`] = m[k][f]; hib[`${k}_${f}`] = true; }
  return { metrics, samples: data.map((d, i) => ({ docId: i, ...d, generated: texts[i], rouge: scores[i] })), higherIsBetter: hib };
}

/** AutoGPTQ's get_closest_label: the class at the smallest edit distance, the first one on ties. */
export function closestLabel(text: string, classes: readonly string[]): number {
  let best = 0, bestD = Infinity;
  classes.forEach((c, i) => { const d = distance(text, c); if (d < bestD) { best = i; bestD = d; } });
  return best;
}
