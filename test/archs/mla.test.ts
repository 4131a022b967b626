/**
 * Multi-head latent attention models (src/models/minicpm3.ts): ORT graphs vs the independent float64 reference
 * (test/reference/mla-ref.ts) on the real-Transformers MiniCPM3 fixture (full sequence, KV steps, a masked cached run),
 * the calibration layer graph, MiniCPM3Config defaults, AutoGPTQ's module groups and the GPTQ round trip. Parity with
 * Transformers itself: test/hf-parity.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { mlaRefConfig, mlaRefEmbed, mlaRefForward, mlaRefLayer } from '../reference/mla-ref.ts';
import { fixtureCase, gptqSavedTensorsTest, layerGraphsTest, parityTest, refFamily, reporter } from './harness.ts';

const ref = refFamily(mlaRefConfig, { forward: mlaRefForward, embed: mlaRefEmbed, layer: mlaRefLayer });
const rep = reporter();
const cpm3 = fixtureCase('minicpm3', ref);

parityTest(rep, cpm3, { masked: true });
layerGraphsTest(rep, 'calibration layer graph (MLA, residual scale) matches the reference layer', [cpm3]);

test('minicpm3 config: MiniCPM3Config defaults; cache geometry heads × max(qk, v)', () => {
  const c = parseModelConfig({ model_type: 'minicpm3', hidden_size: 2560, num_hidden_layers: 62, num_attention_heads: 40, vocab_size: 73448 });
  assert.deepEqual([c.numKvHeads, c.headDim, c.rotaryDim, c.intermediateSize, c.rmsNormEps, c.tieWordEmbeddings, c.maxPositionEmbeddings],
    [40, 96, 32, 6400, 1e-5, true, 32768]);
  const r = mlaRefConfig(c.raw);
  assert.deepEqual([r.qLora, r.kvLora, r.nope, r.rope, r.v, r.scaleEmb, r.logitDiv], [768, 256, 64, 32, 64, 12, 10]);
  assert.ok(Math.abs(r.residual - 1.4 / Math.sqrt(62)) < 1e-15);
  const a = archFor('minicpm3');
  assert.deepEqual(a.insideLayerModules(c), [
    ['self_attn.q_a_proj', 'self_attn.kv_a_proj_with_mqa'], ['self_attn.q_b_proj', 'self_attn.kv_b_proj'], ['self_attn.o_proj'],
    ['mlp.gate_proj', 'mlp.up_proj'], ['mlp.down_proj']]);
  assert.deepEqual(a.layerLinears(c).map((l) => [l.rel, l.inFeatures, l.outFeatures]), [
    ['self_attn.q_a_proj', 2560, 768], ['self_attn.q_b_proj', 768, 40 * 96], ['self_attn.kv_a_proj_with_mqa', 2560, 288],
    ['self_attn.kv_b_proj', 256, 40 * 128], ['self_attn.o_proj', 40 * 64, 2560],
    ['mlp.gate_proj', 2560, 6400], ['mlp.up_proj', 2560, 6400], ['mlp.down_proj', 6400, 2560]]);
  const noLora = parseModelConfig({ ...c.raw, q_lora_rank: null });
  assert.deepEqual(a.insideLayerModules(noLora)[0], ['self_attn.q_proj', 'self_attn.kv_a_proj_with_mqa']);
});

gptqSavedTensorsTest(rep, cpm3, {
  'model.layers.1.self_attn.q_a_proj.qweight': ['I32', [8, 32]],
  'model.layers.1.self_attn.kv_b_proj.qweight': ['I32', [8, 128]],
  'model.layers.1.self_attn.kv_a_layernorm.weight': ['F32', [64]],
  'model.layers.1.mlp.down_proj.qweight': ['I32', [4, 64]],
});

rep.summaryTest();
