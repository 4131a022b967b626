/**
 * Write an AutoGPTQ-format checkpoint: packed safetensors, quantize_config.json, config.json#quantization_config.
 * What is saved is exactly what GPTQ computed: every module's packed tensors are decoded by the loader's own
 * conversion and compared with GPTQ's codes/scales/zeros/g_idx when packed (verifyPackedModule), and the files
 * written are read back and checked against the digests of those verified tensors before the directory appears.
 */
import { createHash } from '../platform/crypto.ts';
import { promises as fs, existsSync } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { realPath, writeDirAtomic } from '../io/atomic.ts';
import { QUANTIZER_ID } from '../version.ts';
import { Checkpoint, lazyFrom, saveSharded, type TensorLike } from '../io/safetensors.ts';
import type { ModelConfig } from '../io/config.ts';
import { f16ToF32, toF16Bits, toFloat32, type Tensor } from '../tensor.ts';
import type { ArchDefinition } from '../models/types.ts';
import { tensorNamesToSave } from '../runtime/model-checkpoint.ts';
import { prepareLinear } from '../runtime/quantized-weights.ts';
import { fail } from '../errors.ts';
import { toQuantizeConfigJson, type CheckpointFormat, type QuantizeConfig } from './config.ts';
import type { PackBits, PackedLinear } from './pack.ts';
import type { QuantizedModule, QuantizeLoopResult, SkippedModule } from './quantize-model.ts';

/** Files copied unchanged from the source model directory. */
export const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json', 'chat_template.jinja', 'vocab.json', 'merges.txt'];

/** AutoGPTQ's tensors for one quantized linear (bias in fp16, as its QuantLinear buffers are). */
export function moduleTensors(m: QuantizedModule, bits: number): Record<string, Tensor> {
  const groups = m.scales.length / m.outFeatures;
  const t: Record<string, Tensor> = {
    [`${m.name}.qweight`]: { dtype: 'I32', shape: [(m.inFeatures * bits) / 32, m.outFeatures], data: m.qweight },
    [`${m.name}.qzeros`]: { dtype: 'I32', shape: [groups, (m.outFeatures * bits) / 32], data: m.qzeros },
    [`${m.name}.scales`]: { dtype: 'F16', shape: [groups, m.outFeatures], data: m.scales },
    [`${m.name}.g_idx`]: { dtype: 'I32', shape: [m.inFeatures], data: m.gIdx },
  };
  if (m.bias) t[`${m.name}.bias`] = { dtype: 'F16', shape: [m.outFeatures], data: toF16Bits(m.bias) };
  return t;
}

/**
 * quantization_config for config.json (transformers GPTQConfig keys). Skipped modules are recorded as
 * transformers' `modules_in_block_to_quantize` (what to convert inside each block) and GPTQModel's `dynamic`
 * negative rules, so loaders keep them in full precision.
 */
export function quantizationConfigJson(arch: ArchDefinition, cfg: ModelConfig, q: QuantizeConfig, skipped: SkippedModule[]): Record<string, unknown> {
  const j: Record<string, unknown> = { ...toQuantizeConfigJson(q), block_name_to_quantize: arch.layersBlockName.replace(/\.$/, '') };
  const skippedRel = [...new Set(skipped.map((s) => s.name.replace(/^.*?\.\d+\./, '')))];
  if (skippedRel.length) {
    j.modules_in_block_to_quantize = arch.insideLayerModules(cfg).map((g) => g.filter((m) => !skippedRel.includes(m))).filter((g) => g.length);
    j.dynamic = Object.fromEntries(skippedRel.map((m) => [`-:.*\\.${m.replace(/\./g, '\\.')}$`, {}]));
  }
  return j;
}

/** What GPTQ computed for one module: codes [out, in], scales/zeros [groups, out], g_idx [in], and the bias it ran with. */
export interface ComputedModule { intCodes: Uint8Array; scales: Float32Array; zeros: Int32Array; gIdx: Int32Array; bias?: Float32Array }

/**
 * Decode one module's packed tensors exactly as inference loads them — runtime/quantized-weights.ts prepareLinear
 * on the scales as read (fp16 → float32), with its v1/v2 zero-point reading, 2/3-bit → 4-bit repack, act-order
 * permutation and group → block mapping (accuracy level 4, so 8-bit stays on the int-N path too) — and require GPTQ's
 * own codes, scales and zero points for every weight, its g_idx, and the bias it ran with (saved as fp16). "Exactly"
 * is bit equality: GPTQ quantizes to fp16-valued scales (quantizer.ts GridStorage), so dequantized(saved) == Q.
 * Throws a one-line GptqError naming the module and the first difference. Memory: the kernel layout of one module
 * (the size of qweight; 2/3-bit: 4-bit codes).
 */
