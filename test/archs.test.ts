/** GPT-2 and OPT: ORT graphs vs independent float64 references (synthetic checkpoints + the real tiny-gpt2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, loadFloatWeights } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { buildLayerGraph } from '../src/graph/causal-lm.ts';
import { InputWeights } from '../src/graph/weights.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import { gpt2RefBlock, gpt2RefConfig, gpt2RefEmbed, gpt2RefForward } from './reference/gpt2-ref.ts';
import { optRefConfig, optRefEmbed, optRefForward, optRefLayer } from './reference/opt-ref.ts';
import { makeGpt2Checkpoint, makeOptCheckpoint, type Gpt2Opts, type OptOpts } from './synth-archs.ts';
import { SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';

type Weights = (n: string) => Float32Array | undefined;
type RefForward = (config: any, w: Weights, ids: number[]) => Float64Array[];

const gpt2Ref: RefForward = (c, w, ids) => gpt2RefForward(gpt2RefConfig(c), w, ids);
const optRef: RefForward = (c, w, ids) => optRefForward(optRefConfig(c), w, ids);

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

/**
 * The per-layer calibration graph (weights as graph inputs, one graph for every layer) against the reference
 * layer: run layer `layer` on the reference embeddings of `ids`; also checks the Hessian tap shapes.
 */
async function layerGraphParity(dir: string, layer: number, ids: number[],
  refIn: (w: Weights) => Float64Array, refLayer: (w: Weights, h: Float64Array) => Float64Array): Promise<number> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const weights = await loadFloatWeights(dir);
  const w: Weights = (n) => weights.get(n);
  const src = new InputWeights(`${arch.layersBlockName}0.`);
  const names = arch.layerLinears(cfg).map((l) => l.rel);
  const g = buildLayerGraph(arch, cfg, src, { hessians: names });
  const sess = await createSession(g.toBytes());
  const x = refIn(w);
  const S = ids.length, H = cfg.hiddenSize;
  const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(Float32Array.from(x), [1, S, H]) };
  for (const inp of src.inputs) {
    const data = w(`${arch.layersBlockName}${layer}.${inp.rel}`);
    assert.ok(data, `checkpoint tensor for ${inp.rel}`);
    feeds[inp.rel] = f32(data, inp.shape);
  }
  const r = await sess.run(feeds);
  for (const l of arch.layerLinears(cfg)) assert.deepEqual(r[`xtx.${l.rel}`]!.dims, [l.inFeatures, l.inFeatures]);
  const want = refLayer(w, x);
  const got = r.hidden_out!.data as Float32Array;
  let md = 0;
  for (let i = 0; i < want.length; i++) md = Math.max(md, Math.abs(got[i]! - want[i]!));
  await sess.release();
  return md;
}

/** Module tree as AutoGPTQ sees it: every inside module is a layer linear with the checkpoint's weight layout. */
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

const ids16 = (vocab: number, mul = 7, add = 3) => Array.from({ length: 16 }, (_, i) => (i * mul + add) % vocab);
const TOL = 1e-4;
const results: string[] = [];
const report = (name: string, r: Record<string, number>) => results.push(`${name}: ${Object.entries(r).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);

const gpt2Cases: [string, Gpt2Opts][] = [
  ['gpt2 default', { seed: 11 }],
  ['gpt2 scale_attn_by_inverse_layer_idx, n_inner 48, no transformer. prefix, lm_head stored', { seed: 12, layers: 3, inner: 48, scaleByInverseLayerIdx: true, basePrefixless: true, storeLmHead: true }],
  ['gpt2 scale_attn_weights false, relu', { seed: 13, scaleAttnWeights: false, activation: 'relu', hidden: 24, heads: 3 }],
];
for (const [name, o] of gpt2Cases) {
  test(`synthetic ${name}: ORT vs float64 reference (full + KV step ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await makeGpt2Checkpoint(t.path, o);
      const V = o.vocab ?? 96;
      const r = await parity(t.path, gpt2Ref, [ids16(V), ids16(V, 13, 5).slice(0, 9)]);
      report(name, r);
      assert.ok(r.full <= TOL, `full ${r.full}`);
      assert.ok(r.step <= TOL, `step ${r.step}`);
    } finally { t.cleanup(); }
  });
}

