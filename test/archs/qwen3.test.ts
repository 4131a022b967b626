/**
 * Qwen family — qwen3 (q/k RMSNorm per head), qwen3_moe and qwen2_moe (sparse MoE; qwen2_moe with a sigmoid-gated
 * shared expert). Logit parity with real Transformers is test/hf-parity.test.ts on the fixtures in test/fixtures/archs
 * (qwen3, qwen3_moe, qwen3_moe-nonorm, qwen2_moe, qwen2_moe-norm); these types only recombine pieces with their own
 * float64 references elsewhere (llama attention + per-head RMSNorm as cohere/phi's qk-norm, Mixtral's routing), so
 * the HF fixtures are their reference. Here: config defaults as the Transformers config classes fill them in, module
 * trees, and the GPTQ round trip on the HF fixtures themselves (every linear is a multiple of 32).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { loadModelConfig, parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { setMoeDispatch } from '../../src/models/qwen3-moe.ts';
import { CausalLM, loadFloatWeights } from '../../src/runtime/causal-lm.ts';
import { buildLayerGraph, InputWeights } from '../../src/quant/calibrate.ts';
import { createSession, f32 } from '../../src/graph/session.ts';
import { ARCH_FIXTURES_DIR } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
import { gptqRoundTrip, linearCount, reporter } from './harness.ts';

const rep = reporter();
const fixture = (name: string) => join(ARCH_FIXTURES_DIR, name);

test('qwen3: AutoGPTQ/GPTQModel module tree; q_norm/k_norm stay fp', async () => {
  const cfg = await loadModelConfig(fixture('qwen3'));
  assert.deepEqual(archFor('qwen3').insideLayerModules(cfg), [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj'],
  ]);
});

test('qwen3_moe: per-layer module trees (dense layer 0, sparse layer 1); router never quantized; union for the saved config', async () => {
  const cfg = await loadModelConfig(fixture('qwen3_moe'));
  const arch = archFor('qwen3_moe');
  const attn = [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj']];
  const e = (n: string) => [0, 1, 2, 3].map((i) => `mlp.experts.${i}.${n}`);
  assert.deepEqual(arch.insideLayerModules(cfg, 0), [...attn, ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']]);
  assert.deepEqual(arch.insideLayerModules(cfg, 1), [...attn, [...e('up_proj'), ...e('gate_proj')], e('down_proj')]);
  assert.deepEqual(arch.insideLayerModules(cfg), [...attn, ['mlp.up_proj', 'mlp.gate_proj', ...e('up_proj'), ...e('gate_proj')], ['mlp.down_proj', ...e('down_proj')]]);
  assert.ok(!arch.layerLinears(cfg, 1).some((l) => l.rel === 'mlp.gate'), 'router not a quantizable linear');
  assert.equal(arch.layerGraphVaries?.(cfg), true);
});

test('qwen3_moe: routed dispatch (gathered rows per expert) == every expert on every row, full and KV steps', async () => {
  const ids = [[5, 17, 3, 99, 42, 8, 61, 7, 23, 120], [9, 4, 77, 31, 2, 66, 14, 90, 11, 50]];
  const run = async () => {
    const m = await CausalLM.load(fixture('qwen3_moe'), { graphCache: false, onLog: () => {} });
    try {
      const full = await m.logits(ids);
      let r = await m.forwardStep(ids.map((row) => row.slice(0, 4)), m.emptyCache(2));
      const steps = [r.logits];
      for (let t = 4; t < 10; t++) { r = await m.forwardStep(ids.map((row) => [row[t]!]), r.cache); steps.push(r.logits); }
      return { full, steps };
    } finally { await m.dispose(); }
  };
  const routed = await run();
  setMoeDispatch('all');
  let all: Awaited<ReturnType<typeof run>>;
  try { all = await run(); } finally { setMoeDispatch('routed'); }
  let d = 0;
  routed.full.forEach((v, i) => { d = Math.max(d, Math.abs(v - all.full[i]!)); });
  routed.steps.forEach((s, k) => s.forEach((v, i) => { d = Math.max(d, Math.abs(v - all.steps[k]![i]!)); }));
  rep.report('qwen3_moe routed vs all experts', { maxAbs: d });
  assert.ok(d <= 1e-5, `routed vs all experts ${d}`);
});

test('qwen2_moe: AutoGPTQ Qwen2MoeGPTQForCausalLM groups on the sparse layer (shared expert, then experts); Qwen2MoeConfig sliding_window 0', async () => {
  const cfg = await loadModelConfig(fixture('qwen2_moe'));
  assert.equal(cfg.slidingWindow, null); // "sliding_window": 0 with use_sliding_window false
  const e = (n: string) => [0, 1, 2, 3].map((i) => `mlp.experts.${i}.${n}`);
  assert.deepEqual(archFor('qwen2_moe').insideLayerModules(cfg, 1), [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'],
    ['mlp.shared_expert.up_proj', 'mlp.shared_expert.gate_proj'], ['mlp.shared_expert.down_proj'],
    [...e('up_proj'), ...e('gate_proj')], e('down_proj'),
  ]);
  assert.deepEqual(archFor('qwen2_moe').insideLayerModules(cfg, 0).slice(2), [['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']]);
  assert.throws(() => parseModelConfig({ ...JSON.parse(readFileSync(join(fixture('qwen2_moe'), 'config.json'), 'utf8')), use_sliding_window: true, layer_types: undefined, sliding_window: 4 }),
    /sliding-window attention on some layers only \(layers 0 of 2/);
});

test('qwen3_moe calibration: routed experts\' Hessians and routed-row counts == the dense masked ones (Σ over exactly the routed tokens)', async () => {
  const cfg = await loadModelConfig(fixture('qwen3_moe'));
  const arch = archFor('qwen3_moe');
  const weights = await loadFloatWeights(fixture('qwen3_moe'));
  const layer = 1, S = 12, H = cfg.hiddenSize;
  const hidden = Float32Array.from({ length: 2 * S * H }, (_, i) => Math.sin(i * 12.9898) * 1.5);
  const lins = arch.layerLinears(cfg, layer).map((l) => l.rel);
  const run = async () => {
    const src = new InputWeights(`${arch.layersBlockName}0.`);
    const sess = await createSession(buildLayerGraph(arch, cfg, src, { hessians: lins, layerIndex: layer }).toBytes());
    const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(hidden, [2, S, H]) };
    for (const inp of src.inputs) feeds[inp.rel] = f32(weights.get(`${arch.layersBlockName}${layer}.${inp.rel}`)!, inp.shape);
    try { return await sess.run(feeds); } finally { await sess.release(); }
  };
  const routed = await run();
  setMoeDispatch('all');
  let dense: Awaited<ReturnType<typeof run>>;
  try { dense = await run(); } finally { setMoeDispatch('routed'); }
  let rel = 0, total = 0;
  for (const rel_ of lins) {
    const a = routed[`xtx.${rel_}`]!.data as Float32Array, b = dense[`xtx.${rel_}`]!.data as Float32Array;
    let md = 0, mx = 0;
    b.forEach((v, i) => { md = Math.max(md, Math.abs(a[i]! - v)); mx = Math.max(mx, Math.abs(v)); });
    rel = Math.max(rel, md / Math.max(mx, 1e-30));
    if (rel_.includes('experts.') && rel_.endsWith('up_proj')) {
      const n = Number((routed[`rows.${rel_}`]!.data as Float32Array)[0]);
      assert.equal(n, Number((dense[`rows.${rel_}`]!.data as Float32Array)[0]), `${rel_} routed rows`);
      assert.ok(n > 0 && n < 2 * S, `${rel_}: ${n} of ${2 * S} tokens`);
      total += n;
    }
  }
  assert.equal(total, 2 * S * 2, 'every token routed to top_k = 2 experts');
  rep.report('qwen3_moe routed vs dense Hessians', { maxRel: rel });
  assert.ok(rel <= 1e-6, `hessian rel ${rel}`);
});

/** Per fixture: saved tensors that must exist (name → shape) and fp tensors that must stay (never quantized). */
const ROUND_TRIP: Record<string, { saved: Record<string, number[]>; fp: string[] }> = {
  qwen3: { saved: { 'model.layers.1.self_attn.q_proj.qweight': [8, 64], 'model.layers.1.mlp.down_proj.qweight': [4, 64] }, fp: ['model.layers.1.self_attn.q_norm.weight'] },
  // mlp_only_layers [0]: layer 0 dense, layer 1 sparse (4 experts of 32)
  qwen3_moe: {
    saved: { 'model.layers.0.mlp.gate_proj.qweight': [8, 32], 'model.layers.1.mlp.experts.3.down_proj.qweight': [4, 64], 'model.layers.1.mlp.experts.0.up_proj.scales': [2, 32] },
    fp: ['model.layers.1.mlp.gate.weight'],
  },
  // decoder_sparse_step 2: layer 0 dense, layer 1 sparse
  // mlp_only_layers [0]; sparse layer 1 with the shared expert (32) and its sigmoid gate [1, 64] (fp)
  qwen2_moe: {
    saved: { 'model.layers.0.mlp.up_proj.qweight': [8, 32], 'model.layers.1.mlp.shared_expert.down_proj.qweight': [4, 64], 'model.layers.1.mlp.experts.1.up_proj.qweight': [8, 32], 'model.layers.1.self_attn.q_proj.bias': [64] },
    fp: ['model.layers.1.mlp.gate.weight', 'model.layers.1.mlp.shared_expert_gate.weight'],
  },
  'qwen2_moe-norm': { saved: { 'model.layers.1.mlp.shared_expert.gate_proj.qweight': [8, 32] }, fp: ['model.layers.1.mlp.shared_expert_gate.weight'] },
  'qwen3_moe-nonorm': { saved: { 'model.layers.0.mlp.down_proj.qweight': [4, 64], 'model.layers.1.mlp.experts.2.gate_proj.qweight': [8, 32] }, fp: ['model.layers.1.mlp.gate.weight'] },
};

for (const [name, want] of Object.entries(ROUND_TRIP)) {
  test(`${name} (HF fixture): GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load == fake-quant`, async () => {
    const t = tmpDir();
    try {
      const mse = await gptqRoundTrip(fixture(name), join(t.path, 'q'), {
        checkFinite: true,
        onQuantized: (_, logs) => assert.ok(!logs.some((l) => /no calibration token/.test(l)), 'every expert saw tokens'),
        checkSaved: (ck) => {
          for (const [n, shape] of Object.entries(want.saved)) assert.deepEqual(ck.info(n).shape, shape, n);
          for (const n of want.fp) assert.ok(ck.has(n) && !ck.has(n.replace(/\.weight$/, '.qweight')), `${n} stays fp`);
        },
        checkLoaded: async (q) => { assert.equal(q.quantization?.modules.length, linearCount(q.cfg), 'loaded as GPTQ'); },
      });
      rep.report(`${name} logit MSE vs fp32`, mse);
    } finally { t.cleanup(); }
  });
}

rep.summaryTest();
