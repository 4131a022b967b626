/**
 * PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`), several per model, applied UNMERGED in the
 * graph on every base (GPTQ/AWQ/bnb/fp alike) and chosen per batch row at run time.
 *
 * Rules followed (peft 0.21.0; file paths inside the `peft` package):
 * - tuners/lora/config.py `LoraConfig`: r, lora_alpha, use_rslora, target_modules (list or regex string, or the
 *   "all-linear" shorthand), exclude_modules, layers_to_transform / layers_pattern, rank_pattern / alpha_pattern,
 *   fan_in_fan_out, modules_to_save. Fields whose math is not plain LoRA are refused (one line each): use_dora (DoRA's
 *   magnitude vector), bias ≠ "none" / lora_bias (trained biases), use_qalora, alora_invocation_tokens (aLoRA),
 *   use_bdlora, target_parameters, layer_replication, trainable_token_indices; peft_type ≠ "LORA" (IA3, LoHa, …).
 * - tuners/tuners_utils.py `check_target_module_exists`: exclude_modules first (string: re.fullmatch; list: the name
 *   or a ".<entry>" suffix), modules under a modules_to_save entry are never targeted, target_modules string =
 *   re.fullmatch over the full module name, list = the name itself or a ".<entry>" suffix, then layers_to_transform
 *   with the first numbered component after layers_pattern (or any component when there is no pattern). No matching
 *   module at all is an error, as PEFT's "Target modules … not found in the base model".
 * - tuners/tuners_utils.py `_maybe_include_all_linear_layers`: "all-linear" = every linear except the output head.
 * - tuners/lora/model.py `_create_and_replace` + utils/other.py `get_pattern_key`: a module's r / alpha come from the
 *   first rank_pattern / alpha_pattern key k with re.match(rf"(.*\.)?({k})$", name), else r / lora_alpha.
 * - tuners/lora/layer.py `LoraLayer.update_layer`: scaling = lora_alpha / r, or lora_alpha / √r with use_rslora;
 *   `Linear.forward` (unmerged): y = base(x) + lora_B(lora_A(dropout(x))) · scaling — dropout is off at inference;
 *   lora_A is an nn.Linear [r, in] and lora_B [out, r] whatever the base layer is (fan_in_fan_out only transposes the
 *   base weight when merging, for GPT-2's Conv1D), so it changes nothing here.
 * - utils/save_and_load.py `get_peft_model_state_dict` / `set_peft_model_state_dict`: the file holds
 *   `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (the adapter name removed) and, for modules_to_save,
 *   the whole module's tensors as `base_model.model.<module>.weight` / `.bias`. `lora_embedding_A/B` (LoRA on
 *   embeddings) and `lora_magnitude_vector` (DoRA) are refused.
 *
 * In the graph (LoraWeights): every adapted linear gets, beside its own output y (MatMulNBits, Gemm, …),
 *   y + Reshape( ((x·A_catᵀ) ⊙ gate) · (scaling·B)_catᵀ )
 * where A_cat / B_cat stack the adapters that target the module along the rank axis (ranks r₁ + r₂ + …, tiny next to
 * the linear) and `gate` [B, 1, Σr] is gathered from the graph input `lora_gate` [batch, adapters] (1 = that adapter on
 * for that batch row, 0 = off). So one session serves the base model and every adapter, per row (continuous batching in
 * `gptq serve` mixes adapters in one step), at the cost of the adapters' small matmuls. A modules_to_save module is
 * computed with the adapter's own weights next to the base one and selected per row (Where on the gate). With every
 * gate 0 the added term is exactly zero: the base model's output.
 */
import { join } from '../platform/path.ts';
import { existsSync, promises as fs } from '../platform/fs.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { gemmLinear } from '../graph/weights.ts';
import type { ModelConfig } from '../io/config.ts';
import { checkFinite, SafetensorsFile } from '../io/safetensors.ts';
import type { ArchDefinition, LinearSpec, WeightSource } from '../models/types.ts';
import { fail } from '../errors.ts';