const optCases: [string, OptOpts][] = [
  ['opt (125m-style: pre-LN, final_layer_norm)', { seed: 21 }],
  ['opt (350m-style: word_embed_proj_dim 16 ≠ 32, do_layer_norm_before false)', { seed: 22, projDim: 16, layerNormBefore: false, layers: 3 }],
  ['opt project_in/out with pre-LN, no model. prefix, lm_head stored', { seed: 23, projDim: 24, basePrefixless: true, storeLmHead: true }],
  ['opt enable_bias false, layer_norm_elementwise_affine false', { seed: 24, enableBias: false, elementwiseAffine: false }],
];
for (const [name, o] of optCases) {
  test(`synthetic ${name}: ORT vs float64 reference (full + KV step ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await makeOptCheckpoint(t.path, o);
      const V = o.vocab ?? 96;
      const r = await parity(t.path, optRef, [ids16(V), ids16(V, 13, 5).slice(0, 9)]);
      report(name, r);
      assert.ok(r.full <= TOL, `full ${r.full}`);
      assert.ok(r.step <= TOL, `step ${r.step}`);
    } finally { t.cleanup(); }
  });
}

test('real tiny-gpt2 checkpoint: CausalLM.load, ORT vs float64 reference', { skip: SKIP_SHARED }, async () => {
  const dir = join(SHARED, 'models', 'tiny-gpt2');
  const prompts = [ids16(53), ids16(53, 5, 1).slice(0, 11), [0, 51, 52, 7, 7, 7, 30]];
  const r = await parity(dir, gpt2Ref, prompts);
  report('tiny-gpt2 (real)', r);
  assert.ok(r.full <= TOL, `full ${r.full}`);
  assert.ok(r.step <= TOL, `step ${r.step}`);
  await checkModuleTree(dir);
});

test('calibration layer graphs (InputWeights, Conv1D for gpt2) match the reference layers', async () => {
  const t = tmpDir();
  try {
    const ids = ids16(96);
    const g = join(t.path, 'gpt2'), o = join(t.path, 'opt'), o350 = join(t.path, 'opt350');
    await makeGpt2Checkpoint(g, { seed: 31 });
    await makeOptCheckpoint(o, { seed: 32 });
    await makeOptCheckpoint(o350, { seed: 33, projDim: 16, layerNormBefore: false });
    const gc = gpt2RefConfig(JSON.parse(readFileSync(join(g, 'config.json'), 'utf8')));
    const d1 = await layerGraphParity(g, 1, ids, (w) => gpt2RefEmbed(gc, w, ids), (w, h) => gpt2RefBlock(gc, w, 1, h, ids.length));
    const diffs: Record<string, number> = { gpt2: d1 };
    for (const [k, dir] of [['opt', o], ['opt350', o350]] as const) {
      const oc = optRefConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
      diffs[k] = await layerGraphParity(dir, 1, ids, (w) => optRefEmbed(oc, w, ids), (w, h) => optRefLayer(oc, w, 1, h, ids.length));
    }
    report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
    await checkModuleTree(g);
    await checkModuleTree(o350);
  } finally { t.cleanup(); }
});

test('gpt2 / opt: batched generation with left padding equals one-by-one (learned positions from the mask)', async () => {
  const t = tmpDir();
  try {
    await makeGpt2Checkpoint(join(t.path, 'g'), { seed: 41 });
    await makeOptCheckpoint(join(t.path, 'o'), { seed: 42, projDim: 16, layerNormBefore: false });
    for (const sub of ['g', 'o']) {
      const m = await CausalLM.load(join(t.path, sub));
      const prompts = [[5, 9, 17, 33, 2, 70], [44, 3]];
      const batched = await generate(m, prompts, { maxNewTokens: 8 });
      for (let i = 0; i < prompts.length; i++) {
        const single = await generate(m, [prompts[i]!], { maxNewTokens: 8 });
        assert.deepEqual(batched.tokens[i], single.tokens[0], `${sub} row ${i}`);
      }
      await m.release();
    }
  } finally { t.cleanup(); }
});

test('max |Δ| summary', () => { for (const r of results) console.log(`# ${r}`); });
