/**
 * GPT-Neo (learned positions, unscaled attention, alternating global / local-window layers). The forward is checked
 * against real Transformers by test/hf-parity.test.ts (fixture test/fixtures/archs/gpt_neo: layer 0 global, layer 1
 * local with window 4 < 7 tokens, a left-padded row, KV steps). Its pieces are GPT-2's (float64 reference
 * test/reference/gpt2-ref.ts) plus the local window, which the HF fixture pins. Here: attention_types expansion and
 * refusals, that the window really acts in the fixture, batched left-padded generation past the window equals
 * one-by-one, and quantize → save → reload on the fixture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GptqError } from '../../src/errors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { gptNeoAttentionLayers } from '../../src/models/gpt-neo.ts';
import { archFor } from '../../src/models/registry.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureFullDelta, fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
import { archFamily, assertBatchedEqualsSingle, layerGraphsTest, parityTest, reporter, type ArchCase } from './harness.ts';
import { gptNeoRefBlock, gptNeoRefConfig, gptNeoRefEmbed, gptNeoRefForward } from '../reference/gpt-neo-ref.ts';
import { makeGptNeoCheckpoint } from './gpt-neo.synth.ts';

const rep = reporter();
const neo = archFamily(makeGptNeoCheckpoint, gptNeoRefConfig, { forward: gptNeoRefForward, embed: gptNeoRefEmbed, layer: gptNeoRefBlock });
const cases: ArchCase[] = [
  ['gpt_neo global/local window 3 (16 tokens)', neo, { seed: 91 }],
  ['gpt_neo local, local, global (window 5), 6 heads, hidden 96', neo, { seed: 92, hidden: 96, heads: 6, layers: 3, window: 5, types: [[['local'], 2], [['global'], 1]] }],
];
for (const c of cases) parityTest(rep, c, { masked: true });
layerGraphsTest(rep, 'gpt_neo calibration layer graphs (local layer) match the reference layer', [['gpt_neo', neo, cases[0]![2]]]);

test('gpt_neo config: attention_types expansion (GPTNeoConfig default [[global, local], 12]), module tree', () => {
  const c = parseModelConfig({ model_type: 'gpt_neo', hidden_size: 64, num_heads: 4, num_layers: 24, vocab_size: 100 });
  const kinds = gptNeoAttentionLayers(c);
  assert.equal(kinds.length, 24);
  assert.deepEqual(kinds.slice(0, 4), ['global', 'local', 'global', 'local']);
  assert.deepEqual([c.intermediateSize, c.maxPositionEmbeddings, c.tieWordEmbeddings, c.hiddenAct], [256, 2048, true, 'gelu_new']);
  const c2 = parseModelConfig({ model_type: 'gpt_neo', hidden_size: 64, num_heads: 4, num_layers: 3, vocab_size: 100, attention_types: [[['local'], 2], [['global'], 1]] });
  assert.deepEqual(gptNeoAttentionLayers(c2), ['local', 'local', 'global']);
  assert.deepEqual(archFor('gpt_neo').insideLayerModules(c2),
    [['attn.attention.q_proj', 'attn.attention.k_proj', 'attn.attention.v_proj'], ['attn.attention.out_proj'], ['mlp.c_fc'], ['mlp.c_proj']]);
});

test('gpt_neo: attention_types not matching num_layers, or an unknown kind, is refused in one line', async () => {
  for (const [patch, re] of [
    [{ attention_types: [[['global', 'local'], 2]] }, /expand to 4 layers, num_layers is 2/],
    [{ attention_types: [[['global', 'sparse'], 1]] }, /attention_types/],
  ] as const) {
    const t = tmpDir();
    try {
      await assert.rejects(CausalLM.load(fixtureVariant('gpt_neo', t.path, patch), { graphCache: false }), (e: unknown) =>
        e instanceof GptqError && re.test(e.message) && e.message.includes('config.json'));
    } finally { t.cleanup(); }
  }
});

test('gpt_neo fixture exercises the local window: window_size 64 or all-global layers move the logits', async () => {
  const t = tmpDir();
  try {
    const same = await fixtureFullDelta(fixtureVariant('gpt_neo', t.path, {}), 'gpt_neo');
    const wide = await fixtureFullDelta(fixtureVariant('gpt_neo', t.path, { window_size: 64 }), 'gpt_neo');
    const global = await fixtureFullDelta(fixtureVariant('gpt_neo', t.path, { attention_types: [[['global'], 2]] }), 'gpt_neo');
    rep.report('gpt_neo variants (max |Δlogit| vs Transformers)', { fixture: same, 'window 64': wide, 'all global': global });
    assert.ok(same <= 1e-4, `fixture ${same}`);
    assert.ok(wide > 1e-2 && global > 1e-2, `${wide} ${global}`);
  } finally { t.cleanup(); }
});

test('gpt_neo: batched left-padded generation past the local window equals one-by-one (buffer, gqa, plain)', async () => {
  // The fixture's token ids are GPT-Neo's (50256) over a 128-token vocabulary: pad/eos inside it for generation.
  const t = tmpDir();
  try {
    const ids = { bos_token_id: 1, eos_token_id: 127, pad_token_id: 0 };
    const dir = fixtureVariant('gpt_neo', t.path, ids);
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(ids));
    for (const attention of ['buffer', 'gqa', 'plain'] as const) {
      const m = await CausalLM.load(dir, { attention, graphCache: false });
      try { await assertBatchedEqualsSingle(m, [[5, 9, 17, 33, 2, 70, 11], [44, 3], [8, 8, 61, 20]], 8, `gpt_neo ${attention}`); } finally { await m.dispose(); }
    }
  } finally { t.cleanup(); }
});

fixtureRoundTripTest(rep, 'gpt_neo', 'transformer.h.', [
  ['attn.attention.q_proj.qweight', [4, 32]], ['attn.attention.out_proj.bias', [32]], ['mlp.c_fc.qweight', [4, 32]],
]);

fixtureSlotsTest(rep, 'gpt_neo');

rep.summaryTest();
