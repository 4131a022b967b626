/**
 * BLOOM, Falcon and Gemma: ORT graphs vs independent float64 references on synthetic HF-layout checkpoints
 * (full sequence, KV-cache steps, padded/holed attention masks, per-layer calibration graphs), batched
 * left-padded generation, and a GPTQ round trip per architecture (quantize → fake-quant error vs RTN →
 * saveQuantized → CausalLM.load of the GPTQ directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { Checkpoint } from '../src/io/safetensors.ts';
import { parseModelConfig } from '../src/io/config.ts';
import { alibiSlopes } from '../src/models/blocks.ts';
import { archFor } from '../src/models/registry.ts';
import { bloomRefBlock, bloomRefConfig, bloomRefEmbed, bloomRefForward, refAlibiSlopes } from './reference/bloom-ref.ts';
import { falconRefBlock, falconRefConfig, falconRefEmbed, falconRefForward } from './reference/falcon-ref.ts';
import { gemmaRefConfig, gemmaRefEmbed, gemmaRefForward, gemmaRefLayer } from './reference/gemma-ref.ts';
import {
  bloomConfig, falconConfig, gemmaConfig, makeBloomCheckpoint, makeFalconCheckpoint, makeGemmaCheckpoint, type FalconOpts,
} from './synth-archs3.ts';
import { tmpDir } from './helpers.ts';
import {
  archFamily, batchedGenerationCheck, checkModuleTree, examples, gptqRoundTrip, layerGraphsTest, logitMse, parityTest, reporter,
  type ArchCase,
} from './arch-harness.ts';

const bloom = archFamily(makeBloomCheckpoint, bloomRefConfig, { forward: bloomRefForward, embed: bloomRefEmbed, layer: bloomRefBlock });
const falcon = archFamily(makeFalconCheckpoint, falconRefConfig, { forward: falconRefForward, embed: falconRefEmbed, layer: falconRefBlock });
const gemma = archFamily(makeGemmaCheckpoint, gemmaRefConfig, { forward: gemmaRefForward, embed: gemmaRefEmbed, layer: gemmaRefLayer });
const rep = reporter();

const cases: ArchCase[] = [
  ['bloom (hidden 64, 4 heads)', bloom, { seed: 51 }],
  ['bloom 6 heads (non-power-of-2 ALiBi), hidden 96, apply_residual_connection_post_layernorm', bloom, { seed: 52, hidden: 96, heads: 6, postLnResidual: true }],
  ['bloom-560m layout (n_embed, no transformer. prefix, lm_head stored), 3 layers', bloom, { seed: 53, legacy: true, storeLmHead: true, layers: 3 }],
  ['falcon-7b style (multi_query, parallel_attn, input_layernorm)', falcon, { seed: 61 }],
  ['falcon-40b style (new_decoder_architecture, 8 heads / 2 kv, ln_attn + ln_mlp)', falcon, { seed: 62, newArch: true, heads: 8, kvHeads: 2 }],
  ['falcon-11B style (new arch, num_ln_in_parallel_attn 1, ffn_hidden_size 96, rope_theta 500042)', falcon, { seed: 63, newArch: true, kvHeads: 2, numLnInParallelAttn: 1, ffn: 96, ropeTheta: 500042 }],
  ['falcon-rw style (multi_query false, sequential, bias, gelu_new)', falcon, { seed: 64, multiQuery: false, parallelAttn: false, bias: true, activation: 'gelu_new' }],
  ['gemma-2b style (head_dim 32 ≠ 64/4, 1 kv head, hidden_activation)', gemma, { seed: 71 }],
  ['gemma legacy (hidden_act gelu, no hidden_activation), 2 kv heads, attention_bias, lm_head stored', gemma, { seed: 72, kvHeads: 2, hiddenActivation: null, attentionBias: true, storeLmHead: true }],
  ['gemma hidden_act silu (hidden_activation gelu ignored), head_dim 16, 8 heads / 2 kv', gemma, { seed: 73, hiddenAct: 'silu', hiddenActivation: 'gelu', headDim: 16, heads: 8, kvHeads: 2 }],
];

for (const c of cases) {
  const [, fam, o] = c;
  parityTest(rep, c, { masked: true, after: (dir) => (fam === bloom && o.legacy ? Promise.resolve() : checkModuleTree(dir)) });
}

layerGraphsTest(rep, 'calibration layer graphs (InputWeights, ALiBi / fused qkv / (1+w) norms) match the reference layers',
  [cases[1]!, cases[3]!, cases[4]!, cases[6]!, cases[7]!].map(([name, fam, o]) => [name.split(' (')[0]!, fam, o]));

test('ALiBi slopes: graph helper = the paper\'s get_slopes (powers of two and not)', () => {
  for (const n of [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 71, 112]) {
    const a = alibiSlopes(n), b = refAlibiSlopes(n);
    assert.equal(a.length, n);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-14 * b[i]!, `${n} heads, slope ${i}: ${a[i]} vs ${b[i]}`);
  }
  // bloom-560m (16 heads): 2^-0.5, 2^-1, …; 6 heads: 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1, 2^-3.
  assert.deepEqual(Array.from(alibiSlopes(6)), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
});

test('config parsing: bloom n_embed/n_head/n_layer, falcon kv heads per layout, gemma head_dim; falcon alibi rejected', async () => {
  const b = parseModelConfig(bloomConfig({ legacy: true, hidden: 96, heads: 6 }));
  assert.deepEqual([b.hiddenSize, b.numHeads, b.numKvHeads, b.headDim, b.numLayers, b.rmsNormEps, b.tieWordEmbeddings], [96, 6, 6, 16, 2, 1e-5, true]);
  const kv = (o: FalconOpts) => parseModelConfig(falconConfig(o)).numKvHeads;
  assert.equal(kv({}), 1);
  assert.equal(kv({ multiQuery: false }), 4);
  assert.equal(kv({ newArch: true, heads: 8, kvHeads: 2 }), 2);
  assert.equal(parseModelConfig({ ...falconConfig({ newArch: true, heads: 8 }), num_kv_heads: undefined, n_head_kv: 4 }).numKvHeads, 4);
  assert.equal(parseModelConfig(falconConfig({ ffn: 96 })).intermediateSize, 96);
  const g = parseModelConfig(gemmaConfig({ headDim: 32 }));
  assert.deepEqual([g.headDim, g.rotaryDim, g.numKvHeads, g.tieWordEmbeddings], [32, 32, 1, true]);
  const falconCheck = (c: Record<string, any>) => archFor('falcon').check!(parseModelConfig(c, 'x/config.json'));
  assert.throws(() => falconCheck({ ...falconConfig(), alibi: true }), /falcon with alibi=true is not supported/);
  assert.throws(() => falconCheck({ ...falconConfig({ newArch: true }), parallel_attn: false }), /needs parallel_attn=true/);
  assert.throws(() => falconCheck({ ...falconConfig(), activation: 'tanh' }), /activation "tanh" is not supported/);
});

test('bloom / falcon / gemma: batched generation with left padding equals one-by-one', async () => {
  const t = tmpDir();
  try {
    const picks: ArchCase[] = [['bloom', bloom, cases[1]![2]], ['falcon', falcon, cases[4]![2]], ['gemma', gemma, cases[7]![2]]];
    await batchedGenerationCheck(t.path, picks, [[5, 9, 17, 33, 2, 70], [44, 3], [8, 8, 61, 20]], 8);
  } finally { t.cleanup(); }
});

const quantCases: [...ArchCase, Record<string, [string, number[]]>][] = [
  ['bloom 6 heads', cases[1]![1], cases[1]![2], {
    'transformer.h.1.self_attention.query_key_value.qweight': ['I32', [12, 288]],
    'transformer.h.1.self_attention.query_key_value.qzeros': ['I32', [3, 36]],
    'transformer.h.1.self_attention.query_key_value.scales': ['F16', [3, 288]],
    'transformer.h.1.self_attention.query_key_value.bias': ['F16', [288]],
    'transformer.h.1.mlp.dense_4h_to_h.qweight': ['I32', [48, 96]],
    'transformer.h.1.mlp.dense_4h_to_h.g_idx': ['I32', [384]],
    'transformer.word_embeddings_layernorm.weight': ['F32', [96]],
  }],
  ['falcon-40b style', cases[4]![1], cases[4]![2], {
    'transformer.h.0.self_attention.query_key_value.qweight': ['I32', [8, 96]],
    'transformer.h.0.self_attention.dense.scales': ['F16', [2, 64]],
    'transformer.h.0.mlp.dense_h_to_4h.qweight': ['I32', [8, 256]],
    'transformer.h.0.ln_mlp.bias': ['F32', [64]],
  }],
  ['gemma-2b style', cases[7]![1], cases[7]![2], {
    'model.layers.1.self_attn.q_proj.qweight': ['I32', [8, 128]],
    'model.layers.1.self_attn.k_proj.qweight': ['I32', [8, 32]],
    'model.layers.1.self_attn.o_proj.qweight': ['I32', [16, 64]],
    'model.layers.1.mlp.down_proj.scales': ['F16', [4, 64]],
    'model.norm.weight': ['F32', [64]],
  }],
];

for (const [name, fam, o, expect] of quantCases) {
  test(`${name}: GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load of the GPTQ dir`, async () => {
    const t = tmpDir();
    try {
      const src = join(t.path, 'src');
      await fam.make(src, o);
      const mse = await gptqRoundTrip(src, join(t.path, 'q'), {
        checkSaved: (ck) => {
          for (const [n, [dt, shape]] of Object.entries(expect)) assert.deepEqual([ck.info(n).dtype, ck.info(n).shape], [dt, shape], n);
        },
        checkLoaded: async (q, { fp, held }) => {
          assert.ok(q.quantization, 'loaded as a GPTQ checkpoint');
          return { reloadVsFp: await logitMse(q, fp, held) };
        },
      });
      rep.report(`${name} quantized`, mse);
    } finally { t.cleanup(); }
  });
}

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
