/**
 * BLOOM, Falcon and Gemma: ORT graphs vs independent float64 references on synthetic HF-layout checkpoints
 * (full sequence, KV-cache steps, padded/holed attention masks, per-layer calibration graphs), batched
 * left-padded generation, and a GPTQ round trip per architecture (quantize → fake-quant error vs RTN →
 * saveQuantized → CausalLM.load of the GPTQ directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { buildLayerGraph } from '../src/graph/causal-lm.ts';
import { InputWeights } from '../src/graph/weights.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { Checkpoint } from '../src/io/safetensors.ts';
import { loadModelConfig, parseModelConfig } from '../src/io/config.ts';
import { alibiSlopes } from '../src/models/blocks.ts';
import { archFor } from '../src/models/registry.ts';
import { bloomRefBlock, bloomRefConfig, bloomRefEmbed, bloomRefForward, refAlibiSlopes } from './reference/bloom-ref.ts';
import { falconRefBlock, falconRefConfig, falconRefEmbed, falconRefForward } from './reference/falcon-ref.ts';
import { gemmaRefConfig, gemmaRefEmbed, gemmaRefForward, gemmaRefLayer } from './reference/gemma-ref.ts';
import {
  bloomConfig, falconConfig, gemmaConfig, makeBloomCheckpoint, makeFalconCheckpoint, makeGemmaCheckpoint,
  type BloomOpts, type FalconOpts, type GemmaOpts,
} from './synth-archs3.ts';
import { rng, tmpDir } from './helpers.ts';

type Weights = (n: string) => Float32Array | undefined;
/** Reference logits [seq][vocab] for config.json `c`; `mask` = 2-D attention mask row. */
type RefForward = (c: any, w: Weights, ids: number[], mask?: number[]) => Float64Array[];

const REFS: Record<string, { forward: RefForward; embed: (c: any, w: Weights, ids: number[]) => Float64Array; layer: (c: any, w: Weights, l: number, h: Float64Array, seq: number) => Float64Array }> = {
  bloom: {
    forward: (c, w, ids, m) => bloomRefForward(bloomRefConfig(c), w, ids, m),
    embed: (c, w, ids) => bloomRefEmbed(bloomRefConfig(c), w, ids),
    layer: (c, w, l, h, s) => bloomRefBlock(bloomRefConfig(c), w, l, h, s),
  },
  falcon: {
    forward: (c, w, ids, m) => falconRefForward(falconRefConfig(c), w, ids, m),
    embed: (c, w, ids) => falconRefEmbed(falconRefConfig(c), w, ids),
    layer: (c, w, l, h, s) => falconRefBlock(falconRefConfig(c), w, l, h, s),
  },
  gemma: {
    forward: (c, w, ids, m) => gemmaRefForward(gemmaRefConfig(c), w, ids, m),
    embed: (c, w, ids) => gemmaRefEmbed(gemmaRefConfig(c), w, ids),
    layer: (c, w, l, h, s) => gemmaRefLayer(gemmaRefConfig(c), w, l, h, s),
  },
};

function maxDiff(lg: Float32Array, ref: Float64Array[], V: number, offset = 0): number {
  let md = 0;
  ref.forEach((row, s) => { for (let v = 0; v < V; v++) md = Math.max(md, Math.abs(lg[(offset + s) * V + v]! - row[v]!)); });
  return md;
}

const ids16 = (vocab: number, mul = 7, add = 3) => Array.from({ length: 16 }, (_, i) => (i * mul + add) % vocab);
const TOL = 1e-4;

/**
 * Full-sequence logits, KV-cache decoding (prefill half, then one token at a time), and a cached run under an
 * attention mask with left padding and a hole (positions / ALiBi key positions from the mask's cumsum) vs the reference.
 */
