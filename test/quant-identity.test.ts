/**
 * Quantization identity: the ONNX graphs the quantization pipeline builds, and what it computes, stay exactly what they
 * were when test/fixtures/quant-identity.json was recorded (issue 11: restructuring calibration / GPTQ / packing must
 * not change a byte).
 *
 * - gptqQuantize on a matrix of configurations (bits 2/3/4/8, group sizes that divide, straddle blocks or are −1,
 *   act-order, static groups, asym, MSE grid, v1/v2 grids, float64 products, dead columns, a Hessian that needs damp
 *   retries, small factorization panels / sub-blocks / row chunks, consumed Hessian): sha256 of codes, scales, zeros,
 *   g_idx, perm, Q and the bits of loss/avgLoss/dampUsed.
 * - quantizeLayers end to end on synthetic checkpoints (Llama with/without act-order, fp16/fp32 activations, Hessians in
 *   the graph or summed from tap rows; GPT-2's Conv1D with biases and an unpackable MLP; MoE routing; a prefixless
 *   OPT; RTN), plus one GPTQModel quantize → saveQuantized: every ONNX model handed to ORT during the run (sha256 of
 *   the serialized bytes, caught at InferenceSession.create), every module's verified digest (packed
 *   qweight/qzeros/scales/g_idx/bias) and loss bits, the skipped list, the fake-quantized weights, the saved
 *   model.safetensors; the inference graphs CausalLM.load builds from the saved checkpoints (MatMulNBits 4/8-bit with
 *   act-order gathers and zero points, the fp32 fallback, the opt-in quantized head).
 *
 * The calibration graphs hold no numbers (weights are inputs), so their bytes do not depend on the machine. The numbers go through MLAS GEMMs, whose rounding could differ on another
 * CPU (kernel choice by instruction set): a canary (a few ORT products) is recorded with the table; where it differs
 * the numeric hashes are not compared (said in the output) and the graph hashes still are.
 *
 * Record a new table (only for a change meant to alter graphs or results; say which in the commit):
 *   GPTQJS_RECORD_QUANT_HASHES=1 node --import tsx --test test/quant-identity.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GPTQModel } from '../src/gptq-model.ts';
import { gemm, matmul } from '../src/graph/linalg.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import { resolveQuantizeConfig, type QuantizeConfig } from '../src/quant/quantize-config.ts';
import { gptqQuantize, type GptqConfig, type GptqOptions } from '../src/quant/gptq.ts';
import { quantizeLayers, type QuantizeLoopOptions } from '../src/quant/layer-loop.ts';
import { openModelCheckpoint } from '../src/runtime/model-checkpoint.ts';
import { CausalLM, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { ROOT, tmpDir } from './helpers.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { makeGpt2Checkpoint } from './archs/gpt2.synth.ts';
import { makeOptCheckpoint } from './archs/opt.synth.ts';
import { makeMixtralCheckpoint } from './archs/moe.synth.ts';

const TABLE = join(ROOT, 'test', 'fixtures', 'quant-identity.json');
type Table = { canary: string; gptq: Record<string, Record<string, string>>; layers: Record<string, Record<string, string>>; graphs: string[] };

const sha = (b: ArrayBufferView | string) => createHash('sha256')
  .update(typeof b === 'string' ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex').slice(0, 16);
const bits = (x: number) => sha(new Float64Array([x]));

// Every model handed to ORT, by sha256 of its bytes (graph + initializers).
let created: string[] = [];
const ortCreate = ort.InferenceSession.create;
(ort.InferenceSession as unknown as { create: (...a: unknown[]) => unknown }).create = function (this: unknown, ...a: unknown[]) {
  if (a[0] instanceof Uint8Array) created.push(sha(a[0]));
  return (ortCreate as (...b: unknown[]) => unknown).apply(this, a);
};

/** This file's own PRNG (mulberry32 + Box-Muller), so the inputs never change with library code. */
function normals(n: number, seed: number, scale = 1): Float64Array {
  let s = seed >>> 0;
  const u = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const o = new Float64Array(n);
  for (let i = 0; i < n; i++) o[i] = Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u()) * scale;
  return o;
}

