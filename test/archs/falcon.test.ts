/**
 * Falcon (old and new decoder architecture, multi-query / GQA / per-head fused qkv): ORT graphs vs an independent float64
 * reference on synthetic HF-layout checkpoints (full sequence, KV-cache steps, padded/holed attention masks, per-layer
 * calibration graphs), config parsing (kv heads per layout) and refusals, batched left-padded generation, and a GPTQ
 * round trip (quantize → fake-quant error vs RTN → saveQuantized → CausalLM.load of the GPTQ directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { falconRefBlock, falconRefConfig, falconRefEmbed, falconRefForward } from '../reference/falcon-ref.ts';
import { falconConfig, makeFalconCheckpoint, type FalconOpts } from './falcon.synth.ts';
import { archFamily, batchedGenerationTest, checkModuleTree, gptqSavedTensorsTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const falcon = archFamily(makeFalconCheckpoint, falconRefConfig, { forward: falconRefForward, embed: falconRefEmbed, layer: falconRefBlock });
const rep = reporter();

const cases: ArchCase[] = [
  ['falcon-7b style (multi_query, parallel_attn, input_layernorm)', falcon, { seed: 61 }],
  ['falcon-40b style (new_decoder_architecture, 8 heads / 2 kv, ln_attn + ln_mlp)', falcon, { seed: 62, newArch: true, heads: 8, kvHeads: 2 }],
  ['falcon-11B style (new arch, num_ln_in_parallel_attn 1, ffn_hidden_size 96, rope_theta 500042)', falcon, { seed: 63, newArch: true, kvHeads: 2, numLnInParallelAttn: 1, ffn: 96, ropeTheta: 500042 }],
  ['falcon-rw style (multi_query false, sequential, bias, gelu_new)', falcon, { seed: 64, multiQuery: false, parallelAttn: false, bias: true, activation: 'gelu_new' }],
];

for (const c of cases) parityTest(rep, c, { masked: true, after: (dir) => checkModuleTree(dir) });

layerGraphsTest(rep, 'calibration layer graphs (InputWeights, fused qkv per layout) match the reference layers',
  [cases[0]!, cases[1]!, cases[3]!].map(([name, fam, o]) => [name.split(' (')[0]!, fam, o]));

test('config parsing: falcon kv heads per layout, ffn_hidden_size; alibi and inconsistent layouts rejected', () => {
  const kv = (o: FalconOpts) => parseModelConfig(falconConfig(o)).numKvHeads;
  assert.equal(kv({}), 1);
  assert.equal(kv({ multiQuery: false }), 4);
  assert.equal(kv({ newArch: true, heads: 8, kvHeads: 2 }), 2);
  assert.equal(parseModelConfig({ ...falconConfig({ newArch: true, heads: 8 }), num_kv_heads: undefined, n_head_kv: 4 }).numKvHeads, 4);
  assert.equal(parseModelConfig(falconConfig({ ffn: 96 })).intermediateSize, 96);
  const falconCheck = (c: Record<string, any>) => archFor('falcon').check!(parseModelConfig(c, 'x/config.json'));
  assert.throws(() => falconCheck({ ...falconConfig(), alibi: true }), /falcon with alibi=true is not supported/);
  assert.throws(() => falconCheck({ ...falconConfig({ newArch: true }), parallel_attn: false }), /needs parallel_attn=true/);
  assert.throws(() => falconCheck({ ...falconConfig(), activation: 'tanh' }), /activation "tanh" is not supported/);
});

batchedGenerationTest('falcon: batched generation with left padding equals one-by-one', [['falcon', falcon, cases[1]![2]]], [[5, 9, 17, 33, 2, 70], [44, 3], [8, 8, 61, 20]], 8);

gptqSavedTensorsTest(rep, ['falcon-40b style', falcon, cases[1]![2]], {
  'transformer.h.0.self_attention.query_key_value.qweight': ['I32', [8, 96]],
  'transformer.h.0.self_attention.dense.scales': ['F16', [2, 64]],
  'transformer.h.0.mlp.dense_h_to_4h.qweight': ['I32', [8, 256]],
  'transformer.h.0.ln_mlp.bias': ['F32', [64]],
});

rep.summaryTest();
