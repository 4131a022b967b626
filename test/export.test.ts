/**
 * `gptq export-onnx`: the written folder is run with onnxruntime-node directly (no gptqjs code on the ONNX side), fed
 * the way onnxruntime-genai feeds a decoder (written from its source, microsoft/onnxruntime-genai a0c04eb:
 * src/models/kv_cache.cpp DefaultKeyValueCache, src/models/position_inputs.cpp DefaultPositionInputs), and its logits
 * are compared with CausalLM's; genai_config.json is checked against onnxruntime-genai's documented schema (its config
 * reference, docs/genai/reference/config.md, and the keys and types its parser accepts, src/config.cpp) and against
 * config.json. onnxruntime-genai itself is not installable here (no PyPI; no npm package), so no test runs og.Model.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../src/export/onnx.ts';
import { GptqError } from '../src/errors.ts';
import { CausalLM, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { GPTQModel } from '../src/gptq-model.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { loadArchFixture, unpadded } from './fixture-archs.ts';
import { ROOT, SHARED, SKIP_SHARED, cliArgs, maxAbsDiff, rng, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-export-');
const FP = join(work.path, 'fp'), GPTQ = join(work.path, 'gptq');
const quiet = { onLog: () => {} };
/** Tolerance on |Δlogit| (fp32 graphs computing the same function with different attention kernels; measured ~1e-6). */
const TOL = 1e-4;

before(async () => {
  // a Llama with GQA (4 heads, 2 kv heads, head_size 16), 4-bit GPTQ g32 of every linear
  await makeLlamaCheckpoint(FP, { hidden: 64, heads: 4, kvHeads: 2, layers: 2, intermediate: 128, vocab: 128 });
  const r = rng(7);
  const ex = Array.from({ length: 8 }, () => ({ inputIds: Array.from({ length: 32 }, () => Math.floor(r() * 128)) }));
  const m = await GPTQModel.fromPretrained(FP, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(ex, { nsamples: 8, seqlen: 32 });
  await m.saveQuantized(GPTQ);
  await m.dispose();
});
after(() => work.cleanup());

// ------------------------------------------------------------------ onnxruntime-genai's decoder loop, batch 1

type Feeds = Record<string, ort.Tensor>;
const i64 = (v: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), dims);
interface GenaiConfig { model: any; search: any }

/**
 * The inputs onnxruntime-genai gives the decoder session (position_inputs.cpp DefaultPositionInputs, cpu/interface.cpp,
 * kv_cache.cpp DefaultKeyValueCache, logits.cpp). Prompt: rows right-padded with pad_token_id to one length S;
 * attention_mask [B,S] = 0 for each row's trailing pad tokens, 1 before; position_ids [B,S] = the column index up to the
 * row's last real token, 0 for its trailing pads (batch 1: 0…S−1); the logits genai reads are those of each row's last
 * real token. Decode: one token per row, the mask grows by a column of ones, each row's position is its last position
 * + 1 (batch 1: total − 1). KV cache per search.past_present_share_buffer — true: one zero-filled
 * [B, kv_heads, max_length, head_size] buffer per past input, bound as the matching present output too (the same
 * buffer every step); false: an empty [B, kv_heads, 0, head_size] past first, then each present as the next past.
 */