/** W [rows, cols] and H = 2/n·XᵀX (float64 JS, rounded to float32) from n correlated tokens; `dead` columns of X are 0. */
function problem(rows: number, cols: number, seed: number, o: { ntok?: number; dead?: number[]; shift?: number; asym?: boolean } = {}) {
  const n = o.ntok ?? 2 * cols, X = normals(n * cols, seed), f = normals(n * 4, seed + 1);
  for (let t = 0; t < n; t++) for (let j = 0; j < cols; j++) X[t * cols + j] = o.dead?.includes(j) ? 0 : X[t * cols + j]! + 0.7 * f[t * 4 + (j % 4)]! * (1 + (j % 7) / 7);
  const H = new Float32Array(cols * cols);
  for (let a = 0; a < cols; a++) for (let b = a; b < cols; b++) {
    let s = 0;
    for (let t = 0; t < n; t++) s += X[t * cols + a]! * X[t * cols + b]!;
    H[a * cols + b] = H[b * cols + a] = (2 / n) * s - (a === b && !o.dead?.includes(a) ? (o.shift ?? 0) : 0);
  }
  const W = Float32Array.from(normals(rows * cols, seed + 2, 0.05), (v, i) => (o.asym ? Math.abs(v) + 0.01 * (i % 3) : v));
  return { W, H };
}

const base: GptqConfig = { bits: 4, groupSize: 16, descAct: false, staticGroups: false, sym: true, dampPercent: 0.01, blockSize: 32, mse: false };
const GPTQ_CASES: [string, { rows: number; cols: number; seed: number; dead?: number[]; shift?: number; asym?: boolean; ntok?: number }, Partial<GptqConfig>, GptqOptions?][] = [
  ['4b g16', { rows: 40, cols: 96, seed: 1 }, {}],
  ['4b g-1', { rows: 40, cols: 96, seed: 2 }, { groupSize: -1 }],
  ['2b g32 asym v1', { rows: 36, cols: 96, seed: 3, asym: true }, { bits: 2, groupSize: 32, sym: false }],
  ['2b g32 asym v2', { rows: 36, cols: 96, seed: 3, asym: true }, { bits: 2, groupSize: 32, sym: false, checkpointFormat: 'gptq_v2' }],
  ['3b g24 straddles blocks', { rows: 33, cols: 120, seed: 4 }, { bits: 3, groupSize: 24, blockSize: 16 }],
  ['8b g-1 act-order', { rows: 40, cols: 96, seed: 5 }, { bits: 8, groupSize: -1, descAct: true }],
  ['4b g16 act-order', { rows: 40, cols: 96, seed: 6 }, { descAct: true }],
  ['4b g16 act-order static', { rows: 40, cols: 96, seed: 6 }, { descAct: true, staticGroups: true }],
  ['4b g20 static, dead columns', { rows: 30, cols: 100, seed: 7, dead: [0, 17, 18, 99] }, { groupSize: 20, staticGroups: true, sym: false }],
  ['4b g16 dead columns act-order', { rows: 30, cols: 96, seed: 8, dead: [3, 50] }, { descAct: true, sym: false }],
  ['3b g32 mse', { rows: 24, cols: 64, seed: 9 }, { bits: 3, groupSize: 32, mse: true }],
  ['4b g16 asym mse v1', { rows: 24, cols: 64, seed: 10, asym: true }, { sym: false, mse: true }],
  ['4b g16 damp retries', { rows: 24, cols: 64, seed: 11, shift: 0.9 }, { dampPercent: 0.001, dampAutoIncrement: 0.05 }],
  ['4b g16 f64', { rows: 40, cols: 96, seed: 12 }, { descAct: true }, { precision: 'f64' }],
  ['4b g24 blocked factor', { rows: 70, cols: 200, seed: 13 }, { groupSize: 24, blockSize: 40, descAct: true }, { factorLeaf: 48, subBlock: 5, rowChunk: 16 }],
  ['4b g24 blocked factor f64', { rows: 70, cols: 200, seed: 13 }, { groupSize: 24, blockSize: 40 }, { factorLeaf: 48, subBlock: 3, rowChunk: 32, precision: 'f64' }],
  ['3b g32 Hinv panel form', { rows: 70, cols: 200, seed: 13 }, { bits: 3, groupSize: 32, blockSize: 32, descAct: true, sym: false }, { factorLeaf: 32 }],
  ['4b g16 consumed H', { rows: 40, cols: 96, seed: 14 }, { descAct: true }, { consumeHessian: true, nsamples: 7 }],
  ['4b g16 consumed H in order', { rows: 40, cols: 96, seed: 15 }, {}, { consumeHessian: true }],
];