async function parity(dir: string): Promise<{ full: number; step: number; masked: number }> {
  const m = await CausalLM.load(dir);
  const w = await loadFloatWeights(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const ref = REFS[config.model_type]!.forward;
  const get: Weights = (n) => w.get(n);
  const V = m.cfg.vocabSize;
  let full = 0, step = 0, masked = 0;
  try {
    for (const ids of [ids16(V), ids16(V, 13, 5).slice(0, 9)]) {
      const r0 = ref(config, get, ids);
      full = Math.max(full, maxDiff(await m.logits([ids]), r0, V));
      const h = Math.ceil(ids.length / 2);
      let r = await m.forwardStep([ids.slice(0, h)], m.emptyCache(1));
      step = Math.max(step, maxDiff(r.logits, [r0[h - 1]!], V));
      for (let s = h; s < ids.length; s++) {
        r = await m.forwardStep([[ids[s]!]], r.cache);
        step = Math.max(step, maxDiff(r.logits, [r0[s]!], V));
      }
    }
    const ids = ids16(V, 5, 1).slice(0, 11);
    const mask = [0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1];
    const rm = ref(config, get, ids, mask);
    const h = 7;
    let r = await m.forwardStep([ids.slice(0, h)], m.emptyCache(1), [mask.slice(0, h)]);
    masked = maxDiff(r.logits, [rm[h - 1]!], V);
    for (let s = h; s < ids.length; s++) {
      r = await m.forwardStep([[ids[s]!]], r.cache, [mask.slice(0, s + 1)]);
      masked = Math.max(masked, maxDiff(r.logits, [rm[s]!], V));
    }
  } finally { await m.release(); }
  return { full, step, masked };
}

/** The per-layer calibration graph (weights as inputs) on layer `layer` vs the reference layer; checks Hessian taps. */
async function layerGraphParity(dir: string, layer: number, ids: number[]): Promise<number> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const weights = await loadFloatWeights(dir);
  const w: Weights = (n) => weights.get(n);
  const ref = REFS[cfg.modelType]!;
  const src = new InputWeights(`${arch.layersBlockName}0.`);
  const g = buildLayerGraph(arch, cfg, src, { hessians: arch.layerLinears(cfg).map((l) => l.rel) });
  const sess = await createSession(g.toBytes());
  const x = ref.embed(cfg.raw, w, ids);
  const S = ids.length, H = cfg.hiddenSize;
  const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(Float32Array.from(x), [1, S, H]) };
  for (const inp of src.inputs) {
    const data = w(`${arch.layersBlockName}${layer}.${inp.rel}`);
    assert.ok(data, `checkpoint tensor for ${inp.rel}`);
    feeds[inp.rel] = f32(data, inp.shape);
  }
  const r = await sess.run(feeds);
  for (const l of arch.layerLinears(cfg)) assert.deepEqual(r[`xtx.${l.rel}`]!.dims, [l.inFeatures, l.inFeatures]);
  const want = ref.layer(cfg.raw, w, layer, x, S);
  const got = r.hidden_out!.data as Float32Array;
  let md = 0;
  for (let i = 0; i < want.length; i++) md = Math.max(md, Math.abs(got[i]! - want[i]!));
  await sess.release();
  return md;
}

/** AutoGPTQ's module tree: every inside module is a layer linear whose checkpoint weight has the declared shape. */
async function checkModuleTree(dir: string): Promise<void> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const w = await loadFloatWeights(dir);
  const lins = arch.layerLinears(cfg);
  assert.deepEqual([...arch.insideLayerModules.flat()].sort(), lins.map((l) => l.rel).sort());
  for (const l of lins) {
    const t = w.get(`${arch.layersBlockName}0.${l.rel}.weight`);
    assert.equal(t?.length, l.inFeatures * l.outFeatures, l.rel);
    if (l.bias) assert.equal(w.get(`${arch.layersBlockName}0.${l.rel}.bias`)?.length, l.outFeatures, `${l.rel}.bias`);
  }
}