class GenaiLoop {
  private pasts: ort.Tensor[];
  private mask: number[][] = [];
  private next: number[] = [];
  total = 0;
  constructor(private readonly s: ort.InferenceSession, private readonly gc: GenaiConfig, private readonly B = 1) {
    const d = gc.model.decoder, share = gc.search.past_present_share_buffer as boolean;
    const len = share ? gc.search.max_length : 0;
    this.pasts = Array.from({ length: 2 * d.num_hidden_layers }, () => new ort.Tensor('float32', new Float32Array(B * d.num_key_value_heads * len * d.head_size), [B, d.num_key_value_heads, len, d.head_size]));
  }
  private name(template: string, i: number) { return template.replace('%d', String(i)); }
  /** The prompt rows; returns per row the logits of its last real token [V] (what genai samples from), and all [B,S,V]. */
  async prompt(rows: number[][]): Promise<{ last: Float32Array[]; all: Float32Array }> {
    const pad = this.gc.model.pad_token_id as number, S = Math.max(...rows.map((r) => r.length)), V = this.gc.model.vocab_size;
    const ids = rows.map((r) => [...r, ...new Array(S - r.length).fill(pad)]);
    this.mask = ids.map((r) => { let last = r.length - 1; while (last >= 0 && r[last] === pad) last--; return r.map((_, j) => (j <= last ? 1 : 0)); });
    const pos = this.B === 1 ? [ids[0]!.map((_, j) => j)] : this.mask.map((m) => m.map((x, j) => (x ? j : 0)));
    this.next = this.mask.map((m) => m.lastIndexOf(1));
    const logits = await this.run(ids, pos);
    return { last: rows.map((r, b) => logits.slice((b * S + r.length - 1) * V, (b * S + r.length) * V)), all: logits };
  }
  /** One new token per row; returns logits [B,1,V]. */
  async step(tokens: number[]): Promise<Float32Array> {
    this.mask = this.mask.map((m) => [...m, 1]);
    this.next = this.next.map((p) => p + 1);
    return this.run(tokens.map((t) => [t]), this.B === 1 ? [[this.total]] : this.next.map((p) => [p]));
  }
  /** Batch 1, continuous decoding (genai's AppendTokens, e.g. the next chat turn): S tokens after the cache; logits [1,S,V]. */
  async append(tokens: number[]): Promise<Float32Array> {
    assert.equal(this.B, 1);
    this.mask = [[...this.mask[0]!, ...tokens.map(() => 1)]];
    return this.run([tokens], [tokens.map((_, i) => this.total + i)]);
  }
  private async run(ids: number[][], pos: number[][]): Promise<Float32Array> {
    const d = this.gc.model.decoder, B = this.B, S = ids[0]!.length, T = this.total + S;
    const feeds: Feeds = {
      [d.inputs.input_ids]: i64(ids.flat(), [B, S]),
      [d.inputs.attention_mask]: i64(this.mask.flat(), [B, T]),
      [d.inputs.position_ids]: i64(pos.flat(), [B, S]),
    };
    const share = this.gc.search.past_present_share_buffer;
    const fetches: Record<string, ort.Tensor | null> = { [d.outputs.logits]: null };
    for (let i = 0; i < d.num_hidden_layers; i++) {
      feeds[this.name(d.inputs.past_key_names, i)] = this.pasts[2 * i]!;
      feeds[this.name(d.inputs.past_value_names, i)] = this.pasts[2 * i + 1]!;
      fetches[this.name(d.outputs.present_key_names, i)] = share ? this.pasts[2 * i]! : null;
      fetches[this.name(d.outputs.present_value_names, i)] = share ? this.pasts[2 * i + 1]! : null;
    }
    const r = await this.s.run(feeds, fetches as ort.InferenceSession.FetchesType);
    if (!share) {
      for (let i = 0; i < d.num_hidden_layers; i++) {
        this.pasts[2 * i] = r[this.name(d.outputs.present_key_names, i)]!;
        this.pasts[2 * i + 1] = r[this.name(d.outputs.present_value_names, i)]!;
        assert.deepEqual(this.pasts[2 * i]!.dims, [B, d.num_key_value_heads, T, d.head_size]);
      }
    }
    this.total = T;
    const logits = r[d.outputs.logits]!;
    assert.deepEqual(logits.dims, [B, S, this.gc.model.vocab_size]);
    return logits.data as Float32Array;
  }
}

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const openExport = async (out: string) => ({ gc: readJson(join(out, 'genai_config.json')) as GenaiConfig, s: await ort.InferenceSession.create(join(out, 'model.onnx')) });
/** argmax over the vocabulary of row `row` (default: the last) of logits [.., V]. */
const argmax = (a: Float32Array, V: number, row = a.length / V - 1) => {
  let best = 0;
  for (let v = 1; v < V; v++) if (a[row * V + v]! > a[row * V + best]!) best = v;
  return best;
};