async function gptqHashes(): Promise<Table['gptq']> {
  const out: Table['gptq'] = {};
  for (const [name, p, cfg, opts] of GPTQ_CASES) {
    const { W, H } = problem(p.rows, p.cols, p.seed, p);
    const r = await gptqQuantize(W, H, p.rows, p.cols, { ...base, ...cfg }, opts);
    out[name] = {
      codes: sha(r.intCodes), scales: sha(r.scales), zeros: sha(r.zeros), gIdx: sha(r.gIdx), perm: r.perm ? sha(r.perm) : 'none',
      Q: sha(r.Q), loss: bits(r.loss), avgLoss: bits(r.avgLoss), dampUsed: bits(r.dampUsed),
    };
  }
  return out;
}

/** Pre-tokenized calibration rows (this file's PRNG), some of them padded on the right. */
function calibration(vocab: number, rows: number, len: number, seed: number) {
  const u = normals(rows * len, seed);
  const inputIds = Array.from({ length: rows }, (_, r) => Int32Array.from({ length: len }, (_, k) => Math.floor((Math.abs(u[r * len + k]!) * 7919) % vocab)));
  const attentionMask = inputIds.map((_, r) => Uint8Array.from({ length: len }, (_, k) => (r % 3 === 2 && k >= len - 5 ? 0 : 1)));
  return { inputIds, attentionMask, concatenated: false };
}

type Maker = (dir: string, o: any) => Promise<void>;
const LAYER_CASES: [string, Maker, Record<string, unknown>, Partial<QuantizeConfig>, QuantizeLoopOptions & { vocab: number }][] = [
  ['llama 4b g32', makeLlamaCheckpoint, { seed: 3, vocab: 96 }, { bits: 4, groupSize: 32 }, { vocab: 96 }],
  ['llama 3b act-order asym v2, fp32 acts, tap-row Hessians', makeLlamaCheckpoint, { seed: 4, vocab: 96, modelType: 'qwen2' },
    { bits: 3, groupSize: 32, descAct: true, sym: false, checkpointFormat: 'gptq_v2' }, { vocab: 96, activationDtype: 'float32', hessianInGraphMaxBytes: 0, batchTokens: 64 }],
  ['llama 8b g32 static act-order, not true-sequential, mse', makeLlamaCheckpoint, { seed: 5, vocab: 96, layers: 3 },
    { bits: 8, groupSize: 32, descAct: true, staticGroups: true, trueSequential: false, mse: true }, { vocab: 96, keepDequantized: true }],
  ['llama 4b g32 codes as fp32 weights', makeLlamaCheckpoint, { seed: 6, vocab: 96 }, { bits: 4, groupSize: 32 }, { vocab: 96, dequantizeInGraph: false }],
  ['gpt2 2b g32 conv1d, unpackable MLP fake-quantized', makeGpt2Checkpoint, { seed: 11, inner: 48, vocab: 53 }, { bits: 2, groupSize: 32 }, { vocab: 53, quantizeUnpackable: true, keepDequantized: true }],
  ['mixtral 4b g32 routed Hessians', makeMixtralCheckpoint, { seed: 1 }, { bits: 4, groupSize: 32 }, { vocab: 96 }],
  ['mixtral top-1 dead expert → RTN', makeMixtralCheckpoint, { seed: 2, topK: 1, deadExpert: 2 }, { bits: 4, groupSize: 32 }, { vocab: 96 }],
  ['opt prefixless 4b g16 asym', makeOptCheckpoint, { seed: 23, projDim: 24, basePrefixless: true, storeLmHead: true }, { bits: 4, groupSize: 16, sym: false }, { vocab: 50 }],
  ['llama rtn', makeLlamaCheckpoint, { seed: 7, vocab: 96 }, { bits: 4, groupSize: 32 }, { vocab: 96, method: 'rtn' }],
];

