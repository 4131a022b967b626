/**
 * Model types that are Transformers-native math under their original remote-code names: "Yi" (Llama with ln1/ln2
 * layer norms), "RefinedWeb" / "RefinedWebModel" (Falcon before its Transformers port) and "stablelm_epoch" (the
 * LLaMA layout with LayerNorm and rope_pct, remote code of StableLM-3B-4E1T; its fixture is from that code). Their forward is checked by
 * test/hf-parity.test.ts on fixtures derived from the llama / falcon / falcon-7b ones
 * (scripts/fixtures/make_alias_fixtures.py); here the config defaults of YiConfig / RWConfig and a GPTQ round trip on
 * the Yi fixture (names as AutoGPTQ's YiGPTQForCausalLM).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { falconOptions } from '../../src/models/falcon.ts';
import { archFor } from '../../src/models/registry.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureFullDelta, fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
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

test('stablelm_epoch config: StableLMEpochConfig names (norm_eps, rope_pct) and defaults; the fixture exercises rope_pct', async () => {
  const c = parseModelConfig({ model_type: 'stablelm_epoch', hidden_size: 1024, num_attention_heads: 32, num_hidden_layers: 2, vocab_size: 128, norm_eps: 1e-6 });
  assert.deepEqual([c.rmsNormEps, c.rotaryDim, c.numKvHeads, c.intermediateSize, c.maxPositionEmbeddings, c.bosTokenId, c.eosTokenId, c.tieWordEmbeddings],
    [1e-6, 8, 32, 6912, 4096, 0, 2, false]);
  const t = tmpDir();
  try {
    const same = await fixtureFullDelta(fixtureVariant('stablelm_epoch', t.path, {}), 'stablelm_epoch');
    const full = await fixtureFullDelta(fixtureVariant('stablelm_epoch', t.path, { rope_pct: 1 }), 'stablelm_epoch');
    rep.report('stablelm_epoch variants (max |Δlogit| vs remote code)', { fixture: same, 'rope_pct 1': full });
    assert.ok(same <= 1e-4 && full > 1e-2, `${same} ${full}`);
  } finally { t.cleanup(); }
});

fixtureRoundTripTest(rep, 'stablelm_epoch', 'model.layers.', [['self_attn.k_proj.qweight', [8, 32]], ['input_layernorm.bias', [64]]]);
fixtureSlotsTest(rep, 'stablelm_epoch');

fixtureRoundTripTest(rep, 'yi', 'model.layers.', [
  ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['mlp.down_proj.qweight', [4, 64]], ['ln1.weight', [64]], ['ln2.weight', [64]],
]);

fixtureSlotsTest(rep, 'yi');

rep.summaryTest();
