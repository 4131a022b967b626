/**
 * hinvUpperInPlace (src/quant/hessian-inverse.ts) against the unblocked float64 AutoGPTQ-way reference refHinv
 * (test/reference/gptq-ref.ts: cholesky → cholesky_inverse → cholesky upper), on sizes and panel widths that exercise
 * the direct leaf, one level of panels, the recursion of diagonal blocks into smaller panels, and a short last
 * panel (n not a multiple of the panel, of odd width). Tolerances: float64 products 1e-9 relative to max|U|; float32 products 2e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hinvUpperInPlace } from '../src/quant/hessian-inverse.ts';
import { refHinv } from './reference/gptq-ref.ts';
import { randn } from './helpers.ts';

/** A well-conditioned SPD H = XᵀX/t + damp·I of n columns, as float64 rows and as a flat row-major array. */
function hessian(n: number, seed: number): number[][] {
  const t = n + 40, X = randn(t * n, seed);
  const H = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) {
    let s = 0;
    for (let k = 0; k < t; k++) s += X[k * n + i]! * X[k * n + j]!;
    H[i]![j] = H[j]![i] = s / t + (i === j ? 0.05 : 0);
  }
  return H;
}

// (301, 64) and (457, 200): a short last panel of odd width (45, 57), so the halves the triangular blocks are split
// into differ; 200 recurses into panels of 64 with a short one of 8
const CASES: [n: number, P: number][] = [[50, 64], [200, 48], [300, 128], [520, 256], [333, 512], [301, 64], [457, 200]];

for (const f64 of [true, false]) test(`hinvUpperInPlace matches the unblocked reference (${f64 ? 'float64' : 'float32'} products)`, async () => {
  for (const [n, P] of CASES) {
    const H = hessian(n, n), U = refHinv(H)!;
    const M = f64 ? new Float64Array(n * n) : new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j] = H[i]![j]!;
    const lower = M.filter((_, k) => k % n < Math.floor(k / n));
    assert.equal(await hinvUpperInPlace(M, n, P, f64), true, `n ${n} P ${P}: positive definite`);
    let maxU = 0, err = 0;
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) { maxU = Math.max(maxU, Math.abs(U[i]![j]!)); err = Math.max(err, Math.abs(M[i * n + j]! - U[i]![j]!)); }
    assert.ok(err <= (f64 ? 1e-9 : 2e-4) * maxU, `n ${n} P ${P}: max |U − ref| ${err} (max |U| ${maxU})`);
    assert.deepEqual(M.filter((_, k) => k % n < Math.floor(k / n)), lower, `n ${n} P ${P}: the strict lower triangle (H, kept for a damp retry) is untouched`);
  }
});

test('hinvUpperInPlace reports a matrix that is not positive definite, in a recursed block and in the direct leaf', async () => {
  for (const [n, P, bad] of [[300, 128, 290], [300, 128, 5], [40, 64, 20]] as const) {
    const H = hessian(n, 7), M = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j] = H[i]![j]!;
    M[bad * n + bad] = -1;
    assert.equal(await hinvUpperInPlace(M, n, P, true), false, `n ${n} P ${P}, H[${bad},${bad}] < 0`);
  }
});
