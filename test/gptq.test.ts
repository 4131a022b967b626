import { test } from 'node:test';
import assert from 'node:assert/strict';
import { factorPlan, gptqQuantize, type GptqConfig, type GptqOptions, type GptqResult, type HinvCache } from '../src/quant/gptq.ts';
import { dequantize, packLinear } from '../src/quant/pack.ts';
import { GptqError } from '../src/errors.ts';
import { f16ToF32, f32ToF16 } from '../src/tensor.ts';
import { gptqReference, type RefResult } from './reference/gptq-ref.ts';
import { randn } from './helpers.ts';
import { shared } from '../src/platform/workers.ts';

/** W [rows, cols] with a few outliers; H = 2/n·XᵀX from n tokens whose columns are correlated and unevenly scaled. */
function problem(rows: number, cols: number, ntok: number, seed: number, deadCols: number[] = []) {
  const z = randn(ntok * cols, seed), f = randn(ntok * 8, seed + 1);
  const X = new Float64Array(ntok * cols);
  for (let t = 0; t < ntok; t++) for (let j = 0; j < cols; j++) {
    const sc = deadCols.includes(j) ? 0 : 0.2 + (2 * ((j * 37) % 11)) / 11;
    X[t * cols + j] = sc * (z[t * cols + j]! + 0.7 * (j ? z[t * cols + j - 1]! : 0) + 0.9 * f[t * 8 + (j % 8)]!);
  }
  const H = new Float32Array(cols * cols);
  for (let a = 0; a < cols; a++) for (let b = 0; b <= a; b++) {
    let s = 0;
    for (let t = 0; t < ntok; t++) s += X[t * cols + a]! * X[t * cols + b]!;
    H[a * cols + b] = H[b * cols + a] = (2 / ntok) * s;
  }
  const W = randn(rows * cols, seed + 2, 0.05);
  for (let i = 0; i < 20; i++) W[(i * 7919) % W.length] = 0.4 * (i % 2 ? 1 : -1);
  return { W, H };
}

const base = { dampPercent: 0.01, blockSize: 128, mse: false, staticGroups: false };
type Case = GptqConfig & { name: string };
const CASES: Case[] = ([
  { name: '4b g-1 sym', bits: 4, groupSize: -1, descAct: false, sym: true },
  { name: '4b g32 asym', bits: 4, groupSize: 32, descAct: false, sym: false },
  { name: '4b g32 act-order sym', bits: 4, groupSize: 32, descAct: true, sym: true },
  { name: '4b g32 act-order static asym', bits: 4, groupSize: 32, descAct: true, sym: false, staticGroups: true },
  { name: '3b g32 act-order asym', bits: 3, groupSize: 32, descAct: true, sym: false },
  { name: '3b g-1 act-order sym', bits: 3, groupSize: -1, descAct: true, sym: true },
  { name: '3b g32 static sym', bits: 3, groupSize: 32, descAct: false, sym: true, staticGroups: true },
  { name: '4b g48 block64 act-order asym (groups straddle blocks)', bits: 4, groupSize: 48, descAct: true, sym: false, blockSize: 64 },
  { name: '2b g64 asym', bits: 2, groupSize: 64, descAct: false, sym: false },
  { name: '8b g128 act-order sym', bits: 8, groupSize: 128, descAct: true, sym: true },
] as (Partial<Case> & Pick<Case, 'name' | 'bits' | 'groupSize' | 'descAct' | 'sym'>)[]).map((c) => ({ ...base, ...c }));

const ROWS = 64, COLS = 256;
const P = problem(ROWS, COLS, 512, 7);
const refs = new Map<string, RefResult>();
const ref = (c: GptqConfig & { name: string }) => {
  let r = refs.get(c.name);
  if (!r) { r = gptqReference(P.W, P.H, ROWS, COLS, c); refs.set(c.name, r); }
  return r;
};