/** Name of the graph input that chooses adapters per batch row: float32 [batch, adapters]. */
export const LORA_GATE = 'lora_gate';

/** The LoraConfig fields gptqjs reads (PEFT's names, adapter_config.json). */
export interface LoraConfigJson {
  peft_type: string; r: number; lora_alpha: number; use_rslora?: boolean;
  target_modules: string | string[] | null; exclude_modules?: string | string[] | null;
  layers_to_transform?: number | number[] | null; layers_pattern?: string | string[] | null;
  rank_pattern?: Record<string, number>; alpha_pattern?: Record<string, number>;
  fan_in_fan_out?: boolean; modules_to_save?: string[] | null;
  [k: string]: unknown;
}

/** One adapted linear of one adapter: y += (x·Aᵀ)·Bᵀ·scaling. */
export interface LoraModule {
  /** Full module name, e.g. "model.layers.0.self_attn.q_proj". */
  name: string; r: number; alpha: number; scaling: number;
  /** lora_A [r, in] and lora_B [out, r], row-major fp32. */
  A: Float32Array; B: Float32Array; inFeatures: number; outFeatures: number;
}

/** A loaded adapter: its LoRA modules and its modules_to_save replacements (module → weight [out, in], bias). */
export interface LoraAdapter {
  name: string; dir: string; config: LoraConfigJson;
  modules: Map<string, LoraModule>;
  replaced: Map<string, { weight: Float32Array; bias?: Float32Array }>;
}

const PREFIX = 'base_model.model.';

/** A JS RegExp for Python's re.fullmatch(pattern, s) (PEFT's patterns are plain enough for JS syntax). */
function fullmatch(pattern: string, where: string): RegExp {
  try { return new RegExp(`^(?:${pattern})$`); } catch (e) { fail(`${where}: not a regular expression JavaScript accepts (${(e as Error).message})`); }
}

/** The linears of the model graph (name → in/out), as PEFT sees them under Transformers' module names. */
export function modelLinears(cfg: ModelConfig, arch: ArchDefinition): Map<string, { inFeatures: number; outFeatures: number; conv1d?: boolean }> {
  const m = new Map<string, { inFeatures: number; outFeatures: number; conv1d?: boolean }>();
  for (let i = 0; i < cfg.numLayers; i++) for (const l of arch.layerLinears(cfg, i)) m.set(`${arch.layersBlockName}${i}.${l.rel}`, l);
  m.set(arch.lmHead, { inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize });
  return m;
}

/** peft/utils/other.py get_pattern_key: the first key k with re.match(rf"(.*\.)?({k})$", name), else undefined. */
function patternKey(keys: string[], name: string, where: string): string | undefined {
  return keys.find((k) => { try { return new RegExp(`^(.*\\.)?(${k})$`).test(name); } catch { fail(`${where}: key ${JSON.stringify(k)} is not a regular expression JavaScript accepts`); } });
}

/** tuners_utils.py check_target_module_exists for a LoRA config (see the file header). */
function isTarget(c: LoraConfigJson, name: string, where: string): boolean {
  const ex = c.exclude_modules;
  if (typeof ex === 'string' && ex && fullmatch(ex, `${where}: exclude_modules`).test(name)) return false;
  if (Array.isArray(ex) && ex.some((e) => name === e || name.endsWith(`.${e}`))) return false;
  if ((c.modules_to_save ?? []).some((m) => new RegExp(`(^|.*\\.)${m}($|\\..*)`).test(name))) return false;
  const t = c.target_modules;
  if (typeof t === 'string') return fullmatch(t, `${where}: target_modules`).test(name);
  if (!Array.isArray(t)) return false;
  if (t.includes(name)) return true;
  if (!t.some((k) => name.endsWith(`.${k}`))) return false;
  const idx = c.layers_to_transform;
  if (idx === undefined || idx === null || (Array.isArray(idx) && idx.length === 0)) return true;
  const pats = c.layers_pattern === undefined || c.layers_pattern === null ? [] : ([] as string[]).concat(c.layers_pattern);
  let layer: string | undefined;
  if (!pats.length) layer = /^.*?\.[^.]*\.(\d+)\./.exec(name)?.[1];
  else for (const p of pats) { const m = new RegExp(`^(?:|.*?\\.)${p}\\.(\\d+)\\.`).exec(name); if (m) { layer = m[1]; break; } }
  if (layer === undefined) return false;
  return Array.isArray(idx) ? idx.includes(Number(layer)) : Number(layer) === idx;
}

