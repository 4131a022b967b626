/**
 * OPT (125m-style pre-LN and 350m-style post-LN with project_in/out): ORT graphs vs an independent float64 reference
 * on synthetic HF-layout checkpoints, calibration layer graphs, AutoGPTQ module tree, left-padded batched generation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { optRefConfig, optRefEmbed, optRefForward, optRefLayer } from '../reference/opt-ref.ts';
import { makeOptCheckpoint, type OptOpts } from './opt.synth.ts';
import { tmpDir } from '../helpers.ts';
import { TOL, archFamily, batchedGenerationTest, checkModuleTree, ids16, layerGraphParity, parityTest, reporter } from './harness.ts';

const opt = archFamily(makeOptCheckpoint, optRefConfig, { forward: optRefForward, embed: optRefEmbed, layer: optRefLayer });
const rep = reporter();

const optCases: [string, OptOpts][] = [
  ['opt (125m-style: pre-LN, final_layer_norm)', { seed: 21 }],
  ['opt (350m-style: word_embed_proj_dim 16 ≠ 32, do_layer_norm_before false)', { seed: 22, projDim: 16, layerNormBefore: false, layers: 3 }],
  ['opt project_in/out with pre-LN, no model. prefix, lm_head stored', { seed: 23, projDim: 24, basePrefixless: true, storeLmHead: true }],
  ['opt enable_bias false, layer_norm_elementwise_affine false', { seed: 24, enableBias: false, elementwiseAffine: false }],
];
for (const [name, o] of optCases) parityTest(rep, [name, opt, o]);

test('calibration layer graphs (InputWeights) match the reference layers', async () => {
  const t = tmpDir();
  try {
    const ids = ids16(96);
    const o = join(t.path, 'opt'), o350 = join(t.path, 'opt350');
    await makeOptCheckpoint(o, { seed: 32 });
    await makeOptCheckpoint(o350, { seed: 33, projDim: 16, layerNormBefore: false });
    const diffs: Record<string, number> = {};
    for (const [k, dir] of [['opt', o], ['opt350', o350]] as const) diffs[k] = await layerGraphParity(dir, opt, 1, ids);
    rep.report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
    await checkModuleTree(o350);
  } finally { t.cleanup(); }
});

batchedGenerationTest('opt: batched generation with left padding equals one-by-one (learned positions from the mask)', [['o', opt, { seed: 42, projDim: 16, layerNormBefore: false }]], [[5, 9, 17, 33, 2, 70], [44, 3]], 8);

rep.summaryTest();
