/**
 * quantizeConfig `arithmetic: 'float32'` reproduces AutoGPTQ's torch arithmetic on real weights
 * (test/fixtures/quant/autogptq_quantizer.json, made by scripts/fixtures/make_quantizer_fixtures.py with torch from
 * AutoGPTQ's Quantizer.find_params/quantize, GPTQ.add_batch/fasterquant and QuantLinear.pack, on stories260K layers
 * and the Hessians of their real inputs):
 * - RTN: codes, float32 scales (saved: their fp16 values) and zero points identical, every case (incl. MSE search).
 * - GPTQ: codes identical except where the float32 GEMM summation order (ORT MLAS vs torch) decides a rounding; the
 *   measured count is asserted (≤ 2 codes per case, stated below).
 * - The default ('float64' on fp16-stored scales) differs from AutoGPTQ on the extreme weights of symmetric groups
 *   (the tie ±(maxq+1)/2 − ½): that difference is counted, so the mode switch is known to matter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { gptqQuantize } from '../src/quant/gptq.ts';
import { resolveQuantizeConfig, type Bits } from '../src/quant/quantize-config.ts';
import { rtnQuantize } from '../src/quant/rtn.ts';
import { packModule } from '../src/quant/module-tensors.ts';
import { f16ToF32, f32ToF16 } from '../src/tensor.ts';
import { GptqError } from '../src/errors.ts';
import { ROOT } from './helpers.ts';

interface RtnCase { tensor: string; shape: [number, number]; bits: Bits; groupSize: number; sym: boolean; mse: boolean; codes: string; scales: string; zeros: number[] }
interface GptqCase extends Omit<RtnCase, 'tensor' | 'mse'> { module: string; blockSize: number; descAct: boolean; staticGroups: boolean; dampPercent: number; gIdx: number[]; packCodesDiffer: number }
const FIX = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'quant', 'autogptq_quantizer.json'), 'utf8')) as
  { rtn: RtnCase[]; gptq: GptqCase[]; hessians: Record<string, { cols: number; data: string }> };

const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const f32s = (b64: string) => { const b = bytes(b64); return new Float32Array(b.buffer, b.byteOffset, b.length / 4).slice(); };
const half = (a: Float32Array) => a.map((s) => { const h = f16ToF32(f32ToF16(s)); return h === 0 ? 2 ** -24 : h; });
const diff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let n = 0; for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++; return n; };

const weights = new Map<string, Float32Array>();
async function weight(name: string): Promise<Float32Array> {
  if (!weights.has(name)) {
    const f = await SafetensorsFile.open(join(ROOT, 'assets', 'stories260K', 'model.safetensors'));
    try { weights.set(name, await f.readFloat32(name)); } finally { await f.dispose(); }
  }
  return weights.get(name)!;
}

test('RTN, arithmetic float32: AutoGPTQ Quantizer codes, scales and zero points bit for bit on stories260K weights', async () => {
  let extremes = 0;
  for (const c of FIX.rtn) {
    const [rows, cols] = c.shape, W = await weight(c.tensor);
    const what = `${c.tensor} ${c.bits}-bit g${c.groupSize} sym=${c.sym} mse=${c.mse}`;
    // v2 grid: AutoGPTQ's own (unconstrained) zero points; the v1 limit zero ≥ 1 is checked below.
    const cfg = { bits: c.bits, groupSize: c.groupSize, sym: c.sym, mse: c.mse, checkpointFormat: 'gptq_v2' as const };
    const r = rtnQuantize(W, rows, cols, { ...cfg, arithmetic: 'float32' });
    assert.equal(diff(r.intCodes, bytes(c.codes)), 0, `${what}: codes`);
    assert.deepEqual(r.scales, half(f32s(c.scales)), `${what}: scales = fp16(AutoGPTQ's float32 scales)`);
    assert.deepEqual([...r.zeros], c.zeros, `${what}: zeros`);
    // Q is what the checkpoint dequantizes to.
    for (let i = 0; i < 64; i++) {
      const j = i * 37 % cols, g = Math.floor(j / (c.groupSize > 0 ? c.groupSize : cols)) * rows + (i % rows);
      assert.equal(r.Q[(i % rows) * cols + j], Math.fround(r.scales[g]! * (r.intCodes[(i % rows) * cols + j]! - r.zeros[g]!)));
    }
    if (c.sym && !c.mse) extremes += diff(rtnQuantize(W, rows, cols, cfg).intCodes, bytes(c.codes));
  }
  // The default rounds on the fp16 scale in float64: it differs from AutoGPTQ (extreme weights of the groups).
  assert.ok(extremes > 100, `default arithmetic differs from AutoGPTQ in ${extremes} codes`);
});

test('RTN, arithmetic float32, v1 grid: AutoGPTQ except the groups whose zero point 0 a v1 checkpoint cannot store', async () => {
  for (const c of FIX.rtn.filter((x) => !x.sym)) {
    const [rows, cols] = c.shape, W = await weight(c.tensor);
    const r = rtnQuantize(W, rows, cols, { bits: c.bits, groupSize: c.groupSize, sym: false, mse: c.mse, arithmetic: 'float32' });
    const ref = bytes(c.codes), gs = c.groupSize > 0 ? c.groupSize : cols;
    for (let i = 0; i < ref.length; i++) {
      const g = Math.floor((i % cols) / gs) * rows + Math.floor(i / cols);
      if (c.zeros[g] !== 0) assert.equal(r.intCodes[i], ref[i], `${c.tensor} code ${i}`);
      else assert.equal(r.zeros[g], 1, 'v1: zero point raised to 1');
    }
  }
});

test('GPTQ, arithmetic float32: AutoGPTQ fasterquant codes on real stories260K Hessians', async () => {
  const report: string[] = [];
  for (const c of FIX.gptq) {
    const [rows, cols] = c.shape, W = await weight(`${c.module}.weight`);
    const H = f32s(FIX.hessians[c.module]!.data);
    const what = `${c.module} ${c.bits}-bit g${c.groupSize} sym=${c.sym} block ${c.blockSize}${c.descAct ? ' act-order' : ''}${c.staticGroups ? ' static' : ''}`;
    assert.equal(c.packCodesDiffer, 0, `${what}: AutoGPTQ's pack() saves the quantizer's codes`);
    const cfg = { bits: c.bits, groupSize: c.groupSize, sym: c.sym, descAct: c.descAct, staticGroups: c.staticGroups, dampPercent: c.dampPercent,
      blockSize: c.blockSize, mse: false, checkpointFormat: 'gptq_v2' as const };
    const r = await gptqQuantize(W, H, rows, cols, { ...cfg, arithmetic: 'float32' });
    const dCodes = diff(r.intCodes, bytes(c.codes));
    assert.deepEqual([...r.gIdx], c.gIdx, `${what}: g_idx`);
    const refScales = half(f32s(c.scales));
    const dScales = diff(r.scales, refScales), dZeros = diff(r.zeros, c.zeros);
    const dDefault = diff((await gptqQuantize(W, H, rows, cols, cfg)).intCodes, bytes(c.codes));
    report.push(`${what}: ${dCodes}/${rows * cols} codes, ${dScales} scales, ${dZeros} zeros differ (default arithmetic: ${dDefault} codes)`);
    // Measured: 0 on every case on x86-64 MLAS (fixture torch 2.13, 1 thread); a code may flip only where the float32
    // GEMM summation order lands a quotient within ~1e-6 of a rounding boundary, and its group's later codes follow.
    assert.ok(dCodes <= 2, `${what}: ${dCodes} codes differ from AutoGPTQ`);
    assert.ok(dScales <= 2 && dZeros === 0, `${what}: ${dScales} scales, ${dZeros} zeros differ`);
  }
  console.log(report.join('\n'));
});

test('arithmetic float32: the saved checkpoint is what was computed (packModule verifies codes, fp16 scales, zeros)', async () => {
  const c = FIX.gptq.find((x) => x.module.endsWith('q_proj') && x.groupSize === 32 && x.sym)!;
  const [rows, cols] = c.shape, W = await weight(`${c.module}.weight`);
  for (const format of ['gptq', 'gptq_v2'] as const) {
    const r = await gptqQuantize(W, f32s(FIX.hessians[c.module]!.data), rows, cols,
      { bits: c.bits, groupSize: 32, sym: true, descAct: false, staticGroups: false, dampPercent: 0.01, blockSize: 128, mse: false, checkpointFormat: format, arithmetic: 'float32' });
    await packModule(c.module, r, { bits: c.bits, groupSize: 32, inFeatures: cols, outFeatures: rows, format });
  }
});

test('quantize config: arithmetic is validated', () => {
  assert.equal(resolveQuantizeConfig().arithmetic, 'float64');
  assert.equal(resolveQuantizeConfig({ arithmetic: 'float32' }).arithmetic, 'float32');
  assert.throws(() => resolveQuantizeConfig({ arithmetic: 'fp32' as never }), (e: Error) => e instanceof GptqError && /^quantize config: arithmetic must be 'float64' or 'float32', got "fp32"$/.test(e.message));
});
