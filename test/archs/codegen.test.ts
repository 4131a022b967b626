/**
 * CodeGen (GPT-J block with the fused, 4-shard q|v|k `qkv_proj`). The forward is checked against real Transformers by
 * test/hf-parity.test.ts (fixture test/fixtures/archs/codegen, 4 heads = one per shard, rotary_dim 4 of 8); the math is
 * GPT-J's (float64 reference test/reference/neox-family-ref.ts, test/archs/neox.test.ts) recombined, so no separate
 * reference. Here: config defaults, module tree, the 4-shard rule refused in one line, and quantize → save → reload on
 * the fixture with qkv_proj saved under GPTQModel's name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GptqError } from '../../src/errors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
import { reporter } from './harness.ts';

const rep = reporter();

test('codegen config: CodeGenConfig defaults (rotary_dim 64, n_inner 4·n_embd, untied, gelu_new) and module tree', () => {
  const c = parseModelConfig({ model_type: 'codegen', n_embd: 1024, n_head: 16, n_layer: 20, vocab_size: 51200 });
  assert.deepEqual([c.hiddenSize, c.numHeads, c.headDim, c.rotaryDim, c.intermediateSize, c.maxPositionEmbeddings, c.tieWordEmbeddings, c.hiddenAct, c.rmsNormEps, c.bosTokenId],
    [1024, 16, 64, 64, 4096, 2048, false, 'gelu_new', 1e-5, 50256]);
  assert.deepEqual(archFor('codegen').insideLayerModules(c), [['attn.qkv_proj'], ['attn.out_proj'], ['mlp.fc_in'], ['mlp.fc_out']]);
  assert.deepEqual(archFor('codegen').layerLinears(c).map((l) => [l.rel, l.outFeatures, l.bias]),
    [['attn.qkv_proj', 3072, false], ['attn.out_proj', 1024, false], ['mlp.fc_in', 4096, true], ['mlp.fc_out', 1024, true]]);
});

test('codegen: n_head not a multiple of the 4 qkv shards is refused in one line', async () => {
  const t = tmpDir();
  try {
    const dir = fixtureVariant('codegen', t.path, { n_head: 2 });
    await assert.rejects(CausalLM.load(dir, { graphCache: false }), (e: unknown) =>
      e instanceof GptqError && /multiple of 4/.test(e.message) && e.message.includes('config.json'));
  } finally { t.cleanup(); }
});

test('moss = codegen under MossConfig defaults; MOSS\'s own wbits 4/8 checkpoints are refused in one line', async () => {
  const c = parseModelConfig({ model_type: 'moss', n_embd: 1024, n_head: 16, n_layer: 2, vocab_size: 128 });
  assert.deepEqual([c.rotaryDim, c.intermediateSize, c.bosTokenId, c.eosTokenId, c.tieWordEmbeddings], [64, 4096, 106028, 106068, false]);
  assert.deepEqual(archFor('moss').insideLayerModules(c), [['attn.qkv_proj'], ['attn.out_proj'], ['mlp.fc_in'], ['mlp.fc_out']]);
  const t = tmpDir();
  try {
    await assert.rejects(CausalLM.load(fixtureVariant('moss', t.path, { wbits: 4 }), { graphCache: false }), (e: unknown) =>
      e instanceof GptqError && /wbits 4/.test(e.message) && e.message.includes('config.json'));
  } finally { t.cleanup(); }
});

// qkv_proj quantized as one linear: transformer.h.N.attn.qkv_proj.{qweight,qzeros,scales,g_idx} (GPTQModel
// CodeGenQModel "attn": ("qkv_proj:0", "out_proj:1"), the checkpoint's own module name).
fixtureRoundTripTest(rep, 'codegen', 'transformer.h.', [
  ['attn.qkv_proj.qweight', [4, 96]], ['attn.qkv_proj.scales', [1, 96]], ['mlp.fc_in.bias', [32]], ['mlp.fc_out.qweight', [4, 32]],
]);

fixtureSlotsTest(rep, 'codegen');

rep.summaryTest();
