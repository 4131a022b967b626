/**
 * GPT-NeoX, GPT-J and Phi: ORT graphs vs independent float64 references on synthetic HF-layout checkpoints,
 * calibration layer graphs, config defaults, and one GPTQ run per architecture (quantize → fake-quant logits →
 * saveQuantized → CausalLM.load of the saved directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { Checkpoint } from '../src/io/safetensors.ts';
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { buildLayerGraph } from '../src/graph/causal-lm.ts';
import { InputWeights } from '../src/graph/weights.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { loadModelConfig, parseModelConfig, type ModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import {
  gptjRefConfig, gptjRefEmbed, gptjRefForward, gptjRefLayer, neoxRefConfig, neoxRefEmbed, neoxRefForward, neoxRefLayer,
  phiRefConfig, phiRefEmbed, phiRefForward, phiRefLayer, erf,
} from './reference/neox-family-ref.ts';
import {
  gptjConfig, makeGptjCheckpoint, makeNeoxCheckpoint, makePhiCheckpoint, neoxConfig, phiConfig,
  type GptjOpts, type NeoxOpts, type PhiOpts,
} from './synth-archs2.ts';
import { rng, tmpDir } from './helpers.ts';

type Weights = (n: string) => Float32Array | undefined;
type RefForward = (config: any, w: Weights, ids: number[]) => Float64Array[];
type RefLayer = (config: any, w: Weights, layer: number, h: Float64Array, seq: number) => Float64Array;
type RefEmbed = (config: any, w: Weights, ids: number[]) => Float64Array;

interface Family<O> {
  make: (dir: string, o: O) => Promise<void>;
  forward: RefForward; embed: RefEmbed; layer: RefLayer;
}
const neox: Family<NeoxOpts> = {
  make: makeNeoxCheckpoint,
  forward: (c, w, ids) => neoxRefForward(neoxRefConfig(c), w, ids),
  embed: (c, w, ids) => neoxRefEmbed(neoxRefConfig(c), w, ids),
  layer: (c, w, l, h, s) => neoxRefLayer(neoxRefConfig(c), w, l, h, s),
};
const gptj: Family<GptjOpts> = {
  make: makeGptjCheckpoint,
  forward: (c, w, ids) => gptjRefForward(gptjRefConfig(c), w, ids),
  embed: (c, w, ids) => gptjRefEmbed(gptjRefConfig(c), w, ids),
  layer: (c, w, l, h, s) => gptjRefLayer(gptjRefConfig(c), w, l, h, s),
};
const phi: Family<PhiOpts> = {
  make: makePhiCheckpoint,
  forward: (c, w, ids) => phiRefForward(phiRefConfig(c), w, ids),
  embed: (c, w, ids) => phiRefEmbed(phiRefConfig(c), w, ids),
  layer: (c, w, l, h, s) => phiRefLayer(phiRefConfig(c), w, l, h, s),
};

function maxDiff(lg: Float32Array, ref: Float64Array[], V: number, offset = 0): number {
  let md = 0;
  ref.forEach((row, s) => { for (let v = 0; v < V; v++) md = Math.max(md, Math.abs(lg[(offset + s) * V + v]! - row[v]!)); });
  return md;
}

/** Full-sequence logits and KV-cache decoding (prefill half, then one token at a time) vs the reference. */
async function parity(dir: string, ref: RefForward, prompts: number[][]): Promise<{ full: number; step: number }> {
  const m = await CausalLM.load(dir);
  const w = await loadFloatWeights(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const V = m.cfg.vocabSize;
  let full = 0, step = 0;
  try {
    for (const ids of prompts) {
      const r0 = ref(config, (n) => w.get(n), ids);
      full = Math.max(full, maxDiff(await m.logits([ids]), r0, V));
      const h = Math.ceil(ids.length / 2);
      let r = await m.forwardStep([ids.slice(0, h)], m.emptyCache(1));
      step = Math.max(step, maxDiff(r.logits, [r0[h - 1]!], V));
      for (let s = h; s < ids.length; s++) {
        r = await m.forwardStep([[ids[s]!]], r.cache);
        step = Math.max(step, maxDiff(r.logits, [r0[s]!], V));
      }
    }
  } finally { await m.release(); }
  return { full, step };
}

/** The calibration graph (weights as inputs, one graph for all layers) on layer `layer` vs the reference layer. */
async function layerGraphParity(dir: string, fam: Family<any>, layer: number, ids: number[]): Promise<number> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const weights = await loadFloatWeights(dir);
  const w: Weights = (n) => weights.get(n);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const src = new InputWeights(`${arch.layersBlockName}0.`);
  const g = buildLayerGraph(arch, cfg, src, { hessians: arch.layerLinears(cfg).map((l) => l.rel) });
  const sess = await createSession(g.toBytes());
  const x = fam.embed(config, w, ids);
  const S = ids.length, H = cfg.hiddenSize;
  const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(Float32Array.from(x), [1, S, H]) };
  for (const inp of src.inputs) {
    const data = w(`${arch.layersBlockName}${layer}.${inp.rel}`);
    assert.ok(data, `checkpoint tensor for ${inp.rel}`);
    feeds[inp.rel] = f32(data, inp.shape);
  }
  const r = await sess.run(feeds);
  for (const l of arch.layerLinears(cfg)) assert.deepEqual(r[`xtx.${l.rel}`]!.dims, [l.inFeatures, l.inFeatures]);
  const want = fam.layer(config, w, layer, x, S);
  const got = r.hidden_out!.data as Float32Array;
  let md = 0;
  for (let i = 0; i < want.length; i++) md = Math.max(md, Math.abs(got[i]! - want[i]!));
  await sess.release();
  return md;
}