function compare(o: GptqResult, r: RefResult) {
  let same = 0;
  for (let i = 0; i < o.intCodes.length; i++) if (o.intCodes[i] === r.codes[i]) same++;
  return { same: same / o.intCodes.length, flips: o.intCodes.length - same, lossRel: Math.abs(o.loss - r.loss) / r.loss };
}

test('float64 precision matches the unblocked float64 reference (codes, loss, scales, zeros, g_idx)', async (t) => {
  const report: string[] = [];
  for (const c of CASES) {
    // factorLeaf 64 exercises the recursive Hessian-inverse factorization; subBlock 16 the two-level lazy batching.
    const o = await gptqQuantize(P.W, P.H, ROWS, COLS, c, { precision: 'f64', factorLeaf: 64 });
    const r = ref(c), m = compare(o, r);
    report.push(`${c.name}: codes ${(100 * m.same).toFixed(3)}% loss rel ${m.lossRel.toExponential(1)}`);
    assert.ok(m.same >= 0.999, `${c.name}: ${m.flips} codes differ`);
    assert.ok(m.lossRel <= 1e-6, `${c.name}: loss ${o.loss} vs ${r.loss}`);
    assert.deepEqual(o.gIdx, r.gIdx, c.name);
    assert.equal(o.scales.length, r.scales.length);
    for (let i = 0; i < r.scales.length; i++) {
      assert.ok(Math.abs(o.scales[i]! - r.scales[i]!) <= 1e-6 * r.scales[i]!, `${c.name}: scale ${i}`);
      assert.equal(o.zeros[i], r.zeros[i], `${c.name}: zero ${i}`);
    }
    for (let i = 0; i < r.Q.length; i += 97) assert.ok(Math.abs(o.Q[i]! - r.Q[i]!) <= 1e-6, `${c.name}: Q[${i}]`);
  }
  t.diagnostic(`f64 vs reference: ${report.join("; ")}`);
});

test('float32 (default, AutoGPTQ precision) agrees with the float64 reference up to float32 rounding', async (t) => {
  // float32 GEMMs occasionally flip a code sitting within ~1e-7 of a rounding boundary; GPTQ then propagates a
  // different error along that row, so a flip moves a few more codes of the row and the loss by up to ~1e-3.
  let same = 0, total = 0;
  const report: string[] = [];
  for (const c of CASES) {
    const o = await gptqQuantize(P.W, P.H, ROWS, COLS, c);
    const m = compare(o, ref(c));
    same += m.same * o.intCodes.length; total += o.intCodes.length;
    report.push(`${c.name}: ${m.flips} flips, loss rel ${m.lossRel.toExponential(1)}`);
    assert.ok(m.same >= 0.99, `${c.name}: ${m.flips} codes differ`);
    assert.ok(m.lossRel <= (m.flips ? 5e-3 : 1e-6), `${c.name}: loss rel ${m.lossRel} with ${m.flips} flips`);
  }
  t.diagnostic(`f32 vs reference: ${report.join("; ")}`);
  assert.ok(same / total >= 0.999, `only ${(100 * same / total).toFixed(3)}% of codes identical`);
});

