/**
 * GPTBigCode (StarCoder 1), StarCoder2, InternLM, InternLM2, Baichuan (7B) and Cohere: ORT graphs vs independent
 * float64 references on synthetic HF-layout checkpoints (full sequence + KV-cache steps), calibration layer graphs,
 * AutoGPTQ module trees, config defaults / rejections, left-padded batched generation, and one GPTQ run per
 * architecture (quantize → fake-quant logits, GPTQ < RTN → saveQuantized → CausalLM.load of the saved directory).
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
import { bigcodeRefConfig, bigcodeRefEmbed, bigcodeRefForward, bigcodeRefLayer } from './reference/gpt-bigcode-ref.ts';
import { starcoder2RefConfig, starcoder2RefEmbed, starcoder2RefForward, starcoder2RefLayer } from './reference/starcoder2-ref.ts';
import { internRefConfig, internRefEmbed, internRefForward, internRefLayer } from './reference/internlm-ref.ts';
import { baichuanRefConfig, baichuanRefEmbed, baichuanRefForward, baichuanRefLayer } from './reference/baichuan-ref.ts';
import { cohereRefConfig, cohereRefEmbed, cohereRefForward, cohereRefLayer } from './reference/cohere-ref.ts';
import {
  baichuanConfig, bigcodeConfig, cohereConfig, internConfig, makeBaichuanCheckpoint, makeBigCodeCheckpoint, makeCohereCheckpoint,
  makeInternCheckpoint, makeStarcoder2Checkpoint, starcoder2Config,
} from './synth-archs4.ts';
import { rng, tmpDir } from './helpers.ts';

type Weights = (n: string) => Float32Array | undefined;
interface Family {
  make: (dir: string, o: any) => Promise<void>;
  forward: (config: any, w: Weights, ids: number[]) => Float64Array[];
  embed: (config: any, w: Weights, ids: number[]) => Float64Array;
  layer: (config: any, w: Weights, layer: number, h: Float64Array, seq: number) => Float64Array;
}
const fam = {
  bigcode: { make: makeBigCodeCheckpoint, forward: (c, w, i) => bigcodeRefForward(bigcodeRefConfig(c), w, i), embed: (c, w, i) => bigcodeRefEmbed(bigcodeRefConfig(c), w, i), layer: (c, w, l, h, s) => bigcodeRefLayer(bigcodeRefConfig(c), w, l, h, s) },
  starcoder2: { make: makeStarcoder2Checkpoint, forward: (c, w, i) => starcoder2RefForward(starcoder2RefConfig(c), w, i), embed: (c, w, i) => starcoder2RefEmbed(starcoder2RefConfig(c), w, i), layer: (c, w, l, h, s) => starcoder2RefLayer(starcoder2RefConfig(c), w, l, h, s) },
  intern: { make: makeInternCheckpoint, forward: (c, w, i) => internRefForward(internRefConfig(c), w, i), embed: (c, w, i) => internRefEmbed(internRefConfig(c), w, i), layer: (c, w, l, h, s) => internRefLayer(internRefConfig(c), w, l, h, s) },
  baichuan: { make: makeBaichuanCheckpoint, forward: (c, w, i) => baichuanRefForward(baichuanRefConfig(c), w, i), embed: (c, w, i) => baichuanRefEmbed(baichuanRefConfig(c), w, i), layer: (c, w, l, h, s) => baichuanRefLayer(baichuanRefConfig(c), w, l, h, s) },
  cohere: { make: makeCohereCheckpoint, forward: (c, w, i) => cohereRefForward(cohereRefConfig(c), w, i), embed: (c, w, i) => cohereRefEmbed(cohereRefConfig(c), w, i), layer: (c, w, l, h, s) => cohereRefLayer(cohereRefConfig(c), w, l, h, s) },
} satisfies Record<string, Family>;

function maxDiff(lg: Float32Array, ref: Float64Array[], V: number): number {
  let md = 0;
  ref.forEach((row, s) => { for (let v = 0; v < V; v++) md = Math.max(md, Math.abs(lg[s * V + v]! - row[v]!)); });
  return md;
}

/** Full-sequence logits and KV-cache decoding (prefill half, then one token at a time) vs the reference. */
async function parity(dir: string, f: Family, prompts: number[][]): Promise<{ full: number; step: number }> {
  const m = await CausalLM.load(dir);
  const w = await loadFloatWeights(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const V = m.cfg.vocabSize;
  let full = 0, step = 0;
  try {
    for (const ids of prompts) {
      const r0 = f.forward(config, (n) => w.get(n), ids);
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

/** The calibration graph (weights as graph inputs) on layer `layer` vs the reference layer. */
async function layerGraphParity(dir: string, f: Family, layer: number, ids: number[]): Promise<number> {
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  const weights = await loadFloatWeights(dir);
  const w: Weights = (n) => weights.get(n);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const src = new InputWeights(`${arch.layersBlockName}0.`);
  const g = buildLayerGraph(arch, cfg, src, { hessians: arch.layerLinears(cfg).map((l) => l.rel) });
  const sess = await createSession(g.toBytes());
  const x = f.embed(config, w, ids);
  const S = ids.length;
  const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(Float32Array.from(x), [1, S, cfg.hiddenSize]) };
  for (const inp of src.inputs) {
    const data = w(`${arch.layersBlockName}${layer}.${inp.rel}`);
    assert.ok(data, `checkpoint tensor for ${inp.rel}`);
    feeds[inp.rel] = f32(data, inp.shape);
  }
  const r = await sess.run(feeds);
  for (const l of arch.layerLinears(cfg)) assert.deepEqual(r[`xtx.${l.rel}`]!.dims, [l.inFeatures, l.inFeatures]);
  const want = f.layer(config, w, layer, x, S);
  const got = r.hidden_out!.data as Float32Array;
  let md = 0;
  for (let i = 0; i < want.length; i++) md = Math.max(md, Math.abs(got[i]! - want[i]!));
  await sess.release();
  return md;
}

/** AutoGPTQ's module tree: every inside module is a layer linear with the checkpoint's weight (and bias) shape. */
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
  for (const m of arch.outsideLayerModules) assert.ok(w.get(`${m}.weight`), `outside module ${m}`);
}

const ids16 = (vocab: number, mul = 7, add = 3) => Array.from({ length: 16 }, (_, i) => (i * mul + add) % vocab);
const TOL = 1e-4;
const results: string[] = [];
const report = (name: string, r: Record<string, number>) => results.push(`${name}: ${Object.entries(r).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);

const cases: [string, Family, Record<string, unknown>][] = [
  ['gpt_bigcode multi_query (starcoder-style)', fam.bigcode, { seed: 11 }],
  ['gpt_bigcode multi_query false (per-head q|k|v), gelu, lm_head stored, 3 layers', fam.bigcode, { seed: 12, multiQuery: false, act: 'gelu', storeLmHead: true, layers: 3 }],
  ['starcoder2 (GQA 4/2, sliding_window 6, use_bias, tied, rope_theta ~1e6)', fam.starcoder2, { seed: 21 }],
  ['starcoder2 use_bias false, no sliding window, untied lm_head, MHA', fam.starcoder2, { seed: 22, useBias: false, slidingWindow: null, tie: false, kvHeads: 4 }],
  ['internlm (bias, rotary dynamic base 10000)', fam.intern, { seed: 31 }],
  ['internlm bias false, rotary origin base 500', fam.intern, { seed: 32, bias: false, rotary: { base: 500, type: 'origin' } }],
  ['internlm2 (wqkv GQA 4/2, bias false, rope_theta 1e6, dynamic scaling)', fam.intern, { seed: 33, v2: true }],
  ['internlm2 8 heads / 2 kv (4 q per group), bias true', fam.intern, { seed: 34, v2: true, heads: 8, kvHeads: 2, bias: true, ropeTheta: 10000 }],
  ['baichuan2-7b style (W_pack, NormHead)', fam.baichuan, { seed: 41 }],
  ['baichuan-7b style (W_pack, plain lm_head)', fam.baichuan, { seed: 42, v2: false }],
  ['cohere command-r style (parallel, interleaved rotary, logit_scale, tied)', fam.cohere, { seed: 51 }],
  ['cohere command-r+ style (qk norm, GQA 4/2, attention_bias, logit_scale 0.8333, untied)', fam.cohere,
    { seed: 52, qkNorm: true, kvHeads: 2, attentionBias: true, logitScale: 0.8333, storeLmHead: true, ropeTheta: 75000000 }],
];

for (const [name, f, o] of cases) {
  test(`synthetic ${name}: ORT vs float64 reference (full + KV step ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await f.make(t.path, o);
      const r = await parity(t.path, f, [ids16(96), ids16(96, 13, 5).slice(0, 9)]);
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
    const layerCases: [string, Family, Record<string, unknown>][] = [
      ['bigcode', fam.bigcode, { seed: 61 }], ['bigcodeMha', fam.bigcode, { seed: 62, multiQuery: false }],
      ['starcoder2', fam.starcoder2, { seed: 63 }], ['internlm', fam.intern, { seed: 64 }],
      ['internlm2', fam.intern, { seed: 65, v2: true, heads: 8, kvHeads: 2, bias: true }],
      ['baichuan', fam.baichuan, { seed: 66 }], ['cohere', fam.cohere, { seed: 67, qkNorm: true, kvHeads: 2 }],
    ];
    for (const [k, f, o] of layerCases) {
      const dir = join(t.path, k);
      await f.make(dir, o);
      diffs[k] = await layerGraphParity(dir, f, 1, ids);
      await checkModuleTree(dir);
    }
    report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
  } finally { t.cleanup(); }
});

test('config defaults from the config classes; clear rejections', () => {
  const b = bigcodeConfig();
  delete b.n_inner; delete b.activation_function; delete b.multi_query;
  const bc = parseModelConfig(b);
  assert.deepEqual([bc.numKvHeads, bc.intermediateSize, bc.hiddenAct, bc.maxPositionEmbeddings, bc.tieWordEmbeddings], [1, 256, 'gelu_pytorch_tanh', 64, true]);
  assert.equal(parseModelConfig(bigcodeConfig({ multiQuery: false })).numKvHeads, 4);
  assert.equal(archFor('gpt_bigcode').layerLinears(bc)[0]!.outFeatures, 64 + 2 * 16);

  const s = starcoder2Config();
  delete s.num_key_value_heads; delete s.norm_epsilon; delete s.sliding_window;
  const sc = parseModelConfig({ ...s, norm_epsilon: 3e-5 });
  assert.deepEqual([sc.rmsNormEps, sc.slidingWindow, sc.tieWordEmbeddings], [3e-5, null, true]);
  assert.equal(parseModelConfig({ ...s, num_attention_heads: 4 }).numKvHeads, 2); // Starcoder2Config default 2
  assert.equal(parseModelConfig(starcoder2Config()).slidingWindow, 6);

  const i1 = parseModelConfig(internConfig({ rotary: { base: 500, type: 'origin' } }));
  assert.deepEqual([i1.ropeTheta, i1.ropeScaling], [500, null]);
  const i2 = parseModelConfig(internConfig());
  assert.deepEqual([i2.ropeTheta, i2.ropeScaling?.type, i2.ropeScaling?.factor], [10000, 'dynamic', 1]);
  assert.equal(parseModelConfig(internConfig({ rotary: null })).ropeTheta, 10000);
  assert.throws(() => archFor('internlm').check!(parseModelConfig(internConfig({ rotary: { base: 1, type: 'ntk' } }))), /rotary.type" must be "origin" or "dynamic"/);
  const i3 = parseModelConfig(internConfig({ v2: true }));
  assert.deepEqual([i3.numKvHeads, i3.ropeTheta, i3.rmsNormEps, i3.tieWordEmbeddings], [2, 1e6, 1e-5, false]);

  assert.throws(() => archFor('baichuan').check!(parseModelConfig(baichuanConfig({ alibi13b: true }))), /13B ALiBi model .* not supported/);
  archFor('baichuan').check!(parseModelConfig(baichuanConfig()));

  const c = cohereConfig();
  delete c.logit_scale; delete c.layer_norm_eps;
  const cc = parseModelConfig(c);
  assert.deepEqual([cc.rmsNormEps, cc.tieWordEmbeddings, cc.numKvHeads], [1e-5, true, 4]);
  assert.throws(() => archFor('cohere').check!(parseModelConfig({ ...cohereConfig(), logit_scale: 'big' })), /field "logit_scale" must be a number/);
});

test('batched generation with left padding equals one-by-one', async () => {
  const t = tmpDir();
  try {
    const subs: [string, Family, Record<string, unknown>][] = [
      ['b', fam.bigcode, { seed: 71 }], ['s', fam.starcoder2, { seed: 72, slidingWindow: 4 }], ['i', fam.intern, { seed: 73, v2: true }],
      ['c', fam.cohere, { seed: 74, qkNorm: true, kvHeads: 2 }],
    ];
    for (const [sub, f, o] of subs) {
      await f.make(join(t.path, sub), o);
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

function linearCount(cfg: ModelConfig): number { return cfg.numLayers * archFor(cfg.modelType).layerLinears(cfg).length; }

const quantCases: [string, Family, Record<string, unknown>, string, [string, number[]][]][] = [
  ['gpt_bigcode', fam.bigcode, { seed: 81 }, 'transformer.h.', [
    ['attn.c_attn.qweight', [8, 96]], ['attn.c_attn.scales', [2, 96]], ['attn.c_attn.bias', [96]], ['attn.c_proj.qzeros', [2, 8]],
    ['mlp.c_fc.qweight', [8, 128]], ['mlp.c_proj.qweight', [16, 64]], ['mlp.c_proj.g_idx', [128]],
  ]],
  ['starcoder2', fam.starcoder2, { seed: 82 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.v_proj.bias', [32]], ['self_attn.o_proj.scales', [2, 64]],
    ['mlp.c_fc.qweight', [8, 128]], ['mlp.c_proj.qweight', [16, 64]], ['mlp.c_proj.bias', [64]],
  ]],
  ['internlm', fam.intern, { seed: 83 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.q_proj.bias', [64]], ['self_attn.o_proj.bias', [64]], ['mlp.gate_proj.qweight', [8, 128]],
    ['mlp.down_proj.qweight', [16, 64]],
  ]],
  ['internlm2', fam.intern, { seed: 84, v2: true }, 'model.layers.', [
    ['attention.wqkv.qweight', [8, 128]], ['attention.wqkv.scales', [2, 128]], ['attention.wo.qweight', [8, 64]],
    ['feed_forward.w1.qweight', [8, 128]], ['feed_forward.w3.qzeros', [2, 16]], ['feed_forward.w2.qweight', [16, 64]],
  ]],
  ['baichuan', fam.baichuan, { seed: 85 }, 'model.layers.', [
    ['self_attn.W_pack.qweight', [8, 192]], ['self_attn.W_pack.scales', [2, 192]], ['self_attn.o_proj.qweight', [8, 64]],
    ['mlp.up_proj.qweight', [8, 128]], ['mlp.down_proj.qweight', [16, 64]],
  ]],
  ['cohere', fam.cohere, { seed: 86, qkNorm: true, kvHeads: 2 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.o_proj.qweight', [8, 64]],
    ['mlp.gate_proj.qweight', [8, 128]], ['mlp.down_proj.qweight', [16, 64]],
  ]],
];

for (const [name, f, o, block, expect] of quantCases) {
  test(`${name}: GPTQ 4-bit g32 → fake-quant logits (GPTQ < RTN) → saveQuantized → CausalLM.load of the saved dir`, async () => {
    const t = tmpDir();
    try {
      const src = join(t.path, 'src'), out = join(t.path, 'q');
      await f.make(src, o);
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

test('max |Δ| summary', () => { for (const r of results) console.log(`# ${r}`); });