/**
 * Prompt logits, the logits of two decode steps and of a 3-token append after them through the exported model
 * (GenaiLoop) vs CausalLM.load of the same checkpoint (default attention, its own graph): max |Δ| over all of them.
 */
async function parity(dir: string, out: string, prompt: number[], load: LoadOptions = {}): Promise<{ prompt: number; steps: number; gc: GenaiConfig }> {
  const { gc, s } = await openExport(out);
  const lm = await CausalLM.load(dir, { graphCache: false, ...quiet, ...load });
  try {
    const loop = new GenaiLoop(s, gc);
    const got = await loop.prompt([prompt]);
    const want = await lm.logits([prompt]);
    const V = gc.model.vocab_size as number;
    const dPrompt = maxAbsDiff(got.all, want);
    let ref = await lm.forwardStep([prompt], lm.emptyCache(1, prompt.length + 4));
    let next = argmax(got.last[0]!, V), dSteps = 0;
    for (let k = 0; k < 2; k++) {
      const g = await loop.step([next]);
      ref = await lm.forwardStep([[next]], ref.cache);
      dSteps = Math.max(dSteps, maxAbsDiff(g, ref.logits));
      next = argmax(g, V);
    }
    // then 3 tokens at once after the cache (continuous decoding)
    const more = [next, (next + 1) % V, (next + 7) % V];
    const g = await loop.append(more);
    ref = await lm.forwardStep([more], ref.cache);
    dSteps = Math.max(dSteps, maxAbsDiff(g.subarray(2 * V), ref.logits));
    return { prompt: dPrompt, steps: dSteps, gc };
  } finally { await lm.dispose(); await s.release(); }
}

/**
 * A right-padded batch the way genai batches prompts (GenaiLoop with B rows), then two decode steps of given tokens:
 * each row's logits vs CausalLM running that row alone, unpadded. Max |Δ| over rows and steps.
 */
async function batchParity(dir: string, out: string, rows: number[][], steps: number[][]): Promise<number> {
  const { gc, s } = await openExport(out);
  const lm = await CausalLM.load(dir, { graphCache: false, ...quiet });
  try {
    const V = gc.model.vocab_size as number;
    assert.ok(rows.every((r) => r.at(-1) !== gc.model.pad_token_id), 'a prompt ending in the pad id would be read as padding');
    const loop = new GenaiLoop(s, gc, rows.length);
    const got = [(await loop.prompt(rows)).last];
    for (const t of steps) { const l = await loop.step(t); got.push(rows.map((_, b) => l.subarray(b * V, (b + 1) * V))); }
    let worst = 0;
    for (const [b, row] of rows.entries()) {
      let ref = await lm.forwardStep([row], lm.emptyCache(1, row.length + steps.length));
      worst = Math.max(worst, maxAbsDiff(got[0]![b]!, ref.logits));
      for (const [k, t] of steps.entries()) {
        ref = await lm.forwardStep([[t[b]!]], ref.cache);
        worst = Math.max(worst, maxAbsDiff(got[k + 1]![b]!, ref.logits));
      }
    }
    return worst;
  } finally { await lm.dispose(); await s.release(); }
}

// ------------------------------------------------------------------ genai_config.json schema (written from the docs)

