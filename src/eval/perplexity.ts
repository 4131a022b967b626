/**
 * Perplexity as in the GPTQ paper / AutoGPTQ: tokenize the whole text once, cut it into non-overlapping seqlen
 * windows (the tail is dropped), mean next-token NLL per window, ppl = exp(mean over windows).
 */
import { fail } from '../errors.ts';
import type { CausalLM } from '../runtime/causal-lm.ts';

export interface PerplexityResult { ppl: number; nll: number; windows: number; tokens: number; seconds: number; tokensPerSecond: number }

/** Mean NLL of predicting ids[1..] from logits [S,V] (rows 0..S−2). */
export function meanNll(logits: Float32Array, ids: ArrayLike<number>, V: number): number {
  let sum = 0;
  const S = ids.length;
  for (let s = 0; s < S - 1; s++) {
    const o = s * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[o + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[o + v]! - max);
    sum += Math.log(z) + max - logits[o + ids[s + 1]!]!;
  }
  return sum / (S - 1);
}

export async function perplexity(model: CausalLM, tokens: ArrayLike<number>, o: { seqlen?: number; maxWindows?: number; batch?: number; onProgress?: (i: number, n: number, ppl: number) => void } = {}): Promise<PerplexityResult> {
  const seqlen = o.seqlen ?? 2048;
  let n = Math.floor(tokens.length / seqlen);
  if (n === 0) fail(`perplexity: text has ${tokens.length} tokens, fewer than one window of seqlen ${seqlen}`);
  if (o.maxWindows) n = Math.min(n, o.maxWindows);
  const t0 = performance.now();
  let total = 0;
  const V = model.cfg.vocabSize;
  // Several windows per run (logits capped near 256 MB) to amortize per-run overhead.
  const B = o.batch ?? Math.max(1, Math.min(16, Math.floor(2 ** 26 / (seqlen * V)), Math.floor(8192 / seqlen)));
  for (let i = 0; i < n; i += B) {
    const rows = Array.from({ length: Math.min(B, n - i) }, (_, b) => Array.from({ length: seqlen }, (_, j) => tokens[(i + b) * seqlen + j]!));
    const logits = await model.logits(rows);
    rows.forEach((ids, b) => { total += meanNll(logits.subarray(b * seqlen * V, (b + 1) * seqlen * V), ids, V); });
    o.onProgress?.(i + rows.length, n, Math.exp(total / (i + rows.length)));
  }
  const seconds = (performance.now() - t0) / 1000;
  return { ppl: Math.exp(total / n), nll: total / n, windows: n, tokens: n * seqlen, seconds, tokensPerSecond: (n * seqlen) / seconds };
}
