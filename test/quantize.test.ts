import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { Checkpoint } from '../src/io/safetensors.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { addGram, buildLayerGraph, InputWeights } from '../src/quant/calibrate.ts';
import { createSession, f16, f32 } from '../src/graph/session.ts';
import { llama } from '../src/models/llama.ts';
import { dequantize, unpackQweight } from '../src/quant/pack.ts';
import { quantizeLayers, type QuantizeLoopOptions, type QuantizeLoopResult } from '../src/quant/layer-loop.ts';
import type { QuantizeConfig } from '../src/quant/quantize-config.ts';
import { resolveQuantizeConfig } from '../src/quant/quantize-config.ts';
import type { TensorLike } from '../src/io/safetensors.ts';
const dataOf = async (t: TensorLike) => ('data' in t ? t.data : await t.load());
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { f16ToF32, mirrorTriangle, toF16Bits, transpose } from '../src/tensor.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { makeGptjCheckpoint } from './archs/neox.synth.ts';
import { archFor } from '../src/models/registry.ts';
import { randn, rng, tmpDir } from './helpers.ts';

const DIMS = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 96, seed: 3 };
/** Pre-tokenized calibration: a few fixed random token windows. */
function examples(n = 16, len = 32, seed = 5) {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: len }, () => Math.floor(r() * DIMS.vocab)) }));
}

test('quantize → saveQuantized writes AutoGPTQ names, shapes, dtypes and configs', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src'), out = join(t.path, 'q');
    await makeLlamaCheckpoint(src, DIMS);
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const res = await m.quantize(examples(), { keepDequantized: true });
    assert.equal(res.quantized.size, 14);
    assert.equal(res.skipped.length, 0);
    await m.saveQuantized(out);
    const ck = await Checkpoint.open(out);
    assert.deepEqual(ck.metadata, { format: 'pt' });
    const p = 'model.layers.1.';
    const expect: Record<string, [string, number[]]> = {
      [`${p}self_attn.q_proj.qweight`]: ['I32', [8, 64]], [`${p}self_attn.q_proj.qzeros`]: ['I32', [2, 8]],
      [`${p}self_attn.q_proj.scales`]: ['F16', [2, 64]], [`${p}self_attn.q_proj.g_idx`]: ['I32', [64]],
      [`${p}self_attn.k_proj.qweight`]: ['I32', [8, 32]], [`${p}self_attn.k_proj.qzeros`]: ['I32', [2, 4]],
      [`${p}mlp.down_proj.qweight`]: ['I32', [16, 64]], [`${p}mlp.down_proj.scales`]: ['F16', [4, 64]],
      [`${p}mlp.gate_proj.qzeros`]: ['I32', [2, 16]], 'model.embed_tokens.weight': ['F32', [96, 64]],
      [`${p}input_layernorm.weight`]: ['F32', [64]], 'lm_head.weight': ['F32', [96, 64]],
    };
    for (const [n, [dt, shape]] of Object.entries(expect)) assert.deepEqual([ck.info(n).dtype, ck.info(n).shape], [dt, shape], n);
    assert.ok(!ck.has(`${p}self_attn.q_proj.weight`), 'quantized module keeps no fp weight');
    // Non-quantized tensors keep names and values.
    const orig = await Checkpoint.open(src);
    assert.deepEqual(await ck.readFloat32('model.norm.weight'), await orig.readFloat32('model.norm.weight'));
    // Packed tensors decode back to the dequantized weights (up to the fp16 rounding of scales).
    const name = `${p}mlp.down_proj`;
    const deq = dequantize({ qweight: (await ck.read(`${name}.qweight`)).data as Int32Array, qzeros: (await ck.read(`${name}.qzeros`)).data as Int32Array,
      scales: (await ck.read(`${name}.scales`)).data as Uint16Array, gIdx: (await ck.read(`${name}.g_idx`)).data as Int32Array, bits: 4, inFeatures: 128, outFeatures: 64 });
    const Q = res.dequantized.get(`${name}.weight`)!;
    let md = 0, mx = 0;
    for (let i = 0; i < Q.length; i++) { md = Math.max(md, Math.abs(deq[i]! - Q[i]!)); mx = Math.max(mx, Math.abs(Q[i]!)); }
    assert.ok(md <= mx * 1e-3, `dequantized vs GPTQ output: ${md} (max |w| ${mx})`);
    const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
    assert.deepEqual([qc.bits, qc.group_size, qc.desc_act, qc.sym, qc.damp_percent, qc.true_sequential, qc.static_groups, qc.quant_method, qc.checkpoint_format], [4, 32, false, true, 0.01, true, false, 'gptq', 'gptq']);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.quant_method, 'gptq');
    assert.equal(cfg.quantization_config.bits, 4);
    assert.equal(cfg.hidden_size, 64);
    assert.ok(existsSync(join(out, 'generation_config.json')));
    await ck.dispose(); await orig.dispose(); await m.dispose();
  } finally { t.cleanup(); }
});

