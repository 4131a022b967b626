/**
 * GPT-2 family — GPT-2 and GPTBigCode (StarCoder 1): learned positions, fused c_attn. ORT graphs vs independent
 * float64 references on synthetic HF-layout checkpoints and the real tiny-gpt2, calibration layer graphs (Conv1D for
 * GPT-2), AutoGPTQ module trees, config defaults, left-padded batched generation, and a GPTQ round trip for GPTBigCode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { gpt2RefBlock, gpt2RefConfig, gpt2RefEmbed, gpt2RefForward } from '../reference/gpt2-ref.ts';
import { bigcodeRefConfig, bigcodeRefEmbed, bigcodeRefForward, bigcodeRefLayer } from '../reference/gpt-bigcode-ref.ts';
import { bigcodeConfig, makeBigCodeCheckpoint, makeGpt2Checkpoint, type Gpt2Opts } from './gpt2.synth.ts';
import { SHARED, SKIP_SHARED, tmpDir } from '../helpers.ts';
import {
  TOL, archFamily, assertParity, batchedGenerationTest, checkModuleTree, gptqBlockTest, ids16, layerGraphParity, layerGraphsTest, parity,
  parityTest, reporter, type ArchCase,
} from './harness.ts';

const gpt2 = archFamily(makeGpt2Checkpoint, gpt2RefConfig, { forward: gpt2RefForward, embed: gpt2RefEmbed, layer: gpt2RefBlock });
const bigcode = archFamily(makeBigCodeCheckpoint, bigcodeRefConfig, { forward: bigcodeRefForward, embed: bigcodeRefEmbed, layer: bigcodeRefLayer });
const rep = reporter();

const gpt2Cases: [string, Gpt2Opts][] = [
  ['gpt2 default', { seed: 11 }],
  ['gpt2 scale_attn_by_inverse_layer_idx, n_inner 48, no transformer. prefix, lm_head stored', { seed: 12, layers: 3, inner: 48, scaleByInverseLayerIdx: true, basePrefixless: true, storeLmHead: true }],
  ['gpt2 scale_attn_weights false, relu', { seed: 13, scaleAttnWeights: false, activation: 'relu', hidden: 24, heads: 3 }],
];
for (const [name, o] of gpt2Cases) parityTest(rep, [name, gpt2, o]);

const bigcodeCases: ArchCase[] = [
  ['gpt_bigcode multi_query (starcoder-style)', bigcode, { seed: 11 }],
  ['gpt_bigcode multi_query false (per-head q|k|v), gelu, lm_head stored, 3 layers', bigcode, { seed: 12, multiQuery: false, act: 'gelu', storeLmHead: true, layers: 3 }],
];
for (const c of bigcodeCases) parityTest(rep, c);

test('real tiny-gpt2 checkpoint: CausalLM.load, ORT vs float64 reference', { skip: SKIP_SHARED }, async () => {
  const dir = join(SHARED, 'models', 'tiny-gpt2');
  const prompts = [ids16(53), ids16(53, 5, 1).slice(0, 11), [0, 51, 52, 7, 7, 7, 30]];
  const r = await parity(dir, gpt2.forward, { prompts });
  rep.report('tiny-gpt2 (real)', { ...r });
  assertParity(r);
  await checkModuleTree(dir);
});

test('gpt2 calibration layer graph (InputWeights, Conv1D weights) matches the reference layer', async () => {
  const t = tmpDir();
  try {
    await makeGpt2Checkpoint(t.path, { seed: 31 });
    const d = await layerGraphParity(t.path, gpt2, 1, ids16(96));
    rep.report('layer graphs |Δhidden|', { gpt2: d });
    assert.ok(d <= TOL, `gpt2 ${d}`);
    await checkModuleTree(t.path);
  } finally { t.cleanup(); }
});

layerGraphsTest(rep, 'gpt_bigcode calibration layer graphs (InputWeights) match the reference layers; module trees match AutoGPTQ', [
  ['bigcode', bigcode, { seed: 61 }], ['bigcodeMha', bigcode, { seed: 62, multiQuery: false }],
], { moduleTree: { noUndeclaredBias: true, outsideModules: true } });

test('gpt_bigcode config defaults (GPTBigCodeConfig); kv heads from multi_query', () => {
  const b = bigcodeConfig();
  delete b.n_inner; delete b.activation_function; delete b.multi_query;
  const bc = parseModelConfig(b);
  assert.deepEqual([bc.numKvHeads, bc.intermediateSize, bc.hiddenAct, bc.maxPositionEmbeddings, bc.tieWordEmbeddings], [1, 256, 'gelu_pytorch_tanh', 64, true]);
  assert.equal(parseModelConfig(bigcodeConfig({ multiQuery: false })).numKvHeads, 4);
  assert.equal(archFor('gpt_bigcode').layerLinears(bc)[0]!.outFeatures, 64 + 2 * 16);
});

batchedGenerationTest('gpt2 / gpt_bigcode: batched generation with left padding equals one-by-one (learned positions from the mask)', [['g', gpt2, { seed: 41 }], ['b', bigcode, { seed: 71 }]], [[5, 9, 17, 33, 2, 70], [44, 3]], 8);

gptqBlockTest(rep, ['gpt_bigcode', bigcode, { seed: 81 }], 'transformer.h.', [
  ['attn.c_attn.qweight', [8, 96]], ['attn.c_attn.scales', [2, 96]], ['attn.c_attn.bias', [96]], ['attn.c_proj.qzeros', [2, 8]],
  ['mlp.c_fc.qweight', [8, 128]], ['mlp.c_proj.qweight', [16, 64]], ['mlp.c_proj.g_idx', [128]],
]);

rep.summaryTest();

test('learned position table (gpt2 n_positions 24): logits/nll/forwardStep past it refused in one line; generate stops at its end', async () => {
  const t = tmpDir();
  try {
    await makeGpt2Checkpoint(t.path, { seed: 41, positions: 24 });
    const { CausalLM } = await import('../../src/runtime/causal-lm.ts');
    const { generate } = await import('../../src/runtime/generate.ts');
    const lm = await CausalLM.load(t.path);
    try {
      assert.equal(lm.positionLimit, 24);
      // the architectures with a learned table (Transformers: wpe / embed_positions); rotary and ALiBi ones have none
      for (const t of ['gpt2', 'gpt_bigcode', 'gpt_neo', 'opt']) assert.equal(archFor(t).learnedPositions, true, t);
      for (const t of ['llama', 'bloom', 'gptj', 'gpt_neox', 'falcon']) assert.equal(archFor(t).learnedPositions, undefined, t);
      const row = (n: number) => Array.from({ length: n }, (_, i) => (i * 7) % 96);
      assert.equal((await lm.logits([row(24)])).length, 24 * 96, 'the whole table is usable');
      await assert.rejects(lm.logits([row(25)]), /^GptqError: logits: a row of 25 tokens needs positions up to 24; gpt2 has a learned position table of 24 rows/);
      await assert.rejects(lm.nll([row(30)]), /nll: a row of 30 tokens .* 24 rows/);
      const c = await lm.forwardStep([row(20)], lm.emptyCache(1));
      await assert.rejects(lm.forwardStep([row(5)], c.cache), /forwardStep: a row of 25 tokens/);
      // generation: prompt 20 + at most 4 new tokens, finish 'length' (Transformers' max_length = n_positions)
      const g = await generate(lm, [row(20), row(9)], { maxNewTokens: 10, eosTokenIds: [] });
      assert.deepEqual(g.tokens.map((s) => s.length), [4, 4]);
      assert.deepEqual(g.finishReason, ['length', 'length']);
      await assert.rejects(generate(lm, [row(24)], { maxNewTokens: 2 }), /generate: 24 prompt tokens leave no position for a new token: gpt2 has a learned position table of 24 rows/);
    } finally { await lm.dispose(); }
  } finally { t.cleanup(); }
});
