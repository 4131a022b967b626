/**
 * A saved checkpoint is exactly what GPTQ computed (issue 10.1): the packed tensors decode, through the loader's
 * own conversion (prepareLinear), to GPTQ's codes/scales/zeros/g_idx for every configuration; any difference stops
 * the save with one line naming the module and leaves no output; a saved-and-reloaded model computes the same
 * logits as the fake-quantized one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { GptqError } from '../src/errors.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { calibrationSamples, type CalibrationSet } from '../src/io/datasets.ts';
import { Checkpoint, SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { gptqQuantize } from '../src/quant/gptq.ts';
import { dequantize, packLinear, unpackQzeros, type PackBits } from '../src/quant/pack.ts';
import { verifyPackedModule } from '../src/quant/save.ts';
import { f16ToF32, toF16Bits } from '../src/tensor.ts';
import { llamaConfig, llamaTensors, writeCheckpoint, type LlamaOpts } from './synth.ts';
import { SHARED, SKIP_SHARED, randn, rng, tmpDir } from './helpers.ts';

const oneLine = (...patterns: RegExp[]) => (e: unknown) => {
  assert.ok(e instanceof GptqError, `expected GptqError, got ${(e as Error)?.stack ?? e}`);
  assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
  for (const p of patterns) assert.match(e.message, p);
  return true;
};

/** W [rows, cols] (half the rows |·|, so asym groups with min ≥ 0 occur) and H = 2/n·XᵀX of correlated inputs. */
function problem(rows: number, cols: number, seed: number) {
  const ntok = 2 * cols, z = randn(ntok * cols, seed);
  const H = new Float32Array(cols * cols);
  for (let a = 0; a < cols; a++) for (let b = 0; b <= a; b++) {
    let s = 0;
    for (let t = 0; t < ntok; t++) s += (z[t * cols + a]! + 0.5 * z[t * cols + ((a + 1) % cols)]!) * (z[t * cols + b]! + 0.5 * z[t * cols + ((b + 1) % cols)]!);
    H[a * cols + b] = H[b * cols + a] = ((2 / ntok) * s) * (1 + (a % 7) / 7) * (1 + (b % 7) / 7);
  }
  const W = randn(rows * cols, seed + 1, 0.05);
  for (let r = 0; r < rows; r += 2) for (let j = 0; j < cols; j++) W[r * cols + j] = Math.abs(W[r * cols + j]!);
  return { W, H };
}

test('every bits × group size (−1, 32, 48, 40 → fp32 path) × act-order × static groups × sym × format: verification passes, dequantized(saved) == Q, and each flipped bit is caught', async (t) => {
  const ROWS = 64, COLS = 128, { W, H } = problem(ROWS, COLS, 3);
  const bias = Float32Array.from(randn(ROWS, 8, 0.1), (v) => f16ToF32(toF16Bits([v])[0]!)); // the fp16 values a bias is saved as
  let cells = 0, caught = 0;
  for (const bits of [2, 3, 4, 8] as PackBits[]) for (const groupSize of [-1, 32, 48, 40]) for (const descAct of [false, true])
    for (const staticGroups of groupSize > 0 ? [false, true] : [false]) for (const sym of [false, true]) for (const format of ['gptq', 'gptq_v2'] as const) {
      const name = `m.${bits}b.g${groupSize}${descAct ? '.act' : ''}${staticGroups ? '.static' : ''}.${sym ? 'sym' : 'asym'}.${format}`;
      const cfg = { bits, groupSize, descAct, staticGroups, sym, dampPercent: 0.01, blockSize: 128, mse: false, checkpointFormat: format };
      const r = await gptqQuantize(W, H, ROWS, COLS, cfg);
      const packed = { ...packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits, inFeatures: COLS, outFeatures: ROWS, format }), bias: toF16Bits(bias) };
      const geom = { bits, groupSize, inFeatures: COLS, outFeatures: ROWS, format };
      const computed = { ...r, bias };
      verifyPackedModule(name, packed, computed, geom);
      // pack.ts's dequantize (the loader's fp32 path, e.g. 8-bit at accuracy level 0) gives GPTQ's Q bit for bit.
      assert.deepEqual(dequantize({ ...packed, bits, inFeatures: COLS, outFeatures: ROWS, format }), r.Q, name);
      if (format === 'gptq') assert.ok(!sym ? r.zeros.every((z) => z >= 1) : r.zeros.every((z) => z === 2 ** (bits - 1)), `${name}: zeros`);
      // One flipped bit anywhere in a saved tensor is caught, with one line naming the module.
      const rand = rng(cells + 1);
      for (const key of ['qweight', 'qzeros', 'scales', 'gIdx', 'bias'] as const) {
        const src = packed[key], bad = src.slice() as typeof src;
        const i = Math.floor(rand() * bad.length), bit = key === 'gIdx' ? 0 : Math.floor(rand() * (bad.BYTES_PER_ELEMENT * 8));
        bad[i] = bad[i]! ^ (1 << bit);
        assert.throws(() => verifyPackedModule(name, { ...packed, [key]: bad }, computed, geom), oneLine(new RegExp(`^${name.replace(/\./g, '\\.')}: `)), `${name}: ${key}[${i}] bit ${bit}`);
        caught++;
      }
      cells++;
    }
  t.diagnostic(`${cells} configurations verified, ${caught} single-bit corruptions caught`);
  assert.equal(cells, 4 * (8 + 3 * 16));
});

