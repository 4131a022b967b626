/**
 * MoE family — Mixtral (sparse MoE): ORT graphs vs an independent float64 reference with HF's sparse top-k routing, per-expert
 * Hessians over exactly the routed tokens, and a GPTQ run (quantize → fake-quant logits beat RTN → saveQuantized →
 * CausalLM.load of the saved directory), plus the unrouted-expert fallback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../../src/gptq-model.ts';
import { loadFloatWeights } from '../../src/runtime/causal-lm.ts';
import { buildLayerGraph } from '../../src/graph/causal-lm.ts';
import { InputWeights } from '../../src/graph/weights.ts';
import { createSession, f32 } from '../../src/graph/session.ts';
import { loadModelConfig, parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { mixtralRefConfig, mixtralRefEmbed, mixtralRefForward, mixtralRefLayerParts, type Routing } from '../reference/mixtral-ref.ts';
import { makeMixtralCheckpoint, mixtralConfig, type MixtralOpts } from './moe.synth.ts';
import { tmpDir } from '../helpers.ts';
import { TOL, assertParity, examples, gptqRoundTrip, ids16, parity, reporter } from './harness.ts';

const V = 96;
const rep = reporter();
const readRefConfig = (dir: string) => mixtralRefConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));

const parityCases: [string, MixtralOpts][] = [
  ['4 experts top-2, hidden 64, inter 64, GQA 4/2, 2 layers', { seed: 1 }],
  ['8 experts top-2, tied embeddings, 3 layers', { seed: 2, experts: 8, tie: true, layers: 3 }],
  ['4 experts top-1 (renormalized weight 1)', { seed: 3, topK: 1 }],
];

for (const [name, o] of parityCases) {
  test(`mixtral ${name}: ORT vs float64 sparse-routing reference (full + KV step ≤ 1e-4)`, async () => {
    const t = tmpDir();
    try {
      await makeMixtralCheckpoint(t.path, o);
      const c = readRefConfig(t.path);
      const used = new Set<string>();
      const r = await parity(t.path, (_, w, ids) => {
        const routing: Routing = [];
        const r0 = mixtralRefForward(c, w, ids, routing);
        routing.forEach((l, li) => l.forEach((rows, e) => rows.length && used.add(`${li}.${e}`)));
        return r0;
      });
      rep.report(name, { ...r, expertsUsed: used.size });
      assert.ok(used.size >= c.layers * Math.min(c.experts, 3), `routing exercises several experts (${used.size})`);
      assertParity(r);
    } finally { t.cleanup(); }
  });
}

test('mixtral calibration layer graph: hidden_out matches; each expert Hessian = Σ xᵀx over exactly its routed tokens', async () => {
  const t = tmpDir();
  try {
    await makeMixtralCheckpoint(t.path, { seed: 4 });
    const cfg = await loadModelConfig(t.path);
    const arch = archFor('mixtral');
    const weights = await loadFloatWeights(t.path);
    const w = (n: string) => weights.get(n);
    const c = readRefConfig(t.path);
    const lins = arch.layerLinears(cfg);
    assert.equal(lins.length, 4 + 3 * 4);
    assert.deepEqual([...arch.insideLayerModules(cfg).flat()].sort(), lins.map((l) => l.rel).sort());
    assert.deepEqual(arch.insideLayerModules(cfg)[2]!.slice(0, 2), ['block_sparse_moe.experts.0.w1', 'block_sparse_moe.experts.1.w1']);
    assert.equal(arch.insideLayerModules(cfg)[3]!.length, 4, 'one w2 per expert (num_local_experts 4)');
    const src = new InputWeights(`${arch.layersBlockName}0.`);
    const g = buildLayerGraph(arch, cfg, src, { hessians: lins.map((l) => l.rel) });
    // w1 and w3 of one expert share a tap (same input, same mask); different experts do not.
    const tap = (r: string) => src.taps.get(r)!;
    assert.equal(tap('block_sparse_moe.experts.0.w1').value, tap('block_sparse_moe.experts.1.w1').value);
    assert.equal(tap('block_sparse_moe.experts.0.w1').rowWeight, tap('block_sparse_moe.experts.0.w3').rowWeight);
    assert.notEqual(tap('block_sparse_moe.experts.0.w1').rowWeight, tap('block_sparse_moe.experts.1.w1').rowWeight);
    assert.equal(tap('self_attn.q_proj').rowWeight, undefined);
    const sess = await createSession(g.toBytes());

    // Two sequences in one batch: rows are batch-major, as the reference's per-sequence routing concatenated.
    const seqs = [ids16(V), ids16(V, 11, 1)];
    const layer = 1, S = 16, H = c.hidden, I = c.inter;
    const hIn = seqs.map((ids) => mixtralRefLayerParts(c, w, 0, mixtralRefEmbed(c, w, ids), S).out);
    const parts = seqs.map((_, b) => { const routed: number[][] = []; return { ...mixtralRefLayerParts(c, w, layer, hIn[b]!, S, routed), routed }; });
    const x = new Float32Array(2 * S * H);
    hIn.forEach((h, b) => x.set(Float32Array.from(h), b * S * H));
    const feeds: Record<string, ReturnType<typeof f32>> = { hidden_in: f32(x, [2, S, H]) };
    for (const inp of src.inputs) feeds[inp.rel] = f32(w(`${arch.layersBlockName}${layer}.${inp.rel}`)!, inp.shape);
    const r = await sess.run(feeds);
    let dh = 0;
    parts.forEach((p, b) => p.out.forEach((v, i) => { dh = Math.max(dh, Math.abs((r.hidden_out!.data as Float32Array)[b * S * H + i]! - v)); }));

    let rel = 0;
    const counts: number[] = [];
    for (let e = 0; e < c.experts; e++) {
      const pre = `model.layers.${layer}.block_sparse_moe.experts.${e}.`;
      const W1 = w(`${pre}w1.weight`)!, W3 = w(`${pre}w3.weight`)!;
      const h1 = new Float64Array(H * H), h2 = new Float64Array(I * I);
      let n = 0;
      parts.forEach((p) => {
        for (const tok of p.routed[e]!) {
          n++;
          const xr = p.moeIn.subarray(tok * H, (tok + 1) * H);
          const a = new Float64Array(I);
          for (let o = 0; o < I; o++) {
            let g1 = 0, u = 0;
            for (let i = 0; i < H; i++) { g1 += W1[o * H + i]! * xr[i]!; u += W3[o * H + i]! * xr[i]!; }
            a[o] = (g1 / (1 + Math.exp(-g1))) * u;
          }
          for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) h1[i * H + j]! += xr[i]! * xr[j]!;
          for (let i = 0; i < I; i++) for (let j = 0; j < I; j++) h2[i * I + j]! += a[i]! * a[j]!;
        }
      });
      counts.push(n);
      for (const [name, want] of [['w1', h1], ['w3', h1], ['w2', h2]] as const) {
        const key = `block_sparse_moe.experts.${e}.${name}`;
        const got = r[`xtx.${key}`]!.data as Float32Array;
        let md = 0, mx = 0;
        for (let i = 0; i < want.length; i++) { md = Math.max(md, Math.abs(got[i]! - want[i]!)); mx = Math.max(mx, Math.abs(want[i]!)); }
        rel = Math.max(rel, md / Math.max(mx, 1e-30));
        assert.equal(Number((r[`rows.${key}`]!.data as Float32Array)[0]), n, `${key} routed rows`);
      }
    }
    await sess.release();
    rep.report('layer graph', { hidden: dh, hessianRel: rel });
    assert.equal(counts.reduce((a, b) => a + b, 0), 2 * S * c.topK, 'every token routed to top_k experts');
    assert.ok(counts.every((n) => n > 0 && n < 2 * S), `per-expert token counts ${counts}`);
    assert.ok(dh <= TOL, `hidden ${dh}`);
    assert.ok(rel <= 1e-5, `hessian rel ${rel}`);
  } finally { t.cleanup(); }
});

test('mixtral config: MixtralConfig defaults; check()', () => {
  const base = mixtralConfig();
  for (const k of ['rope_theta', 'rms_norm_eps', 'sliding_window', 'num_local_experts', 'num_experts_per_tok', 'num_key_value_heads']) delete base[k];
  base.num_attention_heads = 8; // MixtralConfig num_key_value_heads defaults to 8
  const cfg = parseModelConfig(base);
  assert.deepEqual([cfg.ropeTheta, cfg.rmsNormEps, cfg.slidingWindow, cfg.numKvHeads, cfg.tieWordEmbeddings], [1e6, 1e-5, null, 8, false]);
  const arch = archFor('mixtral');
  // MixtralConfig num_local_experts 8: exactly AutoGPTQ's MixtralGPTQForCausalLM.inside_layer_modules (modeling/mixtral.py)
  const e = (w: string) => Array.from({ length: 8 }, (_, i) => `block_sparse_moe.experts.${i}.${w}`);
  assert.deepEqual(arch.insideLayerModules(cfg), [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], [...e('w1'), ...e('w3')], e('w2'),
  ]);
  assert.throws(() => arch.check!(parseModelConfig(mixtralConfig({ topK: 5 }))), /num_experts_per_tok \(5\) must be <= num_local_experts \(4\)/);
});

// ------------------------------------------------------------------------------------------------ GPTQ

test('mixtral: GPTQ 4-bit g32 → fake-quant logits (GPTQ < RTN) → saveQuantized → CausalLM.load of the saved dir', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await makeMixtralCheckpoint(src, { seed: 5 });
    const nLinears = 2 * (4 + 3 * 4);
    const mse = await gptqRoundTrip(src, join(t.path, 'q'), {
      linears: nLinears,
      checkFinite: true,
      onQuantized: (res, logs) => {
        assert.ok(!res.quantized.has('model.layers.0.block_sparse_moe.gate'), 'router stays fp');
        assert.ok(!logs.some((l) => /no calibration token/.test(l)), 'every expert saw tokens');
      },
      checkSaved: (ck) => {
        assert.deepEqual(ck.info('model.layers.1.block_sparse_moe.experts.3.w1.qweight').shape, [8, 64]);
        assert.deepEqual(ck.info('model.layers.1.block_sparse_moe.experts.3.w2.scales').shape, [2, 64]);
        assert.deepEqual(ck.info('model.layers.1.block_sparse_moe.gate.weight').shape, [4, 64]);
        assert.ok(!ck.has('model.layers.1.block_sparse_moe.experts.3.w1.weight'));
      },
      checkLoaded: async (q, { held }) => {
        assert.equal(q.quantization?.modules.length, nLinears, 'loaded as GPTQ');
        assert.ok((await q.logits(held)).every(Number.isFinite));
      },
    });
    rep.report('mixtral logit MSE vs fp32', mse);
  } finally { t.cleanup(); }
});

test('mixtral: an expert no calibration token reaches is RTN-quantized (not zeroed) with a log line', async () => {
  const t = tmpDir();
  try {
    await makeMixtralCheckpoint(t.path, { seed: 6, deadExpert: 2 });
    const m = await GPTQModel.fromPretrained(t.path, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const logs: string[] = [];
    const res = await m.quantize(examples(4, 16, 7), { keepDequantized: true, onLog: (s) => logs.push(s) });
    const dead = logs.filter((l) => /no calibration token was routed/.test(l));
    assert.deepEqual(dead.map((l) => l.split(':')[0]).sort(), ['0', '1'].flatMap((li) => ['w1', 'w2', 'w3'].map((n) => `model.layers.${li}.block_sparse_moe.experts.2.${n}`)).sort());
    const w1 = res.dequantized.get('model.layers.0.block_sparse_moe.experts.2.w1.weight')!;
    assert.ok(w1.some((v) => v !== 0), 'unrouted expert keeps (RTN-quantized) weights');
    assert.ok(res.dequantized.get('model.layers.0.block_sparse_moe.experts.1.w1.weight')!.some((v) => v !== 0));
    await m.dispose();
  } finally { t.cleanup(); }
});

rep.summaryTest();
