import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { estimateMemory } from '../src/quant/memory.ts';
import { solveParts } from '../src/quant/gptq.ts';
import { resolveQuantizeConfig } from '../src/quant/quantize-config.ts';
import { llama } from '../src/models/llama.ts';
import { llamaTensors, llamaConfig, writeCheckpoint, type LlamaOpts } from './synth.ts';
import { ROOT, rng, tmpDir } from './helpers.ts';

const DIMS: LlamaOpts = { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 96, seed: 4 };
const examples = (n = 8, len = 16, vocab = 96) => { const r = rng(2); return Array.from({ length: n }, () => ({ inputIds: Array.from({ length: len }, () => Math.floor(r() * vocab)) })); };

/** Synthetic checkpoint with one tensor edited. */
async function edited(dir: string, edit: (t: ReturnType<typeof llamaTensors>) => void) {
  const t = llamaTensors(DIMS); edit(t); await writeCheckpoint(dir, llamaConfig(DIMS), t);
}

test('NaN in a weight: clear error naming the tensor, nothing written', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await edited(src, (w) => { (w['model.layers.1.mlp.up_proj.weight']!.data as Float32Array)[5] = NaN; });
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    await assert.rejects(m.quantize(examples(), { workDir: join(t.path, 'work') }), /tensor "model\.layers\.1\.mlp\.up_proj\.weight" contains NaN or Inf/);
    await m.dispose();
    assert.deepEqual(readdirSync(t.path).sort(), ['src', 'work']);
    assert.deepEqual(readdirSync(join(t.path, 'work')).filter((f) => f.startsWith('.')), [], 'no temp files');
  } finally { t.cleanup(); }
});

test('Inf/NaN calibration activations: error names the layer', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await edited(src, (w) => { const e = w['model.embed_tokens.weight']!.data as Float32Array; for (let v = 0; v < 96; v++) e[v * 64 + 7] = Infinity; });
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    await assert.rejects(m.quantize(examples()), /calibration activations are NaN\/Inf at the input of layer 0/);
    await m.dispose();
    // Finite but huge weights: activations overflow inside layer 0, and the weight's fp16 scale would too; the error
    // names the module or layer.
    await edited(src, (w) => { (w['model.layers.0.mlp.up_proj.weight']!.data as Float32Array).fill(1e19); });
    const m2 = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    await assert.rejects(m2.quantize(examples()), /NaN\/Inf at the output of layer 0|model\.layers\.0\.[a-z_.]+: .*(non-finite|above float16's largest value 65504)/);
    await m2.dispose();
  } finally { t.cleanup(); }
});

test('all-zero Hessian columns (dead inputs): quantizes, dead columns are zero, losses finite', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    const dead = [3, 17, 40];
    await edited(src, (w) => { for (const c of dead) (w['model.layers.0.input_layernorm.weight']!.data as Float32Array)[c] = 0; });
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    const r = await m.quantize(examples(), { keepDequantized: true });
    const q = r.dequantized.get('model.layers.0.self_attn.q_proj.weight')!;
    for (let o = 0; o < 64; o++) for (const c of dead) assert.equal(q[o * 64 + c], 0);
    for (const [n, l] of r.losses) assert.ok(Number.isFinite(l), `${n} loss ${l}`);
    await m.dispose();
  } finally { t.cleanup(); }
});

test('tokenizer/vocab mismatch: calibration ids beyond vocab_size are refused', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await edited(src, () => {});
    const m = await GPTQModel.fromPretrained(src);
    await assert.rejects(m.quantize(examples(4, 16, 500)), /token id \d+ is outside the model's vocabulary \(vocab_size 96/);
    await m.dispose();
  } finally { t.cleanup(); }
});

test('unsupported dtype for a weight: one-line error naming file and tensor', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await edited(src, (w) => { w['model.layers.0.self_attn.k_proj.weight'] = { dtype: 'I8', shape: [32, 64], data: new Int8Array(32 * 64) }; });
    const m = await GPTQModel.fromPretrained(src);
    await assert.rejects(m.quantize(examples()), /model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has dtype I8, not a float type/);
    await m.dispose();
  } finally { t.cleanup(); }
});

