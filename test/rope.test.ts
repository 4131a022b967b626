/**
 * RoPE against real Transformers (test/fixtures/rope/rope.json, scripts/fixtures/make_rope_fixtures.py): for every
 * rope_scaling type, the frequencies of one forward call of length L (ropeInvFreqForSeqLen: float64) and the cos/sin
 * and rotary the ONNX graphs compute in-graph from the position ids (rotaryEmbedding: plain tables, and the fused
 * com.microsoft.RotaryEmbedding path of the CPU runtime graphs) vs LlamaRotaryEmbedding's first forward of that length.
 * Bounds: frequencies relative 1e-6 (Transformers computes them in fp32), attention scaling 1e-12 relative, cos/sin
 * and rotated values absolute 2e-6.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '../src/graph/builder.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { parseModelConfig } from '../src/io/config.ts';
import { applyRope, ropeInvFreqForSeqLen, rotaryEmbedding } from '../src/models/rope.ts';
import * as ort from 'onnxruntime-node';
import { ROOT } from './helpers.ts';
import { reporter } from './archs/harness.ts';

interface RopeCase { name: string; config: Record<string, unknown>; seq_len: number; inv_freq: number[]; attention_scaling: number; cos: number[][]; sin: number[][] }
const doc = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'rope', 'rope.json'), 'utf8')) as { cases: RopeCase[] };
const rep = reporter();

/** x [1,H,L,d] deterministic, and its rotation with Transformers' cos/sin (float64, rotate_half on the first rot dims). */
function rotatedReference(c: RopeCase, H: number, d: number): { x: Float32Array; want: Float64Array } {
  const L = c.seq_len, rot = c.cos[0]!.length, half = rot / 2;
  const x = Float32Array.from({ length: H * L * d }, (_, i) => Math.sin(0.7 * i + 0.3));
  const want = new Float64Array(x.length);
  for (let h = 0; h < H; h++) for (let s = 0; s < L; s++) {
    const o = (h * L + s) * d;
    for (let j = 0; j < d; j++) {
      if (j >= rot) { want[o + j] = x[o + j]!; continue; }
      const rotated = j < half ? -x[o + j + half]! : x[o + j - half]!;
      want[o + j] = x[o + j]! * c.cos[s]![j]! + rotated * c.sin[s]![j]!;
    }
  }
  return { x, want };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

for (const c of doc.cases) {
  test(`rope ${c.name}: frequencies, cos/sin and rotary match Transformers`, async () => {
    const cfg = parseModelConfig(c.config, `rope.json#${c.name}`);
    const L = c.seq_len, d = cfg.headDim, H = 2;

    // float64 frequencies of a call of length L
    const p = ropeInvFreqForSeqLen(cfg, L);
    assert.equal(p.invFreq.length, c.inv_freq.length);
    let relFreq = 0;
    c.inv_freq.forEach((v, i) => { relFreq = Math.max(relFreq, Math.abs(p.invFreq[i]! - v) / v); });
    assert.ok(Math.abs(p.attentionScaling - c.attention_scaling) <= 1e-12 * c.attention_scaling, `attention scaling ${p.attentionScaling} vs ${c.attention_scaling}`);

    // in-graph: cos/sin from position ids, rotary unfused and fused
    const g = new GraphBuilder('rope');
    const pos = g.input('position_ids', 'int64', [1, 'seq']);
    const x = g.input('x', 'float32', [1, H, 'seq', d]);
    const plain = rotaryEmbedding(g, cfg, pos);
    const fused = rotaryEmbedding(g, cfg, pos, true);
    g.output(plain.cos, 'float32', undefined, 'cos');
    g.output(plain.sin, 'float32', undefined, 'sin');
    g.output(applyRope(g, x, plain, d, cfg.rotaryDim), 'float32', undefined, 'rot_plain');
    g.output(applyRope(g, x, fused, d, cfg.rotaryDim), 'float32', undefined, 'rot_fused');
    const sess = await createSession(g.toBytes());
    const ref = rotatedReference(c, H, d);
    const r = await sess.run({
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: L }, (_, i) => BigInt(i)), [1, L]),
      x: f32(ref.x, [1, H, L, d]),
    });
    await sess.release();
    const cosErr = maxAbs(r.cos!.data as Float32Array, c.cos.flat());
    const sinErr = maxAbs(r.sin!.data as Float32Array, c.sin.flat());
    const rotPlain = maxAbs(r.rot_plain!.data as Float32Array, ref.want);
    const rotFused = maxAbs(r.rot_fused!.data as Float32Array, ref.want);
    rep.report(`rope ${c.name}`, { 'inv_freq rel': relFreq, cos: cosErr, sin: sinErr, 'rotary plain': rotPlain, 'rotary fused': rotFused });
    assert.ok(relFreq <= 1e-6, `inv_freq relative error ${relFreq}`);
    for (const [k, v] of Object.entries({ cosErr, sinErr, rotPlain, rotFused })) assert.ok(v <= 2e-6, `${k} ${v}`);
  });
}

test('rope fixtures cover every supported rope_scaling type', () => {
  const types = new Set(doc.cases.map((c) => parseModelConfig(c.config).ropeScaling?.type ?? 'default'));
  assert.deepEqual([...types].sort(), ['default', 'dynamic', 'linear', 'llama3', 'longrope', 'yarn']);
});

rep.summaryTest();
