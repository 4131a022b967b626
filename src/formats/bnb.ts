/**
 * bitsandbytes checkpoints as Transformers saves them (`quant_method: "bitsandbytes"`): 4-bit NF4/FP4 with optional
 * double quantization (QLoRA), and 8-bit LLM.int8.
 *
 * 4-bit, per quantized linear (bitsandbytes/nn/modules.py Linear4bit._save_to_state_dict → bitsandbytes/functional.py
 * QuantState.as_dict(packed=True); read back by transformers/integrations/bitsandbytes.py Bnb4bitDeserialize →
 * Params4bit.from_prequantized → QuantState.from_dict):
 *   weight                       the packed codes: (out·in+1)/2 bytes (uint8 [n, 1], or the same bytes viewed as
 *                                bnb_4bit_quant_storage, e.g. bfloat16); byte j = value 2j (HIGH nibble) | value 2j+1
 *                                (low nibble) of the row-major flattened [out, in] weight
 *                                (bitsandbytes/backends/default/ops.py quantize_4bit / _dequantize_4bit_compute)
 *   weight.absmax                float32 [ceil(n/blocksize)]; uint8 codes when nested
 *   weight.quant_map             float32 [16]: the NF4 or FP4 table (functional.py get_4bit_type)
 *   weight.nested_absmax         float32 [ceil(blocks/nested_blocksize)]        (double quant only)
 *   weight.nested_quant_map      float32 [256]: the signed dynamic map          (double quant only)
 *   weight.quant_state.bitsandbytes__nf4|fp4   uint8: UTF-8 JSON of quant_type, blocksize, dtype, shape and, nested,
 *                                nested_blocksize, nested_dtype, nested_offset (bitsandbytes/utils.py pack_dict_to_tensor)
 * Dequantization, float32 as bitsandbytes computes it: absmax = nested_quant_map[qa]·nested_absmax[⌊b/nb⌋] +
 * nested_offset (functional.py dequantize_4bit → dequantize_blockwise, then `absmax += offset`); W[k] =
 * quant_map[q_k]·absmax[⌊k/blocksize⌋].
 *
 * 8-bit (bitsandbytes/nn/modules.py Linear8bitLt._save_to_state_dict, Int8Params; transformers Bnb8bitDeserialize):
 *   weight int8 [out, in], SCB float32 [out] (absmax of each row), weight_format uint8 [] (0 = "row", the only layout
 *   bitsandbytes ≥ 0.44 loads: modules.py maybe_rearrange_weight). W = weight·SCB/127, computed as bitsandbytes does
 *   (autograd/_functions.py): weight·(SCB·(1/127)) in float32. LLM.int8's outlier threshold is an activation-side
 *   inference scheme, not part of the weights; gptqjs computes with the exact dequantized weights.
 */
import type { Checkpoint } from '../io/safetensors.ts';
import { fail } from '../errors.ts';
import { expectTensor, field, fileOf, listField, shapeStr, readFinite, type FormatSource } from './common.ts';

export interface BnbConfig {
  bits: 4 | 8;
  /** 4-bit: the configured quant type and double quantization (each module's quant state is what is used). */
  quantType?: 'nf4' | 'fp4'; doubleQuant?: boolean; computeDtype?: string; quantStorage?: string;
  skipModules: string[];
  from: string;
}

export function parseBnbConfig(src: FormatSource): BnbConfig {
  const { raw, from } = src;
  const l4 = field(raw, 'load_in_4bit', '_load_in_4bit'), l8 = field(raw, 'load_in_8bit', '_load_in_8bit');
  for (const [k, v] of [['load_in_4bit', l4], ['load_in_8bit', l8]] as const) if (v !== undefined && typeof v !== 'boolean') fail(`${from}: ${k} must be true or false, got ${JSON.stringify(v)}`);
  if (l4 === true && l8 === true) fail(`${from}: load_in_4bit and load_in_8bit are both true`);
  if (l4 !== true && l8 !== true) fail(`${from}: bitsandbytes config has neither load_in_4bit nor load_in_8bit set to true`);
  const skipModules = listField(raw, from, 'llm_int8_skip_modules');
  if (l8 === true) return { bits: 8, skipModules, from };
  const qt = String(field(raw, 'bnb_4bit_quant_type') ?? 'fp4').toLowerCase();
  if (qt !== 'nf4' && qt !== 'fp4') fail(`${from}: bnb_4bit_quant_type ${JSON.stringify(qt)} is not supported (nf4, fp4)`);
  const dq = field(raw, 'bnb_4bit_use_double_quant') ?? false;
  if (typeof dq !== 'boolean') fail(`${from}: bnb_4bit_use_double_quant must be true or false, got ${JSON.stringify(dq)}`);
  return {
    bits: 4, quantType: qt, doubleQuant: dq, computeDtype: field(raw, 'bnb_4bit_compute_dtype') as string | undefined,
    quantStorage: field(raw, 'bnb_4bit_quant_storage') as string | undefined, skipModules, from,
  };
}

