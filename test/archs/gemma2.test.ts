/**
 * Gemma 2 and Gemma 3 text (src/models/gemma2.ts, gemma3.ts): ORT graphs vs the independent float64 reference
 * (test/reference/gemma2-ref.ts: soft-capping, per-layer sliding windows, q/k norms, local/global rotary) on the
 * real-Transformers fixtures (full sequence, KV steps, a masked cached run with padding and a hole), the per-layer
 * calibration graphs, Gemma2Config / Gemma3TextConfig defaults and both config layouts (Transformers 4 rope_theta /
 * rope_local_base_freq / rope_scaling / sliding_window_pattern vs Transformers 5 layer_types / nested
 * rope_parameters), and the GPTQ round trip. Parity with Transformers itself: test/hf-parity.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { GptqError } from '../../src/errors.ts';
import { gemma2RefConfig, gemma2RefEmbed, gemma2RefForward, gemma2RefLayer } from '../reference/gemma2-ref.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureCase, gptqSavedTensorsTest, ids16, layerGraphsTest, parityTest, refFamily, reporter } from './harness.ts';
import { fixtureSlotsTest } from './hf-fixture.ts';

const ref = refFamily(gemma2RefConfig, { forward: gemma2RefForward, embed: gemma2RefEmbed, layer: gemma2RefLayer });
const rep = reporter();
const g2 = fixtureCase('gemma2', ref), g3 = fixtureCase('gemma3_text', ref);

// 16 tokens against window 4: sliding layers differ from full ones; soft-caps 5 (attention) and 3 (logits) bind.
parityTest(rep, g2, { masked: true });
parityTest(rep, g3, { masked: true });

// layer 1: gemma2's full layer, gemma3's sliding layer (local rotary); graphs built per layer index
layerGraphsTest(rep, 'calibration layer graphs (per-layer window, local rotary, q/k norms) match the reference layer', [g2, g3]);

const base = { hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 128 };

test('gemma2 config: Gemma2Config defaults (hidden_activation, alternating layers, soft-caps 50 / 30)', () => {
  const c = parseModelConfig({ ...base, model_type: 'gemma2', hidden_act: 'silu' });
  assert.deepEqual([c.hiddenAct, c.numKvHeads, c.headDim, c.slidingWindow, c.tieWordEmbeddings, c.maxPositionEmbeddings, c.rmsNormEps],
    ['gelu_pytorch_tanh', 4, 256, 4096, true, 8192, 1e-6]);
  const r = gemma2RefConfig({ ...base, model_type: 'gemma2' });
  assert.deepEqual([r.sliding, r.attnCap, r.finalCap, r.scale], [[true, false, true, false], 50, 30, 1 / 16]);
});

test('gemma3_text config: Transformers 4 and 5 layouts give the same rotary and layer kinds', () => {
  const v5 = parseModelConfig({ ...base, model_type: 'gemma3_text', layer_types: ['sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention'],
    rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } });
  const v4 = parseModelConfig({ ...base, model_type: 'gemma3_text', sliding_window_pattern: 3, rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 8 } });
  for (const c of [v4, v5]) assert.deepEqual([c.ropeTheta, c.ropeScaling?.type, c.ropeScaling?.factor, c.hiddenAct, c.maxPositionEmbeddings], [1e6, 'linear', 8, 'gelu_pytorch_tanh', 131072]);
  const d = parseModelConfig({ ...base, model_type: 'gemma3_text', num_hidden_layers: 7 });
  assert.deepEqual([d.ropeTheta, d.ropeScaling, d.slidingWindow], [1e6, null, 4096]);
  assert.deepEqual(gemma2RefConfig(d.raw).sliding, [true, true, true, true, true, false, true]);
});

test('gemma3_text: a Transformers-4 config of the fixture gives the fixture\'s logits; bidirectional attention is refused', async () => {
  const t = tmpDir();
  try {
    const [, fam] = g3;
    const a = join(t.path, 'a'), b = join(t.path, 'b'), bi = join(t.path, 'bi');
    await fam.make(a, {}); await fam.make(b, {}); await fam.make(bi, {});
    const c = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    const { layer_types: _lt, rope_parameters: rp, ...rest } = c;
    writeFileSync(join(b, 'config.json'), JSON.stringify({ ...rest, sliding_window_pattern: 3, rope_theta: rp.full_attention.rope_theta,
      rope_local_base_freq: rp.sliding_attention.rope_theta, rope_scaling: { rope_type: 'linear', factor: rp.full_attention.factor } }));
    const ids = [ids16(128)];
    const ma = await CausalLM.load(a), mb = await CausalLM.load(b);
    try {
      const la = await ma.logits(ids), lb = await mb.logits(ids);
      assert.ok(la.length === 16 * 128 && la.every((v, i) => v === lb[i]), 'same logits from both config layouts');
    } finally { await ma.dispose(); await mb.dispose(); }
    writeFileSync(join(bi, 'config.json'), JSON.stringify({ ...c, use_bidirectional_attention: true }));
    await assert.rejects(CausalLM.load(bi), (e: unknown) => e instanceof GptqError && /use_bidirectional_attention is not supported/.test(e.message) && e.message.includes(join(bi, 'config.json')));
  } finally { t.cleanup(); }
});

gptqSavedTensorsTest(rep, g2, {
  'model.layers.1.self_attn.q_proj.qweight': ['I32', [8, 64]],
  'model.layers.1.self_attn.k_proj.qweight': ['I32', [8, 32]],
  'model.layers.1.mlp.down_proj.scales': ['F16', [1, 64]],
  'model.layers.1.post_feedforward_layernorm.weight': ['F32', [64]],
});
gptqSavedTensorsTest(rep, g3, {
  'model.layers.2.self_attn.o_proj.qweight': ['I32', [8, 64]],
  'model.layers.2.self_attn.q_norm.weight': ['F32', [16]],
});

// serving's slot attention with attention-logit softcapping and alternating sliding windows (8 steps reach past the window)
fixtureSlotsTest(rep, 'gemma2');

rep.summaryTest();
