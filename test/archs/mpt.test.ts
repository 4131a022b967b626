/**
 * MPT (ALiBi with MPT's slope rule, fused Wqkv, clip_qkv, bias-free LayerNorms). The forward is checked against real
 * Transformers by test/hf-parity.test.ts (fixture test/fixtures/archs/mpt); here: the slope rule against its formula
 * written independently, that clip_qkv and alibi_bias_max really change the logits (so the fixture exercises them),
 * the configs Transformers' MptForCausalLM ignores are refused in one line, and quantize → save → reload on the fixture
 * with the fused Wqkv saved under GPTQModel's / vLLM's name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GptqError } from '../../src/errors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { mptAlibiSlopes } from '../../src/models/mpt.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { tmpDir } from '../helpers.ts';
import { mptRefBlock, mptRefConfig, mptRefEmbed, mptRefForward, refMptSlopes } from '../reference/mpt-ref.ts';
import { makeMptCheckpoint } from './mpt.synth.ts';
import { fixtureFullDelta, fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
import { archFamily, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';

const rep = reporter();
const mpt = archFamily(makeMptCheckpoint, mptRefConfig, { forward: mptRefForward, embed: mptRefEmbed, layer: mptRefBlock });
const cases: ArchCase[] = [
  ['mpt (hidden 64, 4 heads, clip_qkv 0.5)', mpt, { seed: 71, clip: 0.5 }],
  ['mpt 6 heads (MPT slope order), hidden 96, alibi_bias_max 16, softmax_scale 0.2', mpt, { seed: 72, hidden: 96, heads: 6, biasMax: 16, scale: 0.2 }],
];
for (const c of cases) parityTest(rep, c, { masked: true });
layerGraphsTest(rep, 'mpt calibration layer graph (InputWeights, ALiBi, clip) matches the reference layer', [['mpt', mpt, cases[1]![2]]]);

test('MPT slopes: graph helper = the float64 reference formula (1…48 heads, bias max 8 and 16)', () => {
  for (const max of [8, 16]) for (let n = 1; n <= 48; n++) {
    const a = mptAlibiSlopes(n, max), b = refMptSlopes(n, max);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-15, `${n} heads, max ${max}, slope ${i}`);
  }
});
const ATTN = { alibi: true, alibi_bias_max: 8, attn_type: 'multihead_attention', clip_qkv: 1.0, qk_ln: false, softmax_scale: null };

test('MPT ALiBi slopes = build_mpt_alibi_tensor (2^-(i+1)·max/p, odd then even indices when heads is not a power of 2)', () => {
  // p = 8, max 8: 2^-1 … 2^-8; 6 heads: indices 1,3,5,7 then 0,2 → 2^-2, 2^-4, 2^-6, 2^-8, 2^-1, 2^-3.
  assert.deepEqual(Array.from(mptAlibiSlopes(6)), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
  assert.deepEqual(Array.from(mptAlibiSlopes(4, 16)), [2 ** -4, 2 ** -8, 2 ** -12, 2 ** -16]);
  // 12 heads, max 8: p = 16, step 1/2: odd indices 2^-1 … 2^-8, then even 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  assert.deepEqual(Array.from(mptAlibiSlopes(12)), [1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5].map((e) => 2 ** -e));
  assert.deepEqual(Array.from(mptAlibiSlopes(1)), [2 ** -8]);
});

test('mpt config: d_model/n_heads/n_layers/max_seq_len aliases, MLP 4·d_model whatever expansion_ratio, module tree', () => {
  const c = parseModelConfig({ model_type: 'mpt', d_model: 64, n_heads: 8, n_layers: 3, max_seq_len: 512, vocab_size: 100 });
  assert.deepEqual([c.hiddenSize, c.numHeads, c.numKvHeads, c.headDim, c.numLayers, c.maxPositionEmbeddings, c.intermediateSize, c.rmsNormEps, c.tieWordEmbeddings],
    [64, 8, 8, 8, 3, 512, 256, 1e-5, true]);
  assert.deepEqual(archFor('mpt').insideLayerModules(c), [['attn.Wqkv'], ['attn.out_proj'], ['ffn.up_proj'], ['ffn.down_proj']]);
  assert.deepEqual(archFor('mpt').layerLinears(c).map((l) => [l.rel, l.inFeatures, l.outFeatures, l.bias]),
    [['attn.Wqkv', 64, 192, false], ['attn.out_proj', 64, 64, false], ['ffn.up_proj', 64, 256, false], ['ffn.down_proj', 256, 64, false]]);
});

test('mpt fixture exercises clip_qkv and the slopes: without the clip or with alibi_bias_max 16 the logits move', async () => {
  const t = tmpDir();
  try {
    const same = await fixtureFullDelta(fixtureVariant('mpt', t.path, {}), 'mpt');
    const noClip = await fixtureFullDelta(fixtureVariant('mpt', t.path, { attn_config: { ...ATTN, clip_qkv: null } }), 'mpt');
    const max16 = await fixtureFullDelta(fixtureVariant('mpt', t.path, { attn_config: { ...ATTN, alibi_bias_max: 16 } }), 'mpt');
    const scale = await fixtureFullDelta(fixtureVariant('mpt', t.path, { attn_config: { ...ATTN, softmax_scale: 0.5 } }), 'mpt');
    rep.report('mpt variants (max |Δlogit| vs Transformers)', { fixture: same, 'clip_qkv null': noClip, 'alibi_bias_max 16': max16, 'softmax_scale 0.5': scale });
    assert.ok(same <= 1e-4, `fixture ${same}`);
    for (const [k, v] of Object.entries({ noClip, max16, scale })) assert.ok(v > 1e-2, `${k}: ${v}`);
  } finally { t.cleanup(); }
});

test('mpt: configs Transformers ignores are refused in one line naming config.json and the field', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ attn_config: { ...ATTN, alibi: false } }, /attn_config\.alibi false/],
    [{ attn_config: { ...ATTN, qk_ln: true } }, /attn_config\.qk_ln/],
    [{ attn_config: { ...ATTN, attn_type: 'multiquery_attention' } }, /attn_type "multiquery_attention"/],
    [{ no_bias: false }, /no_bias false/],
    [{ logit_scale: 'inv_sqrt_d_model' }, /logit_scale/],
    [{ expansion_ratio: 2 }, /expansion_ratio 2/],
  ];
  for (const [patch, re] of cases) {
    const t = tmpDir();
    try {
      const dir = fixtureVariant('mpt', t.path, patch);
      await assert.rejects(CausalLM.load(dir, { graphCache: false }), (e: unknown) =>
        e instanceof GptqError && re.test(e.message) && e.message.includes('config.json') && !e.message.includes('\n'));
    } finally { t.cleanup(); }
  }
});

// Fused Wqkv quantized as one linear: saved as transformer.blocks.N.attn.Wqkv.{qweight,qzeros,scales,g_idx}
// (GPTQModel MptQModel module tree "attn": ("Wqkv:0", "out_proj:1"); vLLM mpt.py loads attn.Wqkv).
fixtureRoundTripTest(rep, 'mpt', 'transformer.blocks.', [
  ['attn.Wqkv.qweight', [4, 96]], ['attn.Wqkv.scales', [1, 96]], ['attn.Wqkv.qzeros', [1, 12]], ['attn.Wqkv.g_idx', [32]],
  ['ffn.down_proj.qweight', [16, 32]],
]);

fixtureSlotsTest(rep, 'mpt');

rep.summaryTest();
