/**
 * Rewrite a synthetic fp checkpoint (scripts/synth-model.ts) in one of the non-GPTQ formats with RANDOM codes, for
 * speed and memory measurements only (the weights mean nothing; the layouts are the formats' own, as in
 * scripts/fixtures/make_format_fixtures.py, whose header cites the source of every rule):
 *   node --import tsx scripts/synth-formats.ts --src DIR --out DIR --format awq|bnb-nf4|bnb-nf4-dq|bnb-int8|aqlm-2x8|aqlm-1x16
 * Non-linear tensors (embeddings, norms, lm_head) are copied; each decoder linear gets random tensors of its format:
 *   awq        AutoAWQ GEMM, group 128, zero points in 1..15 (so that `gptq convert` writes AutoGPTQ v1)
 *   bnb-nf4    bitsandbytes NF4, blocksize 64 (bnb-nf4-dq: with double quantization)
 *   bnb-int8   LLM.int8 (int8 weight + SCB + weight_format)
 *   aqlm-2x8 / aqlm-1x16   AQLM, in_group_size 8, out_group_size 1
 * The GPTQ twin of the AWQ checkpoint (same codes, zeros and scales) is `gptq convert OUT --to gptq --out DIR`.
 */
import { parseArgs } from 'node:util';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, lazyFrom, saveSharded, type LazyTensor, type TensorLike } from '../src/io/safetensors.ts';
import { mulberry32 } from '../src/io/random.ts';
import { toF16Bits, type TypedArray } from '../src/tensor.ts';
import { ORT_BNB4_TABLES } from '../src/formats/bnb.ts';

const { values: v } = parseArgs({ options: { src: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, seed: { type: 'string' } } });
const FORMATS = ['awq', 'bnb-nf4', 'bnb-nf4-dq', 'bnb-int8', 'aqlm-2x8', 'aqlm-1x16'];
if (!v.src || !v.out || !v.format || !FORMATS.includes(v.format)) throw new Error(`usage: --src DIR --out DIR --format ${FORMATS.join('|')}`);
const fmt = v.format;
let seed = Number(v.seed ?? 7);

const cfg = JSON.parse(await fs.readFile(join(v.src, 'config.json'), 'utf8'));
const ck = await Checkpoint.open(v.src);
const lazy = (dtype: LazyTensor['dtype'], shape: number[], fill: (r: () => number, n: number) => TypedArray): LazyTensor => {
  const s = seed++;
  return { dtype, shape, load: async () => fill(mulberry32(s), shape.reduce((a, b) => a * b, 1)) };
};
const randInt32 = (r: () => number, n: number) => Int32Array.from({ length: n }, () => (r() * 2 ** 32) | 0);
const randBytes = (r: () => number, n: number) => Uint8Array.from({ length: n }, () => (r() * 256) | 0);
const f16 = (lo: number, hi: number) => (r: () => number, n: number) => toF16Bits(Float32Array.from({ length: n }, () => lo + r() * (hi - lo)));
/** int32 words of 8 nibbles, each in 1..15 */
const zeroWords = (r: () => number, n: number) => Int32Array.from({ length: n }, () => { let w = 0; for (let p = 0; p < 8; p++) w |= (1 + ((r() * 15) | 0)) << (4 * p); return w; });

