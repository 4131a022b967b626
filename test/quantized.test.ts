/**
 * GPTQ checkpoints on ORT's MatMulNBits: parity with the fp32 graph on the dequantized weights, the checkpoint
 * layouts we accept, the greedy decode of quantized stories260K, and one test per malformed input.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { GPTQModel } from '../src/gptq-model.ts';
import { GptqError } from '../src/errors.ts';
import { CausalLM, loadFloatWeights, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { calibrationSamples, type CalibrationSet } from '../src/io/datasets.ts';
import { Checkpoint, saveSharded, writeSafetensors } from '../src/io/safetensors.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { convertV1ToV2Zeros, dequantize, packLinear } from '../src/quant/pack.ts';
import type { Bits } from '../src/quant/quantize-config.ts';
import type { QuantizeConfig } from '../src/quant/quantize-config.ts';
import { prepareLinear, QuantizedWeights, trivialGIdx, type AccuracyLevel } from '../src/runtime/quantized-weights.ts';
import { moduleParams, readQuantizeConfig } from '../src/runtime/gptq-checkpoint.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { f16ToF32 } from '../src/tensor.ts';
import { inspectModel, formatReport, summarizeNames } from '../src/cli/inspect.ts';
import type { Tensor } from '../src/tensor.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { ROOT, SHARED, SKIP_SHARED, maxAbsDiff, maxRelDiff, pplOf, quantizeStories, refNll, rng, tmpDir } from './helpers.ts';
import { archFor } from '../src/models/registry.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-quantized-');
const BASE = join(work.path, 'base');
const quiet: LoadOptions = { onLog: () => {} };
let calib: CalibrationSet;

/** Two prompts of 24 tokens (vocab 128). */
const IDS = [Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 128), Array.from({ length: 24 }, (_, i) => (i * 11 + 1) % 128)];