const results: string[] = [];
const report = (name: string, r: Record<string, number | string>) =>
  results.push(`${name}: ${Object.entries(r).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toExponential(2) : v}`).join(', ')}`);

type Case = ['bloom', BloomOpts] | ['falcon', FalconOpts] | ['gemma', GemmaOpts];
const write = (dir: string, [kind, o]: Case) =>
  kind === 'bloom' ? makeBloomCheckpoint(dir, o) : kind === 'falcon' ? makeFalconCheckpoint(dir, o) : makeGemmaCheckpoint(dir, o);

const cases: [string, Case][] = [
  ['bloom (hidden 64, 4 heads)', ['bloom', { seed: 51 }]],
  ['bloom 6 heads (non-power-of-2 ALiBi), hidden 96, apply_residual_connection_post_layernorm', ['bloom', { seed: 52, hidden: 96, heads: 6, postLnResidual: true }]],
  ['bloom-560m layout (n_embed, no transformer. prefix, lm_head stored), 3 layers', ['bloom', { seed: 53, legacy: true, storeLmHead: true, layers: 3 }]],
  ['falcon-7b style (multi_query, parallel_attn, input_layernorm)', ['falcon', { seed: 61 }]],
  ['falcon-40b style (new_decoder_architecture, 8 heads / 2 kv, ln_attn + ln_mlp)', ['falcon', { seed: 62, newArch: true, heads: 8, kvHeads: 2 }]],
  ['falcon-11B style (new arch, num_ln_in_parallel_attn 1, ffn_hidden_size 96, rope_theta 500042)', ['falcon', { seed: 63, newArch: true, kvHeads: 2, numLnInParallelAttn: 1, ffn: 96, ropeTheta: 500042 }]],
  ['falcon-rw style (multi_query false, sequential, bias, gelu_new)', ['falcon', { seed: 64, multiQuery: false, parallelAttn: false, bias: true, activation: 'gelu_new' }]],
  ['gemma-2b style (head_dim 32 ≠ 64/4, 1 kv head, hidden_activation)', ['gemma', { seed: 71 }]],
  ['gemma legacy (hidden_act gelu, no hidden_activation), 2 kv heads, attention_bias, lm_head stored', ['gemma', { seed: 72, kvHeads: 2, hiddenActivation: null, attentionBias: true, storeLmHead: true }]],
  ['gemma hidden_act silu (hidden_activation gelu ignored), head_dim 16, 8 heads / 2 kv', ['gemma', { seed: 73, hiddenAct: 'silu', hiddenActivation: 'gelu', headDim: 16, heads: 8, kvHeads: 2 }]],
];

for (const [name, c] of cases) {
  test(`synthetic ${name}: ORT vs float64 reference (full, KV step, masked ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await write(t.path, c);
      const r = await parity(t.path);
      report(name, r);
      assert.ok(r.full <= TOL, `full ${r.full}`);
      assert.ok(r.step <= TOL, `step ${r.step}`);
      assert.ok(r.masked <= TOL, `masked ${r.masked}`);
      if (!(c[0] === 'bloom' && c[1].legacy)) await checkModuleTree(t.path);
    } finally { t.cleanup(); }
  });
}

test('calibration layer graphs (InputWeights, ALiBi / fused qkv / (1+w) norms) match the reference layers', async () => {
  const t = tmpDir();
  try {
    const pick: [string, Case][] = [cases[1]!, cases[3]!, cases[4]!, cases[6]!, cases[7]!];
    const diffs: Record<string, number> = {};
    for (const [i, [name, c]] of pick.entries()) {
      const dir = join(t.path, String(i));
      await write(dir, c);
      diffs[name.split(' (')[0]!] = await layerGraphParity(dir, 1, ids16(96));
    }
    report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
  } finally { t.cleanup(); }
});

test('ALiBi slopes: graph helper = the paper\'s get_slopes (powers of two and not)', () => {
  for (const n of [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 71, 112]) {
    const a = alibiSlopes(n), b = refAlibiSlopes(n);
    assert.equal(a.length, n);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-14 * b[i]!, `${n} heads, slope ${i}: ${a[i]} vs ${b[i]}`);
  }
  // bloom-560m (16 heads): 2^-0.5, 2^-1, …; 6 heads: 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1, 2^-3.
  assert.deepEqual(Array.from(alibiSlopes(6)), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
});

