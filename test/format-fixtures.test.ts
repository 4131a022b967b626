/**
 * The format fixtures and the independent float64 dequantizer agree with each other (before any product code is
 * tested against them): per quantized module the reference's weights reproduce the float64 sum / sum of squares /
 * entries the Python writer recorded, and the float64 reference Llama forward on those weights reproduces
 * Transformers' float64 logits. Two independent readings of one definition (numpy writer, TS reader) meeting here is
 * what makes the fixtures a reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listFormatFixtures, loadFormatFixture, referenceWeight } from './fixture-formats.ts';
import { values } from './reference/formats-ref.ts';
import { refConfigFromJson, refForward } from './reference/llama-ref.ts';

const names = listFormatFixtures();

test('format fixtures exist for every format and variant the issue names', () => {
  const need = ['awq-gemm-g128', 'awq-gemm-g64', 'awq-gemm-g32-sym', 'awq-gemv-g128', 'awq-gemv-g64', 'awq-gemv-g32',
    'bnb-nf4', 'bnb-nf4-dq-bf16', 'bnb-fp4', 'bnb-fp4-dq-storage-bf16', 'bnb-int8', 'aqlm-2x8', 'aqlm-1x16', 'aqlm-2x8-og2'];
  for (const n of need) assert.ok(names.includes(n), `missing fixture ${n}`);
});

for (const name of names) {
  test(`fixture ${name}: reference dequantizer = writer's float64 weights; reference forward = Transformers logits`, () => {
    const f = loadFormatFixture(name);
    const W = new Map<string, Float32Array>();
    for (const [k, t] of f.tensors) if (['F16', 'BF16', 'F32'].includes(t.dtype) && !f.quantized.some((m) => k.startsWith(`${m}.`) && !k.endsWith('.bias'))) W.set(k, Float32Array.from(values(t)));
    for (const m of f.quantized) {
      const w = referenceWeight(f, m), c = f.meta.dequantized[m];
      let sum = 0, sq = 0;
      for (const v of w) { sum += v; sq += v * v; }
      assert.ok(Math.abs(sum - c.sum) <= 1e-9 * Math.max(1, sq), `${m}: sum ${sum} vs ${c.sum}`);
      assert.ok(Math.abs(sq - c.sumsq) <= 1e-9 * sq, `${m}: sumsq ${sq} vs ${c.sumsq}`);
      for (const [i, v] of c.entries as [number, number][]) assert.ok(Math.abs(w[i]! - v) <= 1e-12 * Math.max(1, Math.abs(v)), `${m}[${i}]: ${w[i]} vs ${v}`);
      W.set(`${m}.weight`, Float32Array.from(w));
    }
    const logits = refForward(refConfigFromJson(f.config), (n) => W.get(n), f.ids);
    let d = 0;
    logits.forEach((row, s) => row.forEach((v, j) => { d = Math.max(d, Math.abs(v - f.logits[s * f.V + j]!)); }));
    assert.ok(d < 1e-5, `max |Δlogit| reference vs Transformers ${d}`);
  });
}