/** AutoGPTQ's module tree: every inside module is a layer linear with the checkpoint's weight shape. */
async function checkModuleTree(dir: string): Promise<void> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const w = await loadFloatWeights(dir);
  const lins = arch.layerLinears(cfg);
  assert.deepEqual([...arch.insideLayerModules.flat()].sort(), lins.map((l) => l.rel).sort());
  for (const l of lins) {
    assert.equal(w.get(`${arch.layersBlockName}0.${l.rel}.weight`)?.length, l.inFeatures * l.outFeatures, l.rel);
    if (l.bias) assert.equal(w.get(`${arch.layersBlockName}0.${l.rel}.bias`)?.length, l.outFeatures, `${l.rel}.bias`);
    else assert.equal(w.get(`${arch.layersBlockName}0.${l.rel}.bias`), undefined, `${l.rel} has no bias`);
  }
}

const ids16 = (vocab: number, mul = 7, add = 3) => Array.from({ length: 16 }, (_, i) => (i * mul + add) % vocab);
const TOL = 1e-4;
const results: string[] = [];
const report = (name: string, r: Record<string, number>) => results.push(`${name}: ${Object.entries(r).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);

const cases: [string, Family<any>, Record<string, unknown>][] = [
  ['gpt_neox (pythia-style: parallel residual, rotary_pct 0.25, gelu)', neox, { seed: 11 }],
  ['gpt_neox sequential residual, rotary_pct 1, base 500, attention_bias false, 3 layers, legacy buffers', neox,
    { seed: 12, parallelResidual: false, rotaryPct: 1, rotaryBase: 500, attentionBias: false, layers: 3, legacyBuffers: true }],
  ['gpt_neox tie_word_embeddings (no embed_out), rotary_pct 0.5, gelu_new', neox, { seed: 13, tie: true, rotaryPct: 0.5, act: 'gelu_new' }],
  ['gptj (rotary_dim 8 of head_dim 16, n_inner null)', gptj, { seed: 21 }],
  ['gptj rotary_dim 16 (full head), n_inner 96, 3 layers', gptj, { seed: 22, rotaryDim: 16, inner: 96, layers: 3 }],
  ['gptj no rotary_dim field (GPTJConfig default 64 = head_dim), 2 heads of 64', gptj, { seed: 23, omitRotaryDim: true, hidden: 128, heads: 2, inner: 128 }],
  ['phi (phi-1.5-style: partial_rotary_factor 0.5)', phi, { seed: 31 }],
  ['phi GQA (2 kv heads), qk_layernorm, partial_rotary_factor 0.4 (6 of 16), rope_theta 500', phi,
    { seed: 32, kvHeads: 2, qkLayernorm: true, partialRotaryFactor: 0.4, ropeTheta: 500 }],
];

for (const [name, fam, o] of cases) {
  test(`synthetic ${name}: ORT vs float64 reference (full + KV step ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await fam.make(t.path, o);
      const V = 96;
      const r = await parity(t.path, fam.forward, [ids16(V), ids16(V, 13, 5).slice(0, 9)]);
      report(name, r);
      assert.ok(r.full <= TOL, `full ${r.full}`);
      assert.ok(r.step <= TOL, `step ${r.step}`);
    } finally { t.cleanup(); }
  });
}

