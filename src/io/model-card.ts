/**
 * Provenance of a quantized checkpoint and its model card (README.md).
 *
 * Provenance goes into quantize_config.json and config.json#quantization_config under `meta`, the field GPTQModel
 * records its quantizer in (gptqmodel/quantization/config.py META_FIELD = "meta", META_FIELD_QUANTIZER = "quantizer":
 * a list of "tool:version"; "uri"; "damp_percent", "static_groups", "true_sequential"), plus gptqjs' own keys
 * "calibration" and "perplexity". Loaders that do not know `meta` ignore it (AutoGPTQ, Transformers' GPTQConfig).
 *
 * The card is what the Hub shows: YAML metadata (base_model + base_model_relation: quantized links it to the base
 * model's page, https://huggingface.co/docs/hub/model-cards#specifying-a-base-model), the settings, calibration data,
 * perplexity when measured, and how to load it with gptqjs and Transformers.
 */
import { promises as fs } from '../platform/fs.ts';
import { basename, join } from '../platform/path.ts';
import { fail } from '../errors.ts';
import { QUANTIZER_ID } from '../version.ts';

/** Homepage recorded as `meta.uri`. */
export const GPTQJS_URI = 'https://www.npmjs.com/package/gptqjs';

/** The calibration a model was quantized with. */
export interface CalibrationInfo {
  /** A dataset name ("c4", "wikitext2"), a file name, or a description ("512 texts"). */
  dataset: string;
  /** Calibration windows (samples) and tokens per window (the longest; the total is `tokens`). */
  nsamples: number;
  seqlen: number;
  tokens: number;
}

/** A perplexity measurement (lower is better), e.g. from `gptq ppl` / perplexity(). */
export interface PerplexityInfo {
  dataset: string;
  /** Window length in tokens. */
  seqlen?: number;
  /** Perplexity of the quantized model. */
  value: number;
  /** Perplexity of the base model on the same windows, when known. */
  baseValue?: number;
}

/**
 * What the card is made from: the checkpoint's own files, so that the card of a saved directory can be made again
 * exactly (`gptq push` replaces an unedited generated card by one naming the repo).
 */
export interface ModelCardInfo {
  /** quantize_config.json as saved (snake_case keys; `meta`: quantizer, calibration, perplexity, base_model). */
  quantizeConfig: Record<string, unknown>;
  /** config.json as saved (model_type; `_name_or_path` names the base model when `meta.base_model` is absent). */
  config?: Record<string, unknown>;
  /** Hub id this checkpoint is pushed to, for the usage snippets (default: a placeholder path). */
  repoId?: string;
}

/**
 * `meta` for quantize_config.json: gptqjs as the quantizer (GPTQModel's layout) + calibration, perplexity and the
 * base model's Hub id (`base_model`, as the card's YAML calls it) when known.
 */
export function quantizerMeta(q: { dampPercent: number; staticGroups: boolean; trueSequential: boolean; actGroupAware?: boolean },
  o: { calibration?: CalibrationInfo; perplexity?: PerplexityInfo; baseModel?: string } = {}): Record<string, unknown> {
  const meta: Record<string, unknown> = {
    quantizer: [QUANTIZER_ID], uri: GPTQJS_URI,
    damp_percent: q.dampPercent, static_groups: q.staticGroups, true_sequential: q.trueSequential,
  };
  // GPTQModel's name for group-aware act-order; the checkpoint itself stays desc_act false with in-order g_idx
  if (q.actGroupAware) meta.act_group_aware = true;
  if (o.calibration) meta.calibration = { ...o.calibration };
  if (o.perplexity) meta.perplexity = { ...o.perplexity };
  if (o.baseModel !== undefined) {
    if (!isHubId(o.baseModel)) fail(`baseModel: "${o.baseModel}" is not a Hub id (owner/name)`);
    meta.base_model = o.baseModel;
  }
  return meta;
}

/** Placeholder for the model's location in the usage snippets before it has a repo id. */
export const CARD_PLACEHOLDER = 'path/to/this/model';

const isHubId = (s: unknown): s is string => typeof s === 'string' && /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.includes('..');
const yamlString = (s: string) => (/^[\w./-]+$/.test(s) ? s : JSON.stringify(s));
const fmtNum = (v: number) => (Number.isInteger(v) ? String(v) : String(+v.toPrecision(6)));

/** Render README.md. */
/** No README.md (undefined), or one gptqjs generated (its "made with gptqjs" line): may be (re)written by a save. */
export function isGeneratedCard(text: string | undefined): boolean {
  return text === undefined || text.includes('made with [gptqjs](');
}