test('in-graph Hessian XᵀX equals a float64 computation of the q_proj input (RMSNorm of embeddings)', async () => {
  const t = tmpDir();
  try {
    await makeLlamaCheckpoint(t.path, DIMS);
    const cfg = await loadModelConfig(t.path);
    const w = await loadFloatWeights(t.path);
    const iw = new InputWeights('model.layers.0.');
    const sess = await createSession(buildLayerGraph(llama, cfg, iw, { withHidden: false, hessians: ['self_attn.q_proj'] }).toBytes());
    const B = 2, S = 7, H = 64;
    const x = randn(B * S * H, 11);
    const feeds = Object.fromEntries(iw.inputs.map((i) => [i.rel, f32(w.get(i.name)!, i.shape)]));
    const r = await sess.run({ ...feeds, hidden_in: f32(x, [B, S, H]) });
    const got = r['xtx.self_attn.q_proj']!.data as Float32Array;
    const ln = w.get('model.layers.0.input_layernorm.weight')!;
    const X = new Float64Array(B * S * H);
    for (let t2 = 0; t2 < B * S; t2++) {
      let ms = 0; for (let j = 0; j < H; j++) ms += x[t2 * H + j]! ** 2;
      const inv = 1 / Math.sqrt(ms / H + cfg.rmsNormEps);
      for (let j = 0; j < H; j++) X[t2 * H + j] = x[t2 * H + j]! * inv * ln[j]!;
    }
    let md = 0, mx = 0;
    for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) {
      let s = 0; for (let t2 = 0; t2 < B * S; t2++) s += X[t2 * H + i]! * X[t2 * H + j]!;
      md = Math.max(md, Math.abs(s - got[i * H + j]!)); mx = Math.max(mx, Math.abs(s));
    }
    assert.ok(md <= 1e-5 * mx, `max |ΔH| ${md} (max |H| ${mx})`);
    await sess.release();
  } finally { t.cleanup(); }
});

test('Hessian running sum bound in place (one buffer as Gemm C input and output) = the float64 sum of per-batch XᵀX', async () => {
  const t = tmpDir();
  try {
    await makeLlamaCheckpoint(t.path, DIMS);
    const cfg = await loadModelConfig(t.path);
    const w = await loadFloatWeights(t.path);
    const one = new InputWeights('model.layers.0.'), acc = new InputWeights('model.layers.0.');
    const s1 = await createSession(buildLayerGraph(llama, cfg, one, { withHidden: false, hessians: ['mlp.down_proj'] }).toBytes());
    const s2 = await createSession(buildLayerGraph(llama, cfg, acc, { withHidden: false, hessians: ['mlp.down_proj'], accumulate: true }).toBytes());
    const feeds = (iw: InputWeights) => Object.fromEntries(iw.inputs.map((i) => [i.rel, f32(w.get(i.name)!, i.shape)]));
    const n = 128, sum = new Float64Array(n * n), H = new Float32Array(n * n), bound = f32(H, [n, n]);
    for (let b = 0; b < 3; b++) {
      const x = f32(randn(2 * 9 * 64, 20 + b), [2, 9, 64]);
      const r1 = (await s1.run({ ...feeds(one), hidden_in: x }))['xtx.mlp.down_proj']!.data as Float32Array;
      r1.forEach((v, i) => { sum[i]! += v; });
      await s2.run({ ...feeds(acc), hidden_in: x, 'xtx_acc.mlp.down_proj': bound }, { 'xtx.mlp.down_proj': bound });
    }
    let md = 0, mx = 0;
    sum.forEach((v, i) => { md = Math.max(md, Math.abs(v - H[i]!)); mx = Math.max(mx, Math.abs(v)); });
    assert.ok(mx > 0 && md <= 1e-6 * mx, `max |ΔH| ${md} (max |H| ${mx})`);
    await s1.release(); await s2.release();
  } finally { t.cleanup(); }
});

