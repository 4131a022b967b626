import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findParams, gridStorage, quantize, quantizeCode, roundHalfEven } from '../src/quant/quantizer.ts';
import { f16ToF32, f32ToF16 } from '../src/tensor.ts';
import { DEFAULT_QUANTIZE_CONFIG, fromQuantizeConfigJson, resolveQuantizeConfig, toQuantizeConfigJson } from '../src/quant/quantize-config.ts';
import { GptqError } from '../src/errors.ts';
import { randn } from './helpers.ts';

const f32 = Math.fround;

test('roundHalfEven is torch.round (ties to even)', () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [7.5, 8],
    [0.49999999999999994, 0], [-0.49999999999999994, 0], [2.4999999999999996, 2], [1.2, 1], [-1.7, -2], [1e6 + 0.5, 1e6]];
  for (const [x, want] of cases) assert.equal(roundHalfEven(x) + 0, want, `round(${x})`);
});

test('findParams: AutoGPTQ min/max rule, asym and sym', () => {
  const x = new Float32Array([-1, 0.5, 2, 0, /* row 2 */ 0.25, 0.5, 1, 3]);
  const a = findParams(x, 2, 4, { bits: 4, sym: false });
  // row 0: xmin −1, xmax 2 → scale 3/15, zero round(1/0.2) = 5; row 1: xmin 0 (min(0, .)), xmax 3 → zero 0.
  assert.deepEqual([...a.scale], [f32(f32(3) / 15), f32(f32(3) / 15)]);
  assert.deepEqual([...a.zero], [5, 0]);
  assert.equal(a.maxq, 15);
  const s = findParams(x, 2, 4, { bits: 4, sym: true });
  // sym: xmax = max(|xmin|, xmax) = 2, xmin = −2 → scale 4/15; row 1 has xmin = 0 so stays [0, 3] (AutoGPTQ quirk).
  assert.deepEqual([...s.scale], [f32(4 / 15), f32(3 / 15)]);
  assert.deepEqual([...s.zero], [8, 8]);
  const z = findParams(new Float32Array(4), 1, 4, { bits: 3, sym: false });
  assert.equal(z.scale[0], f32(2 / 7)); // all-zero row → [−1, 1]
  assert.equal(z.zero[0], 3); // float32: 1/f32(2/7) = 3.4999998 → 3, as torch computes it
});