export function verifyPackedModule(name: string, packed: PackedLinear & { bias?: Uint16Array }, c: ComputedModule,
  g: { bits: PackBits; groupSize: number; inFeatures: number; outFeatures: number; format: CheckpointFormat }): void {
  const { bits, inFeatures: K, outFeatures: N } = g;
  const bad = (what: string): never => fail(`${name}: the packed tensors do not decode to what GPTQ computed (${what}); nothing was saved`);
  const groups = g.groupSize === -1 ? 1 : Math.ceil(K / g.groupSize);
  if (c.scales.length !== groups * N || c.zeros.length !== groups * N || packed.scales.length !== groups * N) bad(`scales hold ${packed.scales.length / N} groups, expected ${groups}`);
  for (let j = 0; j < K; j++) if (packed.gIdx[j] !== c.gIdx[j]) bad(`g_idx[${j}] is ${packed.gIdx[j]}, GPTQ used ${c.gIdx[j]}`);
  if (!!packed.bias !== !!c.bias) bad(packed.bias ? 'a bias GPTQ did not use' : 'the bias is missing');
  if (packed.bias) for (let n = 0; n < N; n++) if (f16ToF32(packed.bias[n]!) !== c.bias![n]) bad(`bias[${n}] is ${f16ToF32(packed.bias[n]!)}, the model ran with ${c.bias![n]}`);
  const p = prepareLinear({
    name, inFeatures: K, outFeatures: N, bits, groupSize: g.groupSize, groups, format: g.format, qweight: packed.qweight, qzeros: packed.qzeros,
    scales: toFloat32({ dtype: 'F16', shape: [groups, N], data: packed.scales }), gIdx: packed.gIdx,
  }, { accuracyLevel: 4 });
  if (p.kind === 'dense') { // the loader's fp32 fallback: compare with Q = scale·(code − zero)
    for (let n = 0; n < N; n++) for (let j = 0; j < K; j++) {
      const gi = c.gIdx[j]! * N + n, want = Math.fround(c.scales[gi]! * (c.intCodes[n * K + j]! - c.zeros[gi]!));
      if (p.weight[n * K + j] !== want) bad(`weight [${n}, ${j}] loads as ${p.weight[n * K + j]}, GPTQ's Q is ${want}`);
    }
    return;
  }
  const tb = p.bits, per = 8 / tb, mask = (1 << tb) - 1, block = p.block;
  const kBlocks = p.scales.length / N, rowBytes = p.B.length / N, zRow = Math.ceil((kBlocks * tb) / 8);
  const order = p.perm ? Int32Array.from(p.perm.idx, Number) : undefined;
  const gs = groups === 1 ? K : g.groupSize;
  // The kernel's input k is checkpoint input order[k]; its group must be GPTQ's group of that input.
  for (let k = 0; k < K; k++) {
    const j = order ? order[k]! : k;
    if (c.gIdx[j] !== Math.floor(k / gs)) bad(`input ${j} runs in group ${Math.floor(k / gs)}, GPTQ put it in group ${c.gIdx[j]}`);
  }
  const B = p.B, codes = c.intCodes;
  const badCode = (n: number, k: number): never => {
    const code = (B[n * rowBytes + Math.floor(k / per)]! >>> ((k % per) * tb)) & mask, j = order ? order[k]! : k;
    return bad(`code [${n}, ${j}] loads as ${code}, GPTQ chose ${codes[n * K + j]}`);
  };
  for (let n = 0; n < N; n++) {
    const row = n * rowBytes, crow = n * K;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * block, gi = c.gIdx[order ? order[k0]! : k0]! * N + n;
      const scale = p.scales[n * kBlocks + b]!;
      const zero = p.zeroPoints ? (p.zeroPoints[n * zRow + Math.floor(b / per)]! >>> ((b % per) * tb)) & mask : 1 << (tb - 1);
      if (scale !== c.scales[gi]) bad(`scale of output ${n}, group ${gi / N | 0} loads as ${scale}, GPTQ used ${c.scales[gi]}`);
      if (zero !== c.zeros[gi]) bad(`zero point of output ${n}, group ${gi / N | 0} loads as ${zero}, GPTQ used ${c.zeros[gi]}`);
    }
    // Codes, one kernel byte at a time (K is a multiple of 32, so rows hold whole bytes).
    if (tb === 4 && !order) {
      for (let k = 0; k < K; k += 2) if (B[row + (k >>> 1)] !== (codes[crow + k]! | (codes[crow + k + 1]! << 4))) badCode(n, k);
    } else if (tb === 4) {
      for (let k = 0; k < K; k += 2) if (B[row + (k >>> 1)] !== (codes[crow + order![k]!]! | (codes[crow + order![k + 1]!]! << 4))) badCode(n, k);
    } else if (!order) {
      for (let k = 0; k < K; k++) if (B[row + k] !== codes[crow + k]) badCode(n, k);
    } else {
      for (let k = 0; k < K; k++) if (B[row + k] !== codes[crow + order[k]!]) badCode(n, k);
    }
  }
}