test('fp16 activation storage: the layer graph casts at its edges only (output = fp16 rounding of the fp32 layer on the same input)', async () => {
  const t = tmpDir();
  try {
    await makeLlamaCheckpoint(t.path, DIMS);
    const cfg = await loadModelConfig(t.path);
    const w = await loadFloatWeights(t.path);
    const a = new InputWeights('model.layers.0.'), b = new InputWeights('model.layers.0.');
    const s32 = await createSession(buildLayerGraph(llama, cfg, a).toBytes());
    const s16 = await createSession(buildLayerGraph(llama, cfg, b, { hiddenType: 'float16' }).toBytes());
    const feeds = (iw: InputWeights) => Object.fromEntries(iw.inputs.map((i) => [i.rel, f32(w.get(i.name)!, i.shape)]));
    const bits = toF16Bits(randn(2 * 9 * 64, 31));
    const x32 = Float32Array.from(bits, f16ToF32);
    const y32 = (await s32.run({ ...feeds(a), hidden_in: f32(x32, [2, 9, 64]) })).hidden_out!.data as Float32Array;
    const y16 = (await s16.run({ ...feeds(b), hidden_in: f16(bits, [2, 9, 64]) })).hidden_out!.data as Uint16Array;
    assert.ok(y16 instanceof Uint16Array);
    assert.deepEqual(Array.from(y16), Array.from(toF16Bits(y32)));
    await s32.release(); await s16.release();
  } finally { t.cleanup(); }
});

test('layer forward written in place over its input (hidden_out bound to the hidden_in buffer) = out of place; llama and parallel-residual gptj, fp32 and fp16', async () => {
  const t = tmpDir();
  try {
    for (const [kind, make] of [['llama', () => makeLlamaCheckpoint(t.path, DIMS)], ['gptj', () => makeGptjCheckpoint(t.path, {})]] as const) {
      await make();
      const cfg = await loadModelConfig(t.path);
      const w = await loadFloatWeights(t.path);
      const arch = archFor(cfg.modelType);
      for (const hiddenType of ['float32', 'float16'] as const) {
        const iw = new InputWeights(`${arch.layersBlockName}0.`);
        const sess = await createSession(buildLayerGraph(arch, cfg, iw, { hiddenType }).toBytes());
        const feeds = Object.fromEntries(iw.inputs.map((i) => [i.rel, f32(w.get(i.name)!, i.shape)]));
        const dims = [2, 7, cfg.hiddenSize], x32 = randn(2 * 7 * cfg.hiddenSize, 41);
        const x = hiddenType === 'float16' ? toF16Bits(x32) : x32;
        const tensor = (a: Float32Array | Uint16Array) => (a instanceof Uint16Array ? f16(a, dims) : f32(a, dims));
        const ref = (await sess.run({ ...feeds, hidden_in: tensor(x) })).hidden_out!.data as Float32Array | Uint16Array;
        const buf = x.slice(), bound = tensor(buf);
        await sess.run({ ...feeds, hidden_in: bound }, { hidden_out: bound });
        assert.deepEqual(Array.from(buf), Array.from(ref), `${kind} ${hiddenType}`);
        await sess.release();
      }
      t.cleanup(); mkdirSync(t.path, { recursive: true });
    }
  } finally { t.cleanup(); }
});

