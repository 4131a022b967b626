/**
 * Llama-layout families that add norms or scalings: olmo2 (q/k RMSNorm over the full projections, post-norms),
 * granite (embedding / attention / residual / logits multipliers), minicpm (µP: scale_emb, scale_depth/√L,
 * dim_model_base). Logit parity with real Transformers (minicpm: its remote modeling file) is test/hf-parity.test.ts
 * on the fixtures test/fixtures/archs/{olmo2,granite,minicpm}; they recombine RMSNorm, rotary, GQA and scalars whose
 * float64 references exist (test/reference/llama-ref.ts), so the HF fixtures are their reference. Here: config
 * defaults as the config classes fill them in, that each scaling is really read from config.json, and the GPTQ round
 * trip on the HF fixtures themselves (every linear a multiple of 32).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/io/config.ts';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { ARCH_FIXTURES_DIR } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
import { gptqRoundTrip, linearCount, reporter } from './harness.ts';

const rep = reporter();
const fixture = (name: string) => join(ARCH_FIXTURES_DIR, name);
const base = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 };

test('olmo2 / granite / minicpm config defaults (Olmo2Config, GraniteConfig, MiniCPMConfig)', () => {
  const o = parseModelConfig({ ...base, model_type: 'olmo2' });
  assert.deepEqual([o.numKvHeads, o.rmsNormEps, o.maxPositionEmbeddings, o.tieWordEmbeddings, o.padTokenId, o.eosTokenId, o.bosTokenId], [4, 1e-5, 2048, false, 1, 50279, null]);
  const g = parseModelConfig({ ...base, model_type: 'granite' });
  assert.deepEqual([g.numKvHeads, g.rmsNormEps, g.tieWordEmbeddings, g.bosTokenId, g.eosTokenId], [4, 1e-6, false, 1, 2]);
  const m = parseModelConfig({ ...base, model_type: 'minicpm' });
  assert.deepEqual([m.numKvHeads, m.rmsNormEps, m.tieWordEmbeddings, m.bosTokenId, m.eosTokenId], [4, 1e-6, true, 1, 2]);
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

for (const name of ['olmo2', 'granite', 'minicpm']) {
  test(`${name} (HF fixture): GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load == fake-quant`, async () => {
    const t = tmpDir();
    try {
      const mse = await gptqRoundTrip(fixture(name), join(t.path, 'q'), {
        checkFinite: true,
        checkSaved: (ck) => {
          assert.deepEqual(ck.info('model.layers.1.self_attn.k_proj.qweight').shape, [8, 32]);
          assert.deepEqual(ck.info('model.layers.1.mlp.down_proj.scales').shape, [1, 64]);
          if (name === 'olmo2') assert.deepEqual(ck.info('model.layers.1.self_attn.q_norm.weight').shape, [64]);
        },
        checkLoaded: async (q) => { assert.equal(q.quantization?.modules.length, linearCount(q.cfg), 'loaded as GPTQ'); },
      });
      rep.report(`${name} logit MSE vs fp32`, mse);
    } finally { t.cleanup(); }
  });
}

rep.summaryTest();
