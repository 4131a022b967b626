/**
 * Llama-layout families that add norms or scalings: olmo2 (q/k RMSNorm over the full projections, post-norms),
 * granite (embedding / attention / residual / logits multipliers), minicpm (µP: scale_emb, scale_depth/√L,
 * dim_model_base), exaone4 (per-head q/k norms, post-norms, sliding layers + global NoPE layers), exaone (EXAONE 3.x:
 * llama under GPT-2-style names; its fixture is the llama one renamed, scripts/fixtures/make_exaone_fixture.py). Logit parity with
 * real Transformers (minicpm: its remote modeling file) is test/hf-parity.test.ts on the fixtures
 * test/fixtures/archs/{olmo2,granite,minicpm,exaone4}; they recombine RMSNorm, rotary, GQA and scalars whose float64
 * references exist (test/reference/llama-ref.ts), so the HF fixtures are their reference; the one new piece, exaone4's
 * per-layer window narrowing of the shared mask, is checked here against the mask builder's own window. Also: config
 * defaults as the config classes fill them in, that each scaling is really read from config.json, and the GPTQ round
 * trip on the HF fixtures themselves (every linear a multiple of 32).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { createSession, i64 } from '../../src/graph/session.ts';
import { positionMask } from '../../src/models/blocks.ts';
import { exaone4Layers, windowMask } from '../../src/models/exaone4.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { ARCH_FIXTURES_DIR } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
import { gptqRoundTrip, linearCount, reporter } from './harness.ts';
import { fixtureSlotsTest } from './hf-fixture.ts';

const rep = reporter();
const fixture = (name: string) => join(ARCH_FIXTURES_DIR, name);
const base = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 };

test('olmo2 / granite / minicpm / exaone4 / exaone config defaults (Olmo2Config, GraniteConfig, MiniCPMConfig, Exaone4Config, ExaoneConfig)', () => {
  const o = parseModelConfig({ ...base, model_type: 'olmo2' });
  assert.deepEqual([o.numKvHeads, o.rmsNormEps, o.maxPositionEmbeddings, o.tieWordEmbeddings, o.padTokenId, o.eosTokenId, o.bosTokenId], [4, 1e-5, 2048, false, 1, 50279, null]);
  const g = parseModelConfig({ ...base, model_type: 'granite' });
  assert.deepEqual([g.numKvHeads, g.rmsNormEps, g.tieWordEmbeddings, g.bosTokenId, g.eosTokenId], [4, 1e-6, false, 1, 2]);
  const m = parseModelConfig({ ...base, model_type: 'minicpm' });
  assert.deepEqual([m.numKvHeads, m.rmsNormEps, m.tieWordEmbeddings, m.bosTokenId, m.eosTokenId], [4, 1e-6, true, 1, 2]);
  const x = parseModelConfig({ ...base, model_type: 'exaone4', num_key_value_heads: 2 });
  assert.deepEqual([x.rmsNormEps, x.tieWordEmbeddings, x.bosTokenId, x.eosTokenId, x.intermediateSize, x.slidingWindow], [1e-5, false, 0, 2, 16384, null]);
  assert.throws(() => parseModelConfig({ ...base, model_type: 'exaone4' }), /"num_key_value_heads" \(32\) must divide/);
  // ExaoneConfig (EXAONE 3.x remote code): num_layers / activation_function / layer_norm_epsilon; rotary_pct is not read
  const e3 = parseModelConfig({ model_type: 'exaone', hidden_size: 64, num_layers: 3, num_attention_heads: 4, vocab_size: 100, rotary_pct: 0.25 });
  assert.deepEqual([e3.numLayers, e3.hiddenAct, e3.rmsNormEps, e3.tieWordEmbeddings, e3.bosTokenId, e3.eosTokenId, e3.intermediateSize, e3.rotaryDim], [3, 'silu', 1e-6, true, 0, 2, 256, 16]);
});

test('exaone4 windowMask(mask) == the mask builder\'s own sliding window, for masks with padding and holes', async () => {
  const g = new GraphBuilder('w');
  const pos = g.input('positions', 'int64', ['b', 's']), km = g.input('key_mask', 'int64', ['b', 't']);
  for (const w of [1, 2, 3, 5]) {
    g.output(windowMask(g, positionMask(g, pos, km), w), 'float32', undefined, `narrowed${w}`);
    g.output(positionMask(g, pos, km, w), 'float32', undefined, `direct${w}`);
  }
  const sess = await createSession(g.toBytes());
  // row 0: left padding 2, then 6 tokens; row 1: a slot cache with a hole (unused slots 3–4) then 3 new tokens
  const keyMask = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1];
  const positions = [3, 4, 5, 3, 4, 5];
  const r = await sess.run({ positions: i64(positions, [2, 3]), key_mask: i64(keyMask, [2, 8]) });
  for (const w of [1, 2, 3, 5]) assert.deepEqual([...(r[`narrowed${w}`]!.data as Float32Array)], [...(r[`direct${w}`]!.data as Float32Array)], `window ${w}`);
  await sess.release();
});

test('exaone4 layer kinds: layer_types, else sliding_window_pattern (Exaone4Config.__post_init__); no window: all global', () => {
  const e = (o: Record<string, unknown>) => exaone4Layers(parseModelConfig({ ...base, model_type: 'exaone4', num_key_value_heads: 2, num_hidden_layers: 5, ...o }));
  assert.deepEqual(e({}), { window: 4096, sliding: [true, true, true, false, true] });
  assert.deepEqual(e({ sliding_window: 8, sliding_window_pattern: 2 }), { window: 8, sliding: [true, false, true, false, true] });
  assert.deepEqual(e({ sliding_window: null }), { window: null, sliding: [false, false, false, false, false] });
  assert.throws(() => e({ sliding_window_pattern: 'LLLG' }), /"sliding_window_pattern" must be a positive integer \(or give "layer_types"\)/);
});

/** Logits of `name`'s fixture with config.json fields `patch` changed (in a copy). */
async function logitsWith(name: string, patch: Record<string, unknown>, ids: number[]): Promise<Float32Array> {
  const t = tmpDir();
  try {
    cpSync(fixture(name), t.path, { recursive: true });
    const cfgPath = join(t.path, 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), ...patch }));
    const m = await CausalLM.load(t.path, { graphCache: false, onLog: () => {} });
    try { return await m.logits([ids]); } finally { await m.dispose(); }
  } finally { t.cleanup(); }
}

