/**
 * Test oracle for sampleToken (src/runtime/sampling.ts): the straightforward version it replaced — sort every id by
 * logit (stable, so equal logits keep ascending ids), top-k by slicing, softmax with temperature over the kept ids,
 * top-p as the smallest sorted prefix whose probability reaches top_p (Transformers' TopPLogitsWarper), renormalize,
 * and one inverse-CDF draw: in sorted order with top-p < 1, else in id order (sampleToken's convention; the version
 * it replaced drew in sorted order always). O(V log V) per token; kept here only to check the fast one.
 */
import type { SamplingOptions } from '../../src/runtime/sampling.ts';

export function sampleTokenRef(logits: Float32Array, o: SamplingOptions, rand: () => number): number {
  const t = o.temperature!;
  let idx = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (o.topK && o.topK > 0 && o.topK < idx.length) idx = idx.slice(0, o.topK);
  const max = logits[idx[0]!]! / t;
  let p = idx.map((i) => Math.exp(logits[i]! / t - max));
  const z = p.reduce((a, b) => a + b, 0);
  p = p.map((x) => x / z);
  if (o.topP !== undefined && o.topP < 1) {
    let c = 0, keep = 0;
    while (keep < p.length) { c += p[keep]!; keep++; if (c >= o.topP) break; }
    idx = idx.slice(0, keep); p = p.slice(0, keep);
    const z2 = p.reduce((a, b) => a + b, 0); p = p.map((x) => x / z2);
  }
  if (!(o.topP !== undefined && o.topP < 1)) { // id order
    const order = idx.map((id, j) => [id, p[j]!] as const).sort((a, b) => a[0] - b[0]);
    idx = order.map((x) => x[0]); p = order.map((x) => x[1]);
  }
  let u = rand();
  for (let i = 0; i < p.length; i++) { u -= p[i]!; if (u <= 0) return idx[i]!; }
  return idx[idx.length - 1]!;
}
