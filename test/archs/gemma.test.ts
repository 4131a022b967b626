/**
 * Gemma: ORT graphs vs an independent float64 reference on synthetic HF-layout checkpoints (full sequence, KV-cache steps,
 * padded/holed attention masks, per-layer calibration graph with (1 + w) norms), config defaults, batched left-padded
 * generation, and a GPTQ round trip (quantize → fake-quant error vs RTN → saveQuantized → CausalLM.load).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { gemmaRefConfig, gemmaRefEmbed, gemmaRefForward, gemmaRefLayer } from '../reference/gemma-ref.ts';
import { gemmaConfig, makeGemmaCheckpoint } from './gemma.synth.ts';
import { archFamily, batchedGenerationTest, checkModuleTree, gptqSavedTensorsTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const gemma = archFamily(makeGemmaCheckpoint, gemmaRefConfig, { forward: gemmaRefForward, embed: gemmaRefEmbed, layer: gemmaRefLayer });
const rep = reporter();

const cases: ArchCase[] = [
  ['gemma-2b style (head_dim 32 ≠ 64/4, 1 kv head, hidden_activation)', gemma, { seed: 71 }],
  ['gemma legacy (hidden_act gelu, no hidden_activation), 2 kv heads, attention_bias, lm_head stored', gemma, { seed: 72, kvHeads: 2, hiddenActivation: null, attentionBias: true, storeLmHead: true }],
  ['gemma hidden_act silu (hidden_activation gelu ignored), head_dim 16, 8 heads / 2 kv', gemma, { seed: 73, hiddenAct: 'silu', hiddenActivation: 'gelu', headDim: 16, heads: 8, kvHeads: 2 }],
];

for (const c of cases) parityTest(rep, c, { masked: true, after: (dir) => checkModuleTree(dir) });

layerGraphsTest(rep, 'calibration layer graph (InputWeights, (1+w) norms) matches the reference layer', [['gemma-2b style', gemma, cases[0]![2]]]);

test('config parsing: gemma head_dim (GemmaConfig defaults)', () => {
  const g = parseModelConfig(gemmaConfig({ headDim: 32 }));
  assert.deepEqual([g.headDim, g.rotaryDim, g.numKvHeads, g.tieWordEmbeddings], [32, 32, 1, true]);
});

batchedGenerationTest('gemma: batched generation with left padding equals one-by-one', [['gemma', gemma, cases[0]![2]]], [[5, 9, 17, 33, 2, 70], [44, 3], [8, 8, 61, 20]], 8);

gptqSavedTensorsTest(rep, ['gemma-2b style', gemma, cases[0]![2]], {
  'model.layers.1.self_attn.q_proj.qweight': ['I32', [8, 128]],
  'model.layers.1.self_attn.k_proj.qweight': ['I32', [8, 32]],
  'model.layers.1.self_attn.o_proj.qweight': ['I32', [16, 64]],
  'model.layers.1.mlp.down_proj.scales': ['F16', [4, 64]],
  'model.norm.weight': ['F32', [64]],
});

rep.summaryTest();