test('calibration layer graphs (InputWeights) match the reference layers; module trees match AutoGPTQ', async () => {
  const t = tmpDir();
  try {
    const ids = ids16(96);
    const diffs: Record<string, number> = {};
    const layerCases: [string, Family<any>, Record<string, unknown>][] = [
      ['neox', neox, { seed: 41 }], ['neoxSeq', neox, { seed: 42, parallelResidual: false }],
      ['gptj', gptj, { seed: 43 }], ['phi', phi, { seed: 44, kvHeads: 2, qkLayernorm: true }],
    ];
    for (const [k, fam, o] of layerCases) {
      const dir = join(t.path, k);
      await fam.make(dir, o);
      diffs[k] = await layerGraphParity(dir, fam, 1, ids);
      await checkModuleTree(dir);
    }
    report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
  } finally { t.cleanup(); }
});

test('config defaults from the transformers config classes; one-line errors', () => {
  const neoxBase = neoxConfig();
  delete neoxBase.rotary_pct; delete neoxBase.rotary_emb_base;
  const n = parseModelConfig(neoxBase);
  assert.deepEqual([n.rotaryDim, n.ropeTheta, n.tieWordEmbeddings], [4, 10000, false]); // GPTNeoXConfig rotary_pct 0.25
  const phiBase = phiConfig();
  delete phiBase.partial_rotary_factor;
  const p = parseModelConfig(phiBase);
  assert.deepEqual([p.rotaryDim, p.numKvHeads, p.hiddenAct], [8, 4, 'gelu_new']); // PhiConfig partial_rotary_factor 0.5
  assert.equal(parseModelConfig(phiConfig({ partialRotaryFactor: 0.4 })).rotaryDim, 6); // int(16 · 0.4)
  const j = parseModelConfig(gptjConfig({ omitRotaryDim: true, hidden: 256, heads: 2 }));
  assert.deepEqual([j.rotaryDim, j.intermediateSize, j.hiddenAct], [64, 1024, 'gelu_new']); // GPTJConfig rotary_dim 64, n_inner null
  assert.equal(parseModelConfig(gptjConfig({ rotaryDim: 8 })).rotaryDim, 8);
  assert.throws(() => parseModelConfig(gptjConfig({ omitRotaryDim: true })), /rotary_dim" must be an integer in \[1, head_dim 16\], got 64/);
  assert.throws(() => archFor('gptj').check!(parseModelConfig(gptjConfig({ rotaryDim: null }))), /rotary_dim null .* only works with one head/);
  assert.throws(() => archFor('gptj').check!(parseModelConfig(gptjConfig({ rotaryDim: 7 }))), /rotary_dim" \(7\) must be a positive even number/);
  assert.throws(() => archFor('phi').check!(parseModelConfig(phiConfig({ partialRotaryFactor: 0.35 }))), /int\(head_dim·partial_rotary_factor\) = 5 must be a positive even number/);
  assert.throws(() => archFor('gpt_neox').check!(parseModelConfig({ ...neoxConfig(), use_parallel_residual: 'yes' })), /field "use_parallel_residual" must be a boolean/);
  // the reference's erf (gelu) is exact enough to be an oracle
  assert.ok(Math.abs(erf(0.5) - 0.5204998778130465) < 1e-15 && Math.abs(erf(3) - 0.9999779095030014) < 1e-15 && Math.abs(erf(-1.2) + 0.9103139782296353) < 1e-15);
});

test('batched generation with left padding equals one-by-one (rotary positions from the mask)', async () => {
  const t = tmpDir();
  try {
    await makeNeoxCheckpoint(join(t.path, 'n'), { seed: 51 });
    await makeGptjCheckpoint(join(t.path, 'j'), { seed: 52 });
    await makePhiCheckpoint(join(t.path, 'p'), { seed: 53, kvHeads: 2 });
    for (const sub of ['n', 'j', 'p']) {
      const m = await CausalLM.load(join(t.path, sub));
      const prompts = [[5, 9, 17, 33, 2, 70], [44, 3]];
      const batched = await generate(m, prompts, { maxNewTokens: 6 });
      for (let i = 0; i < prompts.length; i++) {
        const single = await generate(m, [prompts[i]!], { maxNewTokens: 6 });
        assert.deepEqual(batched.tokens[i], single.tokens[0], `${sub} row ${i}`);
      }
      await m.release();
    }
  } finally { t.cleanup(); }
});

// ------------------------------------------------------------------------------------------------ GPTQ

function examples(n: number, len: number, seed: number, vocab = 96) {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: len }, () => Math.floor(r() * vocab)) }));
}

