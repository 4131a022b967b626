import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, GPTQModel, archFor, blocks, defineArchitecture, linear, registerArchitecture, supportedModelTypes } from '../src/index.ts';
import { parseModelConfig } from '../src/io/config.ts';
import { llama } from '../src/models/llama.ts';
import { rmsNormAt } from '../src/models/blocks.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { tmpDir } from './helpers.ts';

/** A made-up layer: fused qkv (group 0) and one MLP linear (group 1); the graph is never built here. */
const llamaSpecLike = {
  layersBlockName: 'model.layers.', outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (_: unknown, d: { h: number; i: number; q: number; kv: number }) => ({
    attn: { qkv: linear(0, d.h, d.q + 2 * d.kv, true) }, mlp: { down: linear(1, d.i, d.h) },
  }),
  norm: ['model.norm', rmsNormAt] as const,
  layer: (_ctx: unknown, x: string) => x,
};

const DIMS = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 64, seed: 12 };

/** Two identical synthetic llama checkpoints under `root`: `a` as written, `b` with config.json model_type `modelType`. */
async function llamaPair(root: string, modelType: string): Promise<{ a: string; b: string }> {
  const a = join(root, 'a'), b = join(root, 'b');
  await makeLlamaCheckpoint(a, DIMS);
  await makeLlamaCheckpoint(b, DIMS);
  const cfgPath = join(b, 'config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), model_type: modelType }));
  return { a, b };
}

test('a user-registered architecture loads, runs and quantizes like a built-in one', async () => {
  const t = tmpDir();
  try {
    const { a, b } = await llamaPair(t.path, 'my_llama');
    await assert.rejects(CausalLM.load(b), /model_type "my_llama" is not supported \(supported: llama, mistral, qwen2, .*gpt2/);
    registerArchitecture({ ...llama, modelTypes: ['my_llama'] });
    assert.ok(supportedModelTypes().includes('my_llama'));
    const ids = [[1, 5, 9, 33, 2, 7]];
    const [la, lb] = [await (await CausalLM.load(a)).logits(ids), await (await CausalLM.load(b)).logits(ids)];
    assert.deepEqual(lb, la);
    const m = await GPTQModel.fromPretrained(b, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const r = await m.quantize([{ inputIds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }]);
    assert.equal(r.quantized.size, 14);
    await m.dispose();
  } finally { t.cleanup(); }
});

test('registerArchitecture: a defineArchitecture() definition brings its config defaults and module tree; a malformed one is refused in one line', () => {
  const tiny = defineArchitecture({
    ...llamaSpecLike,
    modelTypes: ['tiny_custom'],
    config: { tiny_custom: { rms_norm_eps: 3e-3, intermediate_size: 96, tie_word_embeddings: false, num_key_value_heads: 1 } },
  });
  registerArchitecture(tiny);
  const c = parseModelConfig({ model_type: 'tiny_custom', hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 50 });
  assert.deepEqual([c.rmsNormEps, c.intermediateSize, c.tieWordEmbeddings, c.numKvHeads], [3e-3, 96, false, 1]);
  assert.deepEqual(archFor('tiny_custom').insideLayerModules(c), [['attn.qkv'], ['mlp.down']]);
  assert.deepEqual(archFor('tiny_custom').layerLinears(c), [
    { rel: 'attn.qkv', inFeatures: 32, outFeatures: 48, bias: true }, { rel: 'mlp.down', inFeatures: 96, outFeatures: 32, bias: false },
  ]);
  assert.throws(() => registerArchitecture({ ...llama, insideLayerModules: [['self_attn.q_proj']] } as any),
    /^GptqError: registerArchitecture: not an architecture definition \(insideLayerModules missing or of the wrong kind\); build it with defineArchitecture\(\)$/);
});

test('README "Your own architecture": the example definition runs a llama checkpoint exactly like the built-in llama', async () => {
  const { gatedMlp, rmsNormAt: norm, selfAttention } = blocks;
  // the README's code, with its model type renamed
  registerArchitecture(defineArchitecture({
    modelTypes: ['readme_llama'],
    config: { readme_llama: { rms_norm_eps: 1e-6, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 } },
    layersBlockName: 'model.layers.',
    outsideLayerModules: ['model.embed_tokens', 'model.norm'],
    modules: (cfg, { h, i, q, kv }) => ({
      self_attn: { k_proj: linear(0, h, kv), v_proj: linear(0, h, kv), q_proj: linear(0, h, q), o_proj: linear(1, q, h) },
      mlp: { up_proj: linear(2, h, i), gate_proj: linear(2, h, i), down_proj: linear(3, i, h) },
    }),
    norm: ['model.norm', norm],
    layer(ctx, x, m) {
      const { g, cfg, w, prefix: p } = ctx;
      const n1 = norm(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
      const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn)]);
      const n2 = norm(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
      return g.op('Add', [x2, gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct)]);
    },
  }));
  const t = tmpDir();
  try {
    const { a, b } = await llamaPair(t.path, 'readme_llama');
    const ids = [[1, 5, 9, 33, 2, 7]];
    const [ma, mb] = [await CausalLM.load(a, { graphCache: false }), await CausalLM.load(b, { graphCache: false })];
    assert.deepEqual(await mb.logits(ids), await ma.logits(ids));
    assert.deepEqual(archFor('readme_llama').insideLayerModules(mb.cfg), archFor('llama').insideLayerModules(ma.cfg));
    await ma.dispose(); await mb.dispose();
  } finally { t.cleanup(); }
});
