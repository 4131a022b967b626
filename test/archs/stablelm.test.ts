/**
 * StableLM and stablelm_epoch (src/models/stablelm.ts): logits/KV parity with real Transformers (and with the
 * remote-code StableLMEpochForCausalLM) is test/hf-parity.test.ts (fixtures stablelm: qk_layernorm + qkv bias,
 * stablelm-parallel, stablelm_epoch). The math recombines existing pieces (LayerNorm, partial rotary, per-head norms as
 * Cohere's), so there is no float64 reference of its own. Here: config defaults and the remote config's names, the
 * module tree, and the GPTQ round trip on the fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { fixtureCase, gptqSavedTensorsTest, reporter } from './harness.ts';

const rep = reporter();
const base = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 128 };

test('stablelm config: StableLmConfig defaults (partial rotary 0.25, 32 kv heads, eos 0)', () => {
  const c = parseModelConfig({ ...base, num_attention_heads: 32, hidden_size: 256, model_type: 'stablelm' });
  assert.deepEqual([c.partialRotaryFactor, c.rotaryDim, c.numKvHeads, c.rmsNormEps, c.intermediateSize, c.tieWordEmbeddings, c.eosTokenId, c.maxPositionEmbeddings],
    [0.25, 2, 32, 1e-5, 6912, false, 0, 4096]);
});

test('stablelm_epoch config: StableLMEpochConfig names norm_eps and rope_pct', () => {
  const c = parseModelConfig({ ...base, model_type: 'stablelm_epoch', num_key_value_heads: 2, norm_eps: 1e-3, rope_pct: 0.5 });
  assert.deepEqual([c.rmsNormEps, c.partialRotaryFactor, c.rotaryDim, c.eosTokenId], [1e-3, 0.5, 8, 2]);
  const d = parseModelConfig({ ...base, model_type: 'stablelm_epoch', num_key_value_heads: 4 });
  assert.deepEqual([d.rmsNormEps, d.rotaryDim], [1e-5, 4]);
});

test('stablelm module tree: llama groups, q/k/v biases iff use_qkv_bias', () => {
  const a = archFor('stablelm');
  const c = parseModelConfig({ ...base, model_type: 'stablelm', num_key_value_heads: 2, intermediate_size: 32, use_qkv_bias: true });
  assert.deepEqual(a.insideLayerModules(c), [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']]);
  assert.deepEqual(a.layerLinears(c).filter((l) => l.bias).map((l) => l.rel), ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj']);
});

gptqSavedTensorsTest(rep, fixtureCase('stablelm'), {
  'model.layers.1.self_attn.q_proj.qweight': ['I32', [8, 64]],
  'model.layers.1.self_attn.q_proj.bias': ['F16', [64]],
  'model.layers.1.self_attn.q_layernorm.norms.3.weight': ['F32', [16]],
  'model.layers.1.mlp.down_proj.qweight': ['I32', [4, 64]],
});
gptqSavedTensorsTest(rep, fixtureCase('stablelm_epoch'), {
  'model.layers.0.self_attn.k_proj.qweight': ['I32', [8, 32]],
  'model.norm.bias': ['F32', [64]],
});

rep.summaryTest();
