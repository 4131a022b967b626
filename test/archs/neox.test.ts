/**
 * GPT-NeoX, GPT-J and Phi: ORT graphs vs independent float64 references on synthetic HF-layout checkpoints,
 * calibration layer graphs, config defaults, and one GPTQ run per architecture (quantize → fake-quant logits →
 * saveQuantized → CausalLM.load of the saved directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import {
  gptjRefConfig, gptjRefEmbed, gptjRefForward, gptjRefLayer, neoxRefConfig, neoxRefEmbed, neoxRefForward, neoxRefLayer,
  phiRefConfig, phiRefEmbed, phiRefForward, phiRefLayer, erf,
} from '../reference/neox-family-ref.ts';
import { gptjConfig, makeGptjCheckpoint, makeNeoxCheckpoint, makePhiCheckpoint, neoxConfig, phiConfig } from './neox.synth.ts';
import { archFamily, batchedGenerationTest, gptqBlockTest, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const neox = archFamily(makeNeoxCheckpoint, neoxRefConfig, { forward: neoxRefForward, embed: neoxRefEmbed, layer: neoxRefLayer });
const gptj = archFamily(makeGptjCheckpoint, gptjRefConfig, { forward: gptjRefForward, embed: gptjRefEmbed, layer: gptjRefLayer });
const phi = archFamily(makePhiCheckpoint, phiRefConfig, { forward: phiRefForward, embed: phiRefEmbed, layer: phiRefLayer });
const rep = reporter();

const cases: ArchCase[] = [
  ['gpt_neox (pythia-style: parallel residual, rotary_pct 0.25, gelu)', neox, { seed: 11 }],
  ['gpt_neox sequential residual, rotary_pct 1, base 500, attention_bias false, 3 layers, legacy buffers', neox,
    { seed: 12, parallelResidual: false, rotaryPct: 1, rotaryBase: 500, attentionBias: false, layers: 3, legacyBuffers: true }],
  ['gpt_neox tie_word_embeddings (no embed_out), rotary_pct 0.5, gelu_new', neox, { seed: 13, tie: true, rotaryPct: 0.5, act: 'gelu_new' }],
  ['gptj (rotary_dim 8 of head_dim 16, n_inner null)', gptj, { seed: 21 }],
  ['gptj rotary_dim 16 (full head), n_inner 96, 3 layers', gptj, { seed: 22, rotaryDim: 16, inner: 96, layers: 3 }],
  ['gptj no rotary_dim field (GPTJConfig default 64 = head_dim), 2 heads of 64', gptj, { seed: 23, omitRotaryDim: true, hidden: 128, heads: 2, inner: 128 }],
  ['phi (phi-1.5-style: partial_rotary_factor 0.5)', phi, { seed: 31 }],
  ['phi GQA (2 kv heads), qk_layernorm, partial_rotary_factor 0.4 (6 of 16), rope_theta 500', phi,
    { seed: 32, kvHeads: 2, qkLayernorm: true, partialRotaryFactor: 0.4, ropeTheta: 500 }],
];

for (const c of cases) parityTest(rep, c);

layerGraphsTest(rep, 'calibration layer graphs (InputWeights) match the reference layers; module trees match AutoGPTQ', [
  ['neox', neox, { seed: 41 }], ['neoxSeq', neox, { seed: 42, parallelResidual: false }],
  ['gptj', gptj, { seed: 43 }], ['phi', phi, { seed: 44, kvHeads: 2, qkLayernorm: true }],
], { moduleTree: { noUndeclaredBias: true } });

test('config defaults from the transformers config classes; one-line errors', () => {
  const neoxBase = neoxConfig();
  delete neoxBase.rotary_pct; delete neoxBase.rotary_emb_base;
  const n = parseModelConfig(neoxBase);
  assert.deepEqual([n.rotaryDim, n.ropeTheta, n.tieWordEmbeddings], [4, 10000, false]); // GPTNeoXConfig rotary_pct 0.25
  const phiBase = phiConfig();
  delete phiBase.partial_rotary_factor;
  const p = parseModelConfig(phiBase);
  assert.deepEqual([p.rotaryDim, p.numKvHeads, p.hiddenAct], [8, 4, 'gelu_new']); // PhiConfig partial_rotary_factor 0.5
  assert.equal(parseModelConfig(phiConfig({ partialRotaryFactor: 0.4 })).rotaryDim, 6); // int(16 · 0.4)
  const j = parseModelConfig(gptjConfig({ omitRotaryDim: true, hidden: 256, heads: 2 }));
  assert.deepEqual([j.rotaryDim, j.intermediateSize, j.hiddenAct], [64, 1024, 'gelu_new']); // GPTJConfig rotary_dim 64, n_inner null
  assert.equal(parseModelConfig(gptjConfig({ rotaryDim: 8 })).rotaryDim, 8);
  assert.throws(() => parseModelConfig(gptjConfig({ omitRotaryDim: true })), /rotary_dim" must be an integer in \[1, head_dim 16\], got 64/);
  assert.throws(() => archFor('gptj').check!(parseModelConfig(gptjConfig({ rotaryDim: null }))), /rotary_dim null .* only works with one head/);
  assert.throws(() => archFor('gptj').check!(parseModelConfig(gptjConfig({ rotaryDim: 7 }))), /rotary_dim" \(7\) must be a positive even number/);
  assert.throws(() => archFor('phi').check!(parseModelConfig(phiConfig({ partialRotaryFactor: 0.35 }))), /int\(head_dim·partial_rotary_factor\) = 5 must be a positive even number/);
  assert.throws(() => archFor('gpt_neox').check!(parseModelConfig({ ...neoxConfig(), use_parallel_residual: 'yes' })), /field "use_parallel_residual" must be a boolean/);
  // the reference's erf (gelu) is exact enough to be an oracle
  assert.ok(Math.abs(erf(0.5) - 0.5204998778130465) < 1e-15 && Math.abs(erf(3) - 0.9999779095030014) < 1e-15 && Math.abs(erf(-1.2) + 0.9103139782296353) < 1e-15);
});

batchedGenerationTest('batched generation with left padding equals one-by-one (rotary positions from the mask)', [
  ['n', neox, { seed: 51 }], ['j', gptj, { seed: 52 }], ['p', phi, { seed: 53, kvHeads: 2 }],
], [[5, 9, 17, 33, 2, 70], [44, 3]], 6);

// ------------------------------------------------------------------------------------------------ GPTQ

const quantCases: [...ArchCase, string, [string, number[]][]][] = [
  ['gpt_neox', neox, { seed: 61 }, 'gpt_neox.layers.', [
    ['attention.query_key_value.qweight', [8, 192]], ['attention.query_key_value.scales', [2, 192]], ['attention.query_key_value.bias', [192]],
    ['attention.dense.qzeros', [2, 8]], ['mlp.dense_h_to_4h.qweight', [8, 128]], ['mlp.dense_4h_to_h.qweight', [16, 64]], ['mlp.dense_4h_to_h.g_idx', [128]],
  ]],
  ['gptj', gptj, { seed: 62, inner: 128 }, 'transformer.h.', [
    ['attn.q_proj.qweight', [8, 64]], ['attn.k_proj.scales', [2, 64]], ['attn.v_proj.qzeros', [2, 8]], ['attn.out_proj.g_idx', [64]],
    ['mlp.fc_in.qweight', [8, 128]], ['mlp.fc_in.bias', [128]], ['mlp.fc_out.qweight', [16, 64]],
  ]],
  ['phi', phi, { seed: 63, kvHeads: 2 }, 'model.layers.', [
    ['self_attn.q_proj.qweight', [8, 64]], ['self_attn.k_proj.qweight', [8, 32]], ['self_attn.v_proj.scales', [2, 32]], ['self_attn.dense.qweight', [8, 64]],
    ['mlp.fc1.qweight', [8, 128]], ['mlp.fc2.qweight', [16, 64]], ['mlp.fc2.bias', [64]],
  ]],
];

for (const [name, fam, o, block, expect] of quantCases) gptqBlockTest(rep, [name, fam, o], block, expect);

rep.summaryTest();
