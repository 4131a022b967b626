/**
 * Qwen family — qwen3 (q/k RMSNorm per head), qwen3_moe and qwen2_moe (sparse MoE; qwen2_moe with a sigmoid-gated
 * shared expert). Logit parity with real Transformers is test/hf-parity.test.ts on the fixtures in test/fixtures/archs
 * (qwen3, qwen3_moe, qwen3_moe-nonorm, qwen2_moe, qwen2_moe-norm); these types only recombine pieces with their own
 * float64 references elsewhere (llama attention + per-head RMSNorm as cohere/phi's qk-norm, Mixtral's routing), so
 * the HF fixtures are their reference. Here: config defaults as the Transformers config classes fill them in, module
 * trees, and the GPTQ round trip on the HF fixtures themselves (every linear is a multiple of 32).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelConfig } from '../../src/io/config.ts';
import { archFor } from '../../src/models/registry.ts';
import { ARCH_FIXTURES_DIR } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
import { gptqRoundTrip, linearCount, reporter } from './harness.ts';

const rep = reporter();
const fixture = (name: string) => join(ARCH_FIXTURES_DIR, name);

test('qwen3: AutoGPTQ/GPTQModel module tree; q_norm/k_norm stay fp', async () => {
  const cfg = await loadModelConfig(fixture('qwen3'));
  assert.deepEqual(archFor('qwen3').insideLayerModules(cfg), [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'], ['self_attn.o_proj'], ['mlp.up_proj', 'mlp.gate_proj'], ['mlp.down_proj'],
  ]);
});

for (const name of ['qwen3']) {
  test(`${name} (HF fixture): GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load == fake-quant`, async () => {
    const t = tmpDir();
    try {
      const mse = await gptqRoundTrip(fixture(name), join(t.path, 'q'), {
        checkFinite: true,
        checkSaved: (ck) => {
          assert.deepEqual(ck.info('model.layers.1.self_attn.q_proj.qweight').shape, [8, 64]);
          assert.ok(ck.has('model.layers.1.self_attn.q_norm.weight') && !ck.has('model.layers.1.self_attn.q_proj.weight'));
        },
        checkLoaded: async (q) => { assert.equal(q.quantization?.modules.length, linearCount(q.cfg), 'loaded as GPTQ'); },
      });
      rep.report(`${name} logit MSE vs fp32`, mse);
    } finally { t.cleanup(); }
  });
}

rep.summaryTest();
