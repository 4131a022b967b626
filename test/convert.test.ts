/**
 * gptq convert --to gptq: every AWQ fixture rewritten in the AutoGPTQ format. The written tensors, dequantized by the
 * independent AutoGPTQ reference (test/reference/formats-ref.ts gptq4Dequantize), equal the AWQ reference weights
 * exactly; the converted checkpoint loads through the GPTQ path and gives the AWQ checkpoint's logits bit for bit;
 * v1 is written unless a zero point is 0 (then gptq_v2), --format gptq refuses such a zero; output folder rules hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { convertAwqToGptq } from '../src/formats/convert.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { buildCausalLM } from '../src/graph/model-graph.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import { openWeights } from '../src/runtime/open-weights.ts';
import { GptqError } from '../src/errors.ts';
import { linearShape, listFormatFixtures, loadFormatFixture, referenceWeight } from './fixture-formats.ts';
import { gptq4Dequantize, readRawSafetensors } from './reference/formats-ref.ts';
import { ROOT, tmpDir } from './helpers.ts';

const awq = listFormatFixtures().filter((n) => n.startsWith('awq-'));
const quiet = () => {};

for (const name of awq) {
  test(`convert ${name} → GPTQ: identical weights (independent readers), identical logits`, async () => {
    const f = loadFormatFixture(name), d = tmpDir('gptqjs-conv-');
    try {
      const out = join(d.path, 'gptq');
      const r = await convertAwqToGptq(f.dir, out);
      const hasZero0 = f.meta.features.some((x: string) => x.includes('zero points 0'));
      assert.equal(r.format, hasZero0 ? 'gptq_v2' : 'gptq');
      const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      for (const c of [qc, cfg.quantization_config]) {
        assert.equal(c.quant_method, 'gptq'); assert.equal(c.bits, 4); assert.equal(c.group_size, f.config.quantization_config.group_size);
        assert.equal(c.desc_act, false); assert.equal(c.sym, false); assert.equal(c.checkpoint_format, r.format);
      }
      const t = readRawSafetensors(join(out, 'model.safetensors'));
      for (const m of f.quantized) {
        const [outF, inF] = linearShape(f.config, m);
        const a = referenceWeight(f, m), b = gptq4Dequantize(t, m, r.format, inF, outF);
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.fail(`${m}[${i}]: AWQ ${a[i]} vs GPTQ ${b[i]}`);
        assert.equal(t.get(`${m}.g_idx`)!.dtype, 'I32');
        assert.equal(t.has(`${m}.bias`), f.tensors.has(`${m}.bias`));
      }
      for (const [n, x] of f.tensors) { // every non-quantized tensor copied byte for byte
        if (f.quantized.some((m) => n.startsWith(`${m}.`))) continue;
        assert.deepEqual(Buffer.from(t.get(n)!.bytes), Buffer.from(x.bytes), n);
      }
      // the same graph, byte for byte (so the same speed): AWQ loads as the GPTQ form it converts to
      const cfgA = await loadModelConfig(f.dir), cfgB = await loadModelConfig(out), arch = archFor(cfgA.modelType);
      const wa = await openWeights(f.dir, cfgA, arch, { accuracyLevel: 0 }), wb = await openWeights(out, cfgB, arch, { accuracyLevel: 0 });
      const ga = buildCausalLM(arch, cfgA, wa.source(), { kvCache: true, kvMode: 'gqa' }).toBytes(), gb = buildCausalLM(arch, cfgB, wb.source(), { kvCache: true, kvMode: 'gqa' }).toBytes();
      assert.ok(Buffer.from(ga).equals(Buffer.from(gb)), 'AWQ and converted GPTQ graphs differ');
      const a = await CausalLM.load(f.dir, { graphCache: false, onLog: quiet }), b = await CausalLM.load(out, { graphCache: false, onLog: quiet });
      try {
        assert.equal(a.quantization?.method, 'awq'); assert.equal(b.quantization?.method, 'gptq');
        const la = await a.logits([f.ids]), lb = await b.logits([f.ids]);
        assert.deepEqual(lb, la);
      } finally { await a.dispose(); await b.dispose(); }
    } finally { d.cleanup(); }
  });
}

test('convert: --format gptq refuses a zero point of 0; gptq_v2 can be forced; only AWQ converts; output folder rules', async () => {
  const d = tmpDir('gptqjs-conv-');
  try {
    const g128 = loadFormatFixture('awq-gemm-g128').dir, g64 = loadFormatFixture('awq-gemv-g64').dir;
    await assert.rejects(convertAwqToGptq(g128, join(d.path, 'a'), { format: 'gptq' }),
      (e: unknown) => e instanceof GptqError && /^convert: 1 zero points are 0, which the v1 'gptq' format cannot store \(its qzeros hold zero − 1\); use format gptq_v2/.test(e.message));
    assert.equal((await convertAwqToGptq(g64, join(d.path, 'b'), { format: 'gptq_v2' })).format, 'gptq_v2');
    await assert.rejects(convertAwqToGptq(loadFormatFixture('bnb-nf4').dir, join(d.path, 'c')),
      (e: unknown) => e instanceof GptqError && /is bitsandbytes; only AWQ converts losslessly to GPTQ/.test(e.message));
    await assert.rejects(convertAwqToGptq(g64, g64), (e: unknown) => e instanceof GptqError && /is the source model folder/.test(e.message));
    writeFileSync(join(d.path, 'b', 'notes.txt'), 'mine');
    await assert.rejects(convertAwqToGptq(g64, join(d.path, 'b'), { format: 'gptq_v2' }), (e: unknown) => e instanceof GptqError && /is not empty/.test(e.message));
    await convertAwqToGptq(g64, join(d.path, 'b'), { format: 'gptq_v2', overwrite: true });
    assert.equal(readFileSync(join(d.path, 'b', 'notes.txt'), 'utf8'), 'mine');
    // the same conversion into its own earlier output is allowed (same run)
    await convertAwqToGptq(g128, join(d.path, 'e'));
    await convertAwqToGptq(g128, join(d.path, 'e'));
  } finally { d.cleanup(); }
});

test('gptq convert CLI: --json result; inspect shows the formats', () => {
  const d = tmpDir('gptqjs-conv-');
  try {
    const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });
    const src = loadFormatFixture('awq-gemv-g32').dir, out = join(d.path, 'o');
    const r = run(['convert', src, '--to', 'gptq', '--out', out, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.format, 'gptq'); assert.equal(j.modules, 14);
    assert.match(run(['convert', src, '--out', out]).stderr, /^gptq: convert: --to is required/);
    const ins = JSON.parse(run(['inspect', out, '--json']).stdout);
    assert.equal(ins.quantization.method, 'gptq');
    for (const [fx, method, re] of [['awq-gemv-g32', 'awq', /^AWQ 4-bit gemv, group 32, zero_point false$/], ['bnb-nf4-dq-bf16', 'bitsandbytes', /^bitsandbytes 4-bit nf4 double-quant block 64$/],
      ['bnb-int8', 'bitsandbytes', /LLM\.int8/], ['aqlm-2x8-og2', 'aqlm', /^AQLM 2x8, in_group_size 4, out_group_size 2/]] as const) {
      const x = JSON.parse(run(['inspect', loadFormatFixture(fx).dir, '--json']).stdout);
      assert.equal(x.quantization.method, method, fx);
      assert.match(x.quantization.summary, re);
      assert.equal(x.quantizedModules.length, 14, fx);
      assert.ok(x.quantization.bitsPerWeight.codes >= 2 && x.quantization.bitsPerWeight.total > x.quantization.bitsPerWeight.codes, fx);
    }
  } finally { d.cleanup(); }
});