const REFUSED: [field: string, bad: (v: unknown) => boolean, why: string][] = [
  ['use_dora', (v) => v === true, 'DoRA (weight-decomposed LoRA) is not supported, only plain LoRA'],
  ['bias', (v) => v !== undefined && v !== null && v !== 'none', 'trained biases (bias "all"/"lora_only") are not supported, only bias "none"'],
  ['lora_bias', (v) => v === true, 'a LoRA bias on lora_B is not supported'],
  ['use_qalora', (v) => v === true, 'QA-LoRA (pooled inputs) is not supported'],
  ['alora_invocation_tokens', (v) => v !== undefined && v !== null, 'activated LoRA (aLoRA) is not supported'],
  ['use_bdlora', (v) => v !== undefined && v !== null && v !== false, 'block-diagonal LoRA is not supported'],
  ['target_parameters', (v) => Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null, 'LoRA on parameters (target_parameters) is not supported'],
  ['layer_replication', (v) => v !== undefined && v !== null, 'layer_replication is not supported'],
  ['trainable_token_indices', (v) => v !== undefined && v !== null, 'trainable tokens are not supported'],
];

/** adapter_config.json, checked: a LoRA config whose math gptqjs runs exactly; one line naming the field otherwise. */
export async function readLoraConfig(dir: string): Promise<LoraConfigJson> {
  const path = join(dir, 'adapter_config.json');
  if (!existsSync(dir)) fail(`adapter ${dir}: no such directory`);
  if (!existsSync(path)) fail(`${path}: no such file (a PEFT adapter directory has adapter_config.json and adapter_model.safetensors)`);
  let j: unknown;
  try { j = JSON.parse(await fs.readFile(path, 'utf8')); } catch (e) { fail(`${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`); }
  if (!j || typeof j !== 'object' || Array.isArray(j)) fail(`${path}: expected a JSON object`);
  const c = j as LoraConfigJson;
  if (c.peft_type !== 'LORA') fail(`${path}: peft_type ${JSON.stringify(c.peft_type)} is not supported (only "LORA" adapters)`);
  for (const [field, bad, why] of REFUSED) if (bad(c[field])) fail(`${path}: "${field}": ${JSON.stringify(c[field])}: ${why}`);
  const positive = (field: string, v: unknown, integer: boolean) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) fail(`${path}: "${field}" must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  };
  positive('r', c.r, true); positive('lora_alpha', c.lora_alpha, false);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const p = c[k] ?? {};
    if (typeof p !== 'object' || Array.isArray(p)) fail(`${path}: "${k}" must be an object of pattern → number`);
    for (const [pk, v] of Object.entries(p)) positive(`${k}.${pk}`, v, k === 'rank_pattern');
  }
  const t = c.target_modules;
  if (!(typeof t === 'string' || (Array.isArray(t) && t.every((x) => typeof x === 'string')))) fail(`${path}: "target_modules" must be a module-name list or a regex string, got ${JSON.stringify(t)}`);
  if (c.modules_to_save !== undefined && c.modules_to_save !== null && !(Array.isArray(c.modules_to_save) && c.modules_to_save.every((x) => typeof x === 'string'))) {
    fail(`${path}: "modules_to_save" must be a list of module names, got ${JSON.stringify(c.modules_to_save)}`);
  }
  const task = c.task_type;
  if (task !== undefined && task !== null && task !== 'CAUSAL_LM') fail(`${path}: "task_type" ${JSON.stringify(task)}: only causal-LM adapters (CAUSAL_LM or null) run on a causal LM`);
  return c;
}

/**
 * Read one PEFT LoRA adapter directory for a model (its config and linears), checked against the model: every targeted
 * module exists with the file's shapes, every tensor belongs to a targeted module or a modules_to_save module. Throws
 * GptqError (one line naming the file and tensor/field) for: a missing file, a pickle-only adapter, an unsupported
 * PEFT type or LoRA variant, a target_modules that matches no linear of the model, a targeted module without its
 * lora_A/lora_B (or the reverse), a shape mismatch, NaN/Inf.
 */
export async function readLoraAdapter(name: string, dir: string, cfg: ModelConfig, arch: ArchDefinition): Promise<LoraAdapter> {
  const config = await readLoraConfig(dir);
  const cfgPath = join(dir, 'adapter_config.json'), file = join(dir, 'adapter_model.safetensors');
  if (!existsSync(file)) {
    fail(existsSync(join(dir, 'adapter_model.bin'))
      ? `${join(dir, 'adapter_model.bin')}: pickle adapters are not read (unsafe); save the adapter with PEFT's save_pretrained(..., safe_serialization=True) to get adapter_model.safetensors`
      : `${file}: no such file (the adapter's weights)`);
  }
  const linears = modelLinears(cfg, arch);
  const all = config.target_modules === 'all-linear'
    ? { ...config, target_modules: [...linears.keys()].filter((n) => n !== arch.lmHead) } : config;
  const targets = [...linears.keys()].filter((n) => isTarget(all, n, cfgPath));
  if (!targets.length) fail(`${cfgPath}: "target_modules" ${JSON.stringify(config.target_modules)} matches no linear of the ${cfg.modelType} model (e.g. ${[...linears.keys()].slice(0, 3).join(', ')})`);
  const st = await SafetensorsFile.open(file);
  try {
    const modules = new Map<string, LoraModule>(), replaced: LoraAdapter['replaced'] = new Map();
    const saved = new Set(config.modules_to_save ?? []);
    const names = st.names();
    for (const t of names) {
      if (!t.startsWith(PREFIX)) fail(`${file}: tensor "${t}" does not start with "${PREFIX}" (PEFT's naming of a saved adapter)`);
      if (/\.lora_(embedding_[AB]|magnitude_vector)\b/.test(t)) fail(`${file}: tensor "${t}": ${t.includes('magnitude') ? 'DoRA' : 'LoRA on embeddings'} is not supported`);
      const m = /^(.*)\.lora_([AB])\.weight$/.exec(t.slice(PREFIX.length));
      if (m) {
        if (!targets.includes(m[1]!)) fail(`${file}: tensor "${t}": module "${m[1]}" is ${linears.has(m[1]!) ? 'not matched by target_modules' : 'not a linear of this model (target module not found)'} in ${cfgPath}`);
        continue;
      }
      const mod = t.slice(PREFIX.length).replace(/\.(weight|bias)$/, '');
      if (!saved.has(mod) && ![...saved].some((s) => mod.endsWith(`.${s}`))) fail(`${file}: tensor "${t}" is neither a lora_A/lora_B weight nor part of modules_to_save in ${cfgPath}`);
    }
    const rKeys = Object.keys(config.rank_pattern ?? {}), aKeys = Object.keys(config.alpha_pattern ?? {});
    for (const mod of targets) {
      const lin = linears.get(mod)!;
      const nameA = `${PREFIX}${mod}.lora_A.weight`, nameB = `${PREFIX}${mod}.lora_B.weight`;
      for (const n of [nameA, nameB]) if (!st.has(n)) fail(`${file}: no tensor "${n}", but ${cfgPath} targets module "${mod}"`);
      const rk = patternKey(rKeys, mod, `${cfgPath}: rank_pattern`), ak = patternKey(aKeys, mod, `${cfgPath}: alpha_pattern`);
      const r = rk === undefined ? config.r : config.rank_pattern![rk]!, alpha = ak === undefined ? config.lora_alpha : config.alpha_pattern![ak]!;
      const want = (n: string, shape: number[]) => {
        const s = st.info(n).shape;
        if (s.length !== 2 || s[0] !== shape[0] || s[1] !== shape[1]) {
          fail(`${file}: tensor "${n}" has shape [${s.join(', ')}], expected [${shape.join(', ')}] (module "${mod}" is ${lin.outFeatures}x${lin.inFeatures} out x in, r = ${r}${rk === undefined ? '' : ` from rank_pattern "${rk}"`})`);
        }
      };
      want(nameA, [r, lin.inFeatures]); want(nameB, [lin.outFeatures, r]);
      const A = await st.readFloat32(nameA), B = await st.readFloat32(nameB);
      checkFinite(A, nameA, file); checkFinite(B, nameB, file);
      const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
      modules.set(mod, { name: mod, r, alpha, scaling, A, B, inFeatures: lin.inFeatures, outFeatures: lin.outFeatures });
    }
    for (const s of saved) {
      const mods = [...linears.keys()].filter((n) => n === s || n.endsWith(`.${s}`));
      const stored = names.filter((t) => { const m = t.slice(PREFIX.length).replace(/\.(weight|bias)$/, ''); return m === s || m.endsWith(`.${s}`); });
      if (!mods.length) {
        fail(`${cfgPath}: modules_to_save "${s}": ${stored.length ? 'only linear modules (e.g. lm_head) can be replaced per call here' : `no module of the ${cfg.modelType} model is named so`}`);
      }
      for (const mod of mods) {
        const lin = linears.get(mod)!, wName = `${PREFIX}${mod}.weight`, bName = `${PREFIX}${mod}.bias`;
        if (!st.has(wName)) fail(`${file}: no tensor "${wName}", but ${cfgPath} lists "${s}" in modules_to_save`);
        const shape = st.info(wName).shape, expect = lin.conv1d ? [lin.inFeatures, lin.outFeatures] : [lin.outFeatures, lin.inFeatures];
        if (shape.join() !== expect.join()) fail(`${file}: tensor "${wName}" has shape [${shape.join(', ')}], expected [${expect.join(', ')}]`);
        let weight = await st.readFloat32(wName);
        checkFinite(weight, wName, file);
        if (lin.conv1d) weight = transpose(weight, lin.inFeatures, lin.outFeatures);
        const bias = st.has(bName) ? await st.readFloat32(bName) : undefined;
        if (bias && bias.length !== lin.outFeatures) fail(`${file}: tensor "${bName}" has ${bias.length} elements, expected ${lin.outFeatures}`);
        replaced.set(mod, { weight, bias });
      }
    }
    return { name, dir, config, modules, replaced };
  } finally { await st.dispose(); }
}