test('act-order: columns in decreasing diag(H) order, g_idx[perm[j]] = j / groupSize; static groups keep g_idx = j / groupSize', async () => {
  const c = { ...base, bits: 4 as const, groupSize: 32, descAct: true, sym: true };
  const o = await gptqQuantize(P.W, P.H, ROWS, COLS, c);
  const perm = o.perm!;
  for (let j = 1; j < COLS; j++) assert.ok(P.H[perm[j - 1]! * (COLS + 1)]! >= P.H[perm[j]! * (COLS + 1)]!);
  for (let j = 0; j < COLS; j++) assert.equal(o.gIdx[perm[j]!], Math.floor(j / 32));
  assert.ok(o.gIdx.some((g, j) => g !== Math.floor(j / 32)), 'act-order g_idx is not the trivial one');
  const st = await gptqQuantize(P.W, P.H, ROWS, COLS, { ...c, staticGroups: true });
  assert.deepEqual(st.gIdx, Int32Array.from({ length: COLS }, (_, j) => Math.floor(j / 32)));
  // Q = scale[g_idx]·(code − zero[g_idx]); scales are fp16 values, so packing + dequantize gives Q back bit for bit.
  const packed = packLinear({ codes: o.intCodes, scales: o.scales, zeros: o.zeros, gIdx: o.gIdx, bits: 4, inFeatures: COLS, outFeatures: ROWS });
  const D = dequantize({ ...packed, bits: 4, inFeatures: COLS, outFeatures: ROWS });
  for (let r = 0; r < ROWS; r++) for (let j = 0; j < COLS; j++) {
    const g = o.gIdx[j]! * ROWS + r, code = o.intCodes[r * COLS + j]!;
    assert.equal(o.Q[r * COLS + j], Math.fround(o.scales[g]! * (code - o.zeros[g]!)));
    assert.equal(f16ToF32(packed.scales[g]!), o.scales[g]);
    assert.equal(D[r * COLS + j], o.Q[r * COLS + j]);
  }
  assert.equal(o.scales.length, (COLS / 32) * ROWS);
  assert.ok(o.zeros instanceof Int32Array);
});

test('the grid GPTQ quantizes to is the saved one: fp16 scales, v1 zero points ≥ 1 (rows of non-negative weights), gptq_v2 zero 0; = float64 reference', async () => {
  // W ≥ 0 (abs): every asym min-max zero point would be 0, which v1 qzeros (zero − 1) cannot store.
  const W = P.W.map(Math.abs);
  for (const bits of [2, 3, 4, 8] as const) for (const checkpointFormat of ['gptq', 'gptq_v2'] as const) {
    const c = { ...base, bits, groupSize: 32, descAct: bits === 3, sym: false, checkpointFormat };
    const o = await gptqQuantize(W, P.H, ROWS, COLS, c, { precision: 'f64' });
    const r = gptqReference(W, P.H, ROWS, COLS, c), maxq = 2 ** bits - 1, name = `${bits}-bit ${checkpointFormat}`;
    assert.deepEqual(o.intCodes, r.codes, name);
    assert.deepEqual(Array.from(o.zeros), Array.from(r.zeros), name);
    assert.deepEqual(Array.from(o.scales), Array.from(r.scales), name);
    for (let i = 0; i < o.scales.length; i++) assert.equal(f16ToF32(f32ToF16(o.scales[i]!)), o.scales[i], `${name}: scale ${i} is an fp16 value`);
    // v1: a min-max zero 0 becomes 1 (scale fp16(xmax / (maxq − 1))); v2 keeps 0. (Error feedback makes some later
    // columns negative, so not every group of |W| has min ≥ 0.)
    const zero0 = o.zeros.filter((z) => z === 0).length;
    if (checkpointFormat === 'gptq') assert.equal(zero0, 0, name);
    else assert.ok(zero0 >= o.zeros.length / 4, `${name}: ${zero0} of ${o.zeros.length} zero points are 0`);
    // The column loop quantized to exactly this grid: every w maps into [0, maxq] and Q = scale·(code − zero).
    assert.ok(o.intCodes.every((q) => q <= maxq));
    const D = dequantize({ ...packLinear({ codes: o.intCodes, scales: o.scales, zeros: o.zeros, gIdx: o.gIdx, bits, inFeatures: COLS, outFeatures: ROWS, format: checkpointFormat }), bits, inFeatures: COLS, outFeatures: ROWS, format: checkpointFormat });
    assert.deepEqual(D, o.Q, `${name}: dequantized(saved) == Q`);
  }
  // The v1 grid loses one level on such rows; its loss is higher than v2's but stays close (4-bit: ≤ 20%).
  const l = await Promise.all((['gptq', 'gptq_v2'] as const).map((f) => gptqQuantize(W, P.H, ROWS, COLS, { ...base, bits: 4, groupSize: 32, descAct: false, sym: false, checkpointFormat: f })));
  assert.ok(l[0]!.loss > l[1]!.loss && l[0]!.loss < 1.2 * l[1]!.loss, `v1 loss ${l[0]!.loss}, v2 loss ${l[1]!.loss}`);
});