async function layerHashes(dir: string): Promise<{ layers: Table['layers']; graphs: string[] }> {
  const layers: Table['layers'] = {};
  const all = new Set<string>();
  for (const [i, [name, make, mo, qc, lo]] of LAYER_CASES.entries()) {
    const src = join(dir, `m${i}`);
    await make(src, mo);
    const cfg = await loadModelConfig(src), arch = archFor(cfg.modelType);
    const ck = await openModelCheckpoint(src, cfg, arch);
    created = [];
    const logs: string[] = [];
    let res;
    try {
      res = await quantizeLayers(arch, cfg, ck, resolveQuantizeConfig(qc), calibration(Math.min(lo.vocab, cfg.vocabSize), 10, 24, 100 + i), { ...lo, onLog: (s) => logs.push(s) });
    } finally { await ck.dispose(); }
    const row: Record<string, string> = { graphs: sha([...new Set(created)].sort().join()) };
    for (const g of created) all.add(g);
    for (const m of [...res.quantized].sort()) row[m] = `${res.digests.get(m)} loss ${bits(res.losses.get(m)!)}`;
    row.skipped = sha(JSON.stringify(res.skipped));
    row.logs = sha(logs.join('\n'));
    for (const [n, w] of [...res.dequantized].sort(([a], [b]) => (a < b ? -1 : 1))) row[`dq ${n}`] = sha(w);
    layers[name] = row;
  }
  // The public API end to end: quantize (GPTQModel) → saveQuantized; the saved safetensors bytes.
  const src = join(dir, 'api'), out = join(dir, 'api-out');
  await makeLlamaCheckpoint(src, { seed: 8, vocab: 96, tie: true });
  created = [];
  const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32, descAct: true, staticGroups: true } });
  try {
    await m.quantize(calibration(96, 8, 20, 200).inputIds.map((r) => ({ inputIds: Array.from(r) })), { batchTokens: 100 });
    await m.saveQuantized(out, { modelCard: false });
  } finally { await m.dispose(); }
  for (const g of created) all.add(g);
  layers['GPTQModel → saveQuantized'] = { graphs: sha([...new Set(created)].sort().join()), 'model.safetensors': sha(readFileSync(join(out, 'model.safetensors'))) };
  // 8-bit asymmetric: MatMulNBits 8-bit with zero points at accuracy level 4 (the checkpoint's own head: lmHeadBits 0,
  // since level 4 otherwise quantizes the head to 8 bits by default), the fp32 fallback (dequantize) at 0.
  const out8 = join(dir, 'api-out8');
  const m8 = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 8, groupSize: 32, sym: false } });
  try {
    await m8.quantize(calibration(96, 8, 20, 201).inputIds.map((r) => ({ inputIds: Array.from(r) })));
    await m8.saveQuantized(out8, { modelCard: false });
  } finally { await m8.dispose(); }
  // The inference graphs of the saved checkpoints (MatMulNBits layouts, act-order gathers, the opt-in quantized head);
  // they hold GPTQ's numbers, so they are compared with the numeric results (not in `graphs`).
  const loads: [string, string, LoadOptions][] = [
    ['4b act-order', out, {}], ['4b act-order, lm head 8', out, { lmHeadBits: 8 }], ['4b act-order, lm head 4', out, { lmHeadBits: 4 }],
    ['8b asym level 4', out8, { accuracyLevel: 4, lmHeadBits: 0 }], ['8b asym level 0 (fp32 fallback)', out8, {}],
  ];
  for (const [name, d, o] of loads) {
    created = [];
    const lm = await CausalLM.load(d, { ...o, graphCache: false, attention: 'plain', onLog: () => {} });
    await lm.dispose();
    layers[`load ${name}`] = { graphs: sha([...new Set(created)].sort().join()) };
  }
  return { layers, graphs: [...all].sort() };
}