export const BNB8_SUMMARY = 'bitsandbytes 8-bit LLM.int8 (row-wise absmax)';
/** "bitsandbytes 4-bit nf4 double-quant block 64" from the quant states of the modules. */
export const bnb4Summary = (states: Bnb4State[]) =>
  `bitsandbytes 4-bit ${[...new Set(states.map((st) => `${st.quantType}${st.nested ? ' double-quant' : ''} block ${st.blocksize}`))].join(', ')}`;

/** Modules stored in bitsandbytes 4-bit form: those with any QuantState tensor next to their weight. */
export function bnb4ModuleNames(ck: Checkpoint): string[] {
  const s = new Set<string>();
  for (const n of ck.names()) {
    const m = /^(.*)\.weight\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__\w+)$/.exec(n);
    if (m) s.add(m[1]!);
  }
  return [...s].sort();
}

/** Modules stored in LLM.int8 form: those with `<module>.SCB`. */
export function bnb8ModuleNames(ck: Checkpoint): string[] {
  return ck.names().filter((n) => n.endsWith('.SCB')).map((n) => n.slice(0, -4)).sort();
}

/** The 4-bit quant state of one module (QuantState.from_dict), checked against the tensors and the linear. */
export interface Bnb4State {
  quantType: 'nf4' | 'fp4'; blocksize: number; shape: [number, number]; dtype: string;
  nested?: { blocksize: number; offset: number; dtype: string };
}

const KNOWN_KEYS = new Set(['quant_type', 'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset']);
const BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]; // functional.py quantize_4bit / dequantize_4bit

