/**
 * Multi-head latent attention models (src/models/minicpm3.ts, deepseek-v2.ts): ORT graphs vs the independent float64
 * reference (test/reference/mla-ref.ts) on the real-Transformers MiniCPM3 and DeepSeek-V2 fixtures (full sequence, KV
 * steps, a masked cached run), the calibration layer graphs, config defaults, module groups (per layer for DeepSeek's
 * dense / MoE layers) and the GPTQ round trips. Parity with Transformers itself: test/hf-parity.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { mlaRefConfig, mlaRefEmbed, mlaRefForward, mlaRefLayer } from '../reference/mla-ref.ts';
import { join } from 'node:path';
import { loadModelConfig } from '../../src/io/config.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureCase, gptqRoundTrip, gptqSavedTensorsTest, layerGraphsTest, parityTest, refFamily, reporter } from './harness.ts';

const ref = refFamily(mlaRefConfig, { forward: mlaRefForward, embed: mlaRefEmbed, layer: mlaRefLayer });
const rep = reporter();
const cpm3 = fixtureCase('minicpm3', ref), dsv2 = fixtureCase('deepseek_v2', ref);

parityTest(rep, cpm3, { masked: true });
parityTest(rep, dsv2, { masked: true });
// layer 1: MiniCPM3's (residual scale), DeepSeek-V2's MoE layer (router, 4 experts top-2 × 1.5, shared expert)
layerGraphsTest(rep, 'calibration layer graphs (MLA, residual scale, MoE layer) match the reference layer', [cpm3, dsv2]);

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

test('deepseek_v2 module trees per layer: dense layer 0, MoE layer 1 (router never quantized), union for the graph', async () => {
  const [, fam] = fixtureCase('deepseek_v2');
  const t = tmpDir();
  try {
    await fam.make(t.path, {});
    const c = await loadModelConfig(t.path), a = archFor('deepseek_v2');
    const attn = [['self_attn.q_a_proj', 'self_attn.kv_a_proj_with_mqa'], ['self_attn.q_b_proj', 'self_attn.kv_b_proj'], ['self_attn.o_proj']];
    assert.deepEqual(a.insideLayerModules(c, 0), [...attn, ['mlp.gate_proj', 'mlp.up_proj'], ['mlp.down_proj']]);
    const e = (p: string) => [0, 1, 2, 3].map((i) => `mlp.experts.${i}.${p}`);
    assert.deepEqual(a.insideLayerModules(c, 1), [...attn, [...e('gate_proj'), ...e('up_proj'), 'mlp.shared_experts.gate_proj', 'mlp.shared_experts.up_proj'], [...e('down_proj'), 'mlp.shared_experts.down_proj']]);
    assert.equal(a.layerLinears(c).length, 5 + 3 + 12 + 3);
  } finally { t.cleanup(); }
});

test('deepseek_v2 config: DeepseekV2Config defaults; refused routers name config.json and the field', () => {
  const base = { model_type: 'deepseek_v2', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 128 };
  const c = parseModelConfig(base);
  assert.deepEqual([c.numKvHeads, c.headDim, c.rotaryDim, c.rmsNormEps, c.tieWordEmbeddings, c.maxPositionEmbeddings], [4, 192, 64, 1e-6, false, 2048]);
  const a = archFor('deepseek_v2');
  assert.throws(() => a.check!(parseModelConfig({ ...base, norm_topk_prob: true }, '/m/config.json')), /\/m\/config\.json: norm_topk_prob true is not supported/);
  assert.throws(() => a.check!(parseModelConfig({ ...base, topk_method: 'noaux_tc' }, '/m/config.json')), /topk_method "noaux_tc" is not supported \(supported: greedy, group_limited_greedy\)/);
  assert.throws(() => a.check!(parseModelConfig({ ...base, topk_method: 'group_limited_greedy', n_group: 3 }, '/m/config.json')), /n_group \(3\) must divide n_routed_experts \(64\)/);
});

// DeepSeek-V2: layers differ (dense / MoE): each layer quantizes its own modules (5 + 3 and 5 + 15 linears).
test('fixture deepseek_v2: GPTQ 4-bit g32 (per-layer module lists) → fake-quant beats RTN → saveQuantized → CausalLM.load', async () => {
  const [, fam] = fixtureCase('deepseek_v2');
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await fam.make(src, {});
    rep.report('fixture deepseek_v2 quantized', await gptqRoundTrip(src, join(t.path, 'q'), {
      linears: 8 + 20,
      checkSaved: (ck) => {
        assert.deepEqual(ck.info('model.layers.0.mlp.gate_proj.qweight').shape, [8, 32]);
        assert.deepEqual(ck.info('model.layers.1.mlp.experts.3.down_proj.qweight').shape, [4, 64]);
        assert.deepEqual(ck.info('model.layers.1.mlp.gate.weight').dtype, 'F32', 'router stays fp');
        assert.ok(!ck.has('model.layers.0.mlp.experts.0.gate_proj.qweight') && !ck.has('model.layers.1.mlp.gate_proj.qweight'));
      },
      checkLoaded: async (q) => { assert.equal(q.quantization?.modules.length, 28, 'loaded as GPTQ'); },
    }));
  } finally { t.cleanup(); }
});

rep.summaryTest();