/** A few ORT products (f32 and f64, the shapes GPTQ uses): equal canaries = the same GEMM rounding as when recorded. */
async function canary(): Promise<string> {
  const h: string[] = [];
  for (const [m, k, n] of [[7, 33, 5], [64, 200, 48], [300, 129, 70]] as const) {
    const a = normals(m * k, m), b = normals(k * n, n);
    h.push(sha(await matmul(Float32Array.from(a), Float32Array.from(b), m, k, n)), sha(await matmul(a, b, m, k, n)));
    h.push(sha(await gemm(Float32Array.from(b), Float32Array.from(b), new Float32Array(n * n).fill(1), n, k, n, { transA: true, alpha: -1 })));
  }
  return sha(h.join());
}

test('quantization graphs and results are identical to the recorded table', { timeout: 600_000 }, async (t) => {
  const c = await canary();
  const gptq = await gptqHashes();
  const tmp = tmpDir();
  let layers: Awaited<ReturnType<typeof layerHashes>>;
  try { layers = await layerHashes(tmp.path); } finally { tmp.cleanup(); }
  const now: Table = { canary: c, gptq, layers: layers.layers, graphs: layers.graphs };
  if (process.env.GPTQJS_RECORD_QUANT_HASHES) { writeFileSync(TABLE, JSON.stringify(now, null, 1) + '\n'); return; }
  const want = JSON.parse(readFileSync(TABLE, 'utf8')) as Table;
  // Graph bytes: everywhere.
  const missing = want.graphs.filter((g) => !now.graphs.includes(g)), extra = now.graphs.filter((g) => !want.graphs.includes(g));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'the ONNX models built during quantization changed');
  for (const k of Object.keys(want.layers)) if (!k.startsWith('load ')) assert.equal(now.layers[k]?.graphs, want.layers[k]!.graphs, `${k}: the set of graphs changed`);
  if (c !== want.canary) {
    t.diagnostic(`ORT GEMM canary ${c} ≠ recorded ${want.canary} (another CPU's MLAS kernels): numeric results not compared, graphs were`);
    return;
  }
  const diffs: string[] = [];
  const cmp = (what: string, a: Record<string, Record<string, string>>, b: Record<string, Record<string, string>>) => {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) for (const f of new Set([...Object.keys(a[k] ?? {}), ...Object.keys(b[k] ?? {})])) {
      if (a[k]?.[f] !== b[k]?.[f]) diffs.push(`${what} ${k} / ${f}: recorded ${a[k]?.[f] ?? '(none)'}, now ${b[k]?.[f] ?? '(none)'}`);
    }
  };
  cmp('gptq', want.gptq, now.gptq);
  cmp('layers', want.layers, now.layers);
  t.diagnostic(`${Object.keys(now.gptq).length} GPTQ cases, ${Object.keys(now.layers).length} layer-loop runs, ${now.graphs.length} distinct graphs`);
  assert.deepEqual(diffs, [], `results changed:\n${diffs.join('\n')}`);
});