test('dead columns (diag(H) = 0) are zeroed and quantized to their zero point', async () => {
  const dead = [3, 100, 255];
  const { W, H } = problem(32, 128, 256, 21, dead);
  for (const descAct of [false, true]) {
    const c = { ...base, bits: 4 as const, groupSize: 32, descAct, sym: false };
    const o = await gptqQuantize(W, H, 32, 128, c, { precision: 'f64' });
    const r = gptqReference(W, H, 32, 128, c);
    assert.deepEqual(o.intCodes, r.codes);
    for (let row = 0; row < 32; row++) for (const j of dead.filter((d) => d < 128)) {
      assert.equal(o.Q[row * 128 + j], 0);
      assert.equal(o.intCodes[row * 128 + j], o.zeros[o.gIdx[j]! * 32 + row]);
    }
  }
});

test('non-PD Hessian: damp is raised by dampAutoIncrement until Cholesky succeeds (GPTQModel), else a GptqError', async () => {
  const cols = 64, { W, H } = problem(16, cols, 8, 5); // rank ≤ 8
  let mean = 0;
  for (let j = 0; j < cols; j++) mean += H[j * (cols + 1)]!;
  mean /= cols;
  for (let j = 0; j < cols; j++) H[j * (cols + 1)] = H[j * (cols + 1)]! - 0.004 * mean; // eigenvalues down to −0.004·mean
  const logs: string[] = [];
  const c = { ...base, bits: 4 as const, groupSize: 32, descAct: false, sym: true, dampPercent: 0.001, dampAutoIncrement: 0.0025 };
  const o = await gptqQuantize(W, H, 16, cols, c, { onLog: (m) => logs.push(m) });
  assert.ok(Math.abs(o.dampUsed - 0.006) < 1e-12, `dampUsed ${o.dampUsed}`);
  assert.equal(logs.length, 2);
  assert.match(logs[0]!, /damp_percent=0\.00100 .*not positive definite, retrying with 0\.00350/);
  assert.ok(Number.isFinite(o.loss));
  await assert.rejects(gptqQuantize(W, H, 16, cols, { ...c, dampAutoIncrement: 0 }), (e: unknown) => e instanceof GptqError && /not positive definite with damp_percent=0\.00100/.test(e.message));
});

test('mse grid search and input validation', async () => {
  const c = { ...base, bits: 3 as const, groupSize: 64, descAct: false, sym: false };
  const { W, H } = problem(16, 128, 256, 3);
  const plain = await gptqQuantize(W, H, 16, 128, c);
  const mse = await gptqQuantize(W, H, 16, 128, { ...c, mse: true });
  assert.ok(Number.isFinite(mse.loss) && mse.intCodes.every((q) => q <= 7));
  assert.notDeepEqual(mse.scales, plain.scales);
  await assert.rejects(gptqQuantize(W, H, 16, 127, c), /W has 2048 elements, expected 16x127/);
  await assert.rejects(gptqQuantize(W, H.subarray(1), 16, 128, c), /H has/);
  await assert.rejects(gptqQuantize(W, H, 16, 128, { ...c, groupSize: 0 }), GptqError);
  // also where the factorization plan (panels of lcm(blockSize, groupSize)) is worked out before the checks
  for (const blockSize of [NaN, Infinity, 0]) await assert.rejects(gptqQuantize(W, H, 16, 128, { ...c, blockSize }, { factorLeaf: 16 }), /blockSize must be a positive integer/);
  await assert.rejects(gptqQuantize(W, H, 16, 128, { ...c, groupSize: Infinity }, { factorLeaf: 16 }), /groupSize must be -1 or > 0/);
  const bad = H.slice(); bad[5] = NaN;
  await assert.rejects(gptqQuantize(W, bad, 16, 128, c), /non-finite entry at \[0, 5\]/);
});

