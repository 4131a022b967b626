/**
 * Family tests on the real-Transformers fixtures of test/fixtures/archs/ (their linears are multiples of 32, so the
 * fixture itself is the GPTQ source): quantize → save → reload round trips and config variants of a fixture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM } from '../../src/runtime/causal-lm.ts';
import { ARCH_FIXTURES_DIR, loadArchFixture, unpadded } from '../fixture-archs.ts';
import { tmpDir } from '../helpers.ts';
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