test('disk full while saving (file size limit): no partial output, no temp files', () => {
  const t = tmpDir();
  try {
    const out = join(t.path, 'q');
    const cmd = `trap "" XFSZ; ulimit -f 400; exec "${process.execPath}" "${join(ROOT, 'bin', 'gptq.js')}" quantize --out "${out}" --nsamples 4 --seqlen 64 --group-size 32`;
    const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot write safetensors file: .*(EFBIG|file too large|ENOSPC)/i);
    assert.ok(!existsSync(out), 'no output directory');
    assert.deepEqual(readdirSync(t.path).filter((f) => f !== 'q.partial'), [], `leftovers: ${readdirSync(t.path)}`);
  } finally { t.cleanup(); }
});

test('--max-memory: a plan over the limit is refused up front with its estimate; nothing is written', async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await edited(src, () => {});
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
    await assert.rejects(m.quantize(examples(), { workDir: join(t.path, 'work'), maxMemory: 50e6 }),
      /estimated peak memory \d+ MB exceeds `maxMemory` \(CLI: --max-memory\) 50 MB \(layer weights .*activations .* for 128 tokens.*smaller `batchTokens` \(CLI: --batch-tokens\)$/);
    assert.deepEqual(readdirSync(t.path), ['src']);
    const r = await m.quantize(examples(), { maxMemory: 2e9 }); // the same plan fits in 2 GB
    assert.ok(r.quantized.size > 0);
    await m.dispose();
  } finally { t.cleanup(); }
});

test('memory estimate at Llama-7B layer shapes: activation, Hessian and weight terms', () => {
  const cfg = { hiddenSize: 4096, intermediateSize: 11008, numHeads: 32, numKvHeads: 32, headDim: 128, numLayers: 4, vocabSize: 32000 } as Parameters<typeof estimateMemory>[1];
  const q = resolveQuantizeConfig({ bits: 4, groupSize: 128 });
  const e16 = estimateMemory(llama, cfg, q, 128 * 512, 512, 2048), e32 = estimateMemory(llama, cfg, q, 128 * 512, 512, 2048, 'float32');
  assert.equal(e16.activations, 2 * 4096 * 65536);
  assert.equal(e32.activations, 2 * e16.activations);
  // down_proj's H (factorized in place) + the larger of: while summing, one panel's product and its copy and the tap
  // rows transposed in 2^24-float chunks; at the end, H scaled into its shared-memory copy (the larger, here)
  assert.equal(e16.hessians, 4 * 11008 ** 2 + Math.max(2 * 4 * 1024 * 11008 + 4 * 2 ** 24, 4 * 11008 ** 2));
  assert.equal(e16.hessians, 8 * 11008 ** 2);
  assert.equal(e16.layerWeights, 4 * 4096 ** 2 + 3 * 4096 * 11008); // 1-byte codes, dequantized in-graph
  // the largest GPTQ working set: down_proj (in 11008); solved by worker threads (more than one core) it also holds
  // the joined codes and Hinv's own buffer (where H is not consumed; counted for every linear), not copies of the
  // weight's rows (read into shared memory); plus the factorization's panels, and the panel form's solve buffers
  // (a panel's Z − Err and errors: 2 × 1024 rows of 4096; each slice's block of V) in place of all columns' errors
  const w = 4096 * 11008, parts = solveParts(4096, 11008, undefined);
  assert.equal(e16.gptq, (parts > 1 ? 15 * w + 4 * 11008 ** 2 : 14 * w) + 4 * 11008 * (2 * 1024 + 512) + 4 * 2 * 1024 * 4096 - 4 * w + 4 * 2 ** 22 * parts);
  const actOrder = estimateMemory(llama, cfg, resolveQuantizeConfig({ bits: 4, groupSize: 128, descAct: true }), 128 * 512, 512, 2048);
  assert.equal(actOrder.layerWeights, 5 * e16.layerWeights); // + fp32 copies: act-order groups are not column blocks
  assert.ok(e16.total < e32.total);
});