const out = new Map<string, TensorLike>();
const linear = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;
for (const n of ck.names()) {
  if (!linear.test(n)) { out.set(n, lazyFrom(ck, n)); continue; }
  const m = n.slice(0, -'.weight'.length), [N, K] = ck.info(n).shape as [number, number];
  if (fmt === 'awq') {
    const g = 128;
    out.set(`${m}.qweight`, lazy('I32', [K, N / 8], randInt32));
    out.set(`${m}.qzeros`, lazy('I32', [K / g, N / 8], zeroWords));
    out.set(`${m}.scales`, lazy('F16', [K / g, N], f16(0.001, 0.01)));
  } else if (fmt.startsWith('bnb-nf4')) {
    const nb = Math.ceil((N * K) / 64);
    out.set(`${m}.weight`, lazy('U8', [(N * K) / 2, 1], randBytes));
    out.set(`${m}.weight.quant_map`, { dtype: 'F32', shape: [16], data: ORT_BNB4_TABLES.nf4.slice() });
    const qs: Record<string, unknown> = { quant_type: 'nf4', blocksize: 64, dtype: 'float16', shape: [N, K] };
    if (fmt === 'bnb-nf4-dq') {
      out.set(`${m}.weight.absmax`, lazy('U8', [nb], randBytes));
      out.set(`${m}.weight.nested_absmax`, lazy('F32', [Math.ceil(nb / 256)], (r, c) => Float32Array.from({ length: c }, () => 0.01 + r() * 0.01)));
      out.set(`${m}.weight.nested_quant_map`, { dtype: 'F32', shape: [256], data: Float32Array.from({ length: 256 }, (_, i) => -1 + (2 * i) / 255) });
      Object.assign(qs, { nested_blocksize: 256, nested_dtype: 'float32', nested_offset: 0.03 });
    } else out.set(`${m}.weight.absmax`, lazy('F32', [nb], (r, c) => Float32Array.from({ length: c }, () => 0.02 + r() * 0.04)));
    const js = new TextEncoder().encode(JSON.stringify(qs));
    out.set(`${m}.weight.quant_state.bitsandbytes__nf4`, { dtype: 'U8', shape: [js.length], data: js });
  } else if (fmt === 'bnb-int8') {
    out.set(`${m}.weight`, lazy('I8', [N, K], (r, c) => Int8Array.from({ length: c }, () => ((r() * 255) | 0) - 127)));
    out.set(`${m}.SCB`, lazy('F32', [N], (r, c) => Float32Array.from({ length: c }, () => 0.05 + r() * 0.05)));
    out.set(`${m}.weight_format`, { dtype: 'U8', shape: [], data: Uint8Array.of(0) });
  } else {
    const [C, nbits] = fmt === 'aqlm-2x8' ? [2, 8] : [1, 16];
    out.set(`${m}.codes`, nbits === 8 ? lazy('I8', [N, K / 8, C], (r, c) => Int8Array.from({ length: c }, () => ((r() * 256) | 0) - 128))
      : lazy('I16', [N, K / 8, C], (r, c) => Int16Array.from({ length: c }, () => ((r() * 65536) | 0) - 32768)));
    out.set(`${m}.codebooks`, lazy('F16', [C, 2 ** nbits, 1, 8], f16(-0.5, 0.5)));
    out.set(`${m}.scales`, lazy('F16', [N, 1, 1, 1], f16(0.01, 0.02)));
  }
}
const qc: Record<string, Record<string, unknown>> = {
  awq: { quant_method: 'awq', zero_point: true, group_size: 128, bits: 4, version: 'gemm', modules_to_not_convert: null },
  'bnb-nf4': { quant_method: 'bitsandbytes', load_in_4bit: true, load_in_8bit: false, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: false, bnb_4bit_compute_dtype: 'float16', bnb_4bit_quant_storage: 'uint8', llm_int8_skip_modules: null },
  'bnb-nf4-dq': { quant_method: 'bitsandbytes', load_in_4bit: true, load_in_8bit: false, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'float16', bnb_4bit_quant_storage: 'uint8', llm_int8_skip_modules: null },
  'bnb-int8': { quant_method: 'bitsandbytes', load_in_4bit: false, load_in_8bit: true, llm_int8_threshold: 6.0, llm_int8_skip_modules: null },
  'aqlm-2x8': { quant_method: 'aqlm', in_group_size: 8, out_group_size: 1, num_codebooks: 2, nbits_per_codebook: 8, linear_weights_not_to_quantize: ['lm_head.weight', 'model.embed_tokens.weight'] },
  'aqlm-1x16': { quant_method: 'aqlm', in_group_size: 8, out_group_size: 1, num_codebooks: 1, nbits_per_codebook: 16, linear_weights_not_to_quantize: ['lm_head.weight', 'model.embed_tokens.weight'] },
};
await fs.mkdir(v.out, { recursive: true });
await saveSharded(v.out, out, { maxShardSize: '5GB', metadata: { format: 'pt' } });
await fs.writeFile(join(v.out, 'config.json'), JSON.stringify({ ...cfg, quantization_config: qc[fmt], _synthetic: `random ${fmt} codes, gptqjs scripts/synth-formats.ts` }, null, 2) + '\n');
await ck.dispose();
console.log(`wrote ${v.out} (${fmt})`);
