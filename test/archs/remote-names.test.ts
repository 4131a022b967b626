/**
 * Model types that are Transformers-native math under their original remote-code names: "Yi" (Llama with ln1/ln2
 * layer norms) and "RefinedWeb" / "RefinedWebModel" (Falcon before its Transformers port). Their forward is checked by
 * test/hf-parity.test.ts on fixtures derived from the llama / falcon / falcon-7b ones
 * (scripts/fixtures/make_alias_fixtures.py); here the config defaults of YiConfig / RWConfig and a GPTQ round trip on
 * the Yi fixture (names as AutoGPTQ's YiGPTQForCausalLM).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { falconOptions } from '../../src/models/falcon.ts';
import { archFor } from '../../src/models/registry.ts';
import { fixtureRoundTripTest, fixtureSlotsTest } from './hf-fixture.ts';
import { reporter } from './harness.ts';

const rep = reporter();

test('Yi config: YiConfig defaults (kv heads 4, rope_theta 5e6, eps 1e-5, 4096 positions, untied) and llama groups', () => {
  const c = parseModelConfig({ model_type: 'Yi', hidden_size: 256, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 64000 });
  assert.deepEqual([c.numKvHeads, c.ropeTheta, c.rmsNormEps, c.maxPositionEmbeddings, c.tieWordEmbeddings, c.bosTokenId, c.eosTokenId, c.padTokenId],
    [4, 5e6, 1e-5, 4096, false, 1, 2, 0]);
  assert.deepEqual(archFor('Yi').insideLayerModules(c),
    [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']]);
});

test('RefinedWeb / RefinedWebModel config: RWConfig spelling and defaults (multi_query, parallel_attn false)', () => {
  const base = { hidden_size: 64, n_layer: 2, n_head: 4, vocab_size: 128 };
  const rw40 = parseModelConfig({ model_type: 'RefinedWeb', ...base, n_head_kv: 2 });
  assert.deepEqual([rw40.numLayers, rw40.numHeads, rw40.numKvHeads, rw40.bosTokenId, rw40.eosTokenId], [2, 4, 2, 1, 2]);
  assert.deepEqual([falconOptions(rw40).newArch, falconOptions(rw40).parallelAttn, falconOptions(rw40).numLn], [true, true, 2]);
  const rw7 = parseModelConfig({ model_type: 'RefinedWebModel', ...base });
  assert.deepEqual([rw7.numKvHeads, falconOptions(rw7).newArch, falconOptions(rw7).multiQuery, falconOptions(rw7).parallelAttn], [4, false, false, false]);
  const rw7mq = parseModelConfig({ model_type: 'RefinedWebModel', ...base, multi_query: true, parallel_attn: true });
  assert.deepEqual([rw7mq.numKvHeads, falconOptions(rw7mq).parallelAttn], [1, true]);
  // model_type falcon keeps FalconConfig's defaults (multi_query / parallel_attn true).
  const f = parseModelConfig({ model_type: 'falcon', ...base });
  assert.deepEqual([f.numKvHeads, falconOptions(f).multiQuery, falconOptions(f).parallelAttn, f.bosTokenId], [1, true, true, 11]);
});

fixtureRoundTripTest(rep, 'yi', 'model.layers.', [
  ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['mlp.down_proj.qweight', [4, 64]], ['ln1.weight', [64]], ['ln2.weight', [64]],
]);

fixtureSlotsTest(rep, 'yi');

rep.summaryTest();
