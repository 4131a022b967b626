/**
 * Perplexity as in the GPTQ paper / AutoGPTQ: tokenize the whole text once, cut it into non-overlapping seqlen
 * windows (the tail is dropped), mean next-token NLL per window, ppl = exp(mean over windows). The per-token NLL is
 * computed inside the graph (CausalLM.nll); load the model with `nll: true` (as `gptq ppl` does) so that it runs on the
 * main session instead of a second one.
 */
import { fail } from '../errors.ts';
import { seqlenFor } from '../io/config.ts';
import type { CausalLM } from '../runtime/causal-lm.ts';
import { etaSeconds, type PerplexityProgress } from '../progress.ts';

export interface PerplexityResult { ppl: number; nll: number; windows: number; tokens: number; seconds: number; tokensPerSecond: number }

export async function perplexity(model: CausalLM, tokens: ArrayLike<number>, o: { seqlen?: number; maxWindows?: number; batch?: number; onProgress?: (e: PerplexityProgress) => void } = {}): Promise<PerplexityResult> {
  const seqlen = seqlenFor(o.seqlen, model.cfg);
  let n = Math.floor(tokens.length / seqlen);
  if (n === 0) fail(`perplexity: text has ${tokens.length} tokens, fewer than one window of seqlen ${seqlen}`);
  if (o.maxWindows) n = Math.min(n, o.maxWindows);
  const t0 = performance.now();
  let total = 0;
  const V = model.cfg.vocabSize;
  // Several windows per run (the logits, an intermediate inside ONNX Runtime, capped near 256 MB) to amortize per-run
  // overhead. The graph returns the per-token NLL [B, seqlen−1] (fp32 log-softmax); sums are float64 here.
  const B = o.batch ?? Math.max(1, Math.min(16, Math.floor(2 ** 26 / (seqlen * V)), Math.floor(8192 / seqlen)));
  for (let i = 0; i < n; i += B) {
    const rows = Array.from({ length: Math.min(B, n - i) }, (_, b) => Array.from({ length: seqlen }, (_, j) => tokens[(i + b) * seqlen + j]!));
    const nll = await model.nll(rows);
    for (let b = 0; b < rows.length; b++) {
      let sum = 0;
      for (let s = b * (seqlen - 1); s < (b + 1) * (seqlen - 1); s++) sum += nll[s]!;
      total += sum / (seqlen - 1);
    }
    const done = i + rows.length, elapsed = (performance.now() - t0) / 1000;
    o.onProgress?.({ task: 'perplexity', done, total: n, elapsed, eta: etaSeconds(elapsed, done, n), ppl: Math.exp(total / done) });
  }
  const seconds = (performance.now() - t0) / 1000;
  return { ppl: Math.exp(total / n), nll: total / n, windows: n, tokens: n * seqlen, seconds, tokensPerSecond: (n * seqlen) / seconds };
}