test('consumeHessian (H overwritten in place, act-order permuted in place, damp retries restored from the lower triangle) = the copying path', async () => {
  const cols = 160, { W, H } = problem(24, cols, 8, 11); // rank ≤ 8: needs damp retries
  let mean = 0;
  for (let j = 0; j < cols; j++) mean += H[j * (cols + 1)]!;
  for (let j = 0; j < cols; j++) H[j * (cols + 1)] = H[j * (cols + 1)]! - (0.004 * mean) / cols;
  for (const descAct of [false, true]) {
    const c = { ...base, bits: 4 as const, groupSize: 32, descAct, sym: false, dampPercent: 0.001, dampAutoIncrement: 0.0025 };
    const logsA: string[] = [], logsB: string[] = [];
    const a = await gptqQuantize(W, H, 24, cols, c, { factorLeaf: 32, onLog: (m) => logsA.push(m) });
    const Hc = H.slice();
    const b = await gptqQuantize(W, Hc, 24, cols, c, { factorLeaf: 32, consumeHessian: true, onLog: (m) => logsB.push(m) });
    assert.ok(logsA.length >= 1, 'the problem needs at least one damp retry');
    assert.deepEqual(logsB, logsA);
    assert.equal(b.dampUsed, a.dampUsed);
    assert.deepEqual(b.intCodes, a.intCodes, `descAct ${descAct}: codes`);
    assert.deepEqual(b.scales, a.scales);
    assert.equal(b.loss, a.loss);
    assert.notDeepEqual(Hc, H, 'H was consumed (its buffer now holds the factor)');
  }
});

test('worker threads: the solve split into row slices gives the in-thread codes, scales, zeros and loss', async () => {
  // 3 slices of a 300-row linear (uneven bounds 0/100/200/300), for the paths that carry per-row state into the
  // slices: dynamic groups straddling blocks, static groups under act-order, g −1, dead columns, MSE weighted by
  // diag(H), AutoGPTQ's float32 arithmetic, float64 products.
  const rows = 300, cols = 160, { W, H } = problem(rows, cols, 256, 21, [5, 77]);
  const variants: [string, GptqConfig, GptqOptions][] = [
    ['4b g48 block64 act-order asym', { ...base, bits: 4, groupSize: 48, descAct: true, sym: false, blockSize: 64 }, {}],
    ['3b g32 act-order static', { ...base, bits: 3, groupSize: 32, descAct: true, sym: true, staticGroups: true }, {}],
    ['4b g-1, float32 arithmetic', { ...base, bits: 4, groupSize: -1, descAct: false, sym: true, arithmetic: 'float32' }, {}],
    ['2b g32 asym mse hessian-weighted, f64 products', { ...base, bits: 2, groupSize: 32, descAct: false, sym: false, mse: true, mseWeighting: 'hessian' }, { precision: 'f64' }],
    ['4b g32 act-order asym, Hinv panel form (5 panels of 32)', { ...base, bits: 4, groupSize: 32, descAct: true, sym: false, blockSize: 32 }, { factorLeaf: 32 }],
  ];
  // W in shared memory (as the layer loop reads it): the workers read their rows in place, and must leave them as
  // they are
  const Ws = shared(W);
  for (const [name, cfg, o] of variants) {
    const one = await gptqQuantize(W, H, rows, cols, cfg, { ...o, workers: 1 });
    for (const [how, Wi] of [['copied rows', W], ['shared W', Ws]] as const) {
      const three = await gptqQuantize(Wi, H, rows, cols, cfg, { ...o, workers: 3 });
      assert.deepEqual(three.intCodes, one.intCodes, `${name}, ${how}: codes`);
      assert.deepEqual(three.scales, one.scales, `${name}, ${how}: scales`);
      assert.deepEqual(three.zeros, one.zeros, `${name}, ${how}: zeros`);
      assert.deepEqual(three.gIdx, one.gIdx, `${name}, ${how}: g_idx`);
      assert.ok(Math.abs(three.loss - one.loss) <= 1e-12 * one.loss, `${name}, ${how}: loss ${three.loss} vs ${one.loss}`);
    }
    assert.deepEqual(Ws, W, `${name}: the shared W is unchanged`);
  }
});

