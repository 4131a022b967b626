/**
 * Family tests on the real-Transformers fixtures of test/fixtures/archs/ (their linears are multiples of 32, so the
 * fixture itself is the GPTQ source): quantize → save → reload round trips and config variants of a fixture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { SlotCache } from '../../src/runtime/slots.ts';
import { ARCH_FIXTURES_DIR, loadArchFixture, unpadded } from '../fixture-archs.ts';
import { maxAbsDiff, tmpDir } from '../helpers.ts';
import { gptqRoundTrip, savedBlockChecks, type Reporter } from './harness.ts';

/** Copy fixture `name` to `dir` with config.json fields `patch` replaced (undefined deletes a field). */
export function fixtureVariant(name: string, dir: string, patch: Record<string, unknown>): string {
  const src = join(ARCH_FIXTURES_DIR, name);
  for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dir, f));
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  for (const [k, v] of Object.entries(patch)) { if (v === undefined) delete cfg[k]; else cfg[k] = v; }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  return dir;
}

/** Max |Δlogit| of the model in `dir` vs fixture `name`'s full-forward logits, over rows checked alone. */
export async function fixtureFullDelta(dir: string, name: string): Promise<number> {
  const f = loadArchFixture(name);
  const m = await CausalLM.load(dir, { graphCache: false });
  try {
    let d = 0;
    for (let b = 0; b < f.B; b++) {
      if (!f.rowAloneMatchesBatch[b]) continue;
      const { ids, pad } = unpadded(f, b);
      const lg = await m.logits([ids]);
      for (let i = 0; i < ids.length * f.V; i++) d = Math.max(d, Math.abs(lg[i]! - f.fullLogits[(b * f.S + pad) * f.V + i]!));
    }
    return d;
  } finally { await m.dispose(); }
}

/**
 * Register `<name> (HF fixture): GPTQ 4-bit g32 → … → reload`: gptqRoundTrip on the fixture with savedBlockChecks
 * (`block` e.g. 'transformer.blocks.', layer-1 tensors `expect` with their shapes).
 */
export function fixtureRoundTripTest(rep: Reporter, name: string, block: string, expect: [string, number[]][]): void {
  test(`${name} (HF fixture): GPTQ 4-bit g32 → fake-quant beats RTN → saveQuantized → CausalLM.load`, async () => {
    const t = tmpDir();
    try {
      const mse = await gptqRoundTrip(join(ARCH_FIXTURES_DIR, name), join(t.path, 'q'), savedBlockChecks(block, expect));
      assert.ok(Number.isFinite(mse.gptq));
      rep.report(`${name} logit MSE vs fp32`, mse);
    } finally { t.cleanup(); }
  });
}

/**
 * Register `<name> (HF fixture): continuous-batching slots = plain KV steps per request`: two requests of different
 * lengths (one joining later, chunked prefill) decoded together for `steps` tokens in a SlotCache (attention 'slots':
 * rows with unused buffer positions between cache and new tokens); every logits row is compared with the plain
 * Concat graph run on that request alone with the same chunks (≤ 1e-4; for models without sequence-length-dependent
 * RoPE this also equals the full forward).
 */
export function fixtureSlotsTest(rep: Reporter, name: string, steps = 8): void {
  test(`${name} (HF fixture): continuous-batching slots equal plain KV steps on each request alone`, async () => {
    const dir = join(ARCH_FIXTURES_DIR, name);
    const m = await CausalLM.load(dir, { attention: 'slots', graphCache: false, onLog: () => {} });
    const ref = await CausalLM.load(dir, { attention: 'plain', graphCache: false, onLog: () => {} });
    try {
      const V = m.cfg.vocabSize, cache = new SlotCache(m, 2, 32);
      const tok = (k: number) => (k * 37 + 11) % V;
      let k = 0, worst = 0;
      const lengths = [0, 0];
      const refCache = [ref.emptyCache(1), ref.emptyCache(1)];
      const check = async (i: number, ids: number[], logits: Float32Array) => {
        const r = await ref.forwardStep([ids], refCache[i]!);
        refCache[i] = r.cache;
        lengths[i]! += ids.length;
        worst = Math.max(worst, maxAbsDiff(logits, r.logits));
      };
      const chunk = (n: number) => Array.from({ length: n }, () => tok(k++));
      const a = cache.acquire()!;
      for (const n of [3, 4]) { const ids = chunk(n); await check(0, ids, await cache.extend(a, ids)); }
      const b = cache.acquire()!;
      { const ids = chunk(2); await check(1, ids, await cache.extend(b, ids)); }
      for (let s = 0; s < steps; s++) {
        const ids = chunk(2);
        const logits = await cache.step([a, b], ids);
        await check(0, [ids[0]!], logits.subarray(0, V)); await check(1, [ids[1]!], logits.subarray(V, 2 * V));
      }
      rep.report(`${name} slots vs plain KV`, { 'max |Δlogit|': worst, lengths: lengths.join(', ') });
      assert.ok(worst <= 1e-4, `slots vs plain ${worst}`);
    } finally { await m.dispose(); await ref.dispose(); }
  });
}
