/**
 * The AWQ / bitsandbytes / AQLM fixtures of test/fixtures/formats/ (made by scripts/fixtures/make_format_fixtures.py,
 * listed in its README.md) and their float64 dequantization by the independent reference (test/reference/formats-ref.ts).
 * Nothing here goes through src/: the files are parsed by the reference's own reader.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';
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