test('config parsing: bloom n_embed/n_head/n_layer, falcon kv heads per layout, gemma head_dim; falcon alibi rejected', async () => {
  const b = parseModelConfig(bloomConfig({ legacy: true, hidden: 96, heads: 6 }));
  assert.deepEqual([b.hiddenSize, b.numHeads, b.numKvHeads, b.headDim, b.numLayers, b.rmsNormEps, b.tieWordEmbeddings], [96, 6, 6, 16, 2, 1e-5, true]);
  const kv = (o: FalconOpts) => parseModelConfig(falconConfig(o)).numKvHeads;
  assert.equal(kv({}), 1);
  assert.equal(kv({ multiQuery: false }), 4);
  assert.equal(kv({ newArch: true, heads: 8, kvHeads: 2 }), 2);
  assert.equal(parseModelConfig({ ...falconConfig({ newArch: true, heads: 8 }), num_kv_heads: undefined, n_head_kv: 4 }).numKvHeads, 4);
  assert.equal(parseModelConfig(falconConfig({ ffn: 96 })).intermediateSize, 96);
  const g = parseModelConfig(gemmaConfig({ headDim: 32 }));
  assert.deepEqual([g.headDim, g.rotaryDim, g.numKvHeads, g.tieWordEmbeddings], [32, 32, 1, true]);
  const falconCheck = (c: Record<string, any>) => archFor('falcon').check!(parseModelConfig(c, 'x/config.json'));
  assert.throws(() => falconCheck({ ...falconConfig(), alibi: true }), /falcon with alibi=true is not supported/);
  assert.throws(() => falconCheck({ ...falconConfig({ newArch: true }), parallel_attn: false }), /needs parallel_attn=true/);
  assert.throws(() => falconCheck({ ...falconConfig(), activation: 'tanh' }), /activation "tanh" is not supported/);
});

test('bloom / falcon / gemma: batched generation with left padding equals one-by-one', async () => {
  const t = tmpDir();
  try {
    const picks: Case[] = [cases[1]![1], cases[4]![1], cases[7]![1]];
    for (const [i, c] of picks.entries()) {
      const dir = join(t.path, String(i));
      await write(dir, c);
      const m = await CausalLM.load(dir);
      const prompts = [[5, 9, 17, 33, 2, 70], [44, 3], [8, 8, 61, 20]];
      const batched = await generate(m, prompts, { maxNewTokens: 8 });
      for (let r = 0; r < prompts.length; r++) {
        const single = await generate(m, [prompts[r]!], { maxNewTokens: 8 });
        assert.deepEqual(batched.tokens[r], single.tokens[0], `${c[0]} row ${r}`);
      }
      await m.release();
    }
  } finally { t.cleanup(); }
});

/** Pre-tokenized calibration windows. */
function examples(n: number, len: number, seed: number, vocab = 96) {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: len }, () => Math.floor(r() * vocab)) }));
}

async function logitMse(a: CausalLM, b: CausalLM, ids: number[][]): Promise<number> {
  const x = await a.logits(ids), y = await b.logits(ids);
  let s = 0; for (let i = 0; i < x.length; i++) s += (x[i]! - y[i]!) ** 2;
  return s / x.length;
}

