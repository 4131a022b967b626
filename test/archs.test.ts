/** GPT-2 and OPT: ORT graphs vs independent float64 references (synthetic checkpoints + the real tiny-gpt2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gpt2RefBlock, gpt2RefConfig, gpt2RefEmbed, gpt2RefForward } from './reference/gpt2-ref.ts';
import { optRefConfig, optRefEmbed, optRefForward, optRefLayer } from './reference/opt-ref.ts';
import { makeGpt2Checkpoint, makeOptCheckpoint, type Gpt2Opts, type OptOpts } from './synth-archs.ts';
import { SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';
import {
  TOL, archFamily, assertParity, batchedGenerationCheck, checkModuleTree, ids16, layerGraphParity, parity, parityTest, reporter,
} from './arch-harness.ts';

const gpt2 = archFamily(makeGpt2Checkpoint, gpt2RefConfig, { forward: gpt2RefForward, embed: gpt2RefEmbed, layer: gpt2RefBlock });
const opt = archFamily(makeOptCheckpoint, optRefConfig, { forward: optRefForward, embed: optRefEmbed, layer: optRefLayer });
const rep = reporter();

const gpt2Cases: [string, Gpt2Opts][] = [
  ['gpt2 default', { seed: 11 }],
  ['gpt2 scale_attn_by_inverse_layer_idx, n_inner 48, no transformer. prefix, lm_head stored', { seed: 12, layers: 3, inner: 48, scaleByInverseLayerIdx: true, basePrefixless: true, storeLmHead: true }],
  ['gpt2 scale_attn_weights false, relu', { seed: 13, scaleAttnWeights: false, activation: 'relu', hidden: 24, heads: 3 }],
];
for (const [name, o] of gpt2Cases) parityTest(rep, [name, gpt2, o]);

const optCases: [string, OptOpts][] = [
  ['opt (125m-style: pre-LN, final_layer_norm)', { seed: 21 }],
  ['opt (350m-style: word_embed_proj_dim 16 ≠ 32, do_layer_norm_before false)', { seed: 22, projDim: 16, layerNormBefore: false, layers: 3 }],
  ['opt project_in/out with pre-LN, no model. prefix, lm_head stored', { seed: 23, projDim: 24, basePrefixless: true, storeLmHead: true }],
  ['opt enable_bias false, layer_norm_elementwise_affine false', { seed: 24, enableBias: false, elementwiseAffine: false }],
];
for (const [name, o] of optCases) parityTest(rep, [name, opt, o]);

test('real tiny-gpt2 checkpoint: CausalLM.load, ORT vs float64 reference', { skip: SKIP_SHARED }, async () => {
  const dir = join(SHARED, 'models', 'tiny-gpt2');
  const prompts = [ids16(53), ids16(53, 5, 1).slice(0, 11), [0, 51, 52, 7, 7, 7, 30]];
  const r = await parity(dir, gpt2.forward, { prompts });
  rep.report('tiny-gpt2 (real)', { ...r });
  assertParity(r);
  await checkModuleTree(dir);
});

test('calibration layer graphs (InputWeights, Conv1D for gpt2) match the reference layers', async () => {
  const t = tmpDir();
  try {
    const ids = ids16(96);
    const g = join(t.path, 'gpt2'), o = join(t.path, 'opt'), o350 = join(t.path, 'opt350');
    await makeGpt2Checkpoint(g, { seed: 31 });
    await makeOptCheckpoint(o, { seed: 32 });
    await makeOptCheckpoint(o350, { seed: 33, projDim: 16, layerNormBefore: false });
    const diffs: Record<string, number> = { gpt2: await layerGraphParity(g, gpt2, 1, ids) };
    for (const [k, dir] of [['opt', o], ['opt350', o350]] as const) diffs[k] = await layerGraphParity(dir, opt, 1, ids);
    rep.report('layer graphs |Δhidden|', diffs);
    for (const [k, v] of Object.entries(diffs)) assert.ok(v <= TOL, `${k} ${v}`);
    await checkModuleTree(g);
    await checkModuleTree(o350);
  } finally { t.cleanup(); }
});

test('gpt2 / opt: batched generation with left padding equals one-by-one (learned positions from the mask)', async () => {
  const t = tmpDir();
  try {
    await batchedGenerationCheck(t.path, [
      ['g', gpt2, { seed: 41 }], ['o', opt, { seed: 42, projDim: 16, layerNormBefore: false }],
    ], [[5, 9, 17, 33, 2, 70], [44, 3]], 8);
  } finally { t.cleanup(); }
});

rep.summaryTest();