before(async () => {
  await makeLlamaCheckpoint(BASE, { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
  const r = rng(5); // 16 random pre-tokenized examples of 32 tokens, shared by every quantization below
  const ex = Array.from({ length: 16 }, () => ({ inputIds: Array.from({ length: 32 }, () => Math.floor(r() * 128)) }));
  calib = calibrationSamples(() => [], ex, { nsamples: 16, seqlen: 32 });
});

const table: string[] = [];
after(() => {
  if (table.length) console.log(`\nmax |Δlogit| MatMulNBits vs fp32 graph on dequantized weights (2 prompts × 24 tokens):\n${table.join('\n')}`);
  work.cleanup();
});

// -------------------------------------------------------------------------------- helpers

const made = new Map<string, Promise<string>>();
/** Quantize `src` (default: the synthetic llama) with our GPTQ and save it; memoized per config. */
function quantized(q: Partial<QuantizeConfig>, src = BASE, data?: () => CalibrationSet): Promise<string> {
  const key = `${src}|${JSON.stringify(q)}`;
  let p = made.get(key);
  if (!p) {
    const out = join(work.path, `q${made.size}`);
    p = (async () => {
      const m = await GPTQModel.fromPretrained(src, { quantizeConfig: q });
      await m.quantize(data ? data() : calib);
      await m.saveQuantized(out);
      await m.dispose();
      return out;
    })();
    made.set(key, p);
  }
  return p;
}

/** The fp32 reference: every `.qweight` module dequantized with pack.ts, run through the plain fp32 graph. */
async function referenceModel(dir: string): Promise<CausalLM> {
  const cfg = await loadModelConfig(dir);
  const w = await loadFloatWeights(dir);
  const q = (await readQuantizeConfig(dir, cfg))!;
  const arch = archFor(cfg.modelType);
  const conv1d = new Set(arch.layerLinears(cfg).filter((l) => l.conv1d).map((l) => l.rel));
  const ck = await Checkpoint.open(dir);
  try {
    for (const n of ck.names()) {
      if (!n.endsWith('.qweight')) continue;
      const m = n.slice(0, -'.qweight'.length);
      const { bits, groupSize } = moduleParams(q, m);
      const qw = await ck.read(n);
      const inF = (qw.shape[0]! * 32) / bits, outF = qw.shape[1]!;
      const W = dequantize({
        qweight: qw.data as Int32Array, qzeros: (await ck.read(`${m}.qzeros`)).data as Int32Array,
        scales: await ck.readFloat32(`${m}.scales`), bits: bits as Bits, inFeatures: inF, outFeatures: outF,
        gIdx: ck.has(`${m}.g_idx`) ? ((await ck.read(`${m}.g_idx`)).data as Int32Array) : trivialGIdx(inF, groupSize),
        format: q.config.checkpointFormat,
      }); // [out, in]
      if (!conv1d.has(m.replace(/^.*?\.\d+\./, ''))) w.set(`${m}.weight`, W);
      else { // HF Conv1D stores [in, out]
        const T = new Float32Array(W.length);
        for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) T[i * outF + o] = W[o * inF + i]!;
        w.set(`${m}.weight`, T);
      }
    }
  } finally { await ck.dispose(); }
  return CausalLM.fromWeights(cfg, () => new InitializerWeights((n) => w.get(n)), {});
}

/** Load `dir` through CausalLM.load (the MatMulNBits path) and compare its logits with the dequantized reference. */
async function parity(dir: string, o: LoadOptions = quiet, ids = IDS): Promise<{ diff: number; model: CausalLM; logits: Float32Array }> {
  const model = await CausalLM.load(dir, o);
  const ref = await referenceModel(dir);
  const logits = await model.logits(ids);
  const diff = maxAbsDiff(logits, await ref.logits(ids));
  await ref.dispose();
  return { diff, model, logits };
}

const kernels = (m: CausalLM) => {
  const c: Record<string, number> = {};
  for (const x of m.quantization!.modules) c[x.kernel] = (c[x.kernel] ?? 0) + 1;
  return c;
};

/** Copy a checkpoint directory, editing its tensors and/or its two quantization configs on the way. */
async function rewrite(src: string, dst: string, o: {
  tensors?: (t: Map<string, Tensor>) => void;
  qconfig?: (q: Record<string, unknown>) => void;
  dropQuantizeConfigJson?: boolean; dropConfigQuantization?: boolean;
  fileName?: string; maxShardSize?: string;
}): Promise<string> {
  await fs.mkdir(dst, { recursive: true });
  for (const f of await fs.readdir(src)) if (!f.endsWith('.safetensors') && !f.endsWith('.index.json') && !f.endsWith('.json')) await fs.copyFile(join(src, f), join(dst, f));
  const ck = await Checkpoint.open(src);
  const t = new Map<string, Tensor>();
  for (const n of ck.names()) t.set(n, await ck.read(n));
  await ck.dispose();
  o.tensors?.(t);
  if (o.maxShardSize) await saveSharded(dst, t, { maxShardSize: o.maxShardSize });
  else await writeSafetensors(join(dst, o.fileName ?? 'model.safetensors'), t, { format: 'pt' });
  const config = JSON.parse(await fs.readFile(join(src, 'config.json'), 'utf8'));
  if (o.dropConfigQuantization) delete config.quantization_config;
  else if (o.qconfig) o.qconfig(config.quantization_config);
  await fs.writeFile(join(dst, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json']) if (existsSync(join(src, f))) await fs.copyFile(join(src, f), join(dst, f));
  if (!o.dropQuantizeConfigJson) {
    const q = JSON.parse(await fs.readFile(join(src, 'quantize_config.json'), 'utf8'));
    o.qconfig?.(q);
    await fs.writeFile(join(dst, 'quantize_config.json'), JSON.stringify(q, null, 2));
  }
  return dst;
}

/** A one-line GptqError whose message matches every pattern. */
function gptqError(...patterns: RegExp[]) {
  return (e: unknown) => {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${(e as Error)?.stack ?? e}`);
    assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  };
}

// -------------------------------------------------------------------------------- one linear, op level

/**
 * One random GPTQ linear (96 inputs: not a multiple of 64 or 128) through prepareLinear + QuantizedWeights vs
 * float64 x·Wᵀ + b on pack.ts's dequantize. `actOrder`: g_idx = a random permutation's j // group.
 */
async function linearCase(bits: Bits, groupSize: number, actOrder: boolean, o: { accuracyLevel?: AccuracyLevel; gIdx?: Int32Array } = {}) {
  const K = 96, N = 64, M = 5, r = rng(bits * 1000 + groupSize + (actOrder ? 7 : 0));
  const groups = groupSize === -1 ? 1 : Math.ceil(K / groupSize), maxq = (1 << bits) - 1;
  const perm = Array.from({ length: K }, (_, k) => k);
  if (actOrder) for (let i = K - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
  const gIdx = o.gIdx ?? Int32Array.from({ length: K }, (_, k) => (groupSize === -1 ? 0 : Math.floor(perm[k]! / groupSize)));
  const packed = packLinear({
    codes: Uint8Array.from({ length: N * K }, () => Math.floor(r() * (maxq + 1))),
    scales: Float32Array.from({ length: groups * N }, () => 0.01 + 0.05 * r()),
    zeros: Int32Array.from({ length: groups * N }, () => 1 + Math.floor(r() * maxq)), // 1..maxq (v1 cannot store 0)
    gIdx, bits, inFeatures: K, outFeatures: N,
  });
  const bias = Float32Array.from({ length: N }, () => r() - 0.5);
  const lin = { name: 'layer.lin', inFeatures: K, outFeatures: N, bits, groupSize, groups, qweight: packed.qweight, qzeros: packed.qzeros,
    scales: Float32Array.from(packed.scales, f16ToF32), gIdx, bias, format: 'gptq' as const };
  const p = prepareLinear(lin, o);
  const g = new GraphBuilder('lin');
  const x = g.input('x', 'float32', [M, K]);
  const w = new QuantizedWeights(() => undefined, new Map([['layer.lin', p]]), o);
  g.output(w.linear(g, x, { name: 'layer.lin', inFeatures: K, outFeatures: N, bias: true }), 'float32', [M, N], 'y');
  const xs = Float32Array.from({ length: M * K }, () => 2 * r() - 1);
  const sess = await createSession(g.toBytes());
  const y = (await sess.run({ x: f32(xs, [M, K]) })).y!.data as Float32Array;
  await sess.release();
  const W = dequantize({ ...packed, bits, inFeatures: K, outFeatures: N });
  let md = 0, ymax = 0;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let acc = bias[n]!;
    for (let k = 0; k < K; k++) acc += xs[m * K + k]! * W[n * K + k]!;
    md = Math.max(md, Math.abs(y[m * N + n]! - acc)); ymax = Math.max(ymax, Math.abs(acc));
  }
  return { diff: md / ymax, p };
}

test('one linear, K = 96: every bits × group (−1, 32, 48, 64, 128) × act-order is exact on MatMulNBits', async () => {
  const worst = new Map<string, number>();
  for (const bits of [2, 3, 4, 8] as const) for (const groupSize of [-1, 32, 48, 64, 128]) for (const actOrder of [false, true]) {
    for (const accuracyLevel of bits === 8 ? [0, 4] as const : [0] as const) {
      const { diff, p } = await linearCase(bits, groupSize, actOrder, { accuracyLevel });
      const tag = `${bits}-bit g${groupSize} ${actOrder ? 'act-order' : 'in-order'} level ${accuracyLevel}`;
      // 8-bit at level 0 is dequantized to fp32; at level 4 it is MatMulNBits with int8 activations (not exact).
      if (bits === 8 && accuracyLevel === 0) assert.equal(p.kind, 'dense', tag);
      else {
        assert.equal(p.kind, 'nbits', tag);
        if (p.kind === 'nbits') {
          assert.equal(p.bits, bits === 8 ? 8 : 4, tag);
          // block = largest power of two ≤ 128 dividing the group (the whole K = 96 for one group)
          assert.equal(p.block, { [-1]: 32, 32: 32, 48: 16, 64: 64, 128: 32 }[groupSize], tag);
          assert.equal(!!p.perm, actOrder && groupSize !== -1 && groupSize !== 128, tag);
        }
      }
      assert.ok(diff <= (accuracyLevel === 4 ? 2e-2 : 1e-6), `${tag}: relative max |Δ| ${diff}`);
      const key = `${bits}-bit level ${accuracyLevel}`;
      worst.set(key, Math.max(worst.get(key) ?? 0, diff));
    }
  }
  for (const [k, v] of worst) table.push(`  one linear K=96, ${k}, all groups/act-order: ${v.toExponential(2)} (relative to max |y|)`);
  // g_idx whose groups are not group_size long (not GPTQ's, but legal): dequantized to fp32, still exact.
  const odd = Int32Array.from({ length: 96 }, (_, k) => (k < 40 ? 0 : k < 70 ? 1 : 2));
  const { diff, p } = await linearCase(4, 32, false, { gIdx: odd });
  assert.equal(p.kind, 'dense');
  assert.match((p as { reason: string }).reason, /g_idx groups are not 32 input channels each/);
  assert.ok(diff <= 1e-6, `${diff}`);
});

// -------------------------------------------------------------------------------- parity matrix

test('our checkpoints (bits 2/3/4/8 × sym/asym × act-order × group −1/32) match the fp32 graph on dequantized weights', async (t) => {
  for (const bits of [2, 3, 4, 8] as const) for (const sym of [true, false]) for (const descAct of [false, true]) for (const groupSize of [-1, 32]) {
    const name = `${bits}-bit ${sym ? 'sym ' : 'asym'} ${descAct ? 'act-order' : 'in-order '} group ${String(groupSize).padStart(2)}`;
    await t.test(name, async () => {
      const dir = await quantized({ bits, sym, descAct, groupSize });
      const { diff, model } = await parity(dir);
      const k = kernels(model);
      // 2/3/4-bit run as 4-bit codes; 8-bit at accuracy_level 0 is dequantized to fp32 (ORT has no fast 8-bit fp32 kernel).
      assert.deepEqual(k, bits === 8 ? { fp32: 14 } : { 'matmulnbits-4': 14 });
      // act-order with groups: one input permutation per distinct g_idx (q/k/v share one, gate/up share one).
      if (bits !== 8) assert.equal(model.quantization!.permutations, descAct && groupSize > 0 ? 8 : 0);
      table.push(`  ${name}: ${diff.toExponential(2)}  (${Object.keys(k)[0]}${model.quantization!.permutations ? `, ${model.quantization!.permutations} gathers` : ''})`);
      assert.ok(diff <= 1e-4, `max |Δlogit| ${diff}`);
      await model.dispose();
    });
  }
});

test('KV-cache decode of an act-order 3-bit checkpoint matches its full forward at every step', async () => {
  const m = await CausalLM.load(await quantized({ bits: 3, sym: false, descAct: true, groupSize: 32 }), quiet);
  const ids = IDS[0]!, V = m.cfg.vocabSize;
  const full = await m.logits([ids]);
  let r = await m.forwardStep([ids.slice(0, 10)], m.emptyCache(1));
  let md = maxAbsDiff(r.logits, full.subarray(9 * V, 10 * V));
  for (let s = 10; s < ids.length; s++) {
    r = await m.forwardStep([[ids[s]!]], r.cache);
    md = Math.max(md, maxAbsDiff(r.logits, full.subarray(s * V, (s + 1) * V)));
  }
  assert.ok(md <= 1e-4, `step vs full ${md}`);
  await m.dispose();
});

test('4-bit act-order checkpoint (MatMulNBits): in-graph NLL = float64 log-softmax of its logits (≤1e-5 rel), perplexity() agrees', async (t) => {
  const dir = await quantized({ bits: 4, sym: true, descAct: true, groupSize: 32 });
  for (const nll of [false, true]) {
    const m = await CausalLM.load(dir, { ...quiet, nll });
    assert.deepEqual(kernels(m), { 'matmulnbits-4': 14 });
    const V = m.cfg.vocabSize;
    const ref = refNll(await m.logits(IDS), IDS, V);
    const got = await m.nll(IDS);
    assert.equal(got.length, IDS.length * (IDS[0]!.length - 1));
    const d = maxRelDiff(got, ref);
    const r = await perplexity(m, IDS.flat(), { seqlen: IDS[0]!.length });
    const want = pplOf(ref, 2);
    t.diagnostic(`${nll ? 'nll in the main graph' : 'separate nll session'}: max rel Δnll ${d.toExponential(2)}, ppl ${r.ppl} vs reference ${want}`);
    assert.ok(d <= 1e-5, `max |Δnll|/max(|nll|,1) ${d}`);
    assert.equal(r.windows, 2);
    assert.ok(Math.abs(r.ppl - want) / want <= 1e-6, `ppl ${r.ppl} vs reference ${want}`);
    await m.dispose();
  }
});

test('qwen2 (q/k/v biases) 4-bit: bias goes through MatMulNBits and matches', async () => {
  const src = join(work.path, 'qwen2');
  await makeLlamaCheckpoint(src, { modelType: 'qwen2', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, seed: 4 });
  const dir = await quantized({ bits: 4, groupSize: 32, descAct: true }, src);
  const ck = await Checkpoint.open(dir);
  assert.ok(ck.has('model.layers.0.self_attn.q_proj.bias') && ck.has('model.layers.0.self_attn.q_proj.qweight'));
  await ck.dispose();
  const { diff, model } = await parity(dir);
  table.push(`  qwen2 4-bit act-order g32 with biases: ${diff.toExponential(2)}`);
  assert.ok(diff <= 1e-4, `${diff}`);
  await model.dispose();
});

test('tiny-gpt2 (HF Conv1D linears, fused c_attn) 4-bit asym act-order: matches', { skip: SKIP_SHARED }, async () => {
  const vocab53 = () => ({ ...calib, inputIds: calib.inputIds.map((x) => x.map((t) => t % 53)) });
  const dir = await quantized({ bits: 4, sym: false, descAct: true, groupSize: 32 }, join(SHARED, 'models', 'tiny-gpt2'), vocab53);
  const ids = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37], [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]];
  const { diff, model } = await parity(dir, quiet, ids);
  assert.deepEqual(kernels(model), { 'matmulnbits-4': 16 });
  table.push(`  tiny-gpt2 4-bit asym act-order g32: ${diff.toExponential(2)}`);
  assert.ok(diff <= 1e-4, `${diff}`);
  await model.dispose();
});

test('accuracyLevel 4 (int8 activations): runs the int8 kernels, close but not exact; 8-bit uses MatMulNBits there', async () => {
  for (const bits of [4, 8] as const) {
    const dir = await quantized({ bits, sym: false, descAct: true, groupSize: 32 });
    const { diff, model, logits } = await parity(dir, { ...quiet, accuracyLevel: 4 });
    assert.deepEqual(kernels(model), bits === 8 ? { 'matmulnbits-8': 14 } : { 'matmulnbits-4': 14 });
    const exact = await CausalLM.load(dir, quiet);
    const l0 = await exact.logits(IDS);
    let agree = 0;
    const V = 128, rows = l0.length / V;
    const argmax = (a: Float32Array, r: number) => { let b = 0; for (let v = 1; v < V; v++) if (a[r * V + v]! > a[r * V + b]!) b = v; return b; };
    for (let r = 0; r < rows; r++) if (argmax(l0, r) === argmax(logits, r)) agree++;
    table.push(`  accuracy_level 4, ${bits}-bit asym act-order g32: ${diff.toExponential(2)} (top-1 agrees at ${agree}/${rows} positions)`);
    assert.ok(diff > 0 && diff < 0.5, `accuracy_level 4 max |Δ| ${diff}`);
    assert.ok(agree >= rows * 0.9, `top-1 agreement ${agree}/${rows}`);
    await model.dispose(); await exact.dispose();
  }
  await assert.rejects(CausalLM.load(await quantized({ bits: 4, groupSize: 32 }), { accuracyLevel: 5 as 4 }), gptqError(/accuracyLevel must be 0 .* got 5/));
});

// -------------------------------------------------------------------------------- layouts

test('gptq_v2 (zeros stored without −1) loads to the same logits as the v1 checkpoint', async () => {
  const v1 = await quantized({ bits: 4, sym: false, descAct: true, groupSize: 32 });
  const v2 = await rewrite(v1, join(work.path, 'v2'), {
    tensors: (t) => {
      for (const [n, x] of t) {
        if (!n.endsWith('.qzeros')) continue;
        const out = t.get(n.replace(/qzeros$/, 'scales'))!.shape[1]!;
        x.data = convertV1ToV2Zeros(x.data as Int32Array, 4, x.shape[0]!, out);
      }
    },
    qconfig: (q) => { q.checkpoint_format = 'gptq_v2'; },
  });
  const a = await CausalLM.load(v1, quiet);
  const { diff, model, logits } = await parity(v2);
  const dv = maxAbsDiff(logits, await a.logits(IDS));
  table.push(`  gptq_v2 4-bit asym act-order g32: ${diff.toExponential(2)} vs reference, ${dv.toExponential(2)} vs the v1 load`);
  assert.ok(diff <= 1e-4 && dv <= 1e-5, `${diff} ${dv}`);
  await model.dispose(); await a.dispose();
});

test('v1 zero points that underflowed (stored zero−1 = −1 → zero 2^bits) stay exact', async () => {
  // 2-bit: zero 4 fits the 4-bit codes we repack to; 4-bit: zero 16 needs 8-bit zero points → fp32 at level 0.
  for (const bits of [2, 4] as const) {
    const src = await quantized({ bits, sym: false, descAct: false, groupSize: 32 });
    const dir = await rewrite(src, join(work.path, `underflow${bits}`), {
      tensors: (t) => { (t.get('model.layers.1.self_attn.o_proj.qzeros')!.data as Int32Array)[0]! |= (1 << bits) - 1; },
    });
    const logs: string[] = [];
    const { diff, model } = await parity(dir, { onLog: (m) => logs.push(m) });
    const o = model.quantization!.modules.find((x) => x.name === 'model.layers.1.self_attn.o_proj')!;
    table.push(`  v1 zero underflow, ${bits}-bit: ${diff.toExponential(2)} (o_proj on ${o.kernel})`);
    assert.ok(diff <= 1e-4, `${diff}`);
    if (bits === 2) { assert.equal(o.kernel, 'matmulnbits-4'); assert.equal(logs.length, 0); }
    else { assert.equal(o.kernel, 'fp32'); assert.match(logs.join(), /1 of 14 quantized modules dequantized to fp32 .*underflowed to 16/); }
    await model.dispose();
  }
});

test('AutoGPTQ file name + quantize_config.json only, transformers config.json only, and sharded: same logits', async () => {
  const src = await quantized({ bits: 4, sym: true, descAct: true, groupSize: 32 });
  const want = await (await CausalLM.load(src, quiet)).logits(IDS);
  const variants = {
    autogptq: await rewrite(src, join(work.path, 'autogptq'), { fileName: 'gptq_model-4bit-32g.safetensors', dropConfigQuantization: true }),
    transformers: await rewrite(src, join(work.path, 'transformers'), { dropQuantizeConfigJson: true }),
    sharded: await rewrite(src, join(work.path, 'sharded'), { maxShardSize: '30KB' }),
  };
  assert.ok((await fs.readdir(variants.sharded)).filter((f) => f.endsWith('.safetensors')).length > 2);
  for (const [k, dir] of Object.entries(variants)) {
    const m = await CausalLM.load(dir, quiet);
    assert.ok(maxAbsDiff(await m.logits(IDS), want) <= 1e-6, k);
    assert.equal(m.quantization!.modules.length, 14, k);
    await m.dispose();
  }
});

test('GPTQModel dynamic per-module overrides: 8-bit o_proj inside a 4-bit checkpoint', async () => {
  const q4 = await quantized({ bits: 4, sym: true, descAct: false, groupSize: 32 });
  const q8 = await quantized({ bits: 8, sym: true, descAct: false, groupSize: 32 });
  const ck8 = await Checkpoint.open(q8);
  const o8 = new Map<string, Tensor>();
  for (const n of ck8.names()) if (n.includes('.o_proj.')) o8.set(n, await ck8.read(n));
  await ck8.dispose();
  const dir = await rewrite(q4, join(work.path, 'dynamic'), {
    tensors: (t) => { for (const [n, x] of o8) t.set(n, x); },
    qconfig: (q) => { q.dynamic = { ...(q.dynamic as object), '+:.*\\.o_proj$': { bits: 8 } }; },
  });
  const { diff, model } = await parity(dir);
  const o = model.quantization!.modules.filter((m) => m.name.endsWith('o_proj'));
  assert.deepEqual(o.map((m) => [m.bits, m.kernel]), [[8, 'fp32'], [8, 'fp32']]);
  assert.equal(kernels(model)['matmulnbits-4'], 12);
  table.push(`  dynamic 8-bit o_proj in a 4-bit g32 checkpoint: ${diff.toExponential(2)}`);
  assert.ok(diff <= 1e-4, `${diff}`);
  await model.dispose();
});

test('GPTQModel.fromQuantized returns the model, tokenizer and settings; fp checkpoints are refused', async () => {
  const dir = await quantized({ bits: 4, groupSize: 32 });
  const r = await GPTQModel.fromQuantized(dir, { accuracyLevel: 0 });
  assert.equal(r.quantization.method, 'gptq');
  assert.equal(r.quantization.quantizeConfig!.bits, 4);
  assert.equal(r.quantization.quantizeConfig!.groupSize, 32);
  assert.equal(r.tokenizer, undefined); // the synthetic model has none
  assert.equal((await r.model.logits([[1, 2, 3]])).length, 3 * 128);
  await r.model.dispose();
  await assert.rejects(GPTQModel.fromQuantized(BASE), gptqError(/is not a quantized checkpoint \(no quantize_config\.json, no quantization_config in config\.json, no AWQ quant_config\.json\)/));
});

// -------------------------------------------------------------------------------- stories260K

test('quantized stories260K (attention 4-bit g32, MLP kept fp): greedy from <s> is deterministic and coherent', async () => {
  const dir = await quantizeStories(STORIES, join(work.path, 'stories-q4'));
  const { model, tokenizer } = await GPTQModel.fromQuantized(dir, quiet);
  assert.ok(tokenizer);
  assert.deepEqual(kernels(model), { 'matmulnbits-4': 20 });
  const runs: string[] = [];
  for (let i = 0; i < 2; i++) {
    const g = await generate(model, [[1]], { maxNewTokens: 24, eosTokenIds: [2] });
    runs.push(tokenizer.decode(g.tokens[0]!));
  }
  assert.equal(runs[0], runs[1]);
  assert.ok(runs[0]!.startsWith('Once upon a time'), runs[0]);
  const rep = await inspectModel(dir);
  assert.equal(rep.quantizedModules.length, 20);
  assert.equal(rep.keptModules.length, 15);
  assert.ok(rep.tiedLmHead);
  assert.deepEqual(summarizeNames(rep.keptModules), ['model.layers.{0-4}.mlp.up_proj', 'model.layers.{0-4}.mlp.gate_proj', 'model.layers.{0-4}.mlp.down_proj']); // module-tree order
  await model.dispose();
});

test('gptq inspect: params, effective bits/weight, disk size, quantized vs kept modules', async () => {
  const dir = await quantized({ bits: 4, sym: false, descAct: true, groupSize: 32 });
  const r = await inspectModel(dir);
  assert.equal(r.arch, 'llama');
  assert.equal(r.params.quantized, 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 64 * 128)); // q, k/v (2 kv heads), o, gate/up/down × 2 layers
  assert.equal(r.quantizedModules.length, 14);
  assert.deepEqual(r.keptModules, ['lm_head']);
  const b = r.quantization!.bitsPerWeight;
  // codes 4 + fp16 scale per 32 weights (0.5) + 4-bit zero per 32 (0.125) + int32 g_idx per input per output row
  assert.equal(b.codes, 4);
  assert.equal(b.scales, 0.5);
  assert.equal(b.zeros, 0.125);
  assert.ok(b.gIdx > 0 && Math.abs(b.total - (b.codes + b.scales + b.zeros + b.gIdx)) < 1e-9);
  assert.equal(r.quantization!.actOrderModules, 14);
  assert.equal(r.diskBytes, (await fs.stat(join(dir, 'model.safetensors'))).size);
  const text = formatReport(r);
  assert.match(text, /GPTQ 4-bit, group 32, asym, desc_act true, format gptq/);
  const cli = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'inspect', dir], { encoding: 'utf8', cwd: ROOT });
  assert.match(cli, /bits\/weight: +5\.\d+ in quantized linears/);
  assert.match(cli, /kept fp: +1 linear/);
});

// -------------------------------------------------------------------------------- bad inputs

test('bad input: .qweight tensors but no quantize config', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32 }), join(work.path, 'noconfig'), { dropQuantizeConfigJson: true, dropConfigQuantization: true });
  await assert.rejects(CausalLM.load(dir), gptqError(/model\.safetensors: has GPTQ tensors \(e\.g\. ".*\.qweight"\)/, /no quantize_config\.json/));
});

test('bad input: bits in the config disagree with the qweight shape', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32 }), join(work.path, 'badbits'), { qconfig: (q) => { q.bits = 8; } });
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(/model\.safetensors: tensor "model\.layers\.0\.mlp\.down_proj\.qweight" has shape \[16, 64\] but bits 8 \(.*quantize_config\.json\) with in_features 128, out_features 64 needs \[32, 64\]/));
});

test('bad input: group_size in the config disagrees with the scales shape', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32 }), join(work.path, 'badgroup'), { qconfig: (q) => { q.group_size = 16; } });
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(/tensor "model\.layers\.0\.[a-z_.]+\.scales" has shape \[\d+, \d+\] but group_size 16 .* needs \[\d+, \d+\] \(rows = groups\)/));
});

test('bad input: quantize_config.json and config.json#quantization_config disagree', async () => {
  const src = await quantized({ bits: 4, groupSize: 32 });
  const dir = await rewrite(src, join(work.path, 'disagree'), {});
  const c = JSON.parse(await fs.readFile(join(dir, 'config.json'), 'utf8'));
  c.quantization_config.group_size = 128;
  await fs.writeFile(join(dir, 'config.json'), JSON.stringify(c));
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(/quantize_config\.json says group_size 32 but .*config\.json#quantization_config says 128/));
});

test('bad input: desc_act true but no g_idx tensors', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32, descAct: true }), join(work.path, 'nogidx'), {
    tensors: (t) => { for (const n of [...t.keys()]) if (n.endsWith('.g_idx')) t.delete(n); },
  });
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(/desc_act is true \(.*quantize_config\.json\) but module "model\.layers\.0\.[a-z_.]+" has no "model\.layers\.0\.[a-z_.]+\.g_idx" tensor/));
});

test('bad input: g_idx entry out of range', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32, descAct: true }), join(work.path, 'badgidx'), {
    tensors: (t) => { (t.get('model.layers.1.mlp.up_proj.g_idx')!.data as Int32Array)[5] = 7; },
  });
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(/tensor "model\.layers\.1\.mlp\.up_proj\.g_idx": entry 5 is 7, outside \[0, 2\)/));
});

test('bad input: truncated shard', async () => {
  const dir = await rewrite(await quantized({ bits: 4, groupSize: 32 }), join(work.path, 'truncated'), { maxShardSize: '30KB' });
  const shard = (await fs.readdir(dir)).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort()[1]!;
  const p = join(dir, shard);
  await fs.truncate(p, (await fs.stat(p)).size - 100);
  await assert.rejects(CausalLM.load(dir, quiet), gptqError(new RegExp(`${shard.replace(/\./g, '\\.')}: tensor ".*": data_offsets .* out of range .*truncated`)));
});
