/**
 * sampleToken (src/runtime/sampling.ts) against the straightforward sort-everything version it replaced
 * (test/reference/sampling-ref.ts): for the same uniform draw u both must pick the same token — the same
 * temperature → top-k → top-p warping and the same inverse CDF in descending-probability order — on vocabularies with
 * ties, top-k boundaries inside a run of equal logits, nuclei of one token and of all tokens. Draws within 1e-9 of a
 * boundary between two tokens are skipped (the two sum their weights in another order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleToken, type SamplingOptions } from '../src/runtime/sampling.ts';
import { mulberry32 } from '../src/io/random.ts';
import { sampleTokenRef } from './reference/sampling-ref.ts';

const OPTIONS: SamplingOptions[] = [
  { temperature: 1 }, { temperature: 0.7 }, { temperature: 2.5 },
  { temperature: 1, topK: 1 }, { temperature: 1, topK: 5 }, { temperature: 0.8, topK: 50 },
  { temperature: 1, topP: 0.9 }, { temperature: 0.6, topP: 0.5 }, { temperature: 1, topP: 1e-6 }, { temperature: 1, topP: 1 },
  { temperature: 0.9, topK: 20, topP: 0.8 }, { temperature: 1, topK: 100000 },
];

function vectors(): { name: string; logits: Float32Array }[] {
  const r = mulberry32(11);
  const out = [
    { name: 'all equal (V 7)', logits: new Float32Array(7).fill(0.5) },
    { name: 'one dominant (V 40)', logits: Float32Array.from({ length: 40 }, (_, i) => (i === 17 ? 30 : r())) },
    // runs of equal logits around the top-k boundaries (k = 5, 20, 50)
    { name: 'integer logits with ties (V 300)', logits: Float32Array.from({ length: 300 }, () => Math.floor(r() * 12) - 6) },
    { name: 'negative, spread (V 5000)', logits: Float32Array.from({ length: 5000 }, () => -50 + r() * 40) },
    { name: 'LLM-like peaked (V 32000)', logits: Float32Array.from({ length: 32000 }, (_, i) => (i < 30 ? 12 + r() * 6 : r() * 8 - 4)) },
  ];
  return out;
}

test('sampleToken picks the same token as the sort-everything reference for the same draw (temperature, top-k with ties, top-p)', () => {
  const draws = [0, 1e-7, 0.01, 0.1, 0.25, 0.5, 0.618, 0.75, 0.9, 0.99, 0.999999, ...Array.from({ length: 40 }, mulberry32(3))];
  let compared = 0, skipped = 0;
  for (const { name, logits } of vectors()) {
    for (const o of OPTIONS) {
      for (const u of draws) {
        const want = sampleTokenRef(logits, o, () => u);
        if (u > 1e-9 && (sampleTokenRef(logits, o, () => u - 1e-9) !== want || sampleTokenRef(logits, o, () => Math.min(u + 1e-9, 1 - 1e-12)) !== want)) { skipped++; continue; }
        assert.equal(sampleToken(logits, o, () => u), want, `${name} ${JSON.stringify(o)} u=${u}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 3000 && skipped < compared / 100, `${compared} compared, ${skipped} skipped`);
});

test('sampleToken: greedy is argmax (first on ties), rand is called once per sampled token, logits are not modified', () => {
  const logits = Float32Array.from([1, 5, 5, -2]);
  const copy = Float32Array.from(logits);
  assert.equal(sampleToken(logits, { temperature: 0 }, () => { throw new Error('no draw for greedy'); }), 1);
  assert.equal(sampleToken(logits, { temperature: 1, doSample: false }, () => 0.5), 1);
  let calls = 0;
  sampleToken(logits, { temperature: 1, topK: 2, topP: 0.5 }, () => { calls++; return 0.3; });
  assert.equal(calls, 1);
  assert.deepEqual(logits, copy);
  // top-k 2 over [1, 5, 5, −2] keeps ids 1 and 2 (equal logits), each 1/2: u below 1/2 → 1, above → 2
  assert.equal(sampleToken(logits, { temperature: 1, topK: 2 }, () => 0.49), 1);
  assert.equal(sampleToken(logits, { temperature: 1, topK: 2 }, () => 0.51), 2);
  // top-k 1 keeps only the first of the two maxima
  for (const u of [0, 0.5, 0.999]) assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, () => u), 1);
});
