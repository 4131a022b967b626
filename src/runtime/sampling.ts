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

/**
 * Choose the next token from one row of logits [V] (not modified). `rand` is a uniform [0,1) source, called once.
 *
 * Greedy (temperature 0 or doSample false): argmax, the first index on ties. Otherwise Transformers' warpers in their
 * order — temperature, then top-k (TopKLogitsWarper: the k largest logits; among equal logits the lower ids first),
 * then top-p (TopPLogitsWarper: the smallest set of the most probable tokens whose probability reaches top_p, at least
 * one) — and one draw u by inverse CDF over the kept tokens: in id order (as torch.multinomial over the warped
 * probabilities in Transformers), or with top-p < 1 in the nucleus's descending order (ties: lower id first).
 *
 * Cost O(V), plus with top-p a sort of only the nucleus candidates (weight ≥ τ, τ lowered by powers of e until their
 * mass reaches top_p), not of the vocabulary: sorting all V ids per token cost 16 ms at V = 32000 and 59 ms at
 * 128256, more than a decode step.
 */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rand: () => number): number {
  const greedy = o.doSample === false || !o.temperature || o.temperature <= 0;
  if (greedy) return argmax(logits);
  const t = o.temperature!, V = logits.length, best = argmax(logits);
  const max = logits[best]! / t;
  // top-k: keep logits above the k-th largest, and as many equal to it as fit (lowest ids first)
  let kth = -Infinity, tiesLeft = V;
  if (o.topK && o.topK > 0 && o.topK < V) {
    kth = kthLargest(logits, o.topK);
    let above = 0;
    for (let i = 0; i < V; i++) if (logits[i]! > kth) above++;
    tiesLeft = o.topK - above;
  }
  const w = scratch(V);
  let z = 0;
  for (let i = 0; i < V; i++) {
    const l = logits[i]!;
    const keep = l > kth || (l === kth && tiesLeft-- > 0);
    const x = keep ? Math.exp(l / t - max) : 0;
    w[i] = x;
    z += x;
  }
  const u = rand();
  if (o.topP !== undefined && o.topP < 1) {
    // the nucleus: the shortest prefix of the kept tokens in descending order whose probability reaches top_p
    const head = sortedHead(logits, w, o.topP * z, z);
    let c = 0, n = 0;
    while (n < head.length) { c += w[head[n]!]! / z; n++; if (c >= o.topP) break; }
    let z2 = 0;
    for (let j = 0; j < n; j++) z2 += w[head[j]!]!;
    let r = u * z2;
    for (let j = 0; j < n; j++) { r -= w[head[j]!]!; if (r <= 0) return head[j]!; }
    return head[n - 1]!;
  }
  let r = u * z, last = best;
  for (let i = 0; i < V; i++) {
    const x = w[i]!;
    if (x === 0) continue;
    r -= x;
    if (r <= 0) return i;
    last = i;
  }
  return last;
}

let scratchBuf = new Float64Array(0);
function scratch(n: number): Float64Array {
  if (scratchBuf.length < n) scratchBuf = new Float64Array(n);
  return scratchBuf.subarray(0, n);
}

/**
 * Ids of the kept tokens (w > 0) in descending logit order (ties: lower id first), at least as many as needed for
 * their weights to reach `mass` (all kept tokens when `mass` ≥ z). Weights are ≤ 1 (the max is exp(0)).
 */
function sortedHead(logits: Float32Array, w: Float64Array, mass: number, z: number): number[] {
  const V = w.length;
  let tau = 0;
  if (mass < z) {
    for (let j = 1; j < 746; j *= 2) { // e^−745 underflows to 0: the last τ keeps every kept token
      const cut = Math.exp(-j);
      let m = 0;
      for (let i = 0; i < V; i++) if (w[i]! >= cut) m += w[i]!;
      if (m >= mass) { tau = cut; break; }
    }
  }
  const ids: number[] = [];
  for (let i = 0; i < V; i++) if (w[i]! > 0 && w[i]! >= tau) ids.push(i);
  // one numeric sort of packed keys: (descending order of the float32 logit) · 2^20 + id, exact below 2^53
  if (V > 1048576) throw new Error(`sampleToken: a vocabulary of ${V} ids is over the 2^20 the top-p sort packs`);
  const keys = new Float64Array(ids.length), bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
  for (let j = 0; j < ids.length; j++) {
    f[0] = logits[ids[j]!]!;
    const b = bits[0]!, asc = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0; // float order as unsigned order
    keys[j] = (0xffffffff - asc) * 1048576 + ids[j]!;
  }
  keys.sort();
  return Array.from(keys, (k) => k % 1048576);
}

/** The k-th largest value of a (1 ≤ k ≤ a.length), by quickselect on a copy. */
function kthLargest(a: Float32Array, k: number): number {
  const b = Float32Array.from(a);
  let lo = 0, hi = b.length - 1;
  const want = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = b[(lo + hi) >> 1]!;
    let i = lo, j = hi;
    while (i <= j) {
      while (b[i]! > pivot) i++;
      while (b[j]! < pivot) j--;
      if (i <= j) { const x = b[i]!; b[i] = b[j]!; b[j] = x; i++; j--; }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return b[want]!;
  }
  return b[want]!;
}
