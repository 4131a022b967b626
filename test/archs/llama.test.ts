/**
 * Llama family — llama / mistral / qwen2 and the llama-layout architectures StarCoder2, InternLM, InternLM2 and Baichuan
 * (7B): ORT graphs vs independent float64 references on synthetic HF-layout checkpoints (full sequence + KV-cache
 * steps), calibration layer graphs, AutoGPTQ module trees, config defaults / rejections, left-padded batched
 * generation, and one GPTQ run per architecture (quantize → fake-quant logits, GPTQ < RTN → saveQuantized →
 * CausalLM.load of the saved directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { refConfigFromJson, refDecoderLayer, refEmbed, refForward } from '../reference/llama-ref.ts';
import { starcoder2RefConfig, starcoder2RefEmbed, starcoder2RefForward, starcoder2RefLayer } from '../reference/starcoder2-ref.ts';
import { internRefConfig, internRefEmbed, internRefForward, internRefLayer } from '../reference/internlm-ref.ts';
import { baichuanRefConfig, baichuanRefEmbed, baichuanRefForward, baichuanRefLayer } from '../reference/baichuan-ref.ts';
import { llamaConfig, makeLlamaCheckpoint } from '../synth.ts';
import {
  baichuanConfig, internConfig, makeBaichuanCheckpoint, makeInternCheckpoint, makeStarcoder2Checkpoint, starcoder2Config,
} from './llama.synth.ts';
import { archFamily, batchedGenerationTest, gptqBlockTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const fam = {
  llama: archFamily(makeLlamaCheckpoint, refConfigFromJson, { forward: refForward, embed: refEmbed, layer: refDecoderLayer }),
  starcoder2: archFamily(makeStarcoder2Checkpoint, starcoder2RefConfig, { forward: starcoder2RefForward, embed: starcoder2RefEmbed, layer: starcoder2RefLayer }),
  intern: archFamily(makeInternCheckpoint, internRefConfig, { forward: internRefForward, embed: internRefEmbed, layer: internRefLayer }),
  baichuan: archFamily(makeBaichuanCheckpoint, baichuanRefConfig, { forward: baichuanRefForward, embed: baichuanRefEmbed, layer: baichuanRefLayer }),
};
const rep = reporter();

const small = { seed: 7, hidden: 32, intermediate: 48, layers: 2, heads: 4, vocab: 64 };
const cases: ArchCase[] = [
  ['llama (MHA)', fam.llama, { ...small, kvHeads: 4 }],
  ['mistral (GQA 4/2, sliding_window 5)', fam.llama, { ...small, modelType: 'mistral', kvHeads: 2, slidingWindow: 5 }],
  ['qwen2 (GQA 4/2, q/k/v biases, tied)', fam.llama, { ...small, modelType: 'qwen2', kvHeads: 2, tie: true }],
  ['starcoder2 (GQA 4/2, sliding_window 6, use_bias, tied, rope_theta ~1e6)', fam.starcoder2, { seed: 21 }],
  ['starcoder2 use_bias false, no sliding window, untied lm_head, MHA', fam.starcoder2, { seed: 22, useBias: false, slidingWindow: null, tie: false, kvHeads: 4 }],
  ['internlm (bias, rotary dynamic base 10000)', fam.intern, { seed: 31 }],
  ['internlm bias false, rotary origin base 500', fam.intern, { seed: 32, bias: false, rotary: { base: 500, type: 'origin' } }],
  ['internlm2 (wqkv GQA 4/2, bias false, rope_theta 1e6, dynamic scaling)', fam.intern, { seed: 33, v2: true }],
  ['internlm2 8 heads / 2 kv (4 q per group), bias true', fam.intern, { seed: 34, v2: true, heads: 8, kvHeads: 2, bias: true, ropeTheta: 10000 }],
  ['baichuan2-7b style (W_pack, NormHead)', fam.baichuan, { seed: 41 }],
  ['baichuan-7b style (W_pack, plain lm_head)', fam.baichuan, { seed: 42, v2: false }],
];

for (const c of cases) parityTest(rep, c);

layerGraphsTest(rep, 'calibration layer graphs (InputWeights) match the reference layers; module trees match AutoGPTQ', [
  ['qwen2', fam.llama, { seed: 60, modelType: 'qwen2' }],
  ['starcoder2', fam.starcoder2, { seed: 63 }], ['internlm', fam.intern, { seed: 64 }],
  ['internlm2', fam.intern, { seed: 65, v2: true, heads: 8, kvHeads: 2, bias: true }],
  ['baichuan', fam.baichuan, { seed: 66 }],
], { moduleTree: { noUndeclaredBias: true, outsideModules: true } });

test('module trees give AutoGPTQ\'s inside_layer_modules exactly (quantization order, true-sequential groups)', () => {
  const groups = (c: Record<string, unknown>) => archFor(String(c.model_type)).insideLayerModules(parseModelConfig(c));
  const llamaGroups = [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']];
  for (const modelType of ['llama', 'mistral', 'qwen2'] as const) assert.deepEqual(groups(llamaConfig({ modelType })), llamaGroups, modelType);
  assert.deepEqual(groups(internConfig()), llamaGroups);
  assert.deepEqual(groups(internConfig({ v2: true })), [['attention.wqkv'], ['attention.wo'], ['feed_forward.w1', 'feed_forward.w3'], ['feed_forward.w2']]);
  assert.deepEqual(groups(baichuanConfig()), [['self_attn.W_pack'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj']]);
  assert.deepEqual(groups(starcoder2Config()), [['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.c_fc'], ['mlp.c_proj']]);
});

test('config defaults from the config classes; clear rejections', () => {
  const s = starcoder2Config();
  delete s.num_key_value_heads; delete s.norm_epsilon; delete s.sliding_window;
  const sc = parseModelConfig({ ...s, norm_epsilon: 3e-5 });
  assert.deepEqual([sc.rmsNormEps, sc.slidingWindow, sc.tieWordEmbeddings], [3e-5, null, true]);
  assert.equal(parseModelConfig({ ...s, num_attention_heads: 4 }).numKvHeads, 2); // Starcoder2Config default 2
  assert.equal(parseModelConfig(starcoder2Config()).slidingWindow, 6);

  const i1 = parseModelConfig(internConfig({ rotary: { base: 500, type: 'origin' } }));
  assert.deepEqual([i1.ropeTheta, i1.ropeScaling], [500, null]);
  const i2 = parseModelConfig(internConfig());
  assert.deepEqual([i2.ropeTheta, i2.ropeScaling?.type, i2.ropeScaling?.factor, i2.ropeScaling?.field], [10000, 'dynamic', 1, 'rotary']);
  assert.equal(parseModelConfig(internConfig({ rotary: null })).ropeTheta, 10000);
  assert.throws(() => archFor('internlm').check!(parseModelConfig(internConfig({ rotary: { base: 1, type: 'ntk' } }))), /rotary.type" must be "origin" or "dynamic"/);
  const i3 = parseModelConfig(internConfig({ v2: true }));
  assert.deepEqual([i3.numKvHeads, i3.ropeTheta, i3.rmsNormEps, i3.tieWordEmbeddings], [2, 1e6, 1e-5, false]);

  assert.throws(() => archFor('baichuan').check!(parseModelConfig(baichuanConfig({ alibi13b: true }))), /13B ALiBi model .* not supported/);
  archFor('baichuan').check!(parseModelConfig(baichuanConfig()));
});

batchedGenerationTest('batched generation with left padding equals one-by-one', [
  ['s', fam.starcoder2, { seed: 72, slidingWindow: 4 }], ['i', fam.intern, { seed: 73, v2: true }],
], [[5, 9, 17, 33, 2, 70], [44, 3]], 6);

// ------------------------------------------------------------------------------------------------ GPTQ

const quantCases: [...ArchCase, string, [string, number[]][]][] = [
  ['starcoder2', fam.starcoder2, { seed: 82 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.v_proj.bias', [32]], ['self_attn.o_proj.scales', [2, 64]],
    ['mlp.c_fc.qweight', [8, 128]], ['mlp.c_proj.qweight', [16, 64]], ['mlp.c_proj.bias', [64]],
  ]],
  ['internlm', fam.intern, { seed: 83 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.q_proj.bias', [64]], ['self_attn.o_proj.bias', [64]], ['mlp.gate_proj.qweight', [8, 128]],
    ['mlp.down_proj.qweight', [16, 64]],
  ]],
  ['internlm2', fam.intern, { seed: 84, v2: true }, 'model.layers.', [
    ['attention.wqkv.qweight', [8, 128]], ['attention.wqkv.scales', [2, 128]], ['attention.wo.qweight', [8, 64]],
    ['feed_forward.w1.qweight', [8, 128]], ['feed_forward.w3.qzeros', [2, 16]], ['feed_forward.w2.qweight', [16, 64]],
  ]],
  ['baichuan', fam.baichuan, { seed: 85 }, 'model.layers.', [
    ['self_attn.W_pack.qweight', [8, 192]], ['self_attn.W_pack.scales', [2, 192]], ['self_attn.o_proj.qweight', [8, 64]],
    ['mlp.up_proj.qweight', [8, 128]], ['mlp.down_proj.qweight', [16, 64]],
  ]],
];

for (const [name, f, o, block, expect] of quantCases) gptqBlockTest(rep, [name, f, o], block, expect);

rep.summaryTest();
