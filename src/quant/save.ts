/**
 * Write an AutoGPTQ-format checkpoint: packed safetensors, quantize_config.json, config.json#quantization_config.
 * What is saved is exactly what GPTQ computed: every module's packed tensors were decoded by the loader's own
 * conversion and compared with GPTQ's codes/scales/zeros/g_idx when packed (module-tensors.ts verifyPackedModule), and
 * the files written are read back and checked against the digests of those verified tensors before the directory
 * appears.
 */
import { promises as fs, existsSync } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { realPath, writeDirAtomic } from '../io/atomic.ts';
import { QUANTIZER_ID } from '../version.ts';
import { Checkpoint, lazyFrom, saveSharded, type TensorLike } from '../io/safetensors.ts';
import type { ModelConfig } from '../io/config.ts';
import type { ArchDefinition } from '../models/types.ts';
import { tensorNamesToSave } from '../runtime/model-checkpoint.ts';
import { fail, option } from '../errors.ts';
import { toQuantizeConfigJson, type QuantizeConfig } from './quantize-config.ts';
import { moduleDigest } from './module-tensors.ts';
import type { QuantizeLoopResult, SkippedModule } from './layer-loop.ts';

/** Files copied unchanged from the source model directory. */
export const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json', 'chat_template.jinja', 'vocab.json', 'merges.txt'];

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
  const hint = `choose another output folder, or pass ${option('overwrite: true', '--overwrite')} to replace its checkpoint files (config.json, quantize_config.json, *.safetensors, tokenizer files); other files are always kept`;
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
