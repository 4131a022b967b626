/** Logits processing and sampling with Transformers' semantics and order: penalty → temperature → top-k → top-p. */
import { fail, option } from '../errors.ts';

export interface SamplingOptions {
  /** 0 or doSample false → greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  doSample?: boolean;
}

/**
 * Refuse settings the sampling cannot honour, one GptqError line naming the option (Transformers refuses the same in
 * GenerationConfig.validate and its logits processors' constructors: TemperatureLogitsWarper needs temperature > 0 when
 * sampling, TopKLogitsWarper a positive int, TopPLogitsWarper 0 ≤ top_p ≤ 1, RepetitionPenaltyLogitsProcessor > 0):
 * temperature a number ≥ 0 (0 = greedy), topK an integer ≥ 0 (0 = off), topP in (0, 1], repetitionPenalty > 0, and for
 * generation maxNewTokens an integer ≥ 1 and seed an integer ≥ 0. The CLI flags have the same ranges (src/cli).
 */
export function checkGenerationOptions(o: SamplingOptions & { maxNewTokens?: number; seed?: number }): void {
  const bad = (name: string, flag: string, want: string, v: unknown) => fail(`${option(name, flag)} must be ${want}, got ${JSON.stringify(v)}`);
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (o.temperature !== undefined && !(num(o.temperature) && o.temperature >= 0)) bad('temperature', '--temperature', 'a number ≥ 0 (0 = greedy)', o.temperature);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', '--top-k', 'an integer ≥ 0 (0 = off)', o.topK);
  if (o.topP !== undefined && !(num(o.topP) && o.topP > 0 && o.topP <= 1)) bad('topP', '--top-p', 'a number in (0, 1]', o.topP);
  if (o.repetitionPenalty !== undefined && !(num(o.repetitionPenalty) && o.repetitionPenalty > 0)) bad('repetitionPenalty', '--repetition-penalty', 'a number > 0 (1 = off)', o.repetitionPenalty);
  if (o.maxNewTokens !== undefined && !(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1)) bad('maxNewTokens', '--max-new-tokens', 'an integer ≥ 1', o.maxNewTokens);
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && o.seed >= 0)) bad('seed', '--seed', 'an integer ≥ 0', o.seed);
}

/** HF RepetitionPenaltyLogitsProcessor: seen tokens' logits ÷ penalty if > 0, × penalty otherwise. In place. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const v = logits[t]!;
    logits[t] = v > 0 ? v / penalty : v * penalty;
  }
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Choose the next token from one row of logits (modified in place). `rand` is a uniform [0,1) source. */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rand: () => number): number {
  const greedy = o.doSample === false || !o.temperature || o.temperature <= 0;
  if (greedy) return argmax(logits);
  const t = o.temperature!;
  let idx = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (o.topK && o.topK > 0 && o.topK < idx.length) idx = idx.slice(0, o.topK);
  const max = logits[idx[0]!]! / t;
  let p = idx.map((i) => Math.exp(logits[i]! / t - max));
  const z = p.reduce((a, b) => a + b, 0);
  p = p.map((x) => x / z);
  if (o.topP !== undefined && o.topP < 1) {
    // HF TopPLogitsWarper keeps the smallest prefix with cumulative prob > 1 − top_p … i.e. ≥ top_p, at least 1 token.
    let c = 0, keep = 0;
    while (keep < p.length) { c += p[keep]!; keep++; if (c >= o.topP) break; }
    idx = idx.slice(0, keep); p = p.slice(0, keep);
    const z2 = p.reduce((a, b) => a + b, 0); p = p.map((x) => x / z2);
  }
  let u = rand();
  for (let i = 0; i < p.length; i++) { u -= p[i]!; if (u <= 0) return idx[i]!; }
  return idx[idx.length - 1]!;
}
