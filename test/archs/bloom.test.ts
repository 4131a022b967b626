/**
 * BLOOM (ALiBi): ORT graphs vs an independent float64 reference on synthetic HF-layout checkpoints (full sequence,
 * KV-cache steps, padded/holed attention masks, per-layer calibration graphs), ALiBi slopes, config parsing, batched
 * left-padded generation, and GPTQ round trips (quantize → fake-quant error vs RTN → saveQuantized → CausalLM.load),
 * including the bloom-560m layout without the `transformer.` prefix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { GPTQModel } from '../../src/gptq-model.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { Checkpoint } from '../../src/io/safetensors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { alibiSlopes } from '../../src/models/blocks.ts';
import { bloomRefBlock, bloomRefConfig, bloomRefEmbed, bloomRefForward, refAlibiSlopes } from '../reference/bloom-ref.ts';
import { bloomConfig, makeBloomCheckpoint } from './bloom.synth.ts';
import { tmpDir } from '../helpers.ts';
import {
  archFamily, batchedGenerationTest, checkModuleTree, examples, gptqSavedTensorsTest, layerGraphsTest, parityTest, reporter, type ArchCase,
} from './harness.ts';

const bloom = archFamily(makeBloomCheckpoint, bloomRefConfig, { forward: bloomRefForward, embed: bloomRefEmbed, layer: bloomRefBlock });
const rep = reporter();

const cases: ArchCase[] = [
  ['bloom (hidden 64, 4 heads)', bloom, { seed: 51 }],
  ['bloom 6 heads (non-power-of-2 ALiBi), hidden 96, apply_residual_connection_post_layernorm', bloom, { seed: 52, hidden: 96, heads: 6, postLnResidual: true }],
  ['bloom-560m layout (n_embed, no transformer. prefix, lm_head stored), 3 layers', bloom, { seed: 53, legacy: true, storeLmHead: true, layers: 3 }],
];

for (const c of cases) parityTest(rep, c, { masked: true, after: (dir) => (c[2].legacy ? Promise.resolve() : checkModuleTree(dir)) });

layerGraphsTest(rep, 'calibration layer graph (InputWeights, ALiBi, fused per-head qkv) matches the reference layer',
  [['bloom', bloom, cases[1]![2]]]);

test('ALiBi slopes: graph helper = the paper\'s get_slopes (powers of two and not)', () => {
  for (const n of [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 71, 112]) {
    const a = alibiSlopes(n), b = refAlibiSlopes(n);
    assert.equal(a.length, n);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-14 * b[i]!, `${n} heads, slope ${i}: ${a[i]} vs ${b[i]}`);
  }
  // bloom-560m (16 heads): 2^-0.5, 2^-1, …; 6 heads: 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1, 2^-3.
  assert.deepEqual(Array.from(alibiSlopes(6)), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
});

test('config parsing: bloom n_embed/n_head/n_layer', () => {
  const b = parseModelConfig(bloomConfig({ legacy: true, hidden: 96, heads: 6 }));
  assert.deepEqual([b.hiddenSize, b.numHeads, b.numKvHeads, b.headDim, b.numLayers, b.rmsNormEps, b.tieWordEmbeddings], [96, 6, 6, 16, 2, 1e-5, true]);
});

batchedGenerationTest('bloom: batched generation with left padding equals one-by-one', [['bloom', bloom, cases[1]![2]]], [[5, 9, 17, 33, 2, 70], [44, 3], [8, 8, 61, 20]], 8);

gptqSavedTensorsTest(rep, ['bloom 6 heads', bloom, cases[1]![2]], {
  'transformer.h.1.self_attention.query_key_value.qweight': ['I32', [12, 288]],
  'transformer.h.1.self_attention.query_key_value.qzeros': ['I32', [3, 36]],
  'transformer.h.1.self_attention.query_key_value.scales': ['F16', [3, 288]],
  'transformer.h.1.self_attention.query_key_value.bias': ['F16', [288]],
  'transformer.h.1.mlp.dense_4h_to_h.qweight': ['I32', [48, 96]],
  'transformer.h.1.mlp.dense_4h_to_h.g_idx': ['I32', [384]],
  'transformer.word_embeddings_layernorm.weight': ['F32', [96]],
});

test('bloom-560m layout without the transformer. prefix: quantize → save (source naming) → reload', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src'), out = join(t.path, 'q');
    await bloom.make(src, cases[2]![2]);
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const res = await m.quantize(examples(8, 32, 5));
    assert.ok(res.quantized.has('h.0.self_attention.query_key_value'), [...res.quantized].join(','));
    await m.saveQuantized(out);
    await m.dispose();
    const ck = await Checkpoint.open(out);
    assert.ok(ck.has('h.0.self_attention.query_key_value.qweight') && !ck.names().some((n) => n.startsWith('transformer.')));
    await ck.dispose();
    const q = await CausalLM.load(out, { lmHeadBits: 0 }); // the checkpoint's own head: saved = computed
    assert.ok(q.quantization);
    const lg = await q.logits([[1, 2, 3, 4]]);
    assert.ok(lg.every(Number.isFinite));
    await q.dispose();
  } finally { t.cleanup(); }
});

rep.summaryTest();
