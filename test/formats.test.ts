/**
 * AWQ, bitsandbytes and AQLM checkpoints (test/fixtures/formats, written from each format's definition by
 * scripts/fixtures/make_format_fixtures.py) through the product loader (src/formats):
 *  - weights: every quantized linear, run on the identity matrix in the graph it loads into (MatMulNBits, MatMulBnb4,
 *    the AQLM gather, or fp32), gives back its effective weights; they must equal the independent float64 dequantizer
 *    (test/reference/formats-ref.ts): AWQ bit-exact (W = (q − z)·s is exact in float32), the others within float32
 *    rounding of their float32 products (|Δw| ≤ 2^-22·max|W|);
 *  - logits: the loaded model vs Transformers' float64 forward of the dequantized model, max |Δlogit| ≤ 1e-4;
 *  - bad files: one clear line naming the file / tensor / field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelConfig } from '../src/io/config.ts';
import { Checkpoint, writeSafetensors } from '../src/io/safetensors.ts';
import { archFor } from '../src/models/registry.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { openWeights } from '../src/runtime/open-weights.ts';
import { GptqError } from '../src/errors.ts';
import type { Tensor } from '../src/tensor.ts';
import { effectiveWeights, listFormatFixtures, loadFormatFixture, referenceWeight } from './fixture-formats.ts';
import { values } from './reference/formats-ref.ts';
import { tmpDir } from './helpers.ts';

const names = listFormatFixtures();
const quiet = () => {};

for (const name of names) {
  test(`${name}: every quantized linear's effective weights = the independent dequantizer`, async () => {
    const f = loadFormatFixture(name);
    for (const dq of f.format === 'bnb4' || f.format === 'aqlm' ? [false, true] : [false]) {
      const { weights, kernels } = await effectiveWeights(f, { dequantize: dq });
      for (const m of f.quantized) {
        const ref = referenceWeight(f, m), got = weights.get(m)!;
        let d = 0, mx = 0;
        for (let i = 0; i < ref.length; i++) { d = Math.max(d, Math.abs(got[i]! - ref[i]!)); mx = Math.max(mx, Math.abs(ref[i]!)); }
        // with a bias, y − b re-rounds: allow one float32 ulp of |W| + |b|
        const b = f.tensors.has(`${m}.bias`) ? Math.max(...values(f.tensors.get(`${m}.bias`)!).map(Math.abs)) : 0;
        const tol = f.format === 'awq' && !b ? 0 : 2 ** -22 * (mx + b);
        assert.ok(d <= tol, `${m} (${kernels.get(m)}${dq ? ', dequantize' : ''}): max |Δw| ${d} > ${tol}`);
      }
    }
  });

  test(`${name}: CausalLM.load logits = Transformers float64 forward of the dequantized model (≤ 1e-4)`, async () => {
    const f = loadFormatFixture(name);
    for (const dequantize of f.format === 'bnb4' || f.format === 'aqlm' ? [false, true] : [false]) {
      const m = await CausalLM.load(f.dir, { graphCache: false, onLog: quiet, dequantize });
      try {
        assert.equal(m.quantization?.method, { awq: 'awq', bnb4: 'bitsandbytes', bnb8: 'bitsandbytes', aqlm: 'aqlm' }[f.format]);
        assert.equal(m.quantization?.modules.length, f.quantized.length);
        const lg = await m.logits([f.ids]);
        let d = 0;
        for (let i = 0; i < lg.length; i++) d = Math.max(d, Math.abs(lg[i]! - f.logits[i]!));
        assert.ok(d <= 1e-4, `max |Δlogit| ${d}${dequantize ? ' (dequantize)' : ''}`);
      } finally { await m.dispose(); }
    }
  });
}

test('GPTQModel.fromQuantized loads the formats too', async () => {
  const { GPTQModel } = await import('../src/gptq-model.ts');
  for (const [name, method] of [['awq-gemv-g64', 'awq'], ['bnb-nf4', 'bitsandbytes'], ['aqlm-2x8', 'aqlm']] as const) {
    const r = await GPTQModel.fromQuantized(loadFormatFixture(name).dir, { onLog: quiet });
    try { assert.equal(r.quantization.method, method); } finally { await r.model.dispose(); }
  }
});

test('kernels: AWQ on MatMulNBits 4-bit, bnb 4-bit on MatMulBnb4, LLM.int8 fp32 (MatMulNBits 8-bit at accuracy_level 4), AQLM gather', async () => {
  const kinds = async (name: string, o: { accuracyLevel?: 0 | 4; dequantize?: boolean } = {}) => {
    const f = loadFormatFixture(name), cfg = await loadModelConfig(f.dir);
    const fw = await openWeights(f.dir, cfg, archFor(cfg.modelType), { accuracyLevel: o.accuracyLevel ?? 0, dequantize: o.dequantize });
    return [...new Set(fw.quantization!.modules.map((m) => m.kernel))].join(',');
  };
  assert.equal(await kinds('awq-gemm-g128'), 'matmulnbits-4');
  assert.equal(await kinds('awq-gemv-g32'), 'matmulnbits-4');
  assert.equal(await kinds('bnb-nf4-dq-bf16'), 'matmulbnb4');
  assert.equal(await kinds('bnb-fp4'), 'matmulbnb4');
  assert.equal(await kinds('bnb-fp4', { dequantize: true }), 'fp32');
  assert.equal(await kinds('bnb-int8'), 'fp32');
  assert.equal(await kinds('bnb-int8', { accuracyLevel: 4 }), 'matmulnbits-8');
  assert.equal(await kinds('aqlm-1x16'), 'aqlm-gather');
  assert.equal(await kinds('aqlm-2x8', { dequantize: true }), 'fp32');
});

// ------------------------------------------------------------------------------------------------- bad files

/** A copy of fixture `name` whose tensors / quantization_config were changed by `edit`. */
async function mutated(name: string, edit: { tensors?: (t: Map<string, Tensor>) => void; qc?: (q: Record<string, unknown>) => void }) {
  const d = tmpDir('gptqjs-fmt-');
  const src = join(loadFormatFixture(name).dir);
  cpSync(src, d.path, { recursive: true });
  if (edit.tensors) {
    const ck = await Checkpoint.open(d.path);
    const t = new Map<string, Tensor>();
    for (const n of ck.names()) t.set(n, await ck.read(n));
    await ck.dispose();
    edit.tensors(t);
    rmSync(join(d.path, 'model.safetensors'));
    await writeSafetensors(join(d.path, 'model.safetensors'), t, { format: 'pt' });
  }
  if (edit.qc) {
    const c = JSON.parse(readFileSync(join(d.path, 'config.json'), 'utf8'));
    edit.qc(c.quantization_config);
    writeFileSync(join(d.path, 'config.json'), JSON.stringify(c));
  }
  return d;
}

