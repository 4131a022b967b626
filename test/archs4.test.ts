/**
 * GPTBigCode (StarCoder 1), StarCoder2, InternLM, InternLM2, Baichuan (7B) and Cohere: ORT graphs vs independent
 * float64 references on synthetic HF-layout checkpoints (full sequence + KV-cache steps), calibration layer graphs,
 * AutoGPTQ module trees, config defaults / rejections, left-padded batched generation, and one GPTQ run per
 * architecture (quantize → fake-quant logits, GPTQ < RTN → saveQuantized → CausalLM.load of the saved directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import { bigcodeRefConfig, bigcodeRefEmbed, bigcodeRefForward, bigcodeRefLayer } from './reference/gpt-bigcode-ref.ts';
import { starcoder2RefConfig, starcoder2RefEmbed, starcoder2RefForward, starcoder2RefLayer } from './reference/starcoder2-ref.ts';
import { internRefConfig, internRefEmbed, internRefForward, internRefLayer } from './reference/internlm-ref.ts';
import { baichuanRefConfig, baichuanRefEmbed, baichuanRefForward, baichuanRefLayer } from './reference/baichuan-ref.ts';
import { cohereRefConfig, cohereRefEmbed, cohereRefForward, cohereRefLayer } from './reference/cohere-ref.ts';
import {
  baichuanConfig, bigcodeConfig, cohereConfig, internConfig, makeBaichuanCheckpoint, makeBigCodeCheckpoint, makeCohereCheckpoint,
  makeInternCheckpoint, makeStarcoder2Checkpoint, starcoder2Config,
} from './synth-archs4.ts';
import { tmpDir } from './helpers.ts';
import { archFamily, batchedGenerationCheck, gptqBlockTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './arch-harness.ts';

const fam = {
  bigcode: archFamily(makeBigCodeCheckpoint, bigcodeRefConfig, { forward: bigcodeRefForward, embed: bigcodeRefEmbed, layer: bigcodeRefLayer }),
  starcoder2: archFamily(makeStarcoder2Checkpoint, starcoder2RefConfig, { forward: starcoder2RefForward, embed: starcoder2RefEmbed, layer: starcoder2RefLayer }),
  intern: archFamily(makeInternCheckpoint, internRefConfig, { forward: internRefForward, embed: internRefEmbed, layer: internRefLayer }),
  baichuan: archFamily(makeBaichuanCheckpoint, baichuanRefConfig, { forward: baichuanRefForward, embed: baichuanRefEmbed, layer: baichuanRefLayer }),
  cohere: archFamily(makeCohereCheckpoint, cohereRefConfig, { forward: cohereRefForward, embed: cohereRefEmbed, layer: cohereRefLayer }),
};
const rep = reporter();

const cases: ArchCase[] = [
  ['gpt_bigcode multi_query (starcoder-style)', fam.bigcode, { seed: 11 }],
  ['gpt_bigcode multi_query false (per-head q|k|v), gelu, lm_head stored, 3 layers', fam.bigcode, { seed: 12, multiQuery: false, act: 'gelu', storeLmHead: true, layers: 3 }],
  ['starcoder2 (GQA 4/2, sliding_window 6, use_bias, tied, rope_theta ~1e6)', fam.starcoder2, { seed: 21 }],
  ['starcoder2 use_bias false, no sliding window, untied lm_head, MHA', fam.starcoder2, { seed: 22, useBias: false, slidingWindow: null, tie: false, kvHeads: 4 }],
  ['internlm (bias, rotary dynamic base 10000)', fam.intern, { seed: 31 }],
  ['internlm bias false, rotary origin base 500', fam.intern, { seed: 32, bias: false, rotary: { base: 500, type: 'origin' } }],
  ['internlm2 (wqkv GQA 4/2, bias false, rope_theta 1e6, dynamic scaling)', fam.intern, { seed: 33, v2: true }],
  ['internlm2 8 heads / 2 kv (4 q per group), bias true', fam.intern, { seed: 34, v2: true, heads: 8, kvHeads: 2, bias: true, ropeTheta: 10000 }],
  ['baichuan2-7b style (W_pack, NormHead)', fam.baichuan, { seed: 41 }],
  ['baichuan-7b style (W_pack, plain lm_head)', fam.baichuan, { seed: 42, v2: false }],
  ['cohere command-r style (parallel, interleaved rotary, logit_scale, tied)', fam.cohere, { seed: 51 }],
  ['cohere command-r+ style (qk norm, GQA 4/2, attention_bias, logit_scale 0.8333, untied)', fam.cohere,
    { seed: 52, qkNorm: true, kvHeads: 2, attentionBias: true, logitScale: 0.8333, storeLmHead: true, ropeTheta: 75000000 }],
];

for (const c of cases) parityTest(rep, c);

layerGraphsTest(rep, 'calibration layer graphs (InputWeights) match the reference layers; module trees match AutoGPTQ', [
  ['bigcode', fam.bigcode, { seed: 61 }], ['bigcodeMha', fam.bigcode, { seed: 62, multiQuery: false }],
  ['starcoder2', fam.starcoder2, { seed: 63 }], ['internlm', fam.intern, { seed: 64 }],
  ['internlm2', fam.intern, { seed: 65, v2: true, heads: 8, kvHeads: 2, bias: true }],
  ['baichuan', fam.baichuan, { seed: 66 }], ['cohere', fam.cohere, { seed: 67, qkNorm: true, kvHeads: 2 }],
], { moduleTree: { noUndeclaredBias: true, outsideModules: true } });

test('config defaults from the config classes; clear rejections', () => {
  const b = bigcodeConfig();
  delete b.n_inner; delete b.activation_function; delete b.multi_query;
  const bc = parseModelConfig(b);
  assert.deepEqual([bc.numKvHeads, bc.intermediateSize, bc.hiddenAct, bc.maxPositionEmbeddings, bc.tieWordEmbeddings], [1, 256, 'gelu_pytorch_tanh', 64, true]);
  assert.equal(parseModelConfig(bigcodeConfig({ multiQuery: false })).numKvHeads, 4);
  assert.equal(archFor('gpt_bigcode').layerLinears(bc)[0]!.outFeatures, 64 + 2 * 16);

  const s = starcoder2Config();
  delete s.num_key_value_heads; delete s.norm_epsilon; delete s.sliding_window;
  const sc = parseModelConfig({ ...s, norm_epsilon: 3e-5 });
  assert.deepEqual([sc.rmsNormEps, sc.slidingWindow, sc.tieWordEmbeddings], [3e-5, null, true]);
  assert.equal(parseModelConfig({ ...s, num_attention_heads: 4 }).numKvHeads, 2); // Starcoder2Config default 2
  assert.equal(parseModelConfig(starcoder2Config()).slidingWindow, 6);

  const i1 = parseModelConfig(internConfig({ rotary: { base: 500, type: 'origin' } }));
  assert.deepEqual([i1.ropeTheta, i1.ropeScaling], [500, null]);
  const i2 = parseModelConfig(internConfig());
  assert.deepEqual([i2.ropeTheta, i2.ropeScaling?.type, i2.ropeScaling?.factor], [10000, 'dynamic', 1]);
  assert.equal(parseModelConfig(internConfig({ rotary: null })).ropeTheta, 10000);
  assert.throws(() => archFor('internlm').check!(parseModelConfig(internConfig({ rotary: { base: 1, type: 'ntk' } }))), /rotary.type" must be "origin" or "dynamic"/);
  const i3 = parseModelConfig(internConfig({ v2: true }));
  assert.deepEqual([i3.numKvHeads, i3.ropeTheta, i3.rmsNormEps, i3.tieWordEmbeddings], [2, 1e6, 1e-5, false]);

  assert.throws(() => archFor('baichuan').check!(parseModelConfig(baichuanConfig({ alibi13b: true }))), /13B ALiBi model .* not supported/);
  archFor('baichuan').check!(parseModelConfig(baichuanConfig()));

  const c = cohereConfig();
  delete c.logit_scale; delete c.layer_norm_eps;
  const cc = parseModelConfig(c);
  assert.deepEqual([cc.rmsNormEps, cc.tieWordEmbeddings, cc.numKvHeads], [1e-5, true, 4]);
  assert.throws(() => archFor('cohere').check!(parseModelConfig({ ...cohereConfig(), logit_scale: 'big' })), /field "logit_scale" must be a number/);
});

test('batched generation with left padding equals one-by-one', async () => {
  const t = tmpDir();
  try {
    await batchedGenerationCheck(t.path, [
      ['b', fam.bigcode, { seed: 71 }], ['s', fam.starcoder2, { seed: 72, slidingWindow: 4 }], ['i', fam.intern, { seed: 73, v2: true }],
      ['c', fam.cohere, { seed: 74, qkNorm: true, kvHeads: 2 }],
    ], [[5, 9, 17, 33, 2, 70], [44, 3]], 6);
  } finally { t.cleanup(); }
});

// ------------------------------------------------------------------------------------------------ GPTQ

const quantCases: [...ArchCase, string, [string, number[]][]][] = [
  ['gpt_bigcode', fam.bigcode, { seed: 81 }, 'transformer.h.', [
    ['attn.c_attn.qweight', [8, 96]], ['attn.c_attn.scales', [2, 96]], ['attn.c_attn.bias', [96]], ['attn.c_proj.qzeros', [2, 8]],
    ['mlp.c_fc.qweight', [8, 128]], ['mlp.c_proj.qweight', [16, 64]], ['mlp.c_proj.g_idx', [128]],
  ]],
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
  ['cohere', fam.cohere, { seed: 86, qkNorm: true, kvHeads: 2 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.o_proj.qweight', [8, 64]],
    ['mlp.gate_proj.qweight', [8, 128]], ['mlp.down_proj.qweight', [16, 64]],
  ]],
];

for (const [name, f, o, block, expect] of quantCases) gptqBlockTest(rep, [name, f, o], block, expect);

rep.summaryTest();