test('granite: logits_scaling divides the logits; minicpm: dim_model_base scales them; other multipliers change them', async () => {
  const ids = [3, 17, 42, 9, 100, 5];
  const ratio = async (name: string, patch: Record<string, unknown>) => {
    const [a, b] = [await logitsWith(name, {}, ids), await logitsWith(name, patch, ids)];
    let r = 0;
    a.forEach((v, i) => { if (Math.abs(v) > 1e-3) r = Math.max(r, Math.abs(b[i]! / v - 0.5)); });
    return { r, differ: a.some((v, i) => Math.abs(v - b[i]!) > 1e-3) };
  };
  assert.ok((await ratio('granite', { logits_scaling: 5 })).r < 1e-4, 'granite logits_scaling 2.5 → 5 halves the logits');
  assert.ok((await ratio('minicpm', { dim_model_base: 16 })).r < 1e-4, 'minicpm dim_model_base 32 → 16 halves the logits');
  for (const [name, k, v] of [['granite', 'embedding_multiplier', 3], ['granite', 'residual_multiplier', 1], ['granite', 'attention_multiplier', 0.25], ['minicpm', 'scale_emb', 3], ['minicpm', 'scale_depth', 1]] as const) {
    assert.ok((await ratio(name, { [k]: v })).differ, `${name} ${k} is read`);
  }
});

for (const name of ['olmo2', 'granite', 'minicpm', 'exaone4', 'exaone']) {
  test(`${name} (HF fixture): GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load == fake-quant`, async () => {
    const t = tmpDir();
    try {
      const mse = await gptqRoundTrip(fixture(name), join(t.path, 'q'), {
        checkFinite: true,
        checkSaved: (ck) => {
          const [k, down] = name === 'exaone' ? ['transformer.h.1.attn.attention.k_proj', 'transformer.h.1.mlp.c_proj'] : ['model.layers.1.self_attn.k_proj', 'model.layers.1.mlp.down_proj'];
          assert.deepEqual(ck.info(`${k}.qweight`).shape, [8, 32]);
          assert.deepEqual(ck.info(`${down}.scales`).shape, [1, 64]);
          if (name === 'olmo2') assert.deepEqual(ck.info('model.layers.1.self_attn.q_norm.weight').shape, [64]);
          if (name === 'exaone4') assert.deepEqual(ck.info('model.layers.1.self_attn.k_norm.weight').shape, [16]);
        },
        checkLoaded: async (q) => { assert.equal(q.quantization?.modules.length, linearCount(q.cfg), 'loaded as GPTQ'); },
      });
      rep.report(`${name} logit MSE vs fp32`, mse);
    } finally { t.cleanup(); }
  });
}

// serving's slots with dynamic NTK (max_position_embeddings 8): each row grows its base by its own length (before:
// by the batch's longest row, Δ 0.28)
fixtureSlotsTest(rep, 'llama-dynamic');

rep.summaryTest();
