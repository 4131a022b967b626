/**
 * `gptq inspect <dir>`: what a checkpoint holds (fp, GPTQ, AWQ, bitsandbytes or AQLM), from tensor headers only (no
 * weights are read; bitsandbytes' small quant-state JSON tensors are).
 */
import { promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { MODEL_ARG, modelDir } from './args.ts';
import { fmtBytes } from './output.ts';
import { loadModelConfig } from '../io/config.ts';
import { Checkpoint, lookupBaseModelName } from '../io/safetensors.ts';
import { archFor } from '../models/registry.ts';
import type { ArchDefinition } from '../models/types.ts';
import { toQuantizeConfigJson } from '../quant/quantize-config.ts';
import { archLinears, checkModuleTensors, linearSpecs, quantizedModuleNames, readQuantizeConfig } from '../runtime/gptq-checkpoint.ts';
import { fail } from '../errors.ts';
import { detectFormat, quantizedModuleOf } from '../formats/common.ts';
import { inspectFormat } from '../formats/inspect.ts';

export const COMMAND = {
  name: 'inspect',
  description: `Architecture, parameter count, effective bits per weight (codes + scales + zeros + g_idx + other), size on
disk, quantized vs kept-in-fp modules and the quantization format and config (GPTQ, AWQ, bitsandbytes, AQLM) of a
checkpoint directory. Reads tensor headers only.`,
  positionals: [MODEL_ARG],
  flags: [JSON_FLAG],
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export interface InspectReport {
  dir: string;
  modelType: string;
  architectures: string[];
  /** The ArchDefinition serving model_type, or null when unsupported. */
  arch: string | null;
  shape: { layers: number; hidden: number; intermediate: number; heads: number; kvHeads: number; vocab: number };
  params: { total: number; quantized: number; fp: number };
  files: { name: string; bytes: number }[];
  diskBytes: number;
  quantization: null | {
    /** gptq, or the other format (src/formats). */
    method: 'gptq' | 'awq' | 'bitsandbytes' | 'aqlm';
    /** One line naming the scheme (formats other than GPTQ; GPTQ's is built from `config`). */
    summary?: string;
    configFrom: string;
    /** GPTQ: the parsed config in AutoGPTQ keys; other formats: quantization_config as written. */
    config: Record<string, unknown>;
    /**
     * Over the quantized linears: storage bits per weight, total and by tensor role. other: AQLM codebooks, bitsandbytes
     * code tables and quant-state JSON, LLM.int8 weight_format.
     */
    bitsPerWeight: { total: number; codes: number; scales: number; zeros: number; gIdx: number; other: number };
    actOrderModules: number;
  };
  /** Whole model: storage bits per parameter (all tensors). */
  bitsPerParam: number;
  quantizedModules: string[];
  keptModules: string[];
  tiedLmHead: boolean;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export async function inspectModel(dir: string): Promise<InspectReport> {
  const cfg = await loadModelConfig(dir);
  let arch: ArchDefinition | undefined;
  try { arch = archFor(cfg.modelType); } catch { arch = undefined; }
  const ck = await Checkpoint.open(dir);
  try {
    const files = await Promise.all(ck.files.map(async (f) => ({ name: basename(f), bytes: (await fs.stat(f)).size })));
    if (ck.indexPath) files.push({ name: basename(ck.indexPath), bytes: (await fs.stat(ck.indexPath)).size });
    const specs = arch ? linearSpecs(arch, cfg) : new Map<string, { inFeatures: number; outFeatures: number }>();
    const fmt = detectFormat(dir, cfg);
    const other = fmt ? await inspectFormat(ck, fmt, (m) => specs.get(m)) : undefined;
    const qmods = other ? other.modules : quantizedModuleNames(ck);
    const qset = new Set(qmods);
    const q = other ? undefined : await readQuantizeConfig(dir, cfg);
    if (qmods.length && !q && !other) fail(`${dir}: has GPTQ tensors (e.g. "${qmods[0]}.qweight") but no quantize_config.json and config.json has no quantization_config`);
    let qParams = 0, fpParams = 0, codes = other?.bytes.codes ?? 0, scales = other?.bytes.scales ?? 0, zeros = other?.bytes.zeros ?? 0, gIdx = 0, actOrder = 0, allBytes = 0;
    if (other) for (const m of qmods) { const sp = specs.get(m)!; qParams += sp.inFeatures * sp.outFeatures; }
    for (const m of other ? [] : qmods) {
      const c = checkModuleTensors(ck, q!, m, specs.get(m));
      qParams += c.inFeatures * c.outFeatures;
      codes += ck.info(`${m}.qweight`).byteLength;
      scales += ck.info(`${m}.scales`).byteLength;
      zeros += ck.info(`${m}.qzeros`).byteLength;
      if (c.hasGIdx) {
        gIdx += ck.info(`${m}.g_idx`).byteLength;
        const gi = (await ck.read(`${m}.g_idx`)).data;
        const gs = c.groups === 1 ? c.inFeatures : c.groupSize;
        for (let k = 0; k < gi.length; k++) if (Number(gi[k]) !== Math.floor(k / gs)) { actOrder++; break; }
      }
    }
    for (const n of ck.names()) {
      const info = ck.info(n);
      allBytes += info.byteLength;
      // a quantized module's tensors (all but its bias): `<m>.qweight`, bitsandbytes' `<m>.weight.quant_state.…`
      const mod = quantizedModuleOf(n, qset);
      if (mod !== undefined && n !== `${mod}.bias`) continue;
      if (['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) fpParams += numel(info.shape);
    }
    const full = arch ? [...archLinears(arch, cfg).keys()] : [];
    const has = (n: string) => ck.has(ck.resolve(n));
    const kept = full.filter((m) => !lookupBaseModelName((x) => qset.has(x) || undefined, m) && has(`${m}.weight`));
    const lmHead = arch?.lmHead ?? 'lm_head';
    const tiedLmHead = !!arch && !has(`${lmHead}.weight`) && !qset.has(lmHead);
    const otherBytes = other?.bytes.other ?? 0, qBytes = codes + scales + zeros + gIdx + otherBytes;
    const bpw = (b: number) => (qParams ? (b * 8) / qParams : 0);
    return {
      dir, modelType: cfg.modelType, architectures: cfg.architectures, arch: arch ? arch.modelTypes[0]! : null,
      shape: { layers: cfg.numLayers, hidden: cfg.hiddenSize, intermediate: cfg.intermediateSize, heads: cfg.numHeads, kvHeads: cfg.numKvHeads, vocab: cfg.vocabSize },
      params: { total: qParams + fpParams, quantized: qParams, fp: fpParams },
      files, diskBytes: files.reduce((a, f) => a + f.bytes, 0),
      quantization: other && fmt ? {
        method: other.method, summary: other.summary, configFrom: fmt.from, config: fmt.raw,
        bitsPerWeight: { total: bpw(qBytes), codes: bpw(codes), scales: bpw(scales), zeros: bpw(zeros), gIdx: 0, other: bpw(otherBytes) },
        actOrderModules: 0,
      } : q && qmods.length ? {
        method: 'gptq', configFrom: q.from, config: { ...toQuantizeConfigJson(q.config), ...(q.dynamic ? { dynamic: q.dynamic } : {}) },
        bitsPerWeight: { total: bpw(qBytes), codes: bpw(codes), scales: bpw(scales), zeros: bpw(zeros), gIdx: bpw(gIdx), other: 0 },
        actOrderModules: actOrder,
      } : null,
      bitsPerParam: (allBytes * 8) / Math.max(1, qParams + fpParams),
      quantizedModules: qmods, keptModules: kept, tiedLmHead,
    };
  } finally { await ck.dispose(); }
}

/** "model.layers.{0-3,5}.self_attn.q_proj"-style summary of module names (first numeric component folded). */
export function summarizeNames(names: readonly string[], max = 12): string[] {
  const groups = new Map<string, number[]>();
  const plain: string[] = [];
  for (const n of names) {
    const m = /^(.*?\.)(\d+)(\..*)$/.exec(n);
    if (!m) { plain.push(n); continue; }
    const key = `${m[1]}{}${m[3]}`;
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(Number(m[2]));
  }
  const ranges = (xs: number[]) => {
    const s = [...new Set(xs)].sort((a, b) => a - b), out: string[] = [];
    for (let i = 0; i < s.length; i++) {
      let j = i;
      while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
      out.push(j > i ? `${s[i]}-${s[j]}` : `${s[i]}`);
      i = j;
    }
    return out.join(',');
  };
  const lines = [...[...groups].map(([k, xs]) => k.replace('{}', `{${ranges(xs)}}`)), ...plain];
  return lines.length > max ? [...lines.slice(0, max), `… and ${lines.length - max} more`] : lines;
}

const fmtCount = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : `${n}`);

export function formatReport(r: InspectReport): string {
  const L: string[] = [];
  const row = (k: string, v: string) => L.push(`${(k + ':').padEnd(15)}${v}`);
  row('model', r.dir);
  row('architecture', `${r.modelType} (${r.architectures.join(', ') || 'no architectures field'})${r.arch ? '' : ' — not supported for inference'}`);
  const s = r.shape;
  row('shape', `${s.layers} layers, hidden ${s.hidden}, intermediate ${s.intermediate}, heads ${s.heads}/${s.kvHeads} (q/kv), vocab ${s.vocab}`);
  row('parameters', `${fmtCount(r.params.total)}${r.quantization ? ` (${fmtCount(r.params.quantized)} in quantized linears, ${fmtCount(r.params.fp)} fp)` : ''}`);
  row('size on disk', `${fmtBytes(r.diskBytes)} in ${r.files.length} file${r.files.length > 1 ? 's' : ''} (${r.files.map((f) => f.name).join(', ')}); ${r.bitsPerParam.toFixed(2)} bits/param overall`);
  if (!r.quantization) {
    row('quantization', 'none (not a quantized checkpoint)');
    return L.join('\n');
  }
  const q = r.quantization, c = q.config;
  if (q.method === 'gptq') {
    row('quantization', `GPTQ ${c.bits}-bit, group ${c.group_size}, ${c.sym ? 'sym' : 'asym'}, desc_act ${c.desc_act}, format ${c.checkpoint_format}${q.actOrderModules ? ` (${q.actOrderModules} modules with act-order g_idx)` : ''}`);
  } else row('quantization', q.summary ?? q.method);
  row('config from', q.configFrom);
  if (q.method === 'gptq' && c.dynamic) row('dynamic', JSON.stringify(c.dynamic));
  const b = q.bitsPerWeight;
  const parts = [['codes', b.codes], ['scales', b.scales], ['zeros', b.zeros], ['g_idx', b.gIdx], ['other', b.other]] as const;
  row('bits/weight', `${b.total.toFixed(3)} in quantized linears = ${parts.filter(([k, v]) => v || k === 'codes' || (q.method === 'gptq' && k !== 'other')).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(' + ')}`);
  row('quantized', `${r.quantizedModules.length} linear${r.quantizedModules.length === 1 ? '' : 's'}`);
  for (const n of summarizeNames(r.quantizedModules)) L.push(`${' '.repeat(17)}${n}`);
  row('kept fp', `${r.keptModules.length} linear${r.keptModules.length === 1 ? '' : 's'}${r.tiedLmHead ? ' (+ lm_head tied to the embeddings)' : ''}`);
  for (const n of summarizeNames(r.keptModules)) L.push(`${' '.repeat(17)}${n}`);
  return L.join('\n');
}

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  const r = await inspectModel(await modelDir(p[0], { command: 'inspect' }));
  console.log(v.json ? JSON.stringify(r, null, 2) : formatReport(r));
}