/** Model types onnxruntime-genai runs as decoder-only LLMs (src/models/model_type.h IsLLM; "decoder" = generic). */
const GENAI_LLM_TYPES = ['chatglm', 'decoder', 'ernie4_5', 'gemma', 'gemma2', 'gemma3_text', 'gemma4_text', 'gpt2', 'gptoss', 'granite', 'granitemoehybrid', 'hunyuandensev1', 'internlm2', 'lfm2', 'llama', 'mistral', 'nemotron', 'olmo', 'phi', 'phimoe', 'phi3', 'phi3small', 'qwen2', 'qwen3', 'qwen3_5_moe_text', 'qwen3_5_text', 'smollm3'];
const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
type Kind = 'int' | 'number' | 'bool' | 'string' | 'object' | 'array' | 'int|int[]';
const ok: Record<Kind, (v: unknown) => boolean> = {
  int: isInt, number: (v) => typeof v === 'number', bool: (v) => typeof v === 'boolean', string: (v) => typeof v === 'string',
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v), array: Array.isArray,
  'int|int[]': (v) => isInt(v) || (Array.isArray(v) && v.length > 0 && v.every(isInt)),
};
/** Keys a section may hold (genai's parser throws on any other), their types, and which a decoder-only model needs. */
const SCHEMA: Record<string, { keys: Record<string, Kind>; required: string[] }> = {
  root: { keys: { model: 'object', search: 'object', speculative: 'object', engine: 'object' }, required: ['model', 'search'] },
  model: {
    keys: { type: 'string', tokenizer_dir: 'string', vocab_size: 'int', context_length: 'int', pad_token_id: 'int', eos_token_id: 'int|int[]', bos_token_id: 'int', decoder_start_token_id: 'int', sep_token_id: 'int', decoder: 'object', encoder: 'object', embedding: 'object', vision: 'object', speech: 'object' },
    required: ['type', 'vocab_size', 'context_length', 'pad_token_id', 'eos_token_id', 'bos_token_id', 'decoder'],
  },
  decoder: {
    keys: { filename: 'string', hidden_size: 'int', num_attention_heads: 'int', num_hidden_layers: 'int', num_key_value_heads: 'int', head_size: 'int', session_options: 'object', run_options: 'object', inputs: 'object', outputs: 'object', sliding_window: 'object' },
    required: ['filename', 'hidden_size', 'num_attention_heads', 'num_hidden_layers', 'num_key_value_heads', 'head_size', 'inputs', 'outputs'],
  },
  session_options: { keys: { log_id: 'string', provider_options: 'array', intra_op_num_threads: 'int', inter_op_num_threads: 'int', enable_cpu_mem_arena: 'bool', enable_mem_pattern: 'bool', graph_optimization_level: 'string', custom_ops_library: 'string' }, required: [] },
  inputs: { keys: { input_ids: 'string', inputs_embeds: 'string', attention_mask: 'string', position_ids: 'string', past_key_names: 'string', past_value_names: 'string' }, required: ['input_ids', 'past_key_names', 'past_value_names'] },
  outputs: { keys: { logits: 'string', present_key_names: 'string', present_value_names: 'string' }, required: ['logits', 'present_key_names', 'present_value_names'] },
  search: {
    keys: { min_length: 'int', max_length: 'int', batch_size: 'int', num_beams: 'int', num_return_sequences: 'int', top_k: 'int', top_p: 'number', temperature: 'number', repetition_penalty: 'number', length_penalty: 'number', no_repeat_ngram_size: 'int', diversity_penalty: 'number', random_seed: 'int', chunk_size: 'int', do_sample: 'bool', past_present_share_buffer: 'bool', early_stopping: 'bool' },
    required: ['max_length', 'past_present_share_buffer'],
  },
};

function checkSection(name: string, v: Record<string, unknown>): string[] {
  const s = SCHEMA[name]!, errs: string[] = [];
  for (const k of s.required) if (!(k in v)) errs.push(`${name}.${k} missing`);
  for (const [k, x] of Object.entries(v)) {
    const kind = s.keys[k];
    if (!kind) errs.push(`${name}.${k}: unknown key`);
    else if (!ok[kind](x)) errs.push(`${name}.${k}: expected ${kind}, got ${JSON.stringify(x)}`);
  }
  return errs;
}