test('findParams with storage: fp16 scales, zero points the format holds (v1 ≥ 1), tiny and huge ranges', () => {
  const h = (v: number) => f16ToF32(f32ToF16(v));
  const x = new Float32Array([-1, 0.5, 2, 0, /* row 1: all ≥ 0 */ 0.25, 0.5, 1, 3, /* row 2: min −0.09 < half a step */ -0.09, 1, 2, 3]);
  const v1 = findParams(x, 3, 4, { bits: 4, sym: false, storage: gridStorage('gptq') });
  const v2 = findParams(x, 3, 4, { bits: 4, sym: false, storage: gridStorage('gptq_v2') });
  // row 0: scale fp16(3/15) = 0.199951171875, zero round(1/0.19995) = 5 in both formats
  assert.deepEqual([v1.scale[0], v1.zero[0], v2.scale[0], v2.zero[0]], [h(f32(3) / 15), 5, h(f32(3) / 15), 5]);
  assert.equal(v1.scale[0], 0.199951171875);
  // row 1: v2 keeps zero 0 (scale fp16(3/15)); v1 cannot store 0: zero 1, scale fp16(3/14) so code 15 still reaches 3.
  assert.deepEqual([v2.scale[1], v2.zero[1]], [h(f32(3) / 15), 0]);
  assert.deepEqual([v1.scale[1], v1.zero[1]], [h(f32(3) / 14), 1]);
  assert.ok(quantize(3, v1.scale[1]!, 1, 15) >= 2.999 && quantize(0, v1.scale[1]!, 1, 15) === 0);
  // row 2: round(0.09 / (3.09/15)) = round(0.437) = 0 → v1 zero 1 with scale 3/14; −0.09 is inside [−scale, 14·scale].
  assert.deepEqual([v1.zero[2], v1.scale[2], v2.zero[2]], [1, h(f32(3) / 14), 0]);
  assert.ok(-v1.scale[2]! <= -0.09);
  // sym is untouched by the v1 rule (zero 2^(bits−1)); scales still fp16.
  const s = findParams(x, 3, 4, { bits: 3, sym: true, storage: gridStorage('gptq') });
  assert.deepEqual([...s.zero], [4, 4, 4]);
  assert.deepEqual([...s.scale], [h(f32(4) / 7), h(f32(3) / 7), h(f32(6) / 7)]); // row 2: min < 0 → [−3, 3]
  // mse: every candidate grid is constrained too.
  const m = findParams(randn(64, 5).map(Math.abs), 1, 64, { bits: 2, sym: false, mse: true, storage: gridStorage('gptq') });
  assert.ok(m.zero[0]! >= 1 && h(m.scale[0]!) === m.scale[0]);
  // A range whose scale underflows fp16 gets the smallest fp16 subnormal; one that overflows it is refused.
  const tiny = findParams(new Float32Array([1e-9, 2e-9]), 1, 2, { bits: 4, sym: true, storage: gridStorage('gptq') });
  assert.equal(tiny.scale[0], 2 ** -24);
  assert.throws(() => findParams(new Float32Array([-1e6, 1e6]), 1, 2, { bits: 4, sym: false, storage: gridStorage('gptq') }),
    (e: unknown) => e instanceof GptqError && /spanning \[-1000000, 1000000\] needs scale 133333\.\d+, above float16's largest value 65504/.test(e.message));
});

test('findParams: strided layouts and perchannel=false', () => {
  const rows = 5, cols = 7, x = randn(rows * cols, 3);
  const t = new Float32Array(rows * cols); // transposed copy [cols, rows]
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c]!;
  const a = findParams(x, rows, cols, { bits: 4, sym: false });
  const b = findParams(t, rows, cols, { bits: 4, sym: false }, { rowStride: 1, colStride: rows });
  assert.deepEqual(a, b);
  const sub = findParams(x, rows, 3, { bits: 4, sym: true }, { offset: 2, rowStride: cols }); // columns 2..4 of the row-major matrix
  const ref = findParams(Float32Array.from({ length: rows * 3 }, (_, i) => x[Math.floor(i / 3) * cols + 2 + (i % 3)]!), rows, 3, { bits: 4, sym: true });
  assert.deepEqual(sub, ref);
  // rows 0..3 go through the four-row loop, row 4 through the tail: each row's params equal that row alone (the tail
  // path), in both layouts; a NaN is skipped by the min/max as a lone row's is
  const xn = x.slice();
  xn[1 * cols + 3] = NaN; xn[4 * cols + 5] = NaN;
  const tn = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tn[c * rows + r] = xn[r * cols + c]!;
  for (const [name, all] of [['row-major', findParams(xn, rows, cols, { bits: 4, sym: false })], ['transposed', findParams(tn, rows, cols, { bits: 4, sym: false }, { rowStride: 1, colStride: rows })]] as const) {
    for (let r = 0; r < rows; r++) {
      const one = findParams(xn.subarray(r * cols, (r + 1) * cols), 1, cols, { bits: 4, sym: false });
      assert.equal(all.scale[r], one.scale[0], `${name} row ${r}: scale`);
      assert.equal(all.zero[r], one.zero[0], `${name} row ${r}: zero`);
    }
  }
  const g = findParams(x, rows, cols, { bits: 4, sym: false, perchannel: false });
  const whole = findParams(x, 1, rows * cols, { bits: 4, sym: false });
  assert.ok(g.scale.every((v) => v === whole.scale[0]) && g.zero.every((v) => v === whole.zero[0]));
});

test('quantize = scale·(clamp(round(x/scale) + zero, 0, maxq) − zero)', () => {
  assert.equal(quantizeCode(0.75, 0.5, 5, 15), 7); // round(1.5) = 2 → 7
  assert.equal(quantizeCode(1.25, 0.5, 5, 15), 7); // round(2.5) = 2 → 7
  assert.equal(quantizeCode(-0.75, 0.5, 5, 15), 3); // round(−1.5) = −2 → 3
  assert.equal(quantizeCode(100, 0.5, 5, 15), 15);
  assert.equal(quantizeCode(-100, 0.5, 5, 15), 0);
  assert.equal(quantize(0.75, 0.5, 5, 15), 1);
  assert.equal(quantize(-100, 0.5, 5, 15), -2.5);
});

test('findParams mse: the grid point with the smallest Σ|q(x)−x|^2.4 (AutoGPTQ grid 100, maxshrink 0.8)', () => {
  const cols = 64, x = randn(3 * cols, 11, 0.1);
  x[5] = 1.5; x[cols + 9] = -2; // outliers make shrinking pay
  let shrunk = 0;
  for (const sym of [false, true]) {
    const got = findParams(x, 3, cols, { bits: 3, sym, mse: true });
    const plain = findParams(x, 3, cols, { bits: 3, sym });
    for (let r = 0; r < 3; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const err = (s: number, z: number) => row.reduce((a, v) => a + Math.abs(quantize(v, s, z, 7) - v) ** 2.4, 0);
      let xmin = Math.min(0, ...row.map(f32)), xmax = Math.max(0, ...row.map(f32));
      if (sym) { xmax = Math.max(-xmin, xmax); if (xmin < 0) xmin = -xmax; }
      let best = Infinity, bs = 0, bz = 0;
      for (let i = 0; i < 80; i++) {
        const p = f32(1 - i / 100), lo = f32(p * xmin), hi = f32(p * xmax), s = f32(f32(hi - lo) / 7);
        const z = sym ? 4 : roundHalfEven(f32(-lo / s)), e = err(s, z);
        if (e < best) { best = e; bs = s; bz = z; }
      }
      assert.equal(got.scale[r], bs, `row ${r} sym=${sym}`);
      assert.equal(got.zero[r], bz);
      assert.ok(err(got.scale[r]!, got.zero[r]!) <= err(plain.scale[r]!, plain.zero[r]!));
      if (got.scale[r]! < plain.scale[r]!) shrunk++;
    }
  }
  assert.ok(shrunk >= 3, `grid search shrank ${shrunk} of 6 rows`);
});