export function modelCard(info: ModelCardInfo): string {
  const q = info.quantizeConfig, cfg = info.config ?? {};
  const meta = (q.meta && typeof q.meta === 'object' ? q.meta : {}) as Record<string, unknown>;
  const bits = Number(q.bits);
  const quantizers = Array.isArray(meta.quantizer) ? meta.quantizer.map(String) : [];
  const nameOrPath = typeof cfg._name_or_path === 'string' && cfg._name_or_path ? cfg._name_or_path : undefined;
  const base = isHubId(meta.base_model) ? meta.base_model : isHubId(nameOrPath) ? nameOrPath : undefined;
  const baseName = base ?? (nameOrPath && basename(nameOrPath));
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : undefined;
  const repo = info.repoId ?? CARD_PLACEHOLDER;

  const yaml = ['---'];
  if (base) yaml.push(`base_model: ${yamlString(base)}`, 'base_model_relation: quantized');
  yaml.push('library_name: transformers', 'pipeline_tag: text-generation', 'tags:', '- gptq', `- ${bits}-bit`, '- gptqjs', '---');

  const out: string[] = [yaml.join('\n'), ''];
  const title = `${base ? base.split('/')[1] : baseName ?? modelType ?? 'Model'} — GPTQ ${bits}-bit`;
  out.push(`# ${title}`, '');
  const of = base ? `[${base}](https://huggingface.co/${base})` : baseName ? `\`${baseName}\`` : 'a causal language model';
  out.push(`${bits}-bit GPTQ quantization of ${of}${modelType ? ` (\`${modelType}\`)` : ''}, in the AutoGPTQ checkpoint format `
    + `(\`qweight\`/\`qzeros\`/\`scales\`/\`g_idx\`, \`quantize_config.json\`), made with `
    + `[gptqjs](${GPTQJS_URI})${quantizers.length ? ` (${quantizers.map((s) => `\`${s}\``).join(', ')})` : ''}.`, '');

  out.push('## Quantization', '', '| setting | value |', '|---|---|');
  const row = (k: string, v: unknown) => { if (v !== undefined && v !== null) out.push(`| ${k} | ${typeof v === 'number' ? fmtNum(v) : String(v)} |`); };
  row('bits', q.bits);
  row('group size', q.group_size === -1 ? '-1 (one group per row)' : q.group_size);
  row('desc_act (act-order)', q.desc_act);
  row('sym', q.sym);
  row('damp_percent', q.damp_percent);
  row('static_groups', q.static_groups);
  row('true_sequential', q.true_sequential);
  row('checkpoint format', q.checkpoint_format ?? 'gptq');
  row('quantizer', quantizers.join(', ') || undefined);
  out.push('');

  const cal = meta.calibration as CalibrationInfo | undefined;
  out.push('## Calibration data', '');
  if (cal && typeof cal === 'object') {
    out.push(`${cal.dataset}: ${cal.nsamples} samples of up to ${cal.seqlen} tokens (${cal.tokens} tokens in all).`, '');
  } else out.push('Not recorded.', '');

  const ppl = meta.perplexity as PerplexityInfo | undefined;
  if (ppl && typeof ppl === 'object' && typeof ppl.value === 'number') {
    out.push('## Evaluation', '', '| dataset | seqlen | perplexity (this model) | perplexity (base model) |', '|---|---|---|---|');
    out.push(`| ${ppl.dataset} | ${ppl.seqlen ?? ''} | ${fmtNum(ppl.value)} | ${ppl.baseValue === undefined ? '' : fmtNum(ppl.baseValue)} |`, '');
  }

  out.push('## Use', '', 'With gptqjs (Node ≥ 20, `npm install gptqjs`):', '', '```js', "import { CausalLM } from 'gptqjs';", '',
    `const lm = await CausalLM.load(${JSON.stringify(repo)});`, "const { text } = await lm.generate('Once upon a time', { maxNewTokens: 64 });",
    'console.log(text);', '```', '', `or \`npx gptq generate ${repo} "Once upon a time"\`.`, '',
    'With Transformers (GPTQ kernels from `gptqmodel`, or `optimum` + `auto-gptq`):', '', '```python',
    'from transformers import AutoModelForCausalLM, AutoTokenizer', '',
    `model = AutoModelForCausalLM.from_pretrained(${JSON.stringify(repo)}, device_map="auto")`,
    `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(repo)})`, '```', '');
  return out.join('\n');
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try { text = await fs.readFile(path, 'utf8'); } catch (e: any) { if (e.code === 'ENOENT') return undefined; fail(`${path}: cannot read (${e.message})`); }
  let v: unknown;
  try { v = JSON.parse(text); } catch (e: any) { fail(`${path}: not valid JSON (${String(e.message).split('\n')[0]})`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(`${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * The card of a saved GPTQ checkpoint directory, from its quantize_config.json (or config.json#quantization_config)
 * and config.json. Throws GptqError when the directory holds no GPTQ quantization config.
 */
export async function modelCardForDir(dir: string, o: { repoId?: string } = {}): Promise<string> {
  const cfg = await readJsonObject(join(dir, 'config.json'));
  const qc = (await readJsonObject(join(dir, 'quantize_config.json'))) ?? (cfg?.quantization_config as Record<string, unknown> | undefined);
  if (!qc || typeof qc !== 'object') fail(`${dir}: no quantize_config.json or config.json#quantization_config: not a GPTQ checkpoint, so no model card can be generated (add a README.md)`);
  return modelCard({ quantizeConfig: qc, config: cfg, repoId: o.repoId });
}
