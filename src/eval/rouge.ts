/**
 * ROUGE-1, ROUGE-2 and ROUGE-L (precision, recall, F1) of a prediction against a reference, as Google's `rouge_score`
 * defines them (the implementation behind 🤗 evaluate's "rouge" and lm-eval; Lin 2004): text lower-cased, every run of
 * characters other than [a-z0-9] is a separator, no stemming; ROUGE-N counts clipped n-gram matches
 * (P = matches / prediction n-grams, R = matches / reference n-grams); ROUGE-L is the sentence-level longest common
 * subsequence over the whole token lists (rouge_score's "rougeL", not the newline-split "rougeLsum"); F = 2PR/(P+R),
 * 0 when nothing matches or either side has no tokens.
 * The counting is js-rouge's (n() and l(), with this tokenizer and one segment per text); P and R are its F-beta at
 * beta 0 and ∞, F1 at beta 1. Checked against torchmetrics' ROUGEScore (a rouge_score re-implementation) in
 * test/eval-rouge.test.ts; rouge_score itself is not on the local wheel mirror.
 */
import { l as rougeL, n as rougeN } from 'js-rouge';

export interface RougeScore { p: number; r: number; f: number }
export interface RougeScores { 'rouge-1': RougeScore; 'rouge-2': RougeScore; 'rouge-l': RougeScore }

/** rouge_score's default tokenizer (tokenize.tokenize without stemmer): lower case, split on non-[a-z0-9]. */
export function rougeTokens(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim().split(' ').filter((t) => t.length > 0);
}

/** ROUGE-1/2/L of one prediction against one reference. */
export function rouge(prediction: string, reference: string): RougeScores {
  const pred = rougeTokens(prediction), ref = rougeTokens(reference);
  const zero = { p: 0, r: 0, f: 0 };
  if (!pred.length || !ref.length) return { 'rouge-1': { ...zero }, 'rouge-2': { ...zero }, 'rouge-l': { ...zero } };
  // js-rouge re-tokenizes each text with the tokenizer given: hand it the tokens joined by spaces.
  const tokenizer = (s: string) => s.split(' ').filter((t) => t.length > 0);
  const c = pred.join(' '), r = ref.join(' ');
  const by = (f: (beta: number) => number): RougeScore => ({ p: f(0), r: f(Infinity), f: f(1) });
  const ngram = (size: number) => (size > pred.length || size > ref.length ? { ...zero } : by((beta) => rougeN(c, r, { n: size, beta, tokenizer })));
  return {
    'rouge-1': ngram(1),
    'rouge-2': ngram(2),
    'rouge-l': by((beta) => rougeL(c, r, { beta, tokenizer, segmenter: (s: string) => [s] })),
  };
}

/** Mean of per-sample scores (AutoGPTQ's `Rouge().get_scores(..., avg=True)` averages the same way). */
export function meanRouge(scores: readonly RougeScores[]): RougeScores {
  const keys = ['rouge-1', 'rouge-2', 'rouge-l'] as const;
  const out = {} as RougeScores;
  for (const k of keys) {
    const m = (f: 'p' | 'r' | 'f') => (scores.length ? scores.reduce((a, s) => a + s[k][f], 0) / scores.length : NaN);
    out[k] = { p: m('p'), r: m('r'), f: m('f') };
  }
  return out;
}