test('the old v1 encoding of zero point 0 (AutoGPTQ: uint32(zero − 1) OR-ed in, spilling into higher fields) is caught', async () => {
  const ROWS = 64, COLS = 128, { H } = problem(ROWS, COLS, 5), W = randn(ROWS * COLS, 6, 0.05).map(Math.abs);
  const cfg = { bits: 4 as const, groupSize: 32, descAct: false, staticGroups: false, sym: false, dampPercent: 0.01, blockSize: 128, mse: false };
  const r = await gptqQuantize(W, H, ROWS, COLS, { ...cfg, checkpointFormat: 'gptq_v2' }); // unconstrained: zero 0 occurs
  assert.ok(r.zeros.includes(0));
  const groups = r.zeros.length / ROWS, qzeros = new Int32Array((groups * ROWS) / 8);
  for (let g = 0; g < groups; g++) for (let o = 0; o < ROWS; o++) qzeros[g * (ROWS / 8) + (o >> 3)]! |= ((r.zeros[g * ROWS + o]! - 1) >>> 0) << ((o & 7) * 4);
  const packed = { ...packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits: 4, inFeatures: COLS, outFeatures: ROWS, format: 'gptq_v2' }), qzeros };
  assert.throws(() => verifyPackedModule('model.layers.0.self_attn.q_proj', packed, r, { bits: 4, groupSize: 32, inFeatures: COLS, outFeatures: ROWS, format: 'gptq' }),
    oneLine(/^model\.layers\.0\.self_attn\.q_proj: the packed tensors do not decode to what GPTQ computed \(zero point of output \d+, group \d+ loads as 16, GPTQ used \d+\); nothing was saved$/));
});

// -------------------------------------------------------------------------------- end to end

const DIMS: LlamaOpts = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, seed: 3 };
function calibration(): CalibrationSet {
  const r = rng(5);
  const ex = Array.from({ length: 16 }, () => ({ inputIds: Array.from({ length: 32 }, () => Math.floor(r() * 128)) }));
  return calibrationSamples(() => [], ex, { nsamples: 16, seqlen: 32 });
}
const IDS = [Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 128), Array.from({ length: 24 }, (_, i) => (i * 11 + 1) % 128)];

/** max |Δlogit| between `m`'s fake-quantized model and the checkpoint it saved to `out`, loaded by CausalLM.load. */
async function savedVsFake(m: GPTQModel, out: string, ids: number[][]): Promise<number> {
  const fake = await m.fakeQuantModel({ onLog: () => {} }), saved = await CausalLM.load(out, { onLog: () => {} });
  const a = await fake.logits(ids), b = await saved.logits(ids);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  await fake.release(); await saved.release();
  return d;
}

/** The model: synthetic Llama (or Qwen2, with q/k/v biases) whose layer-0 q_proj weights are |W|. */
async function absModel(dir: string, opts: LlamaOpts) {
  const t = llamaTensors(opts), q = t['model.layers.0.self_attn.q_proj.weight']!.data as Float32Array;
  for (let i = 0; i < q.length; i++) q[i] = Math.abs(q[i]!);
  await writeCheckpoint(dir, llamaConfig(opts), t);
}