/** [rows, cols] → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/** Adapter names as LoadOptions.adapters keys: non-empty, no ":" (serve's "base:adapter" ids), not "base". */
export function checkAdapterName(name: string, where: string): void {
  if (!/^[\w.\-]+$/.test(name)) fail(`${where}: adapter name ${JSON.stringify(name)} must be letters, digits, "_", "-" or "." (it appears in "model:adapter" ids)`);
}

/** Everything about the adapters that changes the compiled graph (graph-cache key): names, configs, weight files' headers/sizes/mtimes. */
export async function adapterFingerprint(adapters: readonly { name: string; dir: string }[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const a of adapters) {
    const file = join(a.dir, 'adapter_model.safetensors');
    let st: { size: number; mtimeMs: number } | undefined;
    try { st = await fs.stat(file); } catch { /* the reader reports it */ }
    let config = '';
    try { config = await fs.readFile(join(a.dir, 'adapter_config.json'), 'utf8'); } catch { /* idem */ }
    out.push({ name: a.name, dir: a.dir, config, size: st?.size, mtime: st?.mtimeMs });
  }
  return out;
}

/**
 * WeightSource that adds the adapters' LoRA terms (and modules_to_save replacements) to an inner source's linears, per
 * batch row through the `lora_gate` input (see the file header). One instance per graph. `used` collects the adapted
 * modules the graph emitted (load checks that every adapted module was reached).
 */
