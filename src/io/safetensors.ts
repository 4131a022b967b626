/** Safetensors reader (lazy, per-tensor reads), sharded checkpoints, and an atomic streaming writer. */
import { promises as fs } from '../platform/fs.ts';
import { join, basename, isAbsolute, relative, resolve as resolvePath } from '../platform/path.ts';
import { fail, GptqError, option } from '../errors.ts';
import { DTYPE_BYTES, f16ToF32, firstNonFinite, numel, type DType, type Tensor, type TypedArray } from '../tensor.ts';
import { writeAll, writeFileAtomic, writeFileAtomicWith, type FileHandle } from './atomic.ts';

export interface TensorInfo { dtype: DType; shape: number[]; byteLength: number }
/** A contiguous part of a stored tensor: `shape` elements starting `offset` elements in. */
export interface TensorSlice { offset: number; shape: number[] }
interface Entry extends TensorInfo { begin: number; end: number }


const MAX_HEADER = 100 * 1024 * 1024;
const CHUNK = 1 << 28; // max bytes per single read/write call
const CTORS: Record<DType, new (n: number) => TypedArray> = {
  F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, F64: Float64Array, I32: Int32Array,
  I64: BigInt64Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};
/** safetensors' Rust Dtype enum order (files are laid out by descending dtype, then name). */
const DTYPE_RANK: DType[] = ['BOOL', 'U8', 'I8', 'I16', 'F16', 'BF16', 'I32', 'F32', 'F64', 'I64'];

const isDType = (d: unknown): d is DType => typeof d === 'string' && Object.hasOwn(DTYPE_BYTES, d);
const isUint = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
const errMsg = (e: unknown) => oneLine(e instanceof Error ? e.message : String(e));
const q = (s: string) => JSON.stringify(s);
const fmtNames = (names: string[], n = 5) =>
  names.length ? `${names.slice(0, n).map(q).join(', ')}${names.length > n ? ', …' : ''}` : '(none)';

/** Float32Arrays known to hold no NaN/Inf (checked once; see checkFinite). */
const finite = new WeakSet<Float32Array>();
let f16Lut: Float32Array | undefined;
/** Every IEEE half bit pattern → its float value (f16ToF32), built once. */
function f16Table(): Float32Array {
  if (!f16Lut) { f16Lut = new Float32Array(65536); for (let h = 0; h < 65536; h++) f16Lut[h] = f16ToF32(h); }
  return f16Lut;
}

async function readExact(fh: FileHandle, buf: Uint8Array, pos: number, what: string): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const { bytesRead } = await fh.read(buf, off, Math.min(CHUNK, buf.length - off), pos + off);
    if (bytesRead === 0) fail(`${what}: unexpected end of file (file truncated or changed while open)`);
    off += bytesRead;
  }
}

