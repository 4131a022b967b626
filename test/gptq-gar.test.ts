/**
 * Group-aware act-order (quantizeConfig.actGroupAware, GPTQModel's act_group_aware / gar.py). Checked against the
 * unblocked float64 GPTQ reference (test/reference/gptq-ref.ts) run in order on the column-permuted problem
 * (W[:, perm], H[perm][:, perm]): every group is whole and contiguous in processing order, so GAR must equal that run
 * with its codes un-permuted, its groups' params put back in original group order and g_idx in order. Also: the
 * permutation on a hand-made diagonal, the config rules, and a saved checkpoint (desc_act false, in-order g_idx) that
 * loads to the fake-quantized logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { gptqQuantize, groupAwarePermutation } from '../src/quant/gptq.ts';
import { resolveQuantizeConfig } from '../src/quant/quantize-config.ts';
import { GPTQModel, CausalLM, Checkpoint, GptqError } from '../src/index.ts';
import { gptqReference } from './reference/gptq-ref.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { randn, tmpDir } from './helpers.ts';

test('groupAwarePermutation: columns by diag(H) within each group, groups by their largest diag, a partial group last', () => {
  // n = 10, gs = 4: groups {0..3}, {4..7}, partial {8, 9}
  const d = [1, 5, 2, 3, 9, 0.5, 4, 9, 100, 7];
  // group 1: 4 (9), 7 (9), 6 (4), 5 (0.5) — ties by index; score 9. group 0: 1 (5), 3 (3), 2 (2), 0 (1); score 5.
  assert.deepEqual([...groupAwarePermutation(d, 4)], [4, 7, 6, 5, 1, 3, 2, 0, 8, 9]);
});

test('actGroupAware = the float64 reference run in order on the permuted problem (codes, scales, zeros, in-order g_idx)', async () => {
  const R = 48, n = 200, gs = 32; // 6 whole groups + a partial one of 8 columns
  const X = randn(400 * n, 3), H = new Float32Array(n * n);
  for (let j = 0; j < n; j++) { const s = 0.1 + ((j * 29) % 17) / 4; for (let t = 0; t < 400; t++) X[t * n + j]! *= s; }
  for (let a = 0; a < n; a++) for (let b = 0; b <= a; b++) {
    let s = 0;
    for (let t = 0; t < 400; t++) s += X[t * n + a]! * X[t * n + b]!;
    H[a * n + b] = H[b * n + a] = (2 / 400) * s;
  }
  const W = randn(R * n, 4, 0.05);
  for (const sym of [true, false]) {
    const cfg = { bits: 4 as const, groupSize: gs, descAct: false, staticGroups: false, sym, dampPercent: 0.01, blockSize: 64, mse: false };
    const o = await gptqQuantize(W, H, R, n, { ...cfg, actGroupAware: true }, { precision: 'f64' });
    const perm = groupAwarePermutation(Array.from({ length: n }, (_, j) => H[j * n + j]!), gs);
    const Wp = new Float32Array(R * n), Hp = new Float32Array(n * n);
    for (let r = 0; r < R; r++) for (let c = 0; c < n; c++) Wp[r * n + c] = W[r * n + perm[c]!]!;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) Hp[a * n + b] = H[perm[a]! * n + perm[b]!]!;
    const ref = gptqReference(Wp, Hp, R, n, cfg);
    assert.equal(o.perm, null, 'no act-order permutation in the result: the checkpoint is in order');
    assert.deepEqual([...o.gIdx], Array.from({ length: n }, (_, j) => Math.floor(j / gs)), 'g_idx in order');
    let flips = 0;
    for (let r = 0; r < R; r++) for (let c = 0; c < n; c++) if (o.intCodes[r * n + perm[c]!] !== ref.codes[r * n + c]) flips++;
    assert.ok(flips <= Math.ceil(0.001 * R * n), `${flips} codes differ from the reference (sym ${sym})`);
    assert.ok(Math.abs(o.loss - ref.loss) <= 1e-6 * ref.loss, `loss ${o.loss} vs ${ref.loss}`);
    const G = Math.ceil(n / gs);
    for (let k = 0; k < G; k++) {
      const g = Math.floor(perm[k * gs]! / gs); // processing-order group k is original group g
      for (let r = 0; r < R; r++) {
        assert.ok(Math.abs(o.scales[g * R + r]! - ref.scales[k * R + r]!) <= 1e-6 * ref.scales[k * R + r]!, `scale group ${g} row ${r}`);
        assert.equal(o.zeros[g * R + r], ref.zeros[k * R + r], `zero group ${g} row ${r}`);
      }
    }
  }
});

test('actGroupAware config: needs groupSize > 0, excludes descAct and staticGroups (one line naming the fields)', () => {
  assert.throws(() => resolveQuantizeConfig({ actGroupAware: true, groupSize: -1 }), (e: unknown) => e instanceof GptqError && /actGroupAware needs groupSize > 0/.test(e.message));
  assert.throws(() => resolveQuantizeConfig({ actGroupAware: true, descAct: true }), /actGroupAware is an alternative to descAct/);
  assert.throws(() => resolveQuantizeConfig({ actGroupAware: true, descAct: true, staticGroups: true }), /alternative to descAct/);
  assert.throws(() => resolveQuantizeConfig({ actGroupAware: 1 as unknown as boolean }), /actGroupAware must be a boolean/);
  assert.equal(resolveQuantizeConfig({ actGroupAware: true }).actGroupAware, true);
});

test('actGroupAware checkpoint: desc_act false, in-order g_idx, reloads to the fake-quantized logits', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src'), out = join(t.path, 'out');
    await makeLlamaCheckpoint(src);
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32, actGroupAware: true } });
    const ids = Array.from({ length: 8 }, (_, i) => ({ inputIds: Array.from({ length: 32 }, (_, j) => 1 + ((i * 31 + j * 7) % 60)) }));
    await m.quantize(ids, { keepDequantized: true });
    const fq = await m.fakeQuantModel();
    await m.saveQuantized(out, { modelCard: false });
    await m.dispose();
    const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
    assert.equal(qc.desc_act, false);
    assert.equal(qc.meta.act_group_aware, true, "recorded in meta as GPTQModel names it");
    const ck = await Checkpoint.open(out);
    try {
      const gName = ck.names().find((x) => x.endsWith('.g_idx'))!;
      const g = await ck.read(gName);
      const v = Array.from(g.data as Int32Array);
      assert.deepEqual(v, v.map((_, j) => Math.floor(j / 32)), `${gName} in order`);
    } finally { await ck.dispose(); }
    const q = await CausalLM.load(out, { lmHeadBits: 0 });
    const prompt = [[1, 5, 9, 13, 17, 21]];
    const a = await q.logits(prompt), b = await fq.logits(prompt);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    assert.ok(d <= 1e-3, `reloaded vs fake-quant max |Δlogit| ${d}`);
    await q.dispose(); await fq.dispose();
  } finally { t.cleanup(); }
});