/** Every schema error of `gc`, plus its consistency with config.json and with the graph in the folder. */
async function validateGenaiConfig(gc: any, out: string, hf: Record<string, any>): Promise<string[]> {
  const errs = checkSection('root', gc);
  errs.push(...checkSection('model', gc.model ?? {}), ...checkSection('search', gc.search ?? {}));
  const d = gc.model?.decoder ?? {};
  errs.push(...checkSection('decoder', d), ...checkSection('inputs', d.inputs ?? {}), ...checkSection('outputs', d.outputs ?? {}));
  if (d.session_options) errs.push(...checkSection('session_options', d.session_options));
  if (errs.length) return errs;
  const m = gc.model;
  if (!GENAI_LLM_TYPES.includes(m.type)) errs.push(`model.type "${m.type}" is not a decoder-only type of onnxruntime-genai`);
  if (m.context_length <= 0) errs.push('model.context_length must be > 0');
  if (gc.search.max_length > m.context_length) errs.push('search.max_length > model.context_length');
  // consistent with config.json
  const heads = hf.num_attention_heads, want: Record<string, number> = {
    vocab_size: hf.vocab_size, context_length: hf.max_position_embeddings,
  };
  const wantDecoder: Record<string, number> = {
    hidden_size: hf.hidden_size, num_attention_heads: heads, num_hidden_layers: hf.num_hidden_layers,
    num_key_value_heads: hf.num_key_value_heads ?? heads, head_size: hf.head_dim ?? hf.hidden_size / heads,
  };
  for (const [k, v] of Object.entries(want)) if (m[k] !== v) errs.push(`model.${k} ${m[k]} ≠ config.json ${v}`);
  for (const [k, v] of Object.entries(wantDecoder)) if (d[k] !== v) errs.push(`model.decoder.${k} ${d[k]} ≠ config.json ${v}`);
  if ([].concat(m.eos_token_id).join() !== [].concat(hf.eos_token_id).join()) errs.push(`model.eos_token_id ${m.eos_token_id} ≠ config.json ${hf.eos_token_id}`);
  // the graph has exactly the named inputs/outputs, of genai's types, with the KV geometry of the config
  if (!existsSync(join(out, d.filename))) return [...errs, `model.decoder.filename ${d.filename} not in ${out}`];
  const s = await ort.InferenceSession.create(join(out, d.filename));
  try {
    const L = d.num_hidden_layers, layer = (t: string) => Array.from({ length: L }, (_, i) => t.replace('%d', String(i)));
    const ins = [d.inputs.input_ids, d.inputs.attention_mask, d.inputs.position_ids, ...layer(d.inputs.past_key_names), ...layer(d.inputs.past_value_names)];
    const outs = [d.outputs.logits, ...layer(d.outputs.present_key_names), ...layer(d.outputs.present_value_names)];
    if ([...s.inputNames].sort().join() !== ins.sort().join()) errs.push(`graph inputs ${s.inputNames} ≠ genai_config ${ins}`);
    if ([...s.outputNames].sort().join() !== outs.sort().join()) errs.push(`graph outputs ${s.outputNames} ≠ genai_config ${outs}`);
    for (const meta of [...s.inputMetadata, ...s.outputMetadata]) {
      if (!meta.isTensor) { errs.push(`${meta.name} is not a tensor`); continue; }
      const kv = /^(past_key_values|present)\./.test(meta.name);
      const type = kv || meta.name === d.outputs.logits ? 'float32' : 'int64';
      if (meta.type !== type) errs.push(`${meta.name}: ${meta.type}, genai feeds ${type}`);
      if (kv && !(meta.shape.length === 4 && typeof meta.shape[0] === 'string' && meta.shape[1] === d.num_key_value_heads && typeof meta.shape[2] === 'string' && meta.shape[3] === d.head_size))
        errs.push(`${meta.name}: shape ${JSON.stringify(meta.shape)}, genai allocates [batch, ${d.num_key_value_heads}, length, ${d.head_size}] (a numeric length would fix the cache size)`);
    }
  } finally { await s.release(); }
  return errs;
}

// ------------------------------------------------------------------ tests