export class SafetensorsFile {
  private closed = false;
  private constructor(
    readonly path: string,
    private fh: FileHandle,
    private entries: Map<string, Entry>,
    private dataStart: number,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try { fh = await fs.open(path, 'r'); } catch (e: any) {
      fail(e?.code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot open: ${errMsg(e)}`);
    }
    try { return await SafetensorsFile.parse(path, fh); } catch (e) { await fh.close(); throw e; }
  }

  private static async parse(path: string, fh: FileHandle): Promise<SafetensorsFile> {
    const size = (await fh.stat()).size;
    if (size < 8) fail(`${path}: truncated safetensors file (${size} bytes, shorter than the 8-byte header length)`);
    const lenBuf = new Uint8Array(8);
    await readExact(fh, lenBuf, 0, path);
    const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER)) fail(`${path}: header length ${n} is absurd (> 100 MB); not a safetensors file?`);
    const hlen = Number(n);
    if (8 + hlen > size) fail(`${path}: header length ${hlen} runs past end of file (file is ${size} bytes; truncated?)`);
    const hbuf = new Uint8Array(hlen);
    await readExact(fh, hbuf, 8, path);
    let header: unknown;
    try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbuf)); } catch (e) {
      fail(`${path}: header is not valid JSON (${errMsg(e).slice(0, 120)}); not a safetensors file?`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) fail(`${path}: header is not a JSON object`);
    const dataStart = 8 + hlen, dataSize = size - dataStart;
    const metadata: Record<string, string> = {};
    const entries = new Map<string, Entry>();
    for (const [name, v] of Object.entries(header as Record<string, any>)) {
      if (name === '__metadata__') {
        if (!v || typeof v !== 'object' || Array.isArray(v)) fail(`${path}: __metadata__ must be an object of strings`);
        for (const [k, s] of Object.entries(v)) {
          if (typeof s !== 'string') fail(`${path}: __metadata__.${k} must be a string, got ${JSON.stringify(s)}`);
          metadata[k] = s;
        }
        continue;
      }
      const at = `${path}: tensor ${q(name)}`;
      if (!v || typeof v !== 'object') fail(`${at}: entry is not an object`);
      for (const k of ['dtype', 'shape', 'data_offsets']) if (!(k in v)) fail(`${at}: entry is missing "${k}"`);
      const { dtype, shape, data_offsets: off } = v;
      if (!isDType(dtype)) fail(`${at}: unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
      if (!Array.isArray(shape) || !shape.every(isUint)) fail(`${at}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
      if (!Array.isArray(off) || off.length !== 2 || !off.every(isUint) || off[0]! > off[1]!)
        fail(`${at}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
      const [begin, end] = off as [number, number];
      const byteLength = numel(shape) * DTYPE_BYTES[dtype];
      if (byteLength !== end - begin)
        fail(`${at}: shape [${shape}] x ${dtype} needs ${byteLength} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
      if (end > dataSize) fail(`${at}: data_offsets [${begin}, ${end}] out of range of the ${dataSize}-byte data section (truncated?)`);
      entries.set(name, { dtype, shape: [...shape], byteLength, begin, end });
    }
    const ranges = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
    for (let i = 1; i < ranges.length; i++) {
      const [pn, p] = ranges[i - 1]!, [cn, c] = ranges[i]!;
      if (c.begin < p.end) fail(`${path}: tensor ${q(cn)} [${c.begin}, ${c.end}] overlaps tensor ${q(pn)} [${p.begin}, ${p.end}]`);
    }
    return new SafetensorsFile(path, fh, entries, dataStart, metadata);
  }

  names(): string[] { return [...this.entries.keys()]; }
  has(name: string): boolean { return this.entries.has(name); }
  info(name: string): TensorInfo {
    const { dtype, shape, byteLength } = this.entry(name);
    return { dtype, shape: [...shape], byteLength };
  }
  totalBytes(): number { let s = 0; for (const e of this.entries.values()) s += e.byteLength; return s; }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) fail(`${this.path}: no tensor ${q(name)} (${this.entries.size} tensors, e.g. ${fmtNames(this.names())})`);
    return e;
  }

  /**
   * Read a tensor, or with `slice` the contiguous part of it that starts `offset` elements in and has `shape`
   * (e.g. one expert of a stacked [experts, out, in] tensor).
   */
  async read(name: string, slice?: TensorSlice): Promise<Tensor> { return this.readTo(name, slice); }

  /** read(), into `f32(length)` instead of a new array when given (an F32 tensor: readFloat32's `alloc`). */
  private async readTo(name: string, slice?: TensorSlice, f32?: (length: number) => Float32Array): Promise<Tensor> {
    const e = this.entry(name);
    if (this.closed) fail(`${this.path}: cannot read tensor ${q(name)}: file is closed`);
    const shape = slice?.shape ?? e.shape, off = (slice?.offset ?? 0) * DTYPE_BYTES[e.dtype];
    const data = f32 && e.dtype === 'F32' ? f32(numel(shape)) : new CTORS[e.dtype](numel(shape)); // aligned allocation, then read into it
    if (off < 0 || off + data.byteLength > e.end - e.begin) fail(`${this.path}: tensor ${q(name)}: slice [${slice?.offset}, +${numel(shape)}) is out of its range`);
    await readExact(this.fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), this.dataStart + e.begin + off, `${this.path}: tensor ${q(name)}`);
    return { dtype: e.dtype, shape: [...shape], data };
  }

  /** Read a tensor's raw data into `out` (same element size and count). */
  async readInto(name: string, out: TypedArray): Promise<void> {
    const e = this.entry(name), bytes = numel(e.shape) * DTYPE_BYTES[e.dtype];
    if (this.closed) fail(`${this.path}: cannot read tensor ${q(name)}: file is closed`);
    if (out.byteLength !== bytes) fail(`${this.path}: tensor ${q(name)} has ${bytes} bytes, the destination ${out.byteLength}`);
    await readExact(this.fh, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), this.dataStart + e.begin, `${this.path}: tensor ${q(name)}`);
  }

  /**
   * The tensor as a new Float32Array (F32 as read). F16 (via a 64K-entry table: exact, ~20× faster than converting
   * each value arithmetically) and BF16 are checked for NaN/Inf while they are converted, at no measurable cost;
   * finite results are remembered, so checkFinite does not scan them again (bench/nonfinite.ts). `alloc`: where the
   * values go (default: a new Float32Array of `length`), e.g. shared memory that worker threads read in place.
   */
  async readFloat32(name: string, slice?: TensorSlice, alloc?: (length: number) => Float32Array): Promise<Float32Array> {
    const { dtype } = this.entry(name);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(dtype)) fail(`${this.path}: tensor ${q(name)} has dtype ${dtype}, not a float type`);
    const t = await this.readTo(name, slice, alloc);
    if (dtype === 'F64') { const d = t.data as Float64Array, o = alloc ? alloc(d.length) : new Float32Array(d.length); o.set(d); return o; }
    if (dtype === 'F32') return t.data as Float32Array;
    const d = t.data as Uint16Array, o = alloc ? alloc(d.length) : new Float32Array(d.length);
    let acc = 0; // bit 15 ends up set iff some exponent field is all ones (NaN/Inf)
    if (dtype === 'F16') {
      const lut = f16Table();
      for (let i = 0; i < d.length; i++) { const h = d[i]!; o[i] = lut[h]!; acc |= (h & 0x7c00) + 0x0400; }
    } else {
      const ou = new Uint32Array(o.buffer, o.byteOffset, o.length);
      for (let i = 0; i < d.length; i++) { const h = d[i]!; ou[i] = h << 16; acc |= (h & 0x7f80) + 0x0080; }
    }
    if (!(acc & 0x8000)) finite.add(o);
    return o;
  }

  /** Close the file (idempotent). Also `await using f = await SafetensorsFile.open(p)`. */
  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
  async [Symbol.asyncDispose](): Promise<void> { await this.dispose(); }
}

/** Fail (one line naming `where` and the tensor) when `a` holds NaN/Inf; each array is scanned once. */
export function checkFinite(a: Float32Array, name: string, where: string, shape?: readonly number[]): void {
  if (finite.has(a)) return;
  const i = firstNonFinite(a);
  if (i < 0) { finite.add(a); return; }
  let at = `element ${i} of ${a.length}`;
  if (shape && numel(shape) === a.length) {
    const idx: number[] = [];
    for (let r = i, d = shape.length - 1; d >= 0; d--) { idx.unshift(r % shape[d]!); r = Math.floor(r / shape[d]!); }
    at = `at [${idx.join(', ')}] of [${shape.join(', ')}]`;
  }
  fail(`${where}: tensor ${q(name)} holds ${a[i]} ${at}; the checkpoint is corrupt (the model's output would be NaN/garbage)`);
}

const exists = (p: string) => fs.stat(p).then((s) => s.isFile(), () => false);

/**
 * Checkpoints saved from a Hugging Face base model (GPT2Model, OPTModel, BloomModel) lack its `base_model_prefix`:
 * "transformer.h.0.ln_1.weight" is stored as "h.0.ln_1.weight". The name to try when `name` is not found (only for
 * names with at least two dots, so "lm_head.weight" never becomes "weight"), or undefined. Transformers
 * (core_model_loading.py `rename_source_key`) adds or strips `base_model_prefix` per key the same way: the prefix is the
 * first component of every base-model tensor name, and heads (`lm_head.weight`) have none.
 */
export function withoutBasePrefix(name: string): string | undefined {
  const dot = name.indexOf('.');
  return dot > 0 && name.indexOf('.', dot + 1) > 0 ? name.slice(dot + 1) : undefined;
}

/** get(name), else get(name without the base-model prefix). */
export function lookupBaseModelName<T>(get: (n: string) => T | undefined, name: string): T | undefined {
  const v = get(name);
  if (v !== undefined) return v;
  const short = withoutBasePrefix(name);
  return short === undefined ? undefined : get(short);
}

/** Which weights file(s) of a model directory to read, and the rule that chose them (for messages). */
export interface WeightsChoice { path: string; sharded: boolean; rule: string }

async function readJsonLenient(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const j = JSON.parse(await fs.readFile(path, 'utf8'));
    return j && typeof j === 'object' && !Array.isArray(j) ? j : undefined;
  } catch { return undefined; } // missing or invalid: the config loaders report it
}

/**
 * The weights file of a model directory, by the loaders' own rules, first match wins:
 * 1. config.json `transformers_weights` (transformers modeling_utils.py `_get_resolved_checkpoint_files`: an explicit
 *    `*.safetensors` or `*.safetensors.index.json` inside the directory).
 * 2. GPTQ checkpoints (quantize_config.json, or config.json `quantization_config`): AutoGPTQ/GPTQModel `from_quantized`
 *    try `model_file_base_name` from quantize_config.json, else `gptq_model-{bits}bit-{group_size}g` then `model`,
 *    each as `<base>.safetensors.index.json` (sharded) then `<base>.safetensors` (`get_checkpoints`).
 * 3. transformers: `model.safetensors`, then `model.safetensors.index.json`.
 * 4. Beyond the references: the only `*.safetensors.index.json`, or the only `*.safetensors` file.
 * PyTorch pickles (pytorch_model*.bin, *.pt, *.pth) are refused with how to convert them. One-line errors.
 */
export async function chooseWeightsFile(dir: string): Promise<WeightsChoice> {
  let listing: string[];
  try { listing = (await fs.readdir(dir)).sort(); } catch (e: any) {
    fail(e?.code === 'ENOENT' ? `${dir}: no such directory` : e?.code === 'ENOTDIR' ? `${dir}: not a directory` : `${dir}: cannot list: ${errMsg(e)}`);
  }
  const has = (f: string) => listing.includes(f);
  const config = has('config.json') ? await readJsonLenient(join(dir, 'config.json')) : undefined;
  const explicit = config?.transformers_weights;
  if (explicit !== undefined && explicit !== null) {
    const at = `${join(dir, 'config.json')}: field "transformers_weights"`;
    if (typeof explicit !== 'string' || !(explicit.endsWith('.safetensors') || explicit.endsWith('.safetensors.index.json')))
      fail(`${at} must name a *.safetensors or *.safetensors.index.json file, got ${JSON.stringify(explicit)}`);
    const p = resolvePath(dir, explicit), rel = relative(resolvePath(dir), p);
    if (rel.startsWith('..') || isAbsolute(rel)) fail(`${at} must name a file inside ${dir}, got ${JSON.stringify(explicit)}`);
    if (!(await exists(p))) fail(`${at} names ${JSON.stringify(explicit)}, which does not exist (${p})`);
    return { path: p, sharded: explicit.endsWith('.index.json'), rule: 'config.json transformers_weights' };
  }
  const qc = has('quantize_config.json') ? await readJsonLenient(join(dir, 'quantize_config.json')) : undefined;
  const qcfg = qc ?? (config?.quantization_config && typeof config.quantization_config === 'object' ? config.quantization_config as Record<string, unknown> : undefined);
  const searched: string[] = [];
  if (qcfg) {
    const base = qc?.model_file_base_name;
    const bases = typeof base === 'string' && base ? [base] : [`gptq_model-${qcfg.bits}bit-${qcfg.group_size}g`, 'model'];
    for (const b of bases) {
      for (const [f, sharded] of [[`${b}.safetensors.index.json`, true], [`${b}.safetensors`, false]] as const) {
        searched.push(f);
        if (has(f)) return { path: join(dir, f), sharded, rule: typeof base === 'string' && base ? 'quantize_config.json model_file_base_name' : 'AutoGPTQ default file name' };
      }
    }
  }
  if (has('model.safetensors')) return { path: join(dir, 'model.safetensors'), sharded: false, rule: 'model.safetensors' };
  if (has('model.safetensors.index.json')) return { path: join(dir, 'model.safetensors.index.json'), sharded: true, rule: 'model.safetensors.index.json' };
  const indexes = listing.filter((f) => f.endsWith('.safetensors.index.json'));
  if (indexes.length === 1) return { path: join(dir, indexes[0]!), sharded: true, rule: 'the only safetensors index' };
  if (indexes.length > 1) fail(`${dir}: several safetensors index files (${fmtNames(indexes)}); cannot tell which to use`);
  const st = listing.filter((f) => f.endsWith('.safetensors'));
  if (st.length === 1) return { path: join(dir, st[0]!), sharded: false, rule: 'the only .safetensors file' };
  const tried = searched.length ? ` (tried ${searched.join(', ')} as named by ${qc ? 'quantize_config.json' : 'config.json quantization_config'})` : '';
  if (st.length > 1) fail(`${dir}: ${st.length} .safetensors files (${fmtNames(st)}) but no model.safetensors.index.json to say which tensor is where${tried}`);
  const pickles = listing.filter((f) => /^(pytorch_model|gptq_model|model|consolidated).*\.(bin|pt|pth)(\.index\.json)?$/.test(f));
  if (pickles.length) {
    const how = qcfg
      ? 'load it with AutoGPTQ/GPTQModel and save it with save_quantized(out_dir) (safetensors is their default)'
      : `in Python: AutoModelForCausalLM.from_pretrained("${dir}").save_pretrained(out_dir) writes model.safetensors`;
    fail(`${dir}: only PyTorch pickle weights (${fmtNames(pickles, 3)}), which gptqjs does not read (pickles can run code); convert them to safetensors: ${how}`);
  }
  fail(`${dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file found${tried}`);
}

/**
 * A model's tensors: one safetensors file or a sharded index (see chooseWeightsFile), plus aliases — names that read
 * another stored tensor:
 * - `__metadata__` entries {removed: kept} that safetensors.torch `save_model` writes for shared tensors (its
 *   `_remove_duplicate_names` keeps one name per storage, e.g. stores only "lm_head.weight" and records
 *   "model.embed_tokens.weight": "lm_head.weight"; `load_model` restores them): an entry whose value is a tensor of
 *   that file and whose key is stored nowhere is an alias.
 * - aliases and views (slices of a stored tensor) a model adds with `alias()`/`view()`: tied embeddings, renamed
 *   or fused tensors (src/runtime/model-checkpoint.ts).
 * `names()` lists the stored tensors only, `modelNames()` the names a model reads; `has`/`info`/`read` accept all.
 */
export class Checkpoint {
  private readonly aliases = new Map<string, string>();
  private readonly views = new Map<string, { target: string; slice: TensorSlice }>();
  /** Stored tensors a model reads under other names only (alias()/view() replacements; see savedNames()). */
  private readonly superseded = new Set<string>();
  private constructor(
    readonly dir: string,
    private shards: SafetensorsFile[],
    private where: Map<string, SafetensorsFile>,
    /** __metadata__ of the first file (e.g. {"format":"pt"}). */
    readonly metadata: Record<string, string>,
    readonly indexPath?: string,
    /** The rule that chose the weights file (chooseWeightsFile). */
    readonly rule = '',
  ) {
    for (const f of shards) for (const [k, v] of Object.entries(f.metadata)) {
      if (!where.has(k) && where.get(v) === f && !this.aliases.has(k)) this.aliases.set(k, v);
    }
  }

  get files(): string[] { return this.shards.map((s) => s.path); }

  static async open(dir: string): Promise<Checkpoint> {
    const c = await chooseWeightsFile(dir);
    return c.sharded ? Checkpoint.sharded(dir, c.path, c.rule) : Checkpoint.single(dir, c.path, c.rule);
  }

  private static async single(dir: string, path: string, rule: string): Promise<Checkpoint> {
    const f = await SafetensorsFile.open(path);
    return new Checkpoint(dir, [f], new Map(f.names().map((n) => [n, f])), f.metadata, undefined, rule);
  }

  private static async sharded(dir: string, indexPath: string, rule: string): Promise<Checkpoint> {
    let idx: any;
    try { idx = JSON.parse(await fs.readFile(indexPath, 'utf8')); } catch (e) { fail(`${indexPath}: cannot parse index: ${errMsg(e).slice(0, 160)}`); }
    const wm = idx?.weight_map;
    if (!wm || typeof wm !== 'object' || Array.isArray(wm)) fail(`${indexPath}: missing "weight_map" object`);
    const shardNames = [...new Set(Object.values(wm as Record<string, unknown>))];
    const shards: SafetensorsFile[] = [];
    const byName = new Map<string, SafetensorsFile>();
    try {
      for (const s of shardNames) {
        if (typeof s !== 'string' || s.includes('/') || s.includes('\\')) fail(`${indexPath}: bad shard file name ${JSON.stringify(s)} in weight_map`);
        const p = join(dir, s);
        if (!(await exists(p))) fail(`${indexPath}: shard ${q(s)} named in weight_map is missing (${p})`);
        const f = await SafetensorsFile.open(p);
        shards.push(f);
        byName.set(s, f);
      }
      const where = new Map<string, SafetensorsFile>();
      for (const [name, s] of Object.entries(wm as Record<string, string>)) {
        const f = byName.get(s)!;
        if (!f.has(name)) fail(`${indexPath}: weight_map puts tensor ${q(name)} in ${q(s)} but that shard has no such tensor`);
        where.set(name, f);
      }
      return new Checkpoint(dir, shards, where, shards[0]?.metadata ?? {}, indexPath, rule);
    } catch (e) {
      await Promise.all(shards.map((f) => f.dispose()));
      throw e;
    }
  }

  /** The stored tensors (aliases and views excluded). */
  names(): string[] { return [...this.where.keys()]; }
  /** Alias → stored tensor it reads. */
  aliasMap(): ReadonlyMap<string, string> { return this.aliases; }
  /**
   * The names a model reads, i.e. what a copy of this checkpoint in the model's own naming stores: stored tensors
   * not superseded, aliases, views.
   */
  modelNames(): string[] {
    return [...this.names().filter((n) => !this.superseded.has(n)), ...this.aliases.keys(), ...this.views.keys()];
  }
  /** Whether `name` reads a slice of a stored tensor (view()). */
  isView(name: string): boolean { return this.views.has(name); }
  /** Stored, alias or view. */
  has(name: string): boolean { return this.where.has(name) || this.aliases.has(name) || this.views.has(name); }
  /** The stored tensor behind `name` (itself unless it is an alias or view). */
  storedName(name: string): string { return this.where.has(name) ? name : this.aliases.get(name) ?? this.views.get(name)?.target ?? name; }
  private free(name: string, what: string): void {
    if (this.where.has(name)) fail(`${this.dir}: cannot ${what}: ${q(name)} is stored`);
  }
  /**
   * Make `name` read the stored tensor `target` (or `target`'s own target). Stored names cannot be aliased.
   * `supersede`: `target` is only a storage name of `name` (a rename), so modelNames() lists `name` instead.
   */
  alias(name: string, target: string, supersede = false): void {
    this.free(name, `alias ${q(name)} to ${q(target)}`);
    const v = this.views.get(target);
    if (v) { this.views.set(name, v); return; }
    const t = this.storedName(target);
    if (!this.where.has(t)) fail(`${this.dir}: cannot alias ${q(name)} to ${q(target)}: no such tensor`);
    this.aliases.set(name, t);
    if (supersede) this.superseded.add(t);
  }
  /** Make `name` read a contiguous slice of the stored tensor `target`; `target` then counts as superseded. */
  view(name: string, target: string, slice: TensorSlice): void {
    this.free(name, `view ${q(target)} as ${q(name)}`);
    const f = this.where.get(target);
    if (!f) fail(`${this.dir}: cannot view ${q(target)} as ${q(name)}: no such stored tensor`);
    const n = numel(f.info(target).shape);
    if (!(Number.isInteger(slice.offset) && slice.offset >= 0 && slice.offset + numel(slice.shape) <= n))
      fail(`${this.location}: tensor ${q(target)} (${n} values) has no slice of ${numel(slice.shape)} values at ${slice.offset} for ${q(name)}`);
    this.views.set(name, { target, slice: { offset: slice.offset, shape: [...slice.shape] } });
    this.superseded.add(target);
  }
  /** The name of a model tensor here: `name`, or `name` without the base-model prefix (see withoutBasePrefix). */
  resolve(name: string): string {
    const short = withoutBasePrefix(name);
    return !this.has(name) && short !== undefined && this.has(short) ? short : name;
  }
  /** Where messages should point: the weights file, or the index (N shards). */
  get location(): string { return this.shards.length === 1 ? this.shards[0]!.path : `${this.indexPath ?? this.dir} (${this.shards.length} shards)`; }
  private file(name: string): [SafetensorsFile, string, TensorSlice | undefined] {
    const v = this.views.get(name);
    const stored = v ? v.target : this.storedName(name);
    const f = this.where.get(stored);
    if (!f) fail(`${this.location}: checkpoint has no tensor ${q(name)} (${this.where.size} tensors, e.g. ${fmtNames(this.names())})`);
    return [f, stored, v?.slice];
  }
  info(name: string): TensorInfo {
    const [f, n, slice] = this.file(name);
    const i = f.info(n);
    return slice ? { dtype: i.dtype, shape: [...slice.shape], byteLength: numel(slice.shape) * DTYPE_BYTES[i.dtype] } : i;
  }
  async read(name: string): Promise<Tensor> { const [f, n, slice] = this.file(name); return f.read(n, slice); }
  /** SafetensorsFile.readFloat32 of the tensor (or view) `name`; `alloc`: where the values go (default: a new array). */
  async readFloat32(name: string, alloc?: (length: number) => Float32Array): Promise<Float32Array> { const [f, n, slice] = this.file(name); return f.readFloat32(n, slice, alloc); }
  totalBytes(): number { let s = 0; for (const [n, f] of this.where) s += f.info(n).byteLength; return s; }
  /** Close every shard (idempotent). Also `await using ck = await Checkpoint.open(dir)`. */
  async dispose(): Promise<void> { await Promise.all(this.shards.map((f) => f.dispose())); }
  async [Symbol.asyncDispose](): Promise<void> { await this.dispose(); }
}

// ---------------------------------------------------------------- writer

/** A tensor whose data is read only when it is written (streaming saves of models larger than RAM). */
export interface LazyTensor { dtype: DType; shape: number[]; load(): Promise<Tensor['data']> }
export type TensorLike = Tensor | LazyTensor;
export type TensorMap = Map<string, TensorLike> | Record<string, TensorLike>;
const entriesOf = (t: TensorMap): [string, TensorLike][] => (t instanceof Map ? [...t] : Object.entries(t));

/** Lazy view of a checkpoint tensor. */
export function lazyFrom(ck: { info(n: string): TensorInfo; read(n: string): Promise<Tensor> }, name: string): LazyTensor {
  const i = ck.info(name);
  return { dtype: i.dtype, shape: i.shape, load: async () => (await ck.read(name)).data };
}

function checkTensor(path: string, name: string, t: TensorLike): number {
  const at = `${path}: tensor ${q(name)}`;
  if (!name || name === '__metadata__') fail(`${path}: invalid tensor name ${q(name)}`);
  if (!t || !isDType(t.dtype)) fail(`${at}: unknown dtype ${JSON.stringify(t?.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every(isUint)) fail(`${at}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
  const n = numel(t.shape);
  if ('data' in t) checkData(at, t, t.data);
  return n * DTYPE_BYTES[t.dtype];
}

function checkData(at: string, t: TensorLike, data: Tensor['data']): void {
  const Ctor = CTORS[t.dtype];
  if (!(data instanceof Ctor)) fail(`${at}: dtype ${t.dtype} needs a ${Ctor.name}, got ${(data as any)?.constructor?.name ?? typeof data}`);
  const n = numel(t.shape);
  if (data.length !== n) fail(`${at}: shape [${t.shape}] has ${n} elements but data has ${data.length}`);
}

function sortedForLayout(list: [string, TensorLike][]): [string, TensorLike][] {
  const r = (d: DType) => DTYPE_RANK.indexOf(d);
  return [...list].sort(([an, a], [bn, b]) => r(b.dtype) - r(a.dtype) || (an < bn ? -1 : an > bn ? 1 : 0));
}

/** Header bytes (8-byte length + JSON padded with spaces to a multiple of 8) for tensors in layout order. */
function headerFor(list: [string, TensorLike][], metadata?: Record<string, string>): Uint8Array {
  const h: Record<string, unknown> = {};
  if (metadata) h.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of list) {
    const len = numel(t.shape) * DTYPE_BYTES[t.dtype];
    h[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + len] };
    off += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(h));
  const pad = (8 - (json.length % 8)) % 8;
  const out = new Uint8Array(8 + json.length + pad).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  out.set(json, 8);
  return out;
}

/** Write a safetensors file atomically, streaming tensor data (no whole-file buffer). Little-endian host assumed. */
export async function writeSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): Promise<void> {
  const list = entriesOf(tensors);
  const seen = new Set<string>();
  for (const [name, t] of list) {
    if (seen.has(name)) fail(`${path}: duplicate tensor name ${q(name)}`);
    seen.add(name);
    checkTensor(path, name, t);
  }
  if (metadata) for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') fail(`${path}: metadata ${q(k)} must be a string`);
  const ordered = sortedForLayout(list);
  try {
    await writeFileAtomicWith(path, async (fh) => {
      await writeAll(fh, headerFor(ordered, metadata));
      for (const [name, t] of ordered) {
        const data = 'data' in t ? t.data : await t.load();
        checkData(`${path}: tensor ${q(name)}`, t, data);
        await writeAll(fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
    });
  } catch (e) {
    if (e instanceof GptqError) throw e;
    fail(`${path}: cannot write safetensors file: ${errMsg(e)}`);
  }
}

/** "5GB" → 5e9, "500MB", "10KiB", "2GiB", plain numbers (bytes). HF semantics: GB = 1e9, GiB = 2^30. */
export function parseSize(size: string | number): number {
  if (typeof size === 'number') {
    if (!Number.isFinite(size) || size <= 0) fail(`invalid size ${size}: must be a positive number of bytes`);
    return Math.floor(size);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
  if (!m) fail(`invalid size ${JSON.stringify(size)}: expected e.g. "5GB", "500MB", "10KiB" or a byte count`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const p = 'BKMGT'.indexOf(unit[0]!);
  const mult = unit === 'B' ? 1 : unit.includes('I') ? 1024 ** p : 1000 ** p;
  const n = Math.floor(Number(m[1]) * mult);
  if (n <= 0) fail(`invalid size ${JSON.stringify(size)}: must be positive`);
  return n;
}

export interface SaveShardedOptions {
  maxShardSize?: string | number; metadata?: Record<string, string>;
  /** Replace model*.safetensors / model.safetensors.index.json files already in `dir` (default false: refused). */
  overwrite?: boolean;
}
export interface SaveShardedResult { files: string[]; indexPath?: string; totalSize: number }

/**
 * Save like transformers' save_pretrained: one `model.safetensors` if it fits in maxShardSize (default "5GB"),
 * else `model-0000i-of-0000N.safetensors` + `model.safetensors.index.json`. A folder already holding such files is refused
 * unless `overwrite` (then stale files of the other layout are removed too); no other file is ever touched.
 */
export async function saveSharded(dir: string, tensors: TensorMap, opts: SaveShardedOptions = {}): Promise<SaveShardedResult> {
  const max = parseSize(opts.maxShardSize ?? '5GB');
  const metadata = opts.metadata ?? { format: 'pt' };
  const list = entriesOf(tensors);
  const shards: [string, TensorLike][][] = [];
  let cur: [string, TensorLike][] = [], curSize = 0, total = 0;
  for (const [name, t] of list) { // greedy in insertion order, like transformers' shard_checkpoint
    const n = checkTensor(join(dir, 'model.safetensors'), name, t);
    if (cur.length && curSize + n > max) { shards.push(cur); cur = []; curSize = 0; }
    cur.push([name, t]); curSize += n; total += n;
  }
  if (cur.length || !shards.length) shards.push(cur);
  await fs.mkdir(dir, { recursive: true });
  const isShardFile = (f: string) => f === 'model.safetensors' || f === 'model.safetensors.index.json' || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f);
  const existing = (await fs.readdir(dir)).filter(isShardFile);
  if (existing.length && !opts.overwrite) fail(`${dir} already holds ${existing.slice(0, 2).join(', ')}${existing.length > 2 ? ', …' : ''}; pass ${option('overwrite: true', '--overwrite')} to replace the model*.safetensors files there (other files are never touched)`);
  const N = shards.length, pad = (i: number) => String(i).padStart(5, '0');
  const names = N === 1 ? ['model.safetensors'] : shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(N)}.safetensors`);
  for (let i = 0; i < N; i++) await writeSafetensors(join(dir, names[i]!), new Map(shards[i]), metadata);
  let indexPath: string | undefined;
  if (N > 1) {
    const weight_map: Record<string, string> = {};
    const all = shards.flatMap((s, i) => s.map(([n]) => [n, names[i]!] as const)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [n, f] of all) weight_map[n] = f;
    indexPath = join(dir, 'model.safetensors.index.json');
    await writeFileAtomic(indexPath, JSON.stringify({ metadata: { total_size: total }, weight_map }, null, 2) + '\n');
  }
  // remove leftovers of a previous save with a different layout
  const keep = new Set([...names, ...(indexPath ? [basename(indexPath)] : [])]);
  for (const f of await fs.readdir(dir))
    if (!keep.has(f) && isShardFile(f))
      await fs.rm(join(dir, f), { force: true });
  return { files: names.map((n) => join(dir, n)), indexPath, totalSize: total };
}
