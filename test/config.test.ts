import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SHARED, SKIP_SHARED, tmpDir } from './helpers.ts';
import { loadModelConfig, loadGenerationConfig, parseModelConfig, parseGenerationConfig } from '../src/io/config.ts';
import { ropeInvFreq, ropeInvFreqForSeqLen } from '../src/models/rope.ts';
import { GptqError } from '../src/errors.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const base = { model_type: 'llama', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 };
const close = (a: number, b: number, rel = 1e-12) => assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${a} vs ${b}`);

test('stories260K config.json: typed fields', async () => {
  const c = await loadModelConfig(STORIES);
  assert.equal(c.modelType, 'llama');
  assert.deepEqual(c.architectures, ['LlamaForCausalLM']);
  assert.deepEqual(
    [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.maxPositionEmbeddings],
    [64, 172, 5, 8, 4, 8, 512, 512]);
  assert.equal(c.rmsNormEps, 1e-5);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.ropeScaling, null);
  assert.equal(c.rotaryDim, 8);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.hiddenAct, 'silu');
  assert.equal(c.attentionBias, false);
  assert.equal(c.mlpBias, false);
  assert.deepEqual([c.bosTokenId, c.eosTokenId, c.padTokenId], [1, 2, null]);
  assert.equal(c.torchDtype, 'float32');
  assert.equal(c.quantizationConfig, undefined);
  assert.equal(c.raw.pretraining_tp, 1);
  assert.equal(c.path, join(STORIES, 'config.json'));
});

test('tiny-gpt2: attribute_map aliases (n_embd, n_layer, n_head, n_positions)', { skip: SKIP_SHARED }, async () => {
  const c = await loadModelConfig(join(SHARED, 'models', 'tiny-gpt2'));
  assert.deepEqual([c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.maxPositionEmbeddings, c.vocabSize], [64, 4, 4, 4, 512, 53]);
  assert.equal(c.intermediateSize, 256); // n_inner null → 4 * n_embd
  assert.equal(c.headDim, 16);
  assert.equal(c.tieWordEmbeddings, true); // PretrainedConfig default
  assert.equal(c.rmsNormEps, 1e-5); // layer_norm_epsilon
  assert.equal(c.hiddenAct, 'gelu_new');
  assert.deepEqual([c.bosTokenId, c.eosTokenId, c.padTokenId], [50256, 51, 52]);
});

test('per-model_type defaults follow transformers', () => {
  const l = parseModelConfig(base);
  assert.equal(l.tieWordEmbeddings, false); // LlamaConfig tie_word_embeddings=False
  assert.equal(l.rmsNormEps, 1e-6);
  assert.equal(l.numKvHeads, 4);
  assert.equal(l.headDim, 16);
  assert.equal(l.ropeTheta, 10000);
  assert.equal(l.maxPositionEmbeddings, 2048);
  assert.equal(l.intermediateSize, 11008);
  assert.deepEqual([l.bosTokenId, l.eosTokenId], [1, 2]);
  assert.equal(l.slidingWindow, null);
  const m = parseModelConfig({ ...base, model_type: 'mistral', num_attention_heads: 8 });
  assert.equal(m.numKvHeads, 8);
  assert.equal(m.slidingWindow, 4096);
  assert.equal(m.tieWordEmbeddings, false);
  // Qwen2Config defaults num_key_value_heads=32 (not num_attention_heads): 4 heads cannot share 32 kv heads
  assert.throws(() => parseModelConfig({ ...base, model_type: 'qwen2' }), /"num_key_value_heads" \(32\) must divide/);
  const q = parseModelConfig({ ...base, model_type: 'qwen2', num_key_value_heads: 2, sliding_window: 4096 });
  assert.equal(q.slidingWindow, null); // use_sliding_window false
  assert.equal(parseModelConfig({ ...base, model_type: 'qwen2', num_key_value_heads: 2, sliding_window: 64, use_sliding_window: true }).slidingWindow, 64);
  // Qwen3Config: head_dim 128 (its own field), sliding window only with use_sliding_window and on layers ≥ max_window_layers
  const q3 = parseModelConfig({ ...base, model_type: 'qwen3', num_key_value_heads: 2 });
  assert.deepEqual([q3.headDim, q3.slidingWindow, q3.rmsNormEps, q3.maxPositionEmbeddings, q3.tieWordEmbeddings], [128, null, 1e-6, 32768, false]);
  assert.equal(parseModelConfig({ ...base, model_type: 'qwen3', num_key_value_heads: 2, use_sliding_window: true, max_window_layers: 0 }).slidingWindow, 4096);
  assert.throws(() => parseModelConfig({ ...base, model_type: 'qwen3', num_key_value_heads: 2, num_hidden_layers: 3, use_sliding_window: true, max_window_layers: 1 }),
    /sliding-window attention on some layers only \(layers 1, 2 of 3/);
  const o = parseModelConfig({ model_type: 'opt', hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 9, ffn_dim: 40 });
  assert.deepEqual([o.intermediateSize, o.rmsNormEps, o.hiddenAct, o.tieWordEmbeddings, o.padTokenId], [40, 1e-5, 'relu', true, 1]);
  const u = parseModelConfig({ ...base, model_type: 'somethingnew' });
  assert.equal(u.tieWordEmbeddings, true); // PretrainedConfig default
  assert.equal(parseModelConfig({ ...base, tie_word_embeddings: true }).tieWordEmbeddings, true);
  assert.deepEqual(parseModelConfig({ ...base, eos_token_id: [2, 7] }).eosTokenId, [2, 7]);
  assert.deepEqual(parseModelConfig({ ...base, quantization_config: { bits: 4 } }).quantizationConfig, { bits: 4 });
});

test('config errors are one line naming file and field', async () => {
  const t = tmpDir();
  try {
    const expectErr = async (cfg: unknown, re: RegExp) => {
      writeFileSync(join(t.path, 'config.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
      await assert.rejects(loadModelConfig(t.path), (e: Error) => {
        assert.ok(e instanceof GptqError, String(e));
        assert.match(e.message, re);
        assert.ok(e.message.includes(join(t.path, 'config.json')), e.message);
        assert.ok(!e.message.includes('\n'));
        return true;
      });
    };
    for (const f of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size']) {
      const c: Record<string, unknown> = { ...base };
      delete c[f];
      await expectErr(c, new RegExp(`missing required field "${f}"`));
    }
    await expectErr({ ...base, hidden_size: '64' }, /"hidden_size" must be a positive integer/);
    await expectErr({ ...base, vocab_size: 1.5 }, /"vocab_size"/);
    await expectErr({ ...base, tie_word_embeddings: 'yes' }, /"tie_word_embeddings" must be a boolean/);
    await expectErr({ ...base, rms_norm_eps: 'x' }, /"rms_norm_eps" must be a number/);
    await expectErr({ ...base, num_key_value_heads: 3 }, /num_key_value_heads/);
    await expectErr({ ...base, rope_scaling: 5 }, /"rope_scaling"/);
    await expectErr('{ not json', /not valid JSON/);
    await expectErr('[1,2]', /expected a JSON object/);
    const empty = join(t.path, 'empty');
    mkdirSync(empty);
    await assert.rejects(loadModelConfig(empty), (e: Error) => e instanceof GptqError && e.message.includes(empty) && /config\.json/.test(e.message));
    await assert.rejects(loadModelConfig(join(t.path, 'nope')), /model directory .*nope does not exist/);
  } finally { t.cleanup(); }
});

test('generation config: file values and transformers defaults', async () => {
  const g = await loadGenerationConfig(STORIES);
  assert.deepEqual([g.bosTokenId, g.eosTokenId, g.padTokenId], [1, 2, null]);
  assert.deepEqual([g.maxLength, g.maxNewTokens, g.doSample, g.temperature, g.topK, g.topP, g.repetitionPenalty], [20, null, false, 1, 50, 1, 1]);
  const t = tmpDir();
  try {
    const d = await loadGenerationConfig(t.path); // missing file → defaults
    assert.deepEqual([d.temperature, d.topK, d.topP, d.repetitionPenalty, d.doSample, d.eosTokenId], [1, 50, 1, 1, false, null]);
    writeFileSync(join(t.path, 'generation_config.json'), JSON.stringify({ do_sample: true, temperature: 0.6, top_p: 0.9, max_new_tokens: 7, eos_token_id: [1, 2] }));
    const e = await loadGenerationConfig(t.path);
    assert.deepEqual([e.doSample, e.temperature, e.topP, e.topK, e.maxNewTokens, e.eosTokenId], [true, 0.6, 0.9, 50, 7, [1, 2]]);
    writeFileSync(join(t.path, 'generation_config.json'), '{"do_sample": 1}');
    await assert.rejects(loadGenerationConfig(t.path), /generation_config\.json: field "do_sample" must be a boolean/);
  } finally { t.cleanup(); }
  assert.throws(() => parseGenerationConfig({ top_k: 'x' }), /top_k/);
});

test('rope: default and linear inverse frequencies', () => {
  const c = parseModelConfig({ ...base, rope_theta: 500000 });
  const { invFreq, attentionScaling, dynamic } = ropeInvFreq(c);
  assert.equal(invFreq.length, 8);
  assert.equal(attentionScaling, 1);
  assert.equal(dynamic, false);
  for (let i = 0; i < 8; i++) close(invFreq[i]!, 1 / 500000 ** ((2 * i) / 16));
  const lin = ropeInvFreq(parseModelConfig({ ...base, rope_theta: 500000, rope_scaling: { type: 'linear', factor: 4 } })).invFreq;
  for (let i = 0; i < 8; i++) close(lin[i]!, invFreq[i]! / 4);
  // rope_type and legacy type both accepted; "default" is no scaling
  assert.equal(parseModelConfig({ ...base, rope_scaling: { rope_type: 'linear', factor: 2 } }).ropeScaling?.type, 'linear');
  assert.equal(parseModelConfig({ ...base, rope_scaling: { rope_type: 'default' } }).ropeScaling, null);
});

test('rope: llama3 wavelength smoothing matches reference values', () => {
  const c = parseModelConfig({
    ...base, hidden_size: 4096, num_attention_heads: 32, rope_theta: 500000, max_position_embeddings: 131072,
    rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 },
  });
  assert.equal(c.ropeScaling?.originalMaxPositionEmbeddings, 8192);
  const f = ropeInvFreq(c).invFreq;
  assert.equal(f.length, 64);
  // reference: independent float64 evaluation of transformers' _compute_llama3_parameters
  const ref: [number, number][] = [[0, 1.0], [20, 0.016560440080994446], [29, 0.002166570763503359], [31, 0.0008567514129196321],
    [34, 0.00017850781276799638], [40, 3.428102195952591e-05], [63, 3.068925988914511e-07]];
  for (const [i, v] of ref) close(f[i]!, v, 1e-12);
});

test('rope: dynamic NTK depends on sequence length', () => {
  const c = parseModelConfig({ ...base, max_position_embeddings: 128, rope_scaling: { type: 'dynamic', factor: 2.0 } });
  const plain = ropeInvFreq(parseModelConfig({ ...base, max_position_embeddings: 128 })).invFreq;
  const r0 = ropeInvFreq(c);
  assert.equal(r0.dynamic, true);
  assert.deepEqual(Array.from(r0.invFreq), Array.from(plain));
  assert.deepEqual(Array.from(ropeInvFreqForSeqLen(c, 100).invFreq), Array.from(plain));
  const r = ropeInvFreqForSeqLen(c, 256).invFreq;
  const b = 10000 * (2 * 256 / 128 - 1) ** (16 / 14);
  for (let i = 0; i < 8; i++) close(r[i]!, 1 / b ** ((2 * i) / 16));
  assert.ok(r[7]! < plain[7]!);
  // non-dynamic types ignore seqLen
  assert.deepEqual(Array.from(ropeInvFreqForSeqLen(parseModelConfig(base), 99999).invFreq), Array.from(ropeInvFreq(parseModelConfig(base)).invFreq));
});

test('rope: unsupported types and missing fields error clearly; partial rotary', () => {
  const y = parseModelConfig({ ...base, rope_scaling: { type: 'proportional', factor: 4 } });
  assert.throws(() => ropeInvFreq(y), /rope_scaling type proportional is not supported \(supported: default, linear, dynamic, yarn, longrope, llama3\)/);
  assert.throws(() => ropeInvFreqForSeqLen(y, 10), /proportional is not supported/);
  assert.throws(() => ropeInvFreq(parseModelConfig({ ...base, rope_scaling: { rope_type: 'longrope', short_factor: [], long_factor: [] } })),
    /field "rope_scaling.short_factor" must be a list of 8 positive numbers/);
  assert.throws(() => ropeInvFreq(parseModelConfig({ ...base, rope_parameters: { rope_type: 'yarn', original_max_position_embeddings: 16 } })),
    /rope_scaling type "yarn" needs field "rope_parameters.factor"/);
  assert.throws(() => ropeInvFreq(parseModelConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 2, truncate: 'no' } })), /"rope_scaling.truncate" must be a boolean/);
  assert.throws(() => ropeInvFreq(parseModelConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8 } })), /rope_scaling\.low_freq_factor/);
  assert.throws(() => ropeInvFreq(parseModelConfig({ ...base, rope_scaling: { rope_type: 'linear' } })), /rope_scaling\.factor/);
  const p = parseModelConfig({ ...base, partial_rotary_factor: 0.5 });
  assert.equal(p.rotaryDim, 8);
  const f = ropeInvFreq(p).invFreq;
  assert.equal(f.length, 4);
  close(f[1]!, 1 / 10000 ** (2 / 8));
  assert.equal(parseModelConfig({ ...base, model_type: 'gpt_neox', rotary_pct: 0.25 }).rotaryDim, 4);
  // transformers v5 rope_parameters
  const v5 = parseModelConfig({ ...base, rope_parameters: { rope_type: 'linear', rope_theta: 1e6, factor: 2 } });
  assert.equal(v5.ropeTheta, 1e6);
  assert.equal(v5.ropeScaling?.factor, 2);
  assert.equal(parseModelConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }).ropeScaling, null);
});