async function logitMse(a: CausalLM, b: CausalLM, ids: number[][]): Promise<number> {
  const x = await a.logits(ids), y = await b.logits(ids);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i]! - y[i]!) ** 2;
  return s / x.length;
}

const quantCases: [string, Family<any>, Record<string, unknown>, string, [string, number[]][]][] = [
  ['gpt_neox', neox, { seed: 61 }, 'gpt_neox.layers.', [
    ['attention.query_key_value.qweight', [8, 192]], ['attention.query_key_value.scales', [2, 192]], ['attention.query_key_value.bias', [192]],
    ['attention.dense.qzeros', [2, 8]], ['mlp.dense_h_to_4h.qweight', [8, 128]], ['mlp.dense_4h_to_h.qweight', [16, 64]], ['mlp.dense_4h_to_h.g_idx', [128]],
  ]],
  ['gptj', gptj, { seed: 62, inner: 128 }, 'transformer.h.', [
    ['attn.q_proj.qweight', [8, 64]], ['attn.k_proj.scales', [2, 64]], ['attn.v_proj.qzeros', [2, 8]], ['attn.out_proj.g_idx', [64]],
    ['mlp.fc_in.qweight', [8, 128]], ['mlp.fc_in.bias', [128]], ['mlp.fc_out.qweight', [16, 64]],
  ]],
  ['phi', phi, { seed: 63, kvHeads: 2 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.v_proj.scales', [2, 32]], ['self_attn.dense.qweight', [8, 64]],
    ['mlp.fc1.qweight', [8, 128]], ['mlp.fc2.qweight', [16, 64]], ['mlp.fc2.bias', [64]],
  ]],
];

for (const [name, fam, o, block, expect] of quantCases) {
  test(`${name}: GPTQ 4-bit g32 → fake-quant logits (GPTQ < RTN) → saveQuantized → CausalLM.load of the saved dir`, async () => {
    const t = tmpDir();
    try {
      const src = join(t.path, 'src'), out = join(t.path, 'q');
      await fam.make(src, o);
      const fp = await CausalLM.load(src);
      const held = examples(4, 32, 99).map((e) => e.inputIds);
      const calib = examples(16, 32, 5);
      const mse: Record<string, number> = {};
      let fake: CausalLM | undefined;
      for (const method of ['rtn', 'gptq'] as const) {
        const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
        const res = await m.quantize(calib, { method, keepDequantized: true });
        assert.equal(res.skipped.length, 0);
        assert.equal(res.quantized.size, linearCount(m.cfg));
        const fq = await m.fakeQuantModel();
        const lg = await fq.logits(held);
        assert.ok(lg.every(Number.isFinite), `${method} logits finite`);
        mse[method] = await logitMse(fq, fp, held);
        if (method === 'gptq') { await m.saveQuantized(out); fake = fq; } else await fq.release();
        await m.close();
      }
      assert.ok(mse.gptq! < mse.rtn!, `gptq ${mse.gptq} vs rtn ${mse.rtn}`);

      const ck = await Checkpoint.open(out);
      for (const [rel, shape] of expect) assert.deepEqual(ck.info(`${block}1.${rel}`).shape, shape, rel);
      assert.ok(!ck.has(`${block}1.${expect[0]![0].replace('.qweight', '.weight')}`), 'quantized module keeps no fp weight');
      await ck.close();
      const qc = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config;
      assert.equal(qc.block_name_to_quantize, block.slice(0, -1));

      // The saved directory loads (MatMulNBits) and reproduces the fake-quant model up to the fp16 scales.
      const q = await CausalLM.load(out);
      assert.equal(q.quantization?.modules.length, linearCount(q.cfg), 'loaded as GPTQ');
      const reload = await logitMse(q, fake!, held);
      mse.reloadVsFake = reload;
      report(`${name} logit MSE vs fp32`, mse);
      assert.ok(reload < 0.05 * mse.gptq!, `reloaded vs fake-quant MSE ${reload} (gptq vs fp32 ${mse.gptq})`);
      await q.release(); await fake!.release(); await fp.release();
    } finally { t.cleanup(); }
  });
}

function linearCount(cfg: ModelConfig): number { return cfg.numLayers * archFor(cfg.modelType).layerLinears(cfg).length; }

test('max |Δ| summary', () => { for (const r of results) console.log(`# ${r}`); });