/** Run `fn` on the synthetic llama with a fixed calibration set (the quantize-loop variants compared below). */
async function withLoop(fn: (run: (q: QuantizeConfig, o?: QuantizeLoopOptions) => Promise<QuantizeLoopResult>) => Promise<void>) {
  const t = tmpDir();
  try {
    await makeLlamaCheckpoint(t.path, DIMS);
    const cfg = await loadModelConfig(t.path);
    const ck = await Checkpoint.open(t.path);
    const calib = { inputIds: examples(8, 32).map((e) => Int32Array.from(e.inputIds)), attentionMask: [], concatenated: false };
    try { await fn((q, o) => quantizeLayers(llama, cfg, ck, q, calib, o)); } finally { await ck.dispose(); }
  } finally { t.cleanup(); }
}

test('finished modules dequantized in-graph (DequantizeLinear from codes) give byte-identical results to feeding fp32 weights', () => withLoop(async (run) => {
  for (const qc of [{ groupSize: 32, descAct: false }, { groupSize: -1, descAct: false }, { groupSize: 32, descAct: true, staticGroups: true }]) {
      const q = resolveQuantizeConfig({ bits: 4, ...qc });
      const a = await run(q);
      const b = await run(q, { dequantizeInGraph: false });
      assert.equal(a.packed.size, b.packed.size);
      for (const [n, x] of a.packed) {
        const [dx, dy] = [await dataOf(x), await dataOf(b.packed.get(n)!)];
        assert.deepEqual(new Uint8Array(dx.buffer, dx.byteOffset, dx.byteLength), new Uint8Array(dy.buffer, dy.byteOffset, dy.byteLength), `${JSON.stringify(qc)}: ${n}`);
      }
    }
}));

test('addGram + mirrorTriangle (upper-triangle panel products over transposed row chunks) = the float64 ΣXᵀX, exactly symmetric', async () => {
  // panels of 48 over n = 200 (the last one short), X in chunks of 37 rows, two calls (a running sum over batches)
  const n = 200, batches = [randn(300 * n, 61), randn(111 * n, 62)], rowsOf = [300, 111];
  const h = new Float32Array(n * n), scratch = {}; // the second call reuses the first one's buffers
  for (const [k, x] of batches.entries()) await addGram(h, x, rowsOf[k]!, n, { panel: 48, chunkFloats: 37 * n, scratch });
  mirrorTriangle(h, n, 'upper');
  let worst = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let ref = 0;
    for (const [k, x] of batches.entries()) for (let t = 0; t < rowsOf[k]!; t++) ref += x[t * n + i]! * x[t * n + j]!;
    worst = Math.max(worst, Math.abs(h[i * n + j]! - ref) / 411); // entries are sums of 411 products of N(0,1) values
    assert.equal(h[i * n + j], h[j * n + i], `H[${i},${j}] symmetric`);
  }
  assert.ok(worst <= 1e-5, `max |H − ΣXᵀX| / rows = ${worst}`);
});

test('mirrorTriangle: either triangle onto the other, across tile edges; the diagonal and the source side stay', () => {
  const n = 130; // tiles of 64: 3 along each side, the last short
  const a = randn(n * n, 63);
  for (const from of ['upper', 'lower'] as const) {
    const h = a.slice();
    mirrorTriangle(h, n, from);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const src = from === 'upper' ? Math.min(i, j) * n + Math.max(i, j) : Math.max(i, j) * n + Math.min(i, j);
      assert.equal(h[i * n + j], a[src], `${from}: H[${i},${j}]`);
    }
  }
});