test('GPTQ checkpoint → export (gqa, share buffer): files, MatMulNBits with external data; genai loop logits = CausalLM (prompt + 2 steps)', async () => {
  const out = join(work.path, 'gptq-onnx');
  const r = await exportOnnx(GPTQ, out, quiet);
  assert.equal(r.attention, 'gqa');
  assert.equal(r.pastPresentShareBuffer, true);
  assert.equal(r.quantization?.modules.filter((m) => m.kernel === 'matmulnbits-4').length, 14);
  assert.deepEqual(readdirSync(out).sort(), ['genai_config.json', 'model.onnx', 'model.onnx.data']); // no tokenizer in the source
  const graph = readFileSync(join(out, 'model.onnx')).toString('latin1');
  assert.equal(graph.split('MatMulNBits').length - 1 >= 14, true, 'one MatMulNBits node per GPTQ linear');
  assert.match(graph, /GroupQueryAttention/);
  assert.match(graph, /model\.onnx\.data/); // initializers point at the external data file
  assert.ok(readFileSync(join(out, 'model.onnx.data')).length > 4 * readFileSync(join(out, 'model.onnx')).length, 'weights are in the data file');
  const p = await parity(GPTQ, out, [1, 17, 99, 4, 56, 23, 8]);
  console.log(`gptq gqa export: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
  assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
  assert.deepEqual(await validateGenaiConfig(p.gc, out, readJson(join(GPTQ, 'config.json'))), []);
});

test('GPTQ checkpoint → export --attention plain (share buffer false: empty past, present → past): logits = CausalLM', async () => {
  const out = join(work.path, 'gptq-plain');
  const r = await exportOnnx(GPTQ, out, { ...quiet, attention: 'plain', contextLength: 64 });
  assert.equal(r.pastPresentShareBuffer, false);
  assert.doesNotMatch(readFileSync(join(out, 'model.onnx')).toString('latin1'), /GroupQueryAttention/);
  const p = await parity(GPTQ, out, [5, 6, 7, 100, 2, 3]);
  console.log(`gptq plain export: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
  assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
  assert.equal(p.gc.model.context_length, 64);
  assert.equal(p.gc.search.max_length, 64);
  // the schema check fails where it must: context_length ≠ config.json's 512 is reported
  assert.deepEqual(await validateGenaiConfig(p.gc, out, readJson(join(GPTQ, 'config.json'))), ['model.context_length 64 ≠ config.json 512']);
});

test('lmHeadBits 8 and 4: the head on MatMulNBits in the export, logits = CausalLM loaded with the same lmHeadBits', async () => {
  const nbits = (out: string) => readFileSync(join(out, 'model.onnx')).toString('latin1').split('MatMulNBits').length;
  await exportOnnx(GPTQ, join(work.path, 'gptq-head0'), { ...quiet, lmHeadBits: 0 });
  for (const bits of [8, 4] as const) {
    const out = join(work.path, `gptq-head${bits}`);
    const r = await exportOnnx(GPTQ, out, { ...quiet, lmHeadBits: bits });
    assert.equal(r.lmHeadBits, bits);
    assert.ok(nbits(out) > nbits(join(work.path, 'gptq-head0')), 'the head is a MatMulNBits node too');
    const p = await parity(GPTQ, out, [9, 8, 7, 6, 5], { lmHeadBits: bits });
    console.log(`gptq export, ${bits}-bit head: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
    assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
    // and it is not the fp head's function (the option did something)
    const fp = await parity(GPTQ, out, [9, 8, 7, 6, 5]);
    assert.ok(fp.prompt > 1e-3, `${bits}-bit head vs fp head: ${fp.prompt}`);
  }
});

test('a right-padded batch fed as genai batches prompts (mask 0 on trailing pads, column positions): each row = CausalLM on that row alone', async () => {
  const rows = [[5, 9, 33, 70], [8, 1, 64, 90, 17, 44, 3], [100, 7]];
  const steps = [[11, 12, 13], [21, 22, 23]];
  for (const out of [join(work.path, 'gptq-onnx'), join(work.path, 'gptq-plain')]) {
    const d = await batchParity(GPTQ, out, rows, steps);
    console.log(`${out.split('/').pop()}: batch of 3 right-padded rows + 2 steps, max |Δlogit| ${d.toExponential(2)}`);
    assert.ok(d < TOL, `${out}: ${d}`);
  }
});

test('fp stories260K → export: genai loop logits = CausalLM, greedy decode through ORT alone gives the known story; tokenizer files copied', async () => {
  const out = join(work.path, 'stories-onnx');
  await exportOnnx(STORIES, out, quiet);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) assert.ok(existsSync(join(out, f)), f);
  assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), readFileSync(join(STORIES, 'tokenizer.json'), 'utf8'));
  assert.equal(readJson(join(out, 'tokenizer_config.json')).model_max_length, 512);
  const p = await parity(STORIES, out, [1, 403, 407, 261, 378]);
  console.log(`stories260K gqa export: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
  assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
  assert.deepEqual(await validateGenaiConfig(p.gc, out, readJson(join(STORIES, 'config.json'))), []);
  assert.equal(p.gc.model.bos_token_id, 1);
  assert.equal(p.gc.model.eos_token_id, 2);
  // greedy from <s> with the genai loop alone (share buffer, one step per token)
  const { gc, s } = await openExport(out);
  const lm = await CausalLM.load(STORIES, { graphCache: false, ...quiet });
  try {
    const loop = new GenaiLoop(s, gc);
    const toks = [gc.model.bos_token_id as number];
    let logits = (await loop.prompt([toks])).last[0]!;
    for (let k = 0; k < 16; k++) { toks.push(argmax(logits, gc.model.vocab_size)); logits = await loop.step([toks.at(-1)!]); }
    assert.match(lm.tokenizer!.decode(toks.slice(1)), /^Once upon a time, there was a little girl named Lily\./);
  } finally { await lm.dispose(); await s.release(); }
});

test('GPT-2 (learned positions from position_ids, LayerNorm, tied head; ../shared tiny-gpt2) → export: logits = CausalLM', { skip: SKIP_SHARED }, async () => {
  const dir = join(SHARED, 'models', 'tiny-gpt2'), out = join(work.path, 'gpt2-onnx');
  assert.equal((await exportOnnx(dir, out, quiet)).attention, 'gqa');
  const p = await parity(dir, out, [3, 17, 40, 8, 51, 0]);
  console.log(`tiny-gpt2 gqa export: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
  assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
  assert.equal(p.gc.model.pad_token_id, 52); // config.json's, not eos
  const hf = readJson(join(dir, 'config.json'));
  assert.deepEqual(await validateGenaiConfig(p.gc, out, { ...hf, num_attention_heads: hf.n_head, hidden_size: hf.n_embd, num_hidden_layers: hf.n_layer, max_position_embeddings: hf.n_positions }), []);
});

test('architecture fixtures (ALiBi bloom, MQA falcon-7b, MoE mixtral, gemma, gpt_bigcode) → export: logits = CausalLM', async () => {
  // all 27 fixtures the registry loads were checked the same way once (notes/h-export.md); these cover the attention variants
  for (const name of ['bloom', 'falcon-7b', 'mixtral', 'gemma', 'gpt_bigcode']) {
    const f = loadArchFixture(name), out = join(work.path, `arch-${name}`);
    assert.equal((await exportOnnx(f.dir, out, quiet)).attention, 'gqa', name);
    const p = await parity(f.dir, out, unpadded(f, 0).ids);
    console.log(`${name} gqa export: max |Δlogit| prompt ${p.prompt.toExponential(2)}, decode steps ${p.steps.toExponential(2)}`);
    assert.ok(p.prompt < TOL && p.steps < TOL, `${name}: ${JSON.stringify(p)}`);
  }
});

test('head_size 12 (GroupQueryAttention needs a multiple of 8): auto exports plain attention (logged), --attention gqa fails in one line', async () => {
  const dir = join(work.path, 'hd12');
  await makeLlamaCheckpoint(dir, { hidden: 48, heads: 4, kvHeads: 2, layers: 2, vocab: 96 });
  const logs: string[] = [];
  const r = await exportOnnx(dir, join(work.path, 'hd12-onnx'), { onLog: (m) => logs.push(m) });
  assert.equal(r.attention, 'plain');
  assert.equal(r.pastPresentShareBuffer, false);
  assert.match(logs.join('\n'), /head_dim 12 is not a multiple of 8, so the graph uses plain attention/);
  const p = await parity(dir, join(work.path, 'hd12-onnx'), [4, 9, 2, 77]);
  assert.ok(p.prompt < TOL && p.steps < TOL, JSON.stringify(p));
  await assert.rejects(exportOnnx(dir, join(work.path, 'hd12-gqa'), { ...quiet, attention: 'gqa' }), (e: Error) => e instanceof GptqError && /^export-onnx: attention gqa: head_dim 12 is not a multiple of 8; use --attention plain/.test(e.message));
  assert.ok(!existsSync(join(work.path, 'hd12-gqa')), 'nothing written');
});

test('the schema check rejects what onnxruntime-genai rejects (unknown key, wrong type, missing key, renamed input)', async () => {
  const out = join(work.path, 'stories-onnx');
  const hf = readJson(join(STORIES, 'config.json'));
  const base = () => readJson(join(out, 'genai_config.json'));
  const c1 = base(); c1.model.decoder.kv_layout = 'x';
  const c2 = base(); c2.model.decoder.head_size = '8';
  const c3 = base(); delete c3.model.eos_token_id;
  const c4 = base(); c4.model.decoder.inputs.position_ids = 'positions';
  assert.deepEqual(await validateGenaiConfig(c1, out, hf), ['decoder.kv_layout: unknown key']);
  assert.deepEqual(await validateGenaiConfig(c2, out, hf), ['decoder.head_size: expected int, got "8"']);
  assert.deepEqual(await validateGenaiConfig(c3, out, hf), ['model.eos_token_id missing']);
  assert.match((await validateGenaiConfig(c4, out, hf)).join('\n'), /graph inputs .* ≠ genai_config/);
});

test('export-onnx bad input: one line each; a non-empty OUT is refused untouched, --overwrite replaces only exported files', async () => {
  await assert.rejects(exportOnnx(join(work.path, 'nope'), join(work.path, 'x')), (e: Error) => e instanceof GptqError && /nope does not exist/.test(e.message) && !e.message.includes('\n'));
  await assert.rejects(exportOnnx(STORIES, STORIES), (e: Error) => e instanceof GptqError && /is the model folder/.test(e.message));
  await assert.rejects(exportOnnx(STORIES, join(work.path, 'y'), { attention: 'fast' as never }), /attention must be auto, gqa or plain/);
  const busy = join(work.path, 'busy');
  mkdirSync(busy);
  writeFileSync(join(busy, 'notes.txt'), 'mine');
  writeFileSync(join(busy, 'model.onnx'), 'old');
  await assert.rejects(exportOnnx(STORIES, busy, quiet), (e: Error) => e instanceof GptqError && /busy is not empty .*--overwrite/.test(e.message) && !e.message.includes('\n'));
  assert.deepEqual(readdirSync(busy).sort(), ['model.onnx', 'notes.txt']);
  assert.equal(readFileSync(join(busy, 'model.onnx'), 'utf8'), 'old');
  await exportOnnx(STORIES, busy, { ...quiet, overwrite: true });
  assert.equal(readFileSync(join(busy, 'notes.txt'), 'utf8'), 'mine');
  assert.ok(readFileSync(join(busy, 'model.onnx')).length > 1000, 'model.onnx replaced');
  assert.ok(!readdirSync(busy).some((n) => n.startsWith('.')), 'no staging leftovers');
  // missing parent folders are created (as mkdir -p / save_pretrained); this failed with a raw ENOENT before
  await exportOnnx(STORIES, join(work.path, 'deep', 'er', 'out'), quiet);
  assert.ok(existsSync(join(work.path, 'deep', 'er', 'out', 'model.onnx')), 'written under the created folders');
  // the CLI: exit 1 and one stderr line
  const cli = (...a: string[]) => {
    try { execFileSync(process.execPath, cliArgs('export-onnx', ...a), { stdio: 'pipe' }); return { code: 0, err: '' }; } catch (e: any) { return { code: e.status as number, err: String(e.stderr) }; }
  };
  for (const [args, re] of [
    [[join(work.path, 'nope'), join(work.path, 'z')], /^gptq: model directory .*nope does not exist/],
    [[STORIES, busy], /^gptq: export-onnx: .*busy is not empty/],
    [[STORIES], /OUT/],
  ] as [string[], RegExp][]) {
    const r = cli(...args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  }
});
