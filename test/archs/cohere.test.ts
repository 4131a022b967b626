/**
 * Cohere (Command-R / R+): parallel block from one bias-less LayerNorm, interleaved rotary, optional per-head q/k
 * norms, logit_scale. ORT graphs vs an independent float64 reference on synthetic HF-layout checkpoints, calibration
 * layer graph, AutoGPTQ module tree, config defaults / rejections, left-padded batched generation, and a GPTQ round trip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { cohereRefConfig, cohereRefEmbed, cohereRefForward, cohereRefLayer } from '../reference/cohere-ref.ts';
import { cohereConfig, makeCohereCheckpoint } from './cohere.synth.ts';
import { archFamily, batchedGenerationTest, gptqBlockTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const cohere = archFamily(makeCohereCheckpoint, cohereRefConfig, { forward: cohereRefForward, embed: cohereRefEmbed, layer: cohereRefLayer });
const rep = reporter();

const cases: ArchCase[] = [
  ['cohere command-r style (parallel, interleaved rotary, logit_scale, tied)', cohere, { seed: 51 }],
  ['cohere command-r+ style (qk norm, GQA 4/2, attention_bias, logit_scale 0.8333, untied)', cohere,
    { seed: 52, qkNorm: true, kvHeads: 2, attentionBias: true, logitScale: 0.8333, storeLmHead: true, ropeTheta: 75000000 }],
];

for (const c of cases) parityTest(rep, c);

layerGraphsTest(rep, 'calibration layer graph (InputWeights) matches the reference layer; module tree matches AutoGPTQ',
  [['cohere', cohere, { seed: 67, qkNorm: true, kvHeads: 2 }]], { moduleTree: { noUndeclaredBias: true, outsideModules: true } });

test('config defaults (CohereConfig); clear rejections', () => {
  const c = cohereConfig();
  delete c.logit_scale; delete c.layer_norm_eps;
  const cc = parseModelConfig(c);
  assert.deepEqual([cc.rmsNormEps, cc.tieWordEmbeddings, cc.numKvHeads], [1e-5, true, 4]);
  assert.throws(() => archFor('cohere').check!(parseModelConfig({ ...cohereConfig(), logit_scale: 'big' })), /field "logit_scale" must be a number/);
});

batchedGenerationTest('batched generation with left padding equals one-by-one', [['c', cohere, { seed: 74, qkNorm: true, kvHeads: 2 }]], [[5, 9, 17, 33, 2, 70], [44, 3]], 6);

gptqBlockTest(rep, ['cohere', cohere, { seed: 86, qkNorm: true, kvHeads: 2 }], 'model.layers.', [
  ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.o_proj.qweight', [8, 64]],
  ['mlp.gate_proj.qweight', [8, 128]], ['mlp.down_proj.qweight', [16, 64]],
]);

rep.summaryTest();
