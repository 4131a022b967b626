/**
 * The AWQ / bitsandbytes / AQLM fixtures of test/fixtures/formats/ (made by scripts/fixtures/make_format_fixtures.py,
 * listed in its README.md) and their float64 dequantization by the independent reference (test/reference/formats-ref.ts):
 * the files are parsed by the reference's own reader, not through src/. `effectiveWeights` is the product side: each
 * quantized linear as the product loads it (src/formats), run in ONNX Runtime on the identity matrix.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/graph/builder.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { archFor } from '../src/models/registry.ts';
import { openWeights } from '../src/runtime/open-weights.ts';
import { aqlmDequantize, awqDequantize, bnb4Dequantize, bnb8Dequantize, readRawSafetensors, values, type RawTensor } from './reference/formats-ref.ts';

export const FORMAT_FIXTURES_DIR = join(ROOT, 'test', 'fixtures', 'formats');

export interface FormatFixture {
  name: string; dir: string; format: 'awq' | 'bnb4' | 'bnb8' | 'aqlm';
  config: Record<string, any>; meta: Record<string, any>;
  tensors: Map<string, RawTensor>;
  /** Input ids [S] and the float64 Transformers logits of the dequantized model [S, V]. */
  ids: number[]; logits: Float64Array; S: number; V: number;
  quantized: string[];
}

export function listFormatFixtures(): string[] {
  if (!existsSync(FORMAT_FIXTURES_DIR)) return [];
  return readdirSync(FORMAT_FIXTURES_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(FORMAT_FIXTURES_DIR, e.name, 'expected.json'))).map((e) => e.name).sort();
}

export function loadFormatFixture(name: string): FormatFixture {
  const dir = join(FORMAT_FIXTURES_DIR, name);
  const meta = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const exp = readRawSafetensors(join(dir, 'expected.safetensors')).get('logits')!;
  const [, S, V] = exp.shape as [number, number, number];
  return {
    name, dir, format: meta.format, config, meta, tensors: readRawSafetensors(join(dir, 'model.safetensors')),
    ids: meta.input_ids[0], logits: values(exp), S, V, quantized: meta.quantized_modules,
  };
}

/** [out, in] of a Llama linear in the fixture config. */
export function linearShape(cfg: Record<string, any>, m: string): [number, number] {
  const H = cfg.hidden_size, I = cfg.intermediate_size, d = cfg.head_dim ?? H / cfg.num_attention_heads;
  const rel = m.replace(/^model\.layers\.\d+\./, '');
  const shapes: Record<string, [number, number]> = {
    'self_attn.q_proj': [cfg.num_attention_heads * d, H], 'self_attn.k_proj': [cfg.num_key_value_heads * d, H],
    'self_attn.v_proj': [cfg.num_key_value_heads * d, H], 'self_attn.o_proj': [H, cfg.num_attention_heads * d],
    'mlp.gate_proj': [I, H], 'mlp.up_proj': [I, H], 'mlp.down_proj': [H, I],
  };
  return shapes[rel]!;
}

/** The reference's float64 weight [out, in] of quantized module `m`. */
export function referenceWeight(f: FormatFixture, m: string): Float64Array {
  const [outF, inF] = linearShape(f.config, m);
  const q = f.config.quantization_config;
  switch (f.format) {
    case 'awq': return awqDequantize(f.tensors, m, q.version ?? q.format, q.group_size, inF, outF);
    case 'bnb4': return bnb4Dequantize(f.tensors, m).W;
    case 'bnb8': return bnb8Dequantize(f.tensors, m);
    case 'aqlm': return aqlmDequantize(f.tensors, m).W;
  }
}

/** Each quantized linear of `f` on the identity: its effective weights W [out, in] as the loaded graph computes them. */
export async function effectiveWeights(f: FormatFixture, o: { dequantize?: boolean } = {}): Promise<{ weights: Map<string, Float32Array>; kernels: Map<string, string> }> {
  const cfg = await loadModelConfig(f.dir);
  const fw = await openWeights(f.dir, cfg, archFor(cfg.modelType), { accuracyLevel: 0, dequantize: o.dequantize });
  const w = fw.source(), g = new GraphBuilder('eye'), feeds: Record<string, ort.Tensor> = {};
  for (const m of f.quantized) {
    const [outF, inF] = linearShape(f.config, m);
    const x = g.input(`x_${m}`, 'float32', [inF, inF]);
    const eye = new Float32Array(inF * inF);
    for (let i = 0; i < inF; i++) eye[i * inF + i] = 1;
    feeds[x] = new ort.Tensor('float32', eye, [inF, inF]);
    const hasBias = f.tensors.has(`${m}.bias`);
    g.output(w.linear(g, x, { name: m, inFeatures: inF, outFeatures: outF, bias: hasBias }), 'float32', undefined, `y_${m}`);
  }
  const s = await ort.InferenceSession.create(g.toBytes());
  const r = await s.run(feeds);
  const weights = new Map<string, Float32Array>();
  for (const m of f.quantized) {
    const [outF, inF] = linearShape(f.config, m);
    const y = r[`y_${m}`]!.data as Float32Array, b = f.tensors.has(`${m}.bias`) ? values(f.tensors.get(`${m}.bias`)!) : undefined;
    const W = new Float32Array(outF * inF);
    // y[i, o] = W[o, i] + b[o]; subtract the bias in float32 the way it was added (exact when W was exact)
    for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) W[o * inF + i] = Math.fround(y[i * outF + o]! - (b ? b[o]! : 0));
    weights.set(m, W);
  }
  await s.release();
  return { weights, kernels: new Map(fw.quantization!.modules.map((x) => [x.name, x.kernel])) };
}