const quantCases: [string, Case, Record<string, [string, number[]]>][] = [
  ['bloom 6 heads', cases[1]![1], {
    'transformer.h.1.self_attention.query_key_value.qweight': ['I32', [12, 288]],
    'transformer.h.1.self_attention.query_key_value.qzeros': ['I32', [3, 36]],
    'transformer.h.1.self_attention.query_key_value.scales': ['F16', [3, 288]],
    'transformer.h.1.self_attention.query_key_value.bias': ['F16', [288]],
    'transformer.h.1.mlp.dense_4h_to_h.qweight': ['I32', [48, 96]],
    'transformer.h.1.mlp.dense_4h_to_h.g_idx': ['I32', [384]],
    'transformer.word_embeddings_layernorm.weight': ['F32', [96]],
  }],
  ['falcon-40b style', cases[4]![1], {
    'transformer.h.0.self_attention.query_key_value.qweight': ['I32', [8, 96]],
    'transformer.h.0.self_attention.dense.scales': ['F16', [2, 64]],
    'transformer.h.0.mlp.dense_h_to_4h.qweight': ['I32', [8, 256]],
    'transformer.h.0.ln_mlp.bias': ['F32', [64]],
  }],
  ['gemma-2b style', cases[7]![1], {
    'model.layers.1.self_attn.q_proj.qweight': ['I32', [8, 128]],
    'model.layers.1.self_attn.k_proj.qweight': ['I32', [8, 32]],
    'model.layers.1.self_attn.o_proj.qweight': ['I32', [16, 64]],
    'model.layers.1.mlp.down_proj.scales': ['F16', [4, 64]],
    'model.norm.weight': ['F32', [64]],
  }],
];

for (const [name, c, expect] of quantCases) {
  test(`${name}: GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load of the GPTQ dir`, async () => {
    const t = tmpDir();
    try {
      const src = join(t.path, 'src'), out = join(t.path, 'q');
      await write(src, c);
      const fp = await CausalLM.load(src);
      const held = examples(4, 32, 99).map((e) => e.inputIds);
      const errs: Record<string, number> = {};
      let fake: CausalLM | undefined;
      for (const method of ['rtn', 'gptq'] as const) {
        const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
        const res = await m.quantize(examples(16, 32, 5), { method, keepDequantized: true });
        assert.equal(res.skipped.length, 0, JSON.stringify(res.skipped));
        assert.equal(res.quantized.size, m.arch.layerLinears(m.cfg).length * m.cfg.numLayers);
        const fq = await m.fakeQuantModel();
        errs[method] = await logitMse(fq, fp, held);
        if (method === 'gptq') { fake = fq; await m.saveQuantized(out); } else await fq.release();
        await m.close();
      }
      assert.ok(errs.gptq! < errs.rtn!, `gptq ${errs.gptq} vs rtn ${errs.rtn}`);
      const ck = await Checkpoint.open(out);
      for (const [n, [dt, shape]] of Object.entries(expect)) assert.deepEqual([ck.info(n).dtype, ck.info(n).shape], [dt, shape], n);
      await ck.close();
      const q = await CausalLM.load(out);
      assert.ok(q.quantization, 'loaded as a GPTQ checkpoint');
      const reload = await logitMse(q, fake!, held);
      const reloadFp = await logitMse(q, fp, held);
      report(`${name} quantized`, { 'gptq mse': errs.gptq!, 'rtn mse': errs.rtn!, 'reload vs fake-quant mse': reload, 'reload vs fp mse': reloadFp });
      assert.ok(reload < 0.05 * errs.gptq!, `reloaded GPTQ dir vs fake-quant model: mse ${reload} (quantization mse ${errs.gptq})`);
      await q.release(); await fake!.release(); await fp.release();
    } finally { t.cleanup(); }
  });
}

test('bloom-560m layout without the transformer. prefix: quantize → save (source naming) → reload', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src'), out = join(t.path, 'q');
    await write(src, cases[2]![1]);
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const res = await m.quantize(examples(8, 32, 5));
    assert.ok(res.quantized.has('h.0.self_attention.query_key_value'), [...res.quantized].join(','));
    await m.saveQuantized(out);
    await m.close();
    const ck = await Checkpoint.open(out);
    assert.ok(ck.has('h.0.self_attention.query_key_value.qweight') && !ck.names().some((n) => n.startsWith('transformer.')));
    await ck.close();
    const q = await CausalLM.load(out);
    assert.ok(q.quantization);
    const lg = await q.logits([[1, 2, 3, 4]]);
    assert.ok(lg.every(Number.isFinite));
    await q.release();
  } finally { t.cleanup(); }
});

test('max |Δ| summary', () => { for (const r of results) console.log(`# ${r}`); });
