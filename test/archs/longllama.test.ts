/**
 * LongLLaMA (remote code). Parity with the remote modeling_longllama.py is test/hf-parity.test.ts on longllama
 * (default memory settings) and longllama-mem (memory layer 1 without rotary, mem_positionals false). Here: that the
 * fixture really exercises mem_positionals, the exact-context bound reported as maxPositionEmbeddings, the rope_scaling
 * refusal, and quantize → save → reload.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GptqError } from '../../src/errors.ts';
import { parseModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { tmpDir } from '../helpers.ts';
import { fixtureFullDelta, fixtureRoundTripTest, fixtureSlotsTest, fixtureVariant } from './hf-fixture.ts';
import { reporter } from './harness.ts';

const rep = reporter();

test('longllama config: LongLlamaConfig defaults; exact context = min(last_context_length, max_position_embeddings)', () => {
  const c = parseModelConfig({ model_type: 'longllama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 3, vocab_size: 128, mem_layers: [1] });
  assert.deepEqual([c.maxPositionEmbeddings, c.intermediateSize, c.numKvHeads, c.tieWordEmbeddings, c.padTokenId], [1024, 11008, 4, false, 0]);
  assert.equal(parseModelConfig({ model_type: 'longllama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 3, vocab_size: 128, last_context_length: 4096 }).maxPositionEmbeddings, 2048);
  assert.equal(archFor('longllama').layerGraphVaries?.(parseModelConfig({ model_type: 'longllama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 3, vocab_size: 128, mem_layers: [1], mem_positionals: false })), true);
});

test('longllama-mem fixture exercises mem_positionals: with rotary in the memory layer the logits move', async () => {
  const t = tmpDir();
  try {
    const same = await fixtureFullDelta(fixtureVariant('longllama-mem', t.path, {}), 'longllama-mem');
    const rot = await fixtureFullDelta(fixtureVariant('longllama-mem', t.path, { mem_positionals: true }), 'longllama-mem');
    rep.report('longllama-mem variants (max |Δlogit| vs remote code)', { fixture: same, 'mem_positionals true': rot });
    assert.ok(same <= 1e-4 && rot > 1e-2, `${same} ${rot}`);
  } finally { t.cleanup(); }
});

test('longllama: rope_scaling and out-of-range mem_layers are refused in one line', async () => {
  for (const [patch, re] of [[{ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling/], [{ mem_layers: [5] }, /mem_layers/]] as const) {
    const t = tmpDir();
    try {
      await assert.rejects(CausalLM.load(fixtureVariant('longllama', t.path, patch), { graphCache: false }), (e: unknown) =>
        e instanceof GptqError && re.test(e.message) && e.message.includes('config.json'));
    } finally { t.cleanup(); }
  }
});

fixtureRoundTripTest(rep, 'longllama-mem', 'model.layers.', [['self_attn.q_proj.qweight', [4, 32]], ['mlp.down_proj.qweight', [4, 32]]]);

fixtureSlotsTest(rep, 'longllama-mem');

rep.summaryTest();