async function loadError(dir: string): Promise<string> {
  const cfg = await loadModelConfig(dir);
  try {
    await openWeights(dir, cfg, archFor(cfg.modelType), { accuracyLevel: 0 });
  } catch (e) {
    assert.ok(e instanceof GptqError, `not a GptqError: ${e}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e.message;
  }
  return assert.fail('loaded without error');
}

const BAD: [string, string, Parameters<typeof mutated>[1], RegExp][] = [
  ['AWQ unknown version', 'awq-gemm-g128', { qc: (q) => { q.version = 'gemv_fast'; } }, /config\.json#quantization_config: AWQ version "gemv_fast" is not supported \(gemm, gemv; gemv_fast uses another packing\)/],
  ['AWQ bits 8', 'awq-gemm-g128', { qc: (q) => { q.bits = 8; } }, /AWQ bits 8 is not supported/],
  ['AWQ group size not dividing in_features', 'awq-gemm-g128', { qc: (q) => { q.group_size = 96; } }, /model\.safetensors: module "model\.layers\.0\.mlp\.down_proj" has 256 inputs, not a multiple of group_size 96 \(.*config\.json#quantization_config\); AutoAWQ requires in_features % group_size == 0/],
  ['AWQ missing qzeros', 'awq-gemm-g64', { tensors: (t) => t.delete('model.layers.1.mlp.up_proj.qzeros') }, /model\.safetensors: AWQ module "model\.layers\.1\.mlp\.up_proj" has no "model\.layers\.1\.mlp\.up_proj\.qzeros" tensor/],
  ['AWQ scales shape (GEMV layout under a gemm config)', 'awq-gemv-g128', { qc: (q) => { q.version = 'gemm'; } }, /tensor "model\.layers\.0\.mlp\.down_proj\.qweight" has shape \[128, 32\] but AWQ GEMM with in_features 256, out_features 128 \(\[in, out\/8\], .*\) needs \[256, 16\]/],
  ['AWQ GEMV qzeros too narrow', 'awq-gemv-g32', { tensors: (t) => { const z = t.get('model.layers.0.mlp.down_proj.qzeros')!; t.set('model.layers.0.mlp.down_proj.qzeros', { dtype: 'I32', shape: [z.shape[0]!, 0], data: new Int32Array(0) }); } }, /tensor "model\.layers\.0\.mlp\.down_proj\.qzeros" has shape \[128, 0\] but AWQ GEMV with 8 groups needs \[128, ≥1\]/],
  ['quant_method unknown', 'awq-gemm-g128', { qc: (q) => { q.quant_method = 'hqq'; } }, /quant_method "hqq" is not supported \(gptqjs loads gptq, awq, bitsandbytes and aqlm checkpoints\)/],
  ['bnb missing quant_state tensor', 'bnb-nf4', { tensors: (t) => t.delete('model.layers.0.self_attn.o_proj.weight.quant_state.bitsandbytes__nf4') }, /bitsandbytes 4-bit module "model\.layers\.0\.self_attn\.o_proj" has no "model\.layers\.0\.self_attn\.o_proj\.weight\.quant_state\.bitsandbytes__nf4" \(or __fp4\) tensor/],
  ['bnb missing absmax', 'bnb-nf4', { tensors: (t) => t.delete('model.layers.1.mlp.gate_proj.weight.absmax') }, /has no "model\.layers\.1\.mlp\.gate_proj\.weight\.absmax" tensor/],
  ['bnb missing nested_absmax', 'bnb-nf4-dq-bf16', { tensors: (t) => t.delete('model.layers.0.self_attn.q_proj.weight.nested_absmax') }, /has a nested quant state but no "model\.layers\.0\.self_attn\.q_proj\.weight\.nested_absmax" tensor/],
  ['bnb quant state shape mismatch', 'bnb-fp4', {
    tensors: (t) => {
      const k = 'model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__fp4';
      const j = JSON.parse(Buffer.from(t.get(k)!.data as Uint8Array).toString('utf8'));
      j.shape = [256, 128];
      const b = new TextEncoder().encode(JSON.stringify(j));
      t.set(k, { dtype: 'U8', shape: [b.length], data: b });
    },
  }, /tensor "model\.layers\.0\.mlp\.down_proj\.weight\.quant_state\.bitsandbytes__fp4": field "shape" is \[256,128\], expected \[128, 256\]/],
  ['bnb weight bytes', 'bnb-nf4', { tensors: (t) => { t.set('model.layers.0.self_attn.v_proj.weight', { dtype: 'U8', shape: [100, 1], data: new Uint8Array(100) }); } }, /tensor "model\.layers\.0\.self_attn\.v_proj\.weight" holds 100 bytes \(U8 \[100, 1\]\) but a 4-bit \[64, 128\] weight packs into 4096/],
  ['bnb quant_type unknown in config', 'bnb-nf4', { qc: (q) => { q.bnb_4bit_quant_type = 'int4'; } }, /bnb_4bit_quant_type "int4" is not supported \(nf4, fp4\)/],
  ['bnb 8-bit weight_format col32', 'bnb-int8', { tensors: (t) => { t.set('model.layers.1.self_attn.q_proj.weight_format', { dtype: 'U8', shape: [], data: Uint8Array.of(1) }); } }, /tensor "model\.layers\.1\.self_attn\.q_proj\.weight_format" is 1, expected 0 \("row"/],
  ['bnb 8-bit SCB shape', 'bnb-int8', { tensors: (t) => { t.set('model.layers.0.mlp.up_proj.SCB', { dtype: 'F32', shape: [3], data: new Float32Array(3) }); } }, /tensor "model\.layers\.0\.mlp\.up_proj\.SCB" has shape \[3\] but one scale per output row of model\.layers\.0\.mlp\.up_proj needs \[256\]/],
  ['AQLM codebooks shape', 'aqlm-2x8', { qc: (q) => { q.in_group_size = 16; } }, /tensor "model\.layers\.0\.mlp\.down_proj\.codes" has shape \[128, 32, 2\] but AQLM codes of a 128x256 linear \(\[out\/out_group_size, in\/in_group_size, num_codebooks\], .*\) needs \[128, 16, 2\]/],
  ['AQLM codes too narrow for nbits', 'aqlm-2x8', { qc: (q) => { q.nbits_per_codebook = 12; } }, /tensor "model\.layers\.0\.mlp\.down_proj\.codes" is I8 but nbits_per_codebook 12 .* needs int16/],
  ['AQLM missing scales', 'aqlm-2x8-og2', { tensors: (t) => t.delete('model.layers.1.mlp.down_proj.scales') }, /AQLM module "model\.layers\.1\.mlp\.down_proj" has no "model\.layers\.1\.mlp\.down_proj\.scales" tensor/],
  ['NaN in AWQ scales', 'awq-gemv-g64', { tensors: (t) => { (t.get('model.layers.1.self_attn.o_proj.scales')!.data as Uint16Array)[3] = 0x7e00; } }, /tensor "model\.layers\.1\.self_attn\.o_proj\.scales" holds NaN at \[0, 3\] of \[128, 16\]; the checkpoint is corrupt/],
  ['Inf in bnb absmax', 'bnb-fp4', { tensors: (t) => { (t.get('model.layers.0.mlp.up_proj.weight.absmax')!.data as Float32Array)[5] = Infinity; } }, /tensor "model\.layers\.0\.mlp\.up_proj\.weight\.absmax" holds Infinity at \[5\] of \[512\]/],
  ['NaN in bnb 8-bit SCB', 'bnb-int8', { tensors: (t) => { (t.get('model.layers.1.mlp.gate_proj.SCB')!.data as Float32Array)[0] = NaN; } }, /tensor "model\.layers\.1\.mlp\.gate_proj\.SCB" holds NaN/],
  ['NaN in AQLM codebooks', 'aqlm-2x8', { tensors: (t) => { (t.get('model.layers.0.self_attn.v_proj.codebooks')!.data as Uint16Array)[9] = 0xfe00; } }, /tensor "model\.layers\.0\.self_attn\.v_proj\.codebooks" holds NaN at \[0, 1, 0, 1\] of \[2, 256, 1, 8\]/],
];

for (const [what, fixture, edit, re] of BAD) {
  test(`bad file, one clear line: ${what}`, async () => {
    const d = await mutated(fixture, edit);
    try { assert.match(await loadError(d.path), re); } finally { d.cleanup(); }
  });
}