export class LoraWeights implements WeightSource {
  readonly used = new Set<string>();
  private gate?: string;
  private batch?: string;
  constructor(private readonly inner: WeightSource, private readonly adapters: readonly LoraAdapter[]) {}

  tensor(g: GraphBuilder, name: string, shape: readonly number[]): string { return this.inner.tensor(g, name, shape); }

  /** The gate input [batch, adapters] and its batch size as a 1-element int64 tensor (made once per graph). */
  private gateInput(g: GraphBuilder): { gate: string; batch: string } {
    if (!this.gate) {
      this.gate = g.input(LORA_GATE, 'float32', ['batch', this.adapters.length]);
      this.batch = g.op('Shape', [this.gate], { start: 0, end: 1 });
    }
    return { gate: this.gate, batch: this.batch! };
  }

  linear(g: GraphBuilder, x: string, s: LinearSpec): string {
    let y = this.inner.linear(g, x, s);
    const mods = this.adapters.map((a, i) => ({ i, m: a.modules.get(s.name) })).filter((e) => e.m) as { i: number; m: LoraModule }[];
    const repl = this.adapters.map((a, i) => ({ i, r: a.replaced.get(s.name) })).filter((e) => e.r) as { i: number; r: { weight: Float32Array; bias?: Float32Array } }[];
    if (!mods.length && !repl.length) return y;
    this.used.add(s.name);
    const { gate, batch } = this.gateInput(g);
    // [..., n] viewed as [B, rows per batch row, n] and back: works for [B,S,·] and for MoE's flattened [B·S, ·]
    const perRow = (t: string, n: number) => g.op('Reshape', [t, g.op('Concat', [batch, g.constI64([-1, n])], { axis: 0 })]);
    const yShape = g.op('Shape', [y]);
    if (mods.length) {
      const R = mods.reduce((a, e) => a + e.m.r, 0), K = s.inFeatures, N = s.outFeatures;
      const At = new Float32Array(K * R), Bt = new Float32Array(R * N), owner = new BigInt64Array(R);
      let c = 0;
      for (const { i, m } of mods) {
        if (m.inFeatures !== K || m.outFeatures !== N) fail(`adapter "${this.adapters[i]!.name}": module "${s.name}" is ${N}x${K} in the graph, ${m.outFeatures}x${m.inFeatures} in the adapter`);
        // A_cat^T [K, R]: column c + j = row j of A; (scaling·B)_cat^T [R, N]: row c + j = scaling · column j of B
        for (let j = 0; j < m.r; j++) {
          for (let k = 0; k < K; k++) At[k * R + c + j] = m.A[j * K + k]!;
          for (let n = 0; n < N; n++) Bt[(c + j) * N + n] = m.scaling * m.B[n * m.r + j]!;
          owner[c + j] = BigInt(i);
        }
        c += m.r;
      }
      const a = g.init(`${s.name}.lora_A_t`, 'float32', [K, R], At), b = g.init(`${s.name}.lora_B_t_scaled`, 'float32', [R, N], Bt);
      const rowGate = g.op('Unsqueeze', [g.op('Gather', [gate, g.init(`${s.name}.lora_owner`, 'int64', [R], owner)], { axis: 1 }), g.constI64([1])]); // [B,1,R]
      const h = g.op('Mul', [perRow(g.op('MatMul', [x, a]), R), rowGate]);
      y = g.op('Add', [y, g.op('Reshape', [g.op('MatMul', [h, b]), yShape])]);
    }
    for (const { i, r } of repl) {
      const w = g.init(`${s.name}.modules_to_save.${i}.weight`, 'float32', [s.outFeatures, s.inFeatures], r.weight);
      const bias = r.bias ? g.init(`${s.name}.modules_to_save.${i}.bias`, 'float32', [s.outFeatures], r.bias) : undefined;
      const own = perRow(gemmLinear(g, x, w, bias, s.outFeatures), s.outFeatures);
      const on = g.op('Greater', [g.op('Unsqueeze', [g.op('Gather', [gate, g.constI64([i])], { axis: 1 }), g.constI64([2])]), g.constF(0)]); // [B,1,1]
      y = g.op('Reshape', [g.op('Where', [on, own, perRow(y, s.outFeatures)]), yShape]);
    }
    return y;
  }
}