test('transpose: a block of a wider matrix (stride) into a block of a wider one (dstStride), with and without a column order; rows in blocks of 8 and a tail', () => {
  const n = 150, a = randn(n * n, 64); // the block: rows [10, 140), columns [7, 77) (16 blocks of 8 rows and 2 more)
  const r0 = 10, rows = 130, c0 = 7, cols = 70, order = Array.from({ length: cols }, (_, j) => (j * 31) % cols);
  const t = transpose(a.subarray(r0 * n + c0), rows, cols, new Float64Array(rows * cols), { stride: n });
  const g = transpose(a.subarray(r0 * n + c0), rows, cols, new Float32Array(rows * cols), { stride: n, colOrder: order });
  const back = Array.from({ length: rows }, (_, i) => rows - 1 - i);
  const h = transpose(a.subarray(r0 * n + c0), rows, cols, new Float64Array(rows * cols), { stride: n, colOrder: order, rowOrder: back });
  // into a block of a wider destination (dstStride): nothing outside it written
  const wide = new Float64Array(cols * 200 + 5).fill(-1);
  transpose(a.subarray(r0 * n + c0), rows, cols, wide.subarray(5), { stride: n, dstStride: 200 });
  for (let x = 0; x < wide.length; x++) {
    const j = Math.floor((x - 5) / 200), i = (x - 5) % 200;
    assert.equal(wide[x], x >= 5 && i < rows ? a[(r0 + i) * n + c0 + j] : -1, `dstStride [${x}]`);
  }
  for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) {
    assert.equal(t[j * rows + i], a[(r0 + i) * n + c0 + j], `[${j}, ${i}]`);
    assert.equal(g[j * rows + i], a[(r0 + i) * n + c0 + order[j]!], `gathered [${j}, ${i}]`);
    assert.equal(h[j * rows + i], a[(r0 + back[i]!) * n + c0 + order[j]!], `rows and columns gathered [${j}, ${i}]`);
  }
});

test('Hessians summed from the tap rows by panel GEMMs (big-H path) = in-graph Gram, up to fp32 summation order', () => withLoop(async (run) => {
    const q = resolveQuantizeConfig({ bits: 4, groupSize: 32 });
    const a = await run(q, { batchTokens: 64 });
    const b = await run(q, { batchTokens: 64, hessianInGraphMaxBytes: 0 }); // every H via rows
    let same = 0, total = 0;
    for (const [n, la] of a.losses) assert.ok(Math.abs(b.losses.get(n)! - la) <= 1e-4 * la, `${n}: loss ${b.losses.get(n)} vs ${la}`);
    for (const [n, x] of a.packed) if (n.endsWith('.qweight')) {
      const [inF, outF] = [x.shape[0]! * 8, x.shape[1]!];
      const ca = unpackQweight((await dataOf(x)) as Int32Array, 4, inF, outF), cb = unpackQweight((await dataOf(b.packed.get(n)!)) as Int32Array, 4, inF, outF);
      total += ca.length; ca.forEach((v, i) => { if (v === cb[i]) same++; });
    }
    assert.ok(total > 0 && same / total >= 0.999, `codes agree ${same}/${total}`);
}));

/** Mean squared logit error of a model vs the fp32 model on held-out ids. */
async function logitMse(model: CausalLM, ref: CausalLM, ids: number[][]): Promise<number> {
  const a = await model.logits(ids), b = await ref.logits(ids);
  let s = 0; for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s / a.length;
}

test('GPTQ beats round-to-nearest at 3 and 4 bits (logit error vs fp32 on held-out tokens)', async () => {
  const t = tmpDir();
  try {
    await makeLlamaCheckpoint(t.path, DIMS);
    const fp = await CausalLM.load(t.path);
    const held = examples(4, 32, 99).map((e) => e.inputIds);
    for (const bits of [3, 4] as const) {
      const errs: Record<string, number> = {};
      for (const method of ['gptq', 'rtn'] as const) {
        const m = await GPTQModel.fromPretrained(t.path, { quantizeConfig: { bits, groupSize: 32 } });
        await m.quantize(examples(32, 32), { method, keepDequantized: true });
        errs[method] = await logitMse(await m.fakeQuantModel(), fp, held);
        await m.dispose();
      }
      assert.ok(errs.gptq! < errs.rtn!, `${bits}-bit: gptq ${errs.gptq} vs rtn ${errs.rtn}`);
    }
  } finally { t.cleanup(); }
});