test('Hinv panel form (no U pass): the full form\'s GPTQ result; panels are block and group boundaries', async (t) => {
  // 4 panels of 128 + a short one (n = 576) vs one 576-wide panel (the full Hinv): the same GPTQ in exact arithmetic
  // (hessian-inverse.ts hinvFactorInPlace, gptq.ts solveRows). float64 products: identical codes, loss to 1e-12;
  // float32: a code may flip at a rounding boundary (then loss within 1e-3, as against the reference above).
  const rows = 48, cols = 576, { W, H } = problem(rows, cols, 600, 41, [3, 200]);
  const report: string[] = [];
  const cases: GptqConfig[] = [
    { ...base, bits: 4, groupSize: 32, descAct: false, sym: false },
    { ...base, bits: 3, groupSize: 64, descAct: true, sym: true },
    { ...base, bits: 4, groupSize: 96, descAct: false, sym: true }, // lcm(128, 96) = 384 > 2·128: full form
    { ...base, bits: 4, groupSize: 48, descAct: true, sym: false, blockSize: 32 }, // lcm 96: 6 panels of 96 (groups straddle blocks)
    { ...base, bits: 2, groupSize: -1, descAct: true, sym: false, blockSize: 64 },
    { ...base, bits: 4, groupSize: 32, descAct: true, sym: false, staticGroups: true, mse: true },
  ];
  for (const cfg of cases) {
    const plan = factorPlan(cols, cfg, { factorLeaf: 128 }), name = `${cfg.bits}b g${cfg.groupSize} block ${cfg.blockSize}${cfg.descAct ? ' act-order' : ''}${cfg.staticGroups ? ' static' : ''}`;
    const L = cfg.groupSize > 0 && !cfg.staticGroups ? lcm(cfg.blockSize, cfg.groupSize) : cfg.blockSize;
    assert.equal(plan.panelForm, L <= 256, `${name}: panel form iff lcm ${L} ≤ 2·128 (and ≥ 4 panels)`);
    if (plan.panelForm) assert.ok(plan.P % L === 0 && 4 * plan.P <= cols, `${name}: panel ${plan.P} a multiple of ${L}, ≥ 4 panels`);
    for (const precision of ['f64', 'f32'] as const) {
      const full = await gptqQuantize(W, H, rows, cols, cfg, { precision, factorLeaf: 4096 });
      const panels = await gptqQuantize(W, H, rows, cols, cfg, { precision, factorLeaf: 128 });
      let flips = 0;
      for (let i = 0; i < full.intCodes.length; i++) if (full.intCodes[i] !== panels.intCodes[i]) flips++;
      const rel = Math.abs(panels.loss - full.loss) / full.loss;
      report.push(`${name} ${precision}: ${flips} flips, loss rel ${rel.toExponential(1)}`);
      if (precision === 'f64') {
        if (cfg === cases[0]) { // and against the independent unblocked float64 reference
          const m = compare(panels, gptqReference(W, H, rows, cols, cfg));
          assert.ok(m.same >= 0.999 && m.lossRel <= 1e-6, `${name} f64 vs reference: ${m.flips} flips, loss rel ${m.lossRel}`);
        }
        assert.equal(flips, 0, `${name} f64: codes`);
        assert.deepEqual(panels.scales, full.scales, `${name} f64: scales`);
        assert.ok(rel <= 1e-12, `${name} f64: loss ${panels.loss} vs ${full.loss}`);
      } else {
        assert.ok(flips <= 0.01 * full.intCodes.length && rel <= (flips ? 1e-3 : 1e-6), `${name} f32: ${flips} flips, loss rel ${rel}`);
      }
    }
  }
  const plan = (groupSize: number, arithmetic?: 'float32') => factorPlan(4096, { blockSize: 128, groupSize, staticGroups: false, arithmetic });
  assert.deepEqual(plan(128), { P: 1024, panelForm: true });
  assert.deepEqual(plan(128, 'float32'), { P: 1024, panelForm: false }, "arithmetic 'float32': AutoGPTQ's full Hinv");
  assert.deepEqual(plan(1000), { P: 1024, panelForm: false });
  assert.deepEqual(factorPlan(2048, { blockSize: 128, groupSize: 128, staticGroups: false }), { P: 1024, panelForm: false }, 'fewer than 4 panels');
  assert.deepEqual(factorPlan(8192, { blockSize: 128, groupSize: 2048, staticGroups: false }), { P: 2048, panelForm: true });
  t.diagnostic(report.join('; '));
});

