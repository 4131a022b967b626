/**
 * Phi-3 (src/models/phi3.ts): logits/KV parity with real Transformers is test/hf-parity.test.ts (fixtures phi3,
 * phi3-longrope); the math only recombines existing pieces (llama layer, fused projections split in-graph), so there
 * is no float64 reference of its own. Here: Phi3Config defaults and rope quirks, the module tree GPTQModel / AutoGPTQ
 * use (fused qkv_proj / gate_up_proj), and the GPTQ round trip on the Transformers fixtures, saved under the fused
 * names vLLM / GPTQModel load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { ropeInvFreq } from '../../src/models/rope.ts';
import { fixtureCase, gptqSavedTensorsTest, reporter } from './harness.ts';
import { fixtureSlotsTest } from './hf-fixture.ts';

const rep = reporter();
const base = { model_type: 'phi3', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 128 };

test('phi3 config: Phi3Config defaults', () => {
  const c = parseModelConfig(base);
  assert.deepEqual(
    [c.hiddenAct, c.intermediateSize, c.numKvHeads, c.rmsNormEps, c.maxPositionEmbeddings, c.originalMaxPositionEmbeddings, c.tieWordEmbeddings, c.slidingWindow, c.bosTokenId, c.eosTokenId, c.padTokenId],
    ['silu', 8192, 4, 1e-5, 4096, 4096, false, null, 1, 32000, 32000]);
});

test('phi3 config: legacy rope_scaling types "su" and "yarn" are longrope (Phi3Config.convert_rope_params_to_dict)', () => {
  const factors = { short_factor: [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7], long_factor: [1, 2, 3, 4, 5, 6, 7, 8] };
  const want = ropeInvFreq(parseModelConfig({ ...base, max_position_embeddings: 64, original_max_position_embeddings: 8, rope_scaling: { type: 'longrope', ...factors } }));
  for (const type of ['su', 'yarn']) {
    const c = parseModelConfig({ ...base, max_position_embeddings: 64, original_max_position_embeddings: 8, rope_scaling: { type, ...factors } });
    assert.equal(c.ropeScaling?.type, 'longrope', type);
    assert.deepEqual(ropeInvFreq(c), want, type);
  }
  // √(1 + ln(64/8) / ln 8) = √2
  assert.ok(Math.abs(want.attentionScaling - Math.SQRT2) < 1e-12);
});

test('phi3 module tree: fused qkv_proj / gate_up_proj, AutoGPTQ / GPTQModel groups', () => {
  const c = parseModelConfig({ ...base, num_key_value_heads: 2, intermediate_size: 32 });
  const a = archFor('phi3');
  assert.deepEqual(a.insideLayerModules(c), [['self_attn.qkv_proj'], ['self_attn.o_proj'], ['mlp.gate_up_proj'], ['mlp.down_proj']]);
  assert.deepEqual(a.layerLinears(c).map((l) => [l.rel, l.inFeatures, l.outFeatures, l.bias]), [
    ['self_attn.qkv_proj', 64, 64 + 2 * 32, false], ['self_attn.o_proj', 64, 64, false],
    ['mlp.gate_up_proj', 64, 64, false], ['mlp.down_proj', 32, 64, false],
  ]);
});

// Saved fused, as GPTQModel writes Phi-3 and vLLM's Phi3ForCausalLM (llama + packed_modules_mapping) loads it.
gptqSavedTensorsTest(rep, fixtureCase('phi3'), {
  'model.layers.1.self_attn.qkv_proj.qweight': ['I32', [8, 128]],
  'model.layers.1.self_attn.qkv_proj.scales': ['F16', [2, 128]],
  'model.layers.1.self_attn.o_proj.qweight': ['I32', [8, 64]],
  'model.layers.1.mlp.gate_up_proj.qweight': ['I32', [8, 64]],
  'model.layers.1.mlp.down_proj.qweight': ['I32', [4, 64]],
  'lm_head.weight': ['F32', [128, 64]],
});
gptqSavedTensorsTest(rep, fixtureCase('phi3-longrope'), {
  'model.layers.0.self_attn.qkv_proj.qweight': ['I32', [8, 128]],
  'model.layers.0.mlp.gate_up_proj.qzeros': ['I32', [2, 8]],
});

// serving's slots with longrope (original_max_position_embeddings 8): each row switches to long_factor at its own
// length, so a request gives the same logits batched as alone (before: the batch's longest row chose for all, Δ 0.35)
fixtureSlotsTest(rep, 'phi3-longrope');

rep.summaryTest();
