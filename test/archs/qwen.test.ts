/**
 * Qwen (v1, remote code). Forward parity with the remote modeling_qwen.py is test/hf-parity.test.ts on three fixtures:
 * qwen-short (within seq_length), qwen-longprompt (prompt past seq_length: per-row dynamic NTK alpha, logn by sequence
 * index with a pad), qwen (prompt 4 < seq_length 8 < 12 tokens: full forward exact, KV steps a known gap). Here: where
 * exactly that gap is (cached steps ending at index ≤ 7 exact, later ones not: Qwen keeps the prompt's alpha 1),
 * config / module tree, the seq_length requirement, quantize → save → reload on qwen-short, slots, and an independent
 * float64 reference (test/reference/qwen-ref.ts) on synthetic checkpoints: full/KV parity within seq_length, the
 * calibration layer graph, and full forwards past seq_length (NTK alpha 1, 3, 7 and logn).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GptqError } from '../../src/errors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { CausalLM, loadFloatWeights } from '../../src/runtime/causal-lm.ts';
import { loadArchFixture } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
import { archFamily, layerGraphsTest, maxDiff, parityTest, reporter, type ArchCase } from './harness.ts';
import { qwenRefBlock, qwenRefConfig, qwenRefEmbed, qwenRefForward } from '../reference/qwen-ref.ts';
import { makeQwenCheckpoint } from './qwen.synth.ts';

const rep = reporter();
const qwenFam = archFamily(makeQwenCheckpoint, qwenRefConfig, { forward: qwenRefForward, embed: qwenRefEmbed, layer: qwenRefBlock });
const cases: ArchCase[] = [
  ['qwen (hidden 64, seq_length 2048: no NTK/logn in range)', qwenFam, { seed: 81 }],
  ['qwen no_bias false (biased c_proj/w1/w2), 3 layers', qwenFam, { seed: 82, noBias: false, layers: 3 }],
];
for (const c of cases) parityTest(rep, c);
layerGraphsTest(rep, 'qwen calibration layer graph (InputWeights, fused c_attn, halved MLP) matches the reference layer', [['qwen', qwenFam, cases[1]![2]]]);

test('qwen full forward past seq_length (dynamic NTK alpha 1/3/7, logn) vs the float64 reference', async () => {
  const t = tmpDir();
  try {
    await makeQwenCheckpoint(t.path, { seed: 83, seqLength: 4 });
    const m = await CausalLM.load(t.path, { graphCache: false });
    const w = await loadFloatWeights(t.path);
    const c = JSON.parse(readFileSync(join(t.path, 'config.json'), 'utf8'));
    const out: Record<string, number> = {};
    try {
      for (const n of [4, 7, 13]) { // alpha 1, 3, 7
        const ids = Array.from({ length: n }, (_, i) => (i * 11 + 5) % 96);
        out[`${n} tokens`] = maxDiff(await m.logits([ids]), qwenRefForward(qwenRefConfig(c), (x) => w.get(x), ids), 96);
      }
    } finally { await m.dispose(); }
    rep.report('qwen seq_length 4 full vs reference', out);
    for (const [k, v] of Object.entries(out)) assert.ok(v <= 1e-4, `${k}: ${v}`);
  } finally { t.cleanup(); }
});

test('qwen config: QWenConfig defaults, MLP branches of intermediate_size / 2, module tree', () => {
  const c = parseModelConfig({ model_type: 'qwen', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, kv_channels: 16, vocab_size: 128, seq_length: 2048, intermediate_size: 128 });
  assert.deepEqual([c.headDim, c.rotaryDim, c.ropeTheta, c.rmsNormEps, c.maxPositionEmbeddings, c.tieWordEmbeddings], [16, 16, 10000, 1e-6, 8192, false]);
  assert.deepEqual(archFor('qwen').insideLayerModules(c), [['attn.c_attn'], ['attn.c_proj'], ['mlp.w1', 'mlp.w2'], ['mlp.c_proj']]);
  assert.deepEqual(archFor('qwen').layerLinears(c).map((l) => [l.rel, l.inFeatures, l.outFeatures, l.bias]),
    [['attn.c_attn', 64, 192, true], ['attn.c_proj', 64, 64, false], ['mlp.w1', 64, 64, false], ['mlp.w2', 64, 64, false], ['mlp.c_proj', 64, 64, false]]);
});

test('qwen: use_dynamic_ntk without seq_length is refused in one line', async () => {
  const t = tmpDir();
  try {
    await assert.rejects(CausalLM.load(fixtureVariant('qwen-short', t.path, { seq_length: undefined }), { graphCache: false }),
      (e: unknown) => e instanceof GptqError && /needs field "seq_length"/.test(e.message) && e.message.includes('config.json'));
  } finally { t.cleanup(); }
});

test('qwen fixture (prompt 4 < seq_length 8): cached steps exact up to index 7, then differ (Qwen keeps the prompt alpha)', async () => {
  const f = loadArchFixture('qwen');
  const m = await CausalLM.load(f.dir, { attention: 'plain', graphCache: false });
  try {
    const { B, V, prefill: k, S } = f;
    const deltas: number[] = [];
    let r = await m.forwardStep(f.ids.map((row) => row.slice(0, k)), m.emptyCache(B), f.mask.map((row) => row.slice(0, k)));
    const delta = (i: number) => { let d = 0; for (let j = 0; j < B * V; j++) d = Math.max(d, Math.abs(r.logits[j]! - f.stepLogits[i * B * V + j]!)); return d; };
    deltas.push(delta(0));
    for (let t = k; t < S; t++) {
      r = await m.forwardStep(f.ids.map((row) => [row[t]!]), r.cache, f.mask.map((row) => row.slice(0, t + 1)));
      deltas.push(delta(t - k + 1));
    }
    // entry i ends at sequence index k − 1 + i
    rep.report('qwen steps by last index', Object.fromEntries(deltas.map((d, i) => [`index ${k - 1 + i}`, d])));
    deltas.forEach((d, i) => (k - 1 + i <= 7 ? assert.ok(d <= 1e-4, `index ${k - 1 + i}: ${d}`) : assert.ok(d > 1e-2, `index ${k - 1 + i}: ${d}`)));
  } finally { await m.dispose(); }
});

fixtureRoundTripTest(rep, 'qwen-short', 'transformer.h.', [
  ['attn.c_attn.qweight', [4, 96]], ['attn.c_attn.bias', [96]], ['mlp.w1.qweight', [4, 32]], ['mlp.c_proj.qweight', [4, 32]],
]);

fixtureSlotsTest(rep, 'qwen-longprompt');

rep.summaryTest();