export async function readBnb4State(ck: Checkpoint, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<Bnb4State> {
  const where = fileOf(ck);
  const keys = ck.names().filter((n) => n.startsWith(`${m}.weight.quant_state.bitsandbytes__`));
  if (!keys.length) fail(`${where}: bitsandbytes 4-bit module "${m}" has no "${m}.weight.quant_state.bitsandbytes__nf4" (or __fp4) tensor (the packed quant state: quant_type, blocksize, shape, …)`);
  if (keys.length > 1) fail(`${where}: bitsandbytes module "${m}" has ${keys.length} quant_state tensors (${keys.join(', ')}); expected one`);
  const key = keys[0]!, suffix = key.slice(key.lastIndexOf('__') + 2);
  if (suffix !== 'nf4' && suffix !== 'fp4') fail(`${where}: tensor "${key}": quant type "${suffix}" is not supported (nf4, fp4)`);
  const t = await ck.read(key);
  if (t.dtype !== 'U8') fail(`${where}: tensor "${key}" is ${t.dtype}, expected U8 (UTF-8 JSON bytes)`);
  let j: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(t.data as Uint8Array));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    j = parsed as Record<string, unknown>;
  } catch (e) { fail(`${where}: tensor "${key}" is not the UTF-8 JSON of a bitsandbytes quant state (${(e as Error).message.split('\n')[0]})`); }
  const bad = (f: string, need: string) => fail(`${where}: tensor "${key}": field "${f}" is ${JSON.stringify(j[f])}, expected ${need}`);
  for (const k of Object.keys(j)) if (!KNOWN_KEYS.has(k)) fail(`${where}: tensor "${key}": unknown quant state field "${k}" (bitsandbytes QuantState.valid_qs_keys)`);
  if (j.quant_type !== suffix) bad('quant_type', JSON.stringify(suffix));
  if (!BLOCKSIZES.includes(j.blocksize as number)) bad('blocksize', BLOCKSIZES.join('/'));
  const shape = j.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || shape[0] !== spec.outFeatures || shape[1] !== spec.inFeatures) {
    bad('shape', `[${spec.outFeatures}, ${spec.inFeatures}] (the ${m} linear of the model config, [out, in])`);
  }
  if (typeof j.dtype !== 'string') bad('dtype', 'a torch dtype name');
  const st: Bnb4State = { quantType: suffix, blocksize: j.blocksize as number, shape: [spec.outFeatures, spec.inFeatures], dtype: j.dtype as string };
  const nestedKeys = ['nested_blocksize', 'nested_dtype', 'nested_offset'].filter((k) => k in j);
  if (nestedKeys.length && nestedKeys.length !== 3) fail(`${where}: tensor "${key}": has ${nestedKeys.join(', ')} but a nested quant state needs nested_blocksize, nested_dtype and nested_offset`);
  if (nestedKeys.length) {
    if (!(Number.isInteger(j.nested_blocksize) && (j.nested_blocksize as number) > 0)) bad('nested_blocksize', 'a positive integer');
    if (typeof j.nested_offset !== 'number' || !Number.isFinite(j.nested_offset)) bad('nested_offset', 'a number');
    if (j.nested_dtype !== 'float32') bad('nested_dtype', '"float32" (bitsandbytes quantizes absmax in float32)');
    st.nested = { blocksize: j.nested_blocksize as number, offset: j.nested_offset as number, dtype: j.nested_dtype as string };
  }
  // tensors
  const n = spec.outFeatures * spec.inFeatures, blocks = Math.ceil(n / st.blocksize);
  const w = ck.info(`${m}.weight`);
  if (w.byteLength !== Math.ceil(n / 2)) fail(`${where}: tensor "${m}.weight" holds ${w.byteLength} bytes (${w.dtype} ${shapeStr(w.shape)}) but a 4-bit [${spec.outFeatures}, ${spec.inFeatures}] weight packs into ${Math.ceil(n / 2)}`);
  for (const tn of ['absmax', 'quant_map']) if (!ck.has(`${m}.weight.${tn}`)) fail(`${where}: bitsandbytes 4-bit module "${m}" has no "${m}.weight.${tn}" tensor`);
  expectTensor(ck, `${m}.weight.quant_map`, ['F32', 'F16', 'BF16'], [16], 'a 4-bit code table');
  if (st.nested) {
    for (const tn of ['nested_absmax', 'nested_quant_map']) if (!ck.has(`${m}.weight.${tn}`)) fail(`${where}: bitsandbytes module "${m}" has a nested quant state but no "${m}.weight.${tn}" tensor`);
    expectTensor(ck, `${m}.weight.absmax`, ['U8'], [blocks], `double quantization with ${blocks} blocks of ${st.blocksize}`);
    expectTensor(ck, `${m}.weight.nested_absmax`, ['F32'], [Math.ceil(blocks / st.nested.blocksize)], `${blocks} absmax values in blocks of ${st.nested.blocksize}`);
    expectTensor(ck, `${m}.weight.nested_quant_map`, ['F32'], [256], 'an 8-bit code table');
  } else {
    for (const tn of ['nested_absmax', 'nested_quant_map']) if (ck.has(`${m}.weight.${tn}`)) fail(`${where}: tensor "${m}.weight.${tn}" is present but the quant state "${key}" has no nested_* fields`);
    expectTensor(ck, `${m}.weight.absmax`, ['F32', 'F16', 'BF16'], [blocks], `${n} weights in blocks of ${st.blocksize}`);
  }
  return st;
}

/** One 4-bit linear, read: packed codes, its float32 absmax per block (double quantization undone), the code table. */
export interface Bnb4Linear {
  name: string; K: number; N: number; state: Bnb4State;
  packed: Uint8Array; absmax: Float32Array; quantMap: Float32Array; bias?: Float32Array;
}

export async function readBnb4Linear(ck: Checkpoint, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<Bnb4Linear> {
  const state = await readBnb4State(ck, m, spec);
  const w = await ck.read(`${m}.weight`);
  const packed = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength); // any quant_storage dtype: its bytes
  const quantMap = await readFinite(ck, `${m}.weight.quant_map`);
  let absmax: Float32Array;
  if (state.nested) {
    const q = (await ck.read(`${m}.weight.absmax`)).data as Uint8Array;
    const a2 = await readFinite(ck, `${m}.weight.nested_absmax`), code2 = await readFinite(ck, `${m}.weight.nested_quant_map`);
    const nb = state.nested.blocksize, off = Math.fround(state.nested.offset);
    absmax = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) absmax[i] = Math.fround(Math.fround(code2[q[i]!]! * a2[Math.floor(i / nb)]!) + off);
  } else absmax = await readFinite(ck, `${m}.weight.absmax`);
  return {
    name: m, K: spec.inFeatures, N: spec.outFeatures, state, packed, absmax, quantMap,
    bias: ck.has(`${m}.bias`) ? await readFinite(ck, `${m}.bias`) : undefined,
  };
}

