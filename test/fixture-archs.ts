/**
 * Real-Transformers reference fixtures (test/fixtures/archs/<name>/, made by scripts/fixtures/make_arch_fixtures.py;
 * format in test/fixtures/archs/README.md): a tiny random checkpoint as `save_pretrained` wrote it, the input ids
 * (2 rows, row 1 left-padded under an attention mask), and Transformers' float32 logits for the full forward and for
 * a KV-cached prefill + one-token steps.
 *
 * The logits file is parsed here with a few lines of its own (F32 only), not with src/io/safetensors.ts, so that the
 * expected values do not pass through the code under test.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';

export const ARCH_FIXTURES_DIR = join(ROOT, 'test', 'fixtures', 'archs');

export interface ArchFixture {
  /** Directory name, e.g. "llama-yarn". */
  name: string;
  /** The checkpoint directory (config.json, model.safetensors, generation_config.json). */
  dir: string;
  /** config.json model_type. */
  modelType: string;
  /** What the config exercises (human-readable). */
  features: string[];
  /** [B][S] token ids; padded positions hold the pad id. */
  ids: number[][];
  /** [B][S] attention mask (0 = left padding). */
  mask: number[][];
  /** [B][S] positions Transformers was given: cumsum(mask) − 1, padded positions 1 (as generate() makes them). */
  positionIds: number[][];
  /** Number of tokens in the cached prefill. */
  prefill: number;
  B: number; S: number; V: number;
  /** Full-forward logits [B, S, V] (padded positions included; they are meaningless). */
  fullLogits: Float32Array;
  /** KV-step logits [1 + S − prefill, B, V]: entry 0 after the prefill, entry i after token prefill − 1 + i. */
  stepLogits: Float32Array;
  /**
   * Per row: its unpadded tokens alone (positions from 0) give the same logits as the row inside the padded batch
   * (Transformers, max |Δ| < 1e-5). False e.g. for dynamic NTK RoPE, whose frequencies follow max(position) over the
   * whole batch.
   */
  rowAloneMatchesBatch: boolean[];
  /** KV steps equal the full forward at the same positions (Transformers, max |Δ| < 1e-4; false for sequence-length-dependent RoPE). */
  stepsEqualFull: boolean;
  /** Everything expected.json holds (versions, output head, measurements). */
  meta: Record<string, any>;
}

/** Names of the fixture directories (those with an expected.json), sorted. */
export function listArchFixtures(): string[] {
  if (!existsSync(ARCH_FIXTURES_DIR)) return [];
  return readdirSync(ARCH_FIXTURES_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(ARCH_FIXTURES_DIR, e.name, 'expected.json')))
    .map((e) => e.name).sort();
}

/** F32 tensors of a safetensors file by name, with their shapes. */
export function readF32Safetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${path}: tensor ${name} is ${t.dtype}, expected F32`);
    const [a, b] = t.data_offsets as [number, number];
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const data = new Float32Array(bytes.length / 4);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * 4);
    const numel = (t.shape as number[]).reduce((x, y) => x * y, 1);
    if (numel !== data.length) throw new Error(`${path}: tensor ${name} has ${data.length} values for shape ${t.shape}`);
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

/** Read one fixture. Throws when its files disagree with each other (shapes, row lengths). */
export function loadArchFixture(name: string): ArchFixture {
  const dir = join(ARCH_FIXTURES_DIR, name);
  const meta = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Record<string, any>;
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, any>;
  if (config.model_type !== meta.model_type) throw new Error(`${name}: config.json model_type ${config.model_type} ≠ expected.json ${meta.model_type}`);
  const t = readF32Safetensors(join(dir, meta.logits.file));
  const full = t.get('full_logits'), step = t.get('step_logits');
  if (!full || !step) throw new Error(`${name}: ${meta.logits.file} needs full_logits and step_logits`);
  const ids = meta.input_ids as number[][], mask = meta.attention_mask as number[][];
  const [B, S, V] = full.shape as [number, number, number];
  const k = meta.prefill as number;
  if (ids.length !== B || ids.some((r) => r.length !== S) || mask.length !== B || mask.some((r) => r.length !== S))
    throw new Error(`${name}: input_ids/attention_mask are not [${B}][${S}]`);
  if (step.shape.join() !== [1 + S - k, B, V].join()) throw new Error(`${name}: step_logits shape ${step.shape}, expected [${1 + S - k}, ${B}, ${V}]`);
  return {
    name, dir, modelType: meta.model_type, features: meta.features, ids, mask, positionIds: meta.position_ids, prefill: k,
    B, S, V, fullLogits: full.data, stepLogits: step.data,
    rowAloneMatchesBatch: (meta.rows_alone_vs_batch_max_diff as number[]).map((d) => d < 1e-5), stepsEqualFull: meta.steps_vs_full_max_diff < 1e-4, meta,
  };
}

/** Row b's unpadded tokens (drop the leading mask-0 positions) and how many were dropped. */
export function unpadded(f: ArchFixture, b: number): { ids: number[]; pad: number } {
  const pad = f.mask[b]!.findIndex((m) => m !== 0);
  if (pad < 0 || f.mask[b]!.slice(pad).some((m) => m === 0)) throw new Error(`${f.name}: row ${b} is not left-padded`);
  return { ids: f.ids[b]!.slice(pad), pad };
}