test('config: defaults, validation errors are one-line GptqErrors', () => {
  const c = resolveQuantizeConfig();
  assert.deepEqual({ bits: c.bits, g: c.groupSize, damp: c.dampPercent, act: c.descAct, st: c.staticGroups, sym: c.sym, ts: c.trueSequential, bs: c.blockSize },
    { bits: 4, g: 128, damp: 0.01, act: false, st: false, sym: true, ts: true, bs: 128 });
  assert.equal(c.mse, false);
  assert.equal(c.checkpointFormat, 'gptq');
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ bits: 5 }, /bits must be 2, 3, 4 or 8/], [{ groupSize: 0 }, /groupSize/], [{ groupSize: -2 }, /groupSize/],
    [{ dampPercent: 0 }, /dampPercent/], [{ dampPercent: 1 }, /dampPercent/], [{ blockSize: 0 }, /blockSize/],
    [{ staticGroups: true, groupSize: -1 }, /staticGroups needs groupSize > 0/], [{ sym: 'yes' }, /sym must be a boolean/],
    [{ group_size: 32 }, /unknown option 'group_size' \(did you mean 'groupSize'\?\)/], [{ checkpointFormat: 'marlin' }, /checkpointFormat/],
  ];
  for (const [p, re] of bad) {
    assert.throws(() => resolveQuantizeConfig(p as never), (e: unknown) => e instanceof GptqError && re.test(e.message) && !e.message.includes('\n'), JSON.stringify(p));
  }
  assert.equal(DEFAULT_QUANTIZE_CONFIG.bits, 4);
});

test('config: quantize_config.json round trip and foreign spellings', () => {
  const c = resolveQuantizeConfig({ bits: 3, groupSize: 64, descAct: true, dampPercent: 0.05, modelNameOrPath: 'x/y', modelFileBaseName: 'model' });
  const j = toQuantizeConfigJson(c);
  assert.deepEqual(j, { bits: 3, group_size: 64, damp_percent: 0.05, desc_act: true, static_groups: false, sym: true, true_sequential: true,
    model_name_or_path: 'x/y', model_file_base_name: 'model', quant_method: 'gptq', checkpoint_format: 'gptq' });
  const back = fromQuantizeConfigJson(JSON.parse(JSON.stringify(j)));
  assert.deepEqual({ ...back, dampAutoIncrement: c.dampAutoIncrement }, c);
  // AutoGPTQ dataclass defaults for missing keys.
  const minimal = fromQuantizeConfigJson({ bits: 4 });
  assert.equal(minimal.groupSize, -1);
  assert.equal(minimal.descAct, true);
  // transformers config.json with quantization_config (exllama knobs ignored), GPTQModel v2 + its float mse / lm_head.
  const hf = fromQuantizeConfigJson({ model_type: 'llama', quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: false, sym: true, damp_percent: 0.1, use_exllama: true, exllama_config: { version: 1 }, true_sequential: true } });
  assert.equal(hf.groupSize, 128);
  assert.equal(hf.dampPercent, 0.1);
  const v2 = fromQuantizeConfigJson({ bits: 4, group_size: 32, format: 'gptq_v2', quant_method: 'gptq', lm_head: true, mse: 0.0, damp_auto_increment: 0.0015, meta: { quantizer: ['gptqmodel:1.0'] } });
  assert.equal(v2.checkpointFormat, 'gptq_v2');
  assert.equal(v2.lmHead, true);
  assert.equal(v2.mse, false);
  assert.equal(v2.dampAutoIncrement, 0.0015);
  assert.equal(fromQuantizeConfigJson({ w_bit: 8, q_group_size: 64, CHECKPOINT_FORMAT: 'GPTQ' }).bits, 8);
  for (const [o, re] of [[{ quant_method: 'awq' }, /quant_method 'awq'/], [{ checkpoint_format: 'marlin' }, /'marlin' is not supported/],
    [{ is_marlin_format: true }, /marlin/], [{ bits: 5 }, /bits must be/], [{ group_size: 'big' }, /group_size must be a number/], [[1], /expected an object/]] as const) {
    assert.throws(() => fromQuantizeConfigJson(o), (e: unknown) => e instanceof GptqError && re.test(e.message), JSON.stringify(o));
  }
});