const lcm = (a: number, b: number): number => { let x = a, y = b; while (y) [x, y] = [y, x % y]; return (a / x) * b; };

test('hinvCache: linears sharing H take the first one\'s Hessian inverse and get what they would compute alone', async () => {
  const rows = 40, cols = 96, { W, H } = problem(rows, cols, 200, 31, [9]);
  const W2 = randn(rows * cols, 32, 0.05);
  // the second config factorizes in panels of 16 (Hinv's panel form: the cache keeps its panel starts too)
  for (const [cfg, o] of [[{ ...base, bits: 4, groupSize: 32, descAct: true, sym: false }, {}], [{ ...base, bits: 3, groupSize: -1, descAct: false, sym: true, blockSize: 16 }, { factorLeaf: 16 }]] as [GptqConfig, GptqOptions][]) {
    const alone = await gptqQuantize(W2, H, rows, cols, cfg, o);
    const cache: HinvCache = {}, Hc = H.slice();
    await gptqQuantize(W, Hc, rows, cols, cfg, { ...o, hinvCache: cache });
    const U1 = cache.U;
    assert.equal(cache.panels?.length ?? 1, o.factorLeaf ? 6 : 1, 'panel starts cached');
    const second = await gptqQuantize(W2, Hc, rows, cols, cfg, { ...o, hinvCache: cache, consumeHessian: true });
    assert.ok(U1 && cache.U === U1, 'the second linear took the cached Hinv');
    assert.deepEqual(second.intCodes, alone.intCodes);
    assert.deepEqual(second.scales, alone.scales);
    assert.equal(second.loss, alone.loss);
    // the same H with another setting that shapes Hinv: computed anew, not taken from the cache
    const damp2 = await gptqQuantize(W2, Hc, rows, cols, { ...cfg, dampPercent: 0.05 }, { ...o, hinvCache: cache });
    assert.notEqual(cache.U, U1);
    assert.deepEqual(damp2.intCodes, (await gptqQuantize(W2, H, rows, cols, { ...cfg, dampPercent: 0.05 }, o)).intCodes);
    // the call that fills the cache consumes H (its buffer becomes the factor): the next one still gets H's own
    // diagonal (dead column 9, act-order), not the factor's
    const cache2: HinvCache = {}, Hc2 = H.slice();
    await gptqQuantize(W, Hc2, rows, cols, cfg, { ...o, hinvCache: cache2, consumeHessian: true });
    const after = await gptqQuantize(W2, Hc2, rows, cols, cfg, { ...o, hinvCache: cache2 });
    assert.deepEqual(after.intCodes, alone.intCodes, 'codes after a consuming first call');
    assert.deepEqual(after.perm, alone.perm, 'act-order permutation after a consuming first call');
    assert.equal(after.loss, alone.loss);
  }
});