test('abs(q_proj) asym 4-bit g32, quantize → save → CausalLM.load = the fake-quantized model (max |Δlogit| ≤ 1e-4; was 3.7 in v1, 4.9 in gptq_v2), and gptq_v2 sym with biases', async (t) => {
  const tmp = tmpDir();
  try {
    const cases = [
      { opts: DIMS, sym: false, fmt: 'gptq' as const },
      { opts: DIMS, sym: false, fmt: 'gptq_v2' as const },
      { opts: { ...DIMS, modelType: 'qwen2' as const }, sym: true, fmt: 'gptq_v2' as const }, // was 4.6 (v1 zeros saved under a v2 config)
    ];
    for (const c of cases) {
      const name = `${c.opts.modelType ?? 'llama'} ${c.sym ? 'sym' : 'asym'} ${c.fmt}`;
      const src = join(tmp.path, `src-${c.opts.modelType ?? 'llama'}`), out = join(tmp.path, name.replace(/ /g, '-'));
      if (!existsSync(src)) await absModel(src, c.opts);
      const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32, sym: c.sym, checkpointFormat: c.fmt } });
      await m.quantize(calibration(), { keepDequantized: true });
      await m.saveQuantized(out);
      const d = await savedVsFake(m, out, IDS);
      t.diagnostic(`${name}: max |Δlogit| saved-reloaded vs fake-quantized ${d.toExponential(2)}`);
      assert.ok(d <= 1e-4, `${name}: ${d}`);
      // The case is exercised: layer-0 q_proj has groups whose min-max zero is 0 — stored as 0 in v2, constrained to 1 in v1.
      const ck = await Checkpoint.open(out);
      const zeros = unpackQzeros((await ck.read('model.layers.0.self_attn.q_proj.qzeros')).data as Int32Array, 4, 2, 64, c.fmt);
      await ck.close();
      if (!c.sym) assert.ok(c.fmt === 'gptq' ? Math.min(...zeros) >= 1 && zeros.includes(1) : zeros.includes(0), `${name}: zeros ${[...zeros.slice(0, 8)]}`);
      await m.close();
    }
  } finally { tmp.cleanup(); }
});

test('tiny-gpt2 (HF Conv1D [in, out] weights, fused c_attn with bias) 3-bit asym act-order v1: saved-and-reloaded = fake-quantized', { skip: SKIP_SHARED }, async (t) => {
  const tmp = tmpDir();
  try {
    const cal = calibration();
    const m = await GPTQModel.fromPretrained(join(SHARED, 'models', 'tiny-gpt2'), { quantizeConfig: { bits: 3, groupSize: 32, sym: false, descAct: true } });
    await m.quantize({ ...cal, inputIds: cal.inputIds.map((x) => x.map((tok) => tok % 53)) }, { keepDequantized: true });
    await m.saveQuantized(join(tmp.path, 'q'));
    const ids = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37], [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]];
    const d = await savedVsFake(m, join(tmp.path, 'q'), ids);
    t.diagnostic(`tiny-gpt2 3-bit asym act-order: max |Δlogit| ${d.toExponential(2)}`);
    assert.ok(d <= 1e-4, `${d}`);
    await m.close();
  } finally { tmp.cleanup(); }
});

test('a packed tensor changed after verification: saveQuantized stops with one line naming the module, and no output (or temp dir) is left', async () => {
  const tmp = tmpDir();
  try {
    const src = join(tmp.path, 'src'), out = join(tmp.path, 'out');
    await absModel(src, DIMS);
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32, sym: false } });
    const res = await m.quantize(calibration());
    const qz = res.packed.get('model.layers.1.mlp.up_proj.qzeros')!;
    assert.ok('data' in qz);
    (qz.data as Int32Array)[3]! ^= 1 << 9;
    await assert.rejects(m.saveQuantized(out), oneLine(/^model\.layers\.1\.mlp\.up_proj: the tensors written to .*out differ from the ones verified against GPTQ's result/));
    assert.ok(!existsSync(out), 'no output directory');
    assert.deepEqual(readdirSync(tmp.path).sort(), ['src'], 'no temp directory left');
    (qz.data as Int32Array)[3]! ^= 1 << 9; // restored: the same result saves
    await m.saveQuantized(out);
    assert.ok(existsSync(join(out, 'quantize_config.json')));
    await m.close();
  } finally { tmp.cleanup(); }
});

test('a work dir whose layers were packed without verification (older gptqjs) is refused on resume', async () => {
  const tmp = tmpDir();
  try {
    const src = join(tmp.path, 'src'), work = join(tmp.path, 'work');
    await absModel(src, DIMS);
    const run = async () => {
      const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
      try { return await m.quantize(calibration(), { workDir: work }); } finally { await m.close(); }
    };
    const first = await run();
    assert.equal(first.digests.size, 14);
    // Drop the digests from layer 0's record, as a work dir written before verification existed.
    const path = join(work, 'layer-00000.safetensors'), f = await SafetensorsFile.open(path);
    const tensors = Object.fromEntries(await Promise.all(f.names().map(async (n) => [n, await f.read(n)] as const)));
    const record = JSON.parse(f.metadata.record!);
    await f.close();
    delete record.digests;
    await writeSafetensors(path, tensors, { format: 'pt', record: JSON.stringify(record) });
    await assert.rejects(run(), oneLine(/work dir .*work, layer 0: module model\.layers\.0\.\S+ was packed without verification .*delete the work dir to start over/));
  } finally { tmp.cleanup(); }
});