test('seqlen longer than max_position_embeddings: quantize() and perplexity() refuse in one line (the CLI\'s rule, library wording)', async () => {
  const m = await GPTQModel.fromPretrained('assets/stories260K', { quantizeConfig: { bits: 4, groupSize: 32 } });
  try {
    const msg = /^`seqlen: 2048` \(CLI: --seqlen 2048\): longer than max_position_embeddings 512 of .*config\.json \(allowed: an integer in \[2, 512\]\)$/;
    await assert.rejects(m.quantize('c4', { nsamples: 128, seqlen: 2048 }), (e: Error) => e.name === 'GptqError' && msg.test(e.message));
    // the default is the model's context (min(2048, 512)), not 2048
    const calib = await m.calibration('c4', { nsamples: 1 });
    assert.equal(calib.inputIds[0]!.length, 512);
    // 'c4' without a copy at hand: the embedded sample, said in a note and recorded as such (meta, model card)
    const notes: string[] = [];
    await m.quantize('c4', { nsamples: 2, seqlen: 32, method: 'rtn', onNote: (s) => notes.push(s) });
    assert.deepEqual(notes, ['c4: using the embedded c4_demo.jsonl (300 C4 documents) as a stand-in for en/c4-train.00000-of-01024.json.gz']);
    const t = tmpDir();
    try {
      await m.saveQuantized(t.path);
      const qc = JSON.parse(readFileSync(join(t.path, 'quantize_config.json'), 'utf8'));
      assert.deepEqual(qc.meta.calibration, { dataset: 'c4 (embedded c4_demo.jsonl sample, 300 docs)', nsamples: 2, seqlen: 32, tokens: 64 });
      assert.equal(qc.bits, 4); assert.equal(qc.group_size, 32); // AutoGPTQ's fields unchanged
      assert.match(readFileSync(join(t.path, 'README.md'), 'utf8'), /c4 \(embedded c4_demo\.jsonl sample, 300 docs\): 2 samples of up to 32 tokens/);
    } finally { t.cleanup(); }
    const lm = await CausalLM.load('assets/stories260K', { graphCache: false });
    try {
      await assert.rejects(perplexity(lm, new Int32Array(4096), { seqlen: 600 }), /^GptqError: `seqlen: 600` \(CLI: --seqlen 600\): longer than max_position_embeddings 512/);
    } finally { await lm.dispose(); }
  } finally { await m.dispose(); }
});

test('unpackable modules (stories260K MLP, 172) are kept in full precision and recorded; interrupt writes nothing', async () => {
  const t = tmpDir();
  try {
    const m = await GPTQModel.fromPretrained('assets/stories260K', { quantizeConfig: { bits: 4, groupSize: 32 } });
    const calib = await m.calibration('c4', { nsamples: 4, seqlen: 64 });
    const res = await m.quantize(calib);
    assert.equal(res.quantized.size, 20);
    assert.deepEqual([...new Set(res.skipped.map((s) => s.name.split('.').slice(-2).join('.')))].sort(), ['mlp.down_proj', 'mlp.gate_proj', 'mlp.up_proj']);
    assert.match(res.skipped.find((s) => s.name.endsWith('down_proj'))!.reason, /in_features 172 is not a multiple of 32/);
    const out = join(t.path, 'q');
    await m.saveQuantized(out);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual(cfg.modules_in_block_to_quantize, [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj']]);
    assert.ok(Object.keys(cfg.dynamic).some((k) => k.includes('down_proj')));
    const ck = await Checkpoint.open(out);
    assert.equal(ck.info('model.layers.0.mlp.down_proj.weight').dtype, 'F32');
    await ck.dispose();
    // Interrupted run: error, and no output directory (or temp) appears.
    const ac = new AbortController(); ac.abort();
    await assert.rejects(m.quantize(calib, { signal: ac.signal }), /interrupted/);
    await assert.rejects(m.saveQuantized(join(t.path, 'bad\0name')));
    assert.deepEqual(readdirSync(t.path).sort(), ['q']);
    await m.dispose();
  } finally { t.cleanup(); }
});