/** W [out, in] float32 = quant_map[q]·absmax[block] (bitsandbytes' float32 product). */
export function dequantizeBnb4(l: Bnb4Linear): Float32Array {
  const n = l.N * l.K, W = new Float32Array(n), bs = l.state.blocksize, code = l.quantMap, p = l.packed;
  for (let k = 0; k < n; k++) {
    const byte = p[k >> 1]!;
    W[k] = code[(k & 1) === 0 ? byte >> 4 : byte & 15]! * l.absmax[Math.floor(k / bs)]!;
  }
  return W;
}

/**
 * ONNX Runtime's MatMulBnb4 tables (onnxruntime/contrib_ops/cpu/quantization/blockwise_quant_block_bnb4.h
 * fp4_qaunt_map / nf4_qaunt_map, as float32). The kernel is used only when the checkpoint's quant_map equals its table.
 */
export const ORT_BNB4_TABLES: Record<'nf4' | 'fp4', Float32Array> = {
  fp4: Float32Array.from([0, 5.208333333e-3, 0.66666667, 1, 0.33333333, 0.5, 0.16666667, 0.25, -0, -5.208333333e-3, -0.66666667, -1, -0.33333333, -0.5, -0.16666667, -0.25]),
  nf4: Float32Array.from([-1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
    -0.09105003625154495, 0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434,
    0.5626170039176941, 0.7229568362236023, 1]),
};

/** Why ORT's MatMulBnb4 cannot compute this linear exactly, or null. */
export function bnb4KernelUnfit(l: Bnb4Linear): string | null {
  const t = ORT_BNB4_TABLES[l.state.quantType];
  for (let i = 0; i < 16; i++) if (!Object.is(t[i], l.quantMap[i]) && !(t[i] === 0 && l.quantMap[i] === 0)) return `quant_map differs from ONNX Runtime's ${l.state.quantType} table`;
  if (![16, 32, 64, 128, 256].includes(l.state.blocksize)) return `blocksize ${l.state.blocksize} (ONNX Runtime's MatMulBnb4 takes 16..256)`;
  if (l.N * l.K > 2 ** 31 - 1) return 'more than 2^31 weights';
  return null;
}

/** One LLM.int8 linear: int8 codes [out, in] and the float32 scale of each row (SCB·(1/127)). */
export interface Bnb8Linear { name: string; K: number; N: number; codes: Int8Array; rowScale: Float32Array; bias?: Float32Array }

/** Tensors of one LLM.int8 module against the linear (one-line errors; reads only weight_format). */
export async function checkBnb8Module(ck: Checkpoint, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<void> {
  const where = fileOf(ck), K = spec.inFeatures, N = spec.outFeatures;
  if (!ck.has(`${m}.weight`)) fail(`${where}: bitsandbytes 8-bit module "${m}" has "${m}.SCB" but no "${m}.weight" tensor`);
  expectTensor(ck, `${m}.weight`, ['I8'], [N, K], `LLM.int8 weights of the ${m} linear ([out, in])`);
  expectTensor(ck, `${m}.SCB`, ['F32', 'F16', 'BF16'], [N], `one scale per output row of ${m}`);
  if (ck.has(`${m}.weight_format`)) {
    const f = await ck.read(`${m}.weight_format`);
    const v = f.data.length === 1 ? Number(f.data[0]) : NaN;
    if (v !== 0) fail(`${where}: tensor "${m}.weight_format" is ${Number.isNaN(v) ? `${f.dtype} ${shapeStr(f.shape)}` : v}, expected 0 ("row"; bitsandbytes loads only row-major int8 weights)`);
  }
}

export async function readBnb8Linear(ck: Checkpoint, m: string, spec: { inFeatures: number; outFeatures: number }): Promise<Bnb8Linear> {
  await checkBnb8Module(ck, m, spec);
  const K = spec.inFeatures, N = spec.outFeatures;
  const codes = (await ck.read(`${m}.weight`)).data as Int8Array;
  const scb = await readFinite(ck, `${m}.SCB`), inv = Math.fround(1 / 127);
  return {
    name: m, K, N, codes, rowScale: scb.map((s) => Math.fround(s * inv)),
    bias: ck.has(`${m}.bias`) ? await readFinite(ck, `${m}.bias`) : undefined,
  };
}

/** W [out, in] float32 = weight·(SCB·(1/127)) (bitsandbytes autograd/_functions.py). */
export function dequantizeBnb8(l: Bnb8Linear): Float32Array {
  const W = new Float32Array(l.N * l.K);
  for (let o = 0; o < l.N; o++) { const s = l.rowScale[o]!; for (let i = 0; i < l.K; i++) W[o * l.K + i] = l.codes[o * l.K + i]! * s; }
  return W;
}