/** Suffixes of one quantized module's saved tensors, in digest order. */
const MODULE_TENSORS = ['qweight', 'qzeros', 'scales', 'g_idx', 'bias'];

/** sha256 over one module's saved tensors (name, dtype, shape, bytes), as written or as read back. */
export async function moduleDigest(name: string, get: (n: string) => Promise<Tensor | undefined>): Promise<string> {
  const h = createHash('sha256');
  for (const s of MODULE_TENSORS) {
    const t = await get(`${name}.${s}`);
    if (!t) continue;
    h.update(`${name}.${s}|${t.dtype}|${t.shape.join(',')}|`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

export interface SaveOptions {
  maxShardSize?: string | number;
  /**
   * Write into a non-empty folder: replace its checkpoint files (isCheckpointFile: config.json, quantize_config.json,
   * model*.safetensors and the index, tokenizer/generation files) and keep every other file. Default false: a
   * non-empty folder is refused unless it holds this same run's earlier output.
   */
  overwrite?: boolean;
}

/** Names a saved checkpoint consists of (and a previous save may have left in another shard layout). */
export function isCheckpointFile(name: string): boolean {
  return name === 'config.json' || name === 'quantize_config.json' || name === 'model.safetensors' || name === 'model.safetensors.index.json'
    || /^model-\d{5}-of-\d{5}\.safetensors$/.test(name) || SIDE_FILES.includes(name) || name === 'README.md';
}


/** The gptqjs checkpoint `dir` holds, when it holds nothing else: its quantize_config.json (with meta). */
export async function previousGptqjsOutput(dir: string, entries: string[]): Promise<Record<string, unknown> | undefined> {
  if (!entries.every(isCheckpointFile) || !entries.includes('quantize_config.json')) return undefined;
  try {
    const j = JSON.parse(await fs.readFile(join(dir, 'quantize_config.json'), 'utf8'));
    const q = j?.meta?.quantizer;
    return Array.isArray(q) && q.some((x) => typeof x === 'string' && x.startsWith('gptqjs:')) ? j : undefined;
  } catch { return undefined; }
}

const QC_KEYS = ['bits', 'group_size', 'damp_percent', 'desc_act', 'static_groups', 'sym', 'true_sequential', 'checkpoint_format'];

/**
 * Whether a checkpoint may be saved to `out`, decided before any work where possible (the CLI calls it before
 * quantizing, saveQuantized again when saving). Refuses: `out` resolving to the source model folder (also through a
 * relative path or a symlink; even with overwrite); a file; a non-empty folder without `overwrite`, unless it holds
 * only a gptqjs checkpoint of this same run (same runId; before the run id is known, `config` must match).
 * Returns what will happen, for the caller to report.
 */
export async function checkOutputDir(out: string, o: { source: string; overwrite?: boolean; runId?: string; config?: QuantizeConfig }): Promise<'new' | 'empty' | 'overwrite' | 'same-run'> {
  const rOut = realPath(out), rSrc = realPath(o.source);
  if (rOut === rSrc) fail(`output ${out} is the source model folder ${o.source}${out !== o.source ? ` (both are ${rSrc})` : ''}; choose another output folder (refused even with overwrite)`);
  const st = await fs.stat(out).catch(() => null);
  if (!st) return 'new';
  if (!st.isDirectory()) fail(`output ${out} exists and is not a directory`);
  const entries = await fs.readdir(out);
  if (!entries.length) return 'empty';
  if (o.overwrite) return 'overwrite';
  const hint = 'choose another output folder, or pass overwrite (CLI: --overwrite) to replace its checkpoint files (config.json, quantize_config.json, *.safetensors, tokenizer files); other files are always kept';
  const prev = await previousGptqjsOutput(out, entries);
  if (!prev) {
    const foreign = entries.filter((n) => !isCheckpointFile(n));
    fail(`output ${out} is not empty and does not hold a gptqjs checkpoint only (${(foreign.length ? foreign : entries).slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); ${hint}`);
  }
  const meta = prev.meta as Record<string, unknown>;
  if (o.runId !== undefined) {
    if (meta.gptqjs_run === o.runId) return 'same-run';
    fail(`output ${out} holds a gptqjs checkpoint of a different run (source, quantize config or calibration data differ); ${hint}`);
  }
  if (o.config) {
    const want = toQuantizeConfigJson(o.config);
    const diff = QC_KEYS.filter((k) => JSON.stringify(prev[k]) !== JSON.stringify(want[k]));
    if (diff.length) fail(`output ${out} holds a gptqjs checkpoint of a different run (${diff.map((k) => `${k} ${JSON.stringify(prev[k])} ≠ ${JSON.stringify(want[k])}`).join(', ')}); ${hint}`);
  }
  if (meta.gptqjs_run === undefined) fail(`output ${out} holds a gptqjs checkpoint that records no run id; ${hint}`);
  return 'same-run';
}

/**
 * Write the checkpoint atomically (see checkOutputDir for where; writeDirAtomic for how); tensors stream from the
 * source checkpoint and the quantizer's result. `extra.meta` goes into quantize_config.json and
 * config.json#quantization_config as `meta` (default: GPTQModel's `quantizer` list with "gptqjs:<version>"; the run
 * id is added as `gptqjs_run`); `extra.files` are written next to them (README.md: the model card). Before the
 * directory appears, every quantized module's tensors are read back from the written shards and must match the
 * digest recorded when they were verified against GPTQ's result (else a one-line error naming the module, and `out`
 * is left as it was).
 */
export async function saveQuantizedCheckpoint(out: string, src: { dir: string; ck: Checkpoint; cfg: ModelConfig; arch: ArchDefinition }, q: QuantizeConfig,
  res: Pick<QuantizeLoopResult, 'quantized' | 'packed' | 'skipped' | 'digests'>, o: SaveOptions & { runId?: string } = {},
  extra: { meta?: Record<string, unknown>; files?: Record<string, string> } = {}): Promise<void> {
  await checkOutputDir(out, { source: src.dir, overwrite: o.overwrite, runId: o.runId ?? '' });
  const tensors = new Map<string, TensorLike>();
  for (const n of tensorNamesToSave(src.ck, src.cfg, src.arch)) if (!res.quantized.has(n.replace(/\.(weight|bias)$/, ''))) tensors.set(n, lazyFrom(src.ck, n));
  for (const [n, t] of res.packed) tensors.set(n, t);
  for (const m of res.quantized) if (!res.digests.has(m)) fail(`${m}: no record that its packed tensors were verified against GPTQ's result; quantize again`);
  const meta = { quantizer: [QUANTIZER_ID], ...extra.meta, ...(o.runId ? { gptqjs_run: o.runId } : {}) };
  const qjson = { ...quantizationConfigJson(src.arch, src.cfg, q, res.skipped), meta };
  const write = async (tmp: string) => {
    await saveSharded(tmp, tensors, { maxShardSize: o.maxShardSize ?? '5GB', metadata: { format: 'pt' } });
    const back = await Checkpoint.open(tmp);
    try {
      for (const m of res.quantized) {
        const d = await moduleDigest(m, async (n) => (back.has(n) ? back.read(n) : undefined));
        if (d !== res.digests.get(m)) fail(`${m}: the tensors written to ${out} differ from the ones verified against GPTQ's result (digest mismatch); nothing was saved`);
      }
    } finally { await back.dispose(); }
    const config = { ...src.cfg.raw, quantization_config: qjson };
    await fs.writeFile(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const qc = { ...toQuantizeConfigJson(q), model_file_base_name: 'model', meta };
    await fs.writeFile(join(tmp, 'quantize_config.json'), JSON.stringify(qc, null, 2) + '\n');
    for (const f of SIDE_FILES) if (existsSync(join(src.dir, f))) await fs.copyFile(join(src.dir, f), join(tmp, f));
    for (const [f, text] of Object.entries(extra.files ?? {})) await fs.writeFile(join(tmp, f), text);
  };
  // checkOutputDir above decided that `out` may be written; the install replaces only checkpoint files.
  // README.md (the model card) is replaced only when this save writes one.
  await writeDirAtomic(out, write, { owns: (n) => isCheckpointFile(n) && (n !== 'README.md' || !!extra.files?.['README.md']), overwrite: true });
}
