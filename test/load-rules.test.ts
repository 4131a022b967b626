/**
 * Loading by Transformers' (and AutoGPTQ/GPTQModel's) rules: which weights file, which stored tensor each parameter
 * reads (safetensors aliases, tied embeddings per `tie_word_embeddings`, base-model prefixes, renamed heads), optional
 * tensors, and refusals where Transformers would initialize a missing tensor randomly. Also NaN/Inf weights, which
 * must stop inference with one line naming the tensor. Fixtures from the real tools: test/fixtures/load (made by
 * scripts/fixtures/transformers-layouts.py with transformers 5.18 / safetensors 0.8).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { GptqError } from '../src/errors.ts';
import { CausalLM, loadFloatWeights, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { generate } from '../src/runtime/generate.ts';
import { parseModelConfig } from '../src/io/config.ts';
import { supportedModelTypes } from '../src/models/registry.ts';
import { calibrationSamples } from '../src/io/datasets.ts';
import { Checkpoint, SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { TextTokenizer } from '../src/io/tokenizer.ts';
import { f32ToBf16, firstNonFinite, toF16Bits, type Tensor } from '../src/tensor.ts';
import { refConfigFromJson, refForward } from './reference/llama-ref.ts';
import { llamaConfig, llamaTensors, writeCheckpoint } from './synth.ts';
import { ROOT, rng, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const FIX = join(ROOT, 'test', 'fixtures', 'load');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const quiet: LoadOptions = { graphCache: false, onLog: () => {} };
const work = tmpDir('gptqjs-load-rules-');
after(() => work.cleanup());
let seq = 0;
const fresh = (name: string) => join(work.path, `${seq++}-${name}`);

/** Rejects with a one-line GptqError containing every part. */
async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]) {
  await assert.rejects(p, (e: any) => {
    assert.ok(e instanceof GptqError, `expected GptqError, got ${e?.stack ?? e}`);
    assert.ok(!e.message.includes('\n'), `message must be one line: ${e.message}`);
    for (const part of parts) {
      if (typeof part === 'string') assert.ok(e.message.includes(part), `"${e.message}" should include "${part}"`);
      else assert.match(e.message, part);
    }
    return true;
  });
}

async function readAll(file: string): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const f = await SafetensorsFile.open(file);
  try {
    const tensors = new Map<string, Tensor>();
    for (const n of f.names()) tensors.set(n, await f.read(n));
    return { tensors, metadata: f.metadata };
  } finally { await f.dispose(); }
}

/** Copy of model dir `src` (side files too) whose model.safetensors is rewritten by `edit` (and config.json by `cfg`). */
async function variant(src: string, name: string, edit: (t: Map<string, Tensor>, meta: Record<string, string>) => void | Record<string, string>,
  cfg?: (c: Record<string, any>) => void, file = 'model.safetensors'): Promise<string> {
  const dir = fresh(name);
  await fs.mkdir(dir, { recursive: true });
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') await fs.copyFile(join(src, f), join(dir, f));
  const { tensors, metadata } = await readAll(join(src, 'model.safetensors'));
  const meta = edit(tensors, metadata) ?? metadata;
  await writeSafetensors(join(dir, file), tensors, meta);
  if (cfg) {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2));
  }
  return dir;
}

async function logitsOf(dir: string, ids: number[][], o: LoadOptions = quiet): Promise<Float32Array> {
  const m = await CausalLM.load(dir, o);
  try { return await m.logits(ids); } finally { await m.dispose(); }
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

function runCli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });
}

const GREEDY = 'Once upon a time, there was a little girl named Lily.';
async function greedy(dir: string, o: LoadOptions = quiet): Promise<string> {
  const m = await CausalLM.load(dir, o);
  const tok = await TextTokenizer.fromDir(dir);
  try {
    const r = await generate(m, [[1]], { maxNewTokens: 20, eosTokenIds: [2] });
    return tok.decode(r.tokens[0]!);
  } finally { await m.dispose(); }
}

/** stories260K as safetensors.torch.save_model writes a tied model: "lm_head.weight" stored, the embedding an alias. */
const storiesSaveModel = () => variant(STORIES, 'stories-save-model', (t) => {
  t.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
  t.delete('model.embed_tokens.weight');
  return { 'model.embed_tokens.weight': 'lm_head.weight' };
});

const calib = () => {
  const r = rng(7);
  return calibrationSamples(() => [], Array.from({ length: 8 }, () => ({ inputIds: [1, ...Array.from({ length: 31 }, () => 3 + Math.floor(r() * 500))] })), { nsamples: 8, seqlen: 32 });
};

// ------------------------------------------------------------------------------------------ real tool output

test('checkpoints as transformers 5.18 / safetensors write them load with Transformers\' logits (≤ 1e-4)', async () => {
  for (const name of ['tied-llama-save-model', 'tied-llama-save-pretrained', 'gpt2-base-model', 'neox-v5-names', 'mixtral-v5-fused']) {
    const dir = join(FIX, name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
    for (const attention of ['auto', 'plain'] as const) {
      const lg = await logitsOf(dir, [ref.ids], { ...quiet, attention });
      const d = maxAbsDiff(lg, ref.logits.flat());
      assert.ok(d <= 1e-4, `${name} (${attention}): max |Δlogit| vs transformers ${d}`);
    }
  }
  // what the files hold (as the fixture script printed them)
  const ck = await Checkpoint.open(join(FIX, 'tied-llama-save-model'));
  try {
    assert.ok(!ck.names().includes('model.embed_tokens.weight') && ck.names().includes('lm_head.weight'));
    assert.equal(ck.storedName('model.embed_tokens.weight'), 'lm_head.weight');
    assert.deepEqual(ck.info('model.embed_tokens.weight').shape, [96, 32]);
  } finally { await ck.dispose(); }
});

test('tie_word_embeddings defaults per architecture equal Transformers\' config classes', () => {
  // Every supported model type's default (its architecture file's `config`); the fixture also holds those of model types
  // whose architecture file is still to come (listed, checked once they are supported).
  const defaults: Record<string, boolean> = JSON.parse(readFileSync(join(FIX, 'tie-defaults.json'), 'utf8'));
  const supported = new Set(supportedModelTypes());
  console.log(`# not supported yet: ${Object.keys(defaults).filter((t) => !supported.has(t)).join(', ')}`);
  for (const [modelType, tie] of Object.entries(defaults).filter(([t]) => supported.has(t))) {
    const c = parseModelConfig({ model_type: modelType, hidden_size: 512, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 32 });
    assert.equal(c.tieWordEmbeddings, tie, modelType);
  }
});

// ------------------------------------------------------------------------------------------ the case

test('stories260K in save_model layout: loads, generates, quantizes to the same checkpoint as the plain layout', async () => {
  const sm = await storiesSaveModel();
  const ids = [[1, 403, 407, 261, 378, 414, 268, 1137 % 512]];
  assert.equal(maxAbsDiff(await logitsOf(sm, ids), await logitsOf(STORIES, ids)), 0, 'same weights → same logits');
  assert.ok((await greedy(sm)).startsWith(GREEDY));
  // quantize → save → reload → generate, and the saved tensors equal those of the plain layout bit for bit
  const outs: string[] = [];
  for (const src of [sm, STORIES]) {
    const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 8, groupSize: 32 } });
    await m.quantize(calib());
    const out = fresh('q');
    await m.saveQuantized(out);
    await m.dispose();
    outs.push(out);
  }
  const [a, b] = await Promise.all(outs.map((o) => readAll(join(o, 'model.safetensors'))));
  assert.deepEqual([...a!.tensors.keys()].sort(), [...b!.tensors.keys()].sort());
  assert.ok(a!.tensors.has('model.embed_tokens.weight') && !a!.tensors.has('lm_head.weight'), 'saved like save_pretrained: the tied head is left out');
  for (const [n, t] of a!.tensors) assert.deepEqual(t.data, b!.tensors.get(n)!.data, n);
  assert.ok((await greedy(outs[0]!)).startsWith(GREEDY));
});

test('save_model alias honoured whatever tie_word_embeddings says (safetensors load_model restores it)', async () => {
  const sm = await storiesSaveModel();
  const untied = await variant(sm, 'alias-untied', () => undefined, (c) => { c.tie_word_embeddings = false; });
  const ids = [[1, 9, 99, 300]];
  assert.equal(maxAbsDiff(await logitsOf(untied, ids), await logitsOf(STORIES, ids)), 0);
});

// ------------------------------------------------------------------------------------------ tied embeddings

const DIMS = { hidden: 32, intermediate: 64, layers: 1, heads: 4, kvHeads: 2, vocab: 48, seed: 9 };
async function synth(name: string, tie: boolean | undefined, edit: (t: Record<string, Tensor>) => void = () => {}): Promise<string> {
  const dir = fresh(name);
  const cfg = llamaConfig({ ...DIMS, tie: !!tie });
  if (tie === undefined) delete cfg.tie_word_embeddings;
  const t = llamaTensors({ ...DIMS, tie: false }); // both stored; edit removes what the case needs
  edit(t);
  await writeCheckpoint(dir, cfg, t);
  return dir;
}
const IDS = [[1, 5, 9, 3, 7, 2, 11, 4]];
/** float64 reference forward with the given tensors (head = "lm_head.weight" of `w`). */
function reference(dir: string, w: Record<string, Tensor>): number[] {
  const rc = refConfigFromJson(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  return refForward({ ...rc, tieWordEmbeddings: false }, (n) => w[n]?.data as Float32Array | undefined, IDS[0]!).flatMap((r) => [...r]);
}

test('tied embeddings follow tie_word_embeddings: symmetric when true, refused when false (Transformers: random init)', async () => {
  const t = llamaTensors({ ...DIMS, tie: false });
  const E = 'model.embed_tokens.weight', H = 'lm_head.weight';
  // tie true, only the head stored → the embedding reads it (transformers tie_weights is symmetric while loading)
  const headOnly = await synth('head-only', true, (w) => { delete w[E]; });
  let lg = await logitsOf(headOnly, IDS);
  assert.ok(maxAbsDiff(lg, reference(headOnly, { ...t, [E]: t[H]! })) < 1e-4);
  // tie true, only the embedding stored → the head reads it
  const embOnly = await synth('embed-only', true, (w) => { delete w[H]; });
  lg = await logitsOf(embOnly, IDS);
  assert.ok(maxAbsDiff(lg, reference(embOnly, { ...t, [H]: t[E]! })) < 1e-4);
  // tie true but both stored (and different) → each as stored, as transformers v5 (it ties only equal tensors)
  const both = await synth('both', true);
  assert.ok(maxAbsDiff(await logitsOf(both, IDS), reference(both, t)) < 1e-4);
  // tie false (explicit or the llama default) and the head missing → refused, naming tensor, file and field
  const noHead = await synth('no-head-untied', false, (w) => { delete w[H]; });
  await rejectsWith(CausalLM.load(noHead, quiet), join(noHead, 'model.safetensors'), `no tensor "${H}"`, '"tie_word_embeddings" false', 'randomly');
  await rejectsWith(GPTQModel.fromPretrained(noHead), `no tensor "${H}"`, 'randomly');
  const noHeadDefault = await synth('no-head-default', undefined, (w) => { delete w[H]; });
  await rejectsWith(CausalLM.load(noHeadDefault, quiet), `no tensor "${H}"`, 'absent, the llama default');
  const noEmbed = await synth('no-embed-untied', false, (w) => { delete w[E]; });
  await rejectsWith(CausalLM.load(noEmbed, quiet), `no tensor "${E}" (the input embedding)`, 'randomly');
  const neither = await synth('neither', true, (w) => { delete w[E]; delete w[H]; });
  await rejectsWith(CausalLM.load(neither, quiet), 'neither', E, H);
  // the per-architecture default when config.json has no such field: GPT-2 ties (its base model has no head) …
  const gpt2 = join(FIX, 'gpt2-base-model'), ref = JSON.parse(readFileSync(join(gpt2, 'reference.json'), 'utf8'));
  const gpt2NoField = await variant(gpt2, 'gpt2-no-field', () => undefined, (c) => { delete c.tie_word_embeddings; });
  assert.ok(maxAbsDiff(await logitsOf(gpt2NoField, [ref.ids]), ref.logits.flat()) <= 1e-4);
  // … GPT-NeoX does not (main silently used embed_in as the head here: max |Δlogit| 1.3 vs transformers)
  const neoxNoHead = await variant(join(FIX, 'neox-v5-names'), 'neox-no-head', (w) => { w.delete('lm_head.weight'); }, (c) => { delete c.tie_word_embeddings; });
  await rejectsWith(CausalLM.load(neoxNoHead, quiet), 'no tensor "embed_out.weight"', 'absent, the gpt_neox default');
});

test('GPT-NeoX head stored as transformers v5 "lm_head.weight": used as embed_out (untied), saved back as embed_out', async () => {
  const dir = join(FIX, 'neox-v5-names');
  const w = await loadFloatWeights(dir), stored = (await readAll(join(dir, 'model.safetensors'))).tensors;
  assert.deepEqual(w.get('embed_out.weight'), stored.get('lm_head.weight')!.data);
  assert.ok(!w.has('lm_head.weight'), 'read under the model\'s name only');
  assert.notDeepEqual(w.get('embed_out.weight'), w.get('gpt_neox.embed_in.weight'));
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(calibrationSamples(() => [], [{ inputIds: Array.from({ length: 64 }, (_, i) => (i * 7) % 64) }], { nsamples: 4, seqlen: 16 }));
  const out = fresh('neox-q');
  await m.saveQuantized(out);
  await m.dispose();
  const names = (await readAll(join(out, 'model.safetensors'))).tensors;
  assert.ok(names.has('embed_out.weight') && !names.has('lm_head.weight'));
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  const lg = await logitsOf(out, [ref.ids]);
  assert.ok(lg.every(Number.isFinite));
});

test('Mixtral with transformers v5 fused experts: each expert a slice of the stacked tensor; quantized and saved per expert', async () => {
  const dir = join(FIX, 'mixtral-v5-fused');
  const ck = await Checkpoint.open(dir);
  const { tensors } = await readAll(join(dir, 'model.safetensors'));
  const gu = tensors.get('model.layers.1.mlp.experts.gate_up_proj')!, down = tensors.get('model.layers.1.mlp.experts.down_proj')!;
  await ck.dispose();
  const w = await loadFloatWeights(dir);
  const I = 48, H = 32, at = (t: Tensor, e: number, rows: number, cols: number, r0 = 0) => (t.data as Float32Array).slice((e * (t.shape[1]!) + r0) * cols, (e * (t.shape[1]!) + r0 + rows) * cols);
  assert.deepEqual(w.get('model.layers.1.block_sparse_moe.experts.2.w1.weight'), at(gu, 2, I, H));
  assert.deepEqual(w.get('model.layers.1.block_sparse_moe.experts.2.w3.weight'), at(gu, 2, I, H, I));
  assert.deepEqual(w.get('model.layers.1.block_sparse_moe.experts.3.w2.weight'), at(down, 3, H, I));
  assert.deepEqual(w.get('model.layers.1.block_sparse_moe.gate.weight'), tensors.get('model.layers.1.mlp.gate.weight')!.data);
  assert.ok(![...w.keys()].some((n) => n.includes('.mlp.')), 'the stacked tensors are not read whole');
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize: 16 } });
  await m.quantize(calibrationSamples(() => [], [{ inputIds: Array.from({ length: 64 }, (_, i) => (i * 7) % 64) }], { nsamples: 4, seqlen: 16 }));
  const out = fresh('mixtral-q');
  await m.saveQuantized(out);
  await m.dispose();
  const saved = [...(await readAll(join(out, 'model.safetensors'))).tensors.keys()];
  for (let e = 0; e < 4; e++) for (const x of ['w1', 'w2', 'w3']) {
    const n = `model.layers.1.block_sparse_moe.experts.${e}.${x}`; // kept fp (out 48: not packable) or GPTQ
    assert.ok(saved.includes(`${n}.weight`) || saved.includes(`${n}.qweight`), n);
  }
  assert.ok(saved.includes('model.layers.0.block_sparse_moe.gate.weight'));
  assert.ok(!saved.some((n) => n.includes('mlp.experts.') || n.includes('mlp.gate')), 'stacked tensors are not copied');
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  assert.ok((await logitsOf(out, [ref.ids])).every(Number.isFinite));
});

// ------------------------------------------------------------------------------------------ optional / extra tensors

test('extra tensors Transformers ignores (rotary inv_freq buffers, biases the config has no use for) change nothing', async () => {
  const base = await synth('plain', false);
  const extra = await variant(base, 'extra', (t) => {
    for (let i = 0; i < DIMS.layers; i++) {
      t.set(`model.layers.${i}.self_attn.rotary_emb.inv_freq`, { dtype: 'F32', shape: [4], data: Float32Array.of(NaN, 1, 2, 3) });
      t.set(`model.layers.${i}.self_attn.q_proj.bias`, { dtype: 'F32', shape: [32], data: new Float32Array(32).fill(5) });
    }
  });
  assert.equal(maxAbsDiff(await logitsOf(extra, IDS), await logitsOf(base, IDS)), 0);
  // and the quantizer runs on it
  const m = await GPTQModel.fromPretrained(extra, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(calibrationSamples(() => [], [{ inputIds: Array.from({ length: 64 }, (_, i) => (i * 5) % 48) }], { nsamples: 4, seqlen: 16 }));
  await m.dispose();
});

test('a tensor the model needs is missing → one line naming it and the file (Transformers would initialize it)', async () => {
  const qwen = fresh('qwen2');
  const t = llamaTensors({ ...DIMS, modelType: 'qwen2' });
  delete t['model.layers.0.self_attn.k_proj.bias'];
  await writeCheckpoint(qwen, llamaConfig({ ...DIMS, modelType: 'qwen2' }), t);
  await rejectsWith(CausalLM.load(qwen, quiet), join(qwen, 'model.safetensors'), '"model.layers.0.self_attn.k_proj.bias"', 'which the model needs', 'initialize it');
  const noNorm = await synth('no-norm', false, (w) => { delete w['model.norm.weight']; });
  await rejectsWith(CausalLM.load(noNorm, quiet), join(noNorm, 'model.safetensors'), '"model.norm.weight"');
});

// ------------------------------------------------------------------------------------------ which file

test('which weights file: transformers_weights, AutoGPTQ model_file_base_name / default names, pickles refused', async () => {
  // a GPTQ checkpoint of ours, then renamed the ways AutoGPTQ names its files
  const m = await GPTQModel.fromPretrained(STORIES, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(calib());
  const q = fresh('q4');
  await m.saveQuantized(q);
  await m.dispose();
  const good = await logitsOf(q, IDS);
  const qc = JSON.parse(readFileSync(join(q, 'quantize_config.json'), 'utf8'));
  const clone = async (name: string, files: Record<string, string | null>, qcEdit?: (c: any) => void) => {
    const d = fresh(name);
    await fs.cp(q, d, { recursive: true });
    for (const [from, to] of Object.entries(files)) if (to) await fs.rename(join(d, from), join(d, to)); else await fs.rm(join(d, from));
    if (qcEdit) { const c = structuredClone(qc); qcEdit(c); writeFileSync(join(d, 'quantize_config.json'), JSON.stringify(c)); }
    return d;
  };
  // AutoGPTQ's default name, no model_file_base_name, next to an unrelated .safetensors file
  const dflt = await clone('default-name', { 'model.safetensors': 'gptq_model-4bit-32g.safetensors' }, (c) => { delete c.model_file_base_name; });
  await writeSafetensors(join(dflt, 'draft.safetensors'), { x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
  assert.equal(maxAbsDiff(await logitsOf(dflt, IDS), good), 0);
  // model_file_base_name wins over model.safetensors (AutoGPTQ from_quantized); a decoy model.safetensors holds garbage
  const named = await clone('named', { 'model.safetensors': 'my-model.safetensors' }, (c) => { c.model_file_base_name = 'my-model'; });
  await writeSafetensors(join(named, 'model.safetensors'), { y: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
  const ck = await Checkpoint.open(named);
  assert.deepEqual(ck.files, [join(named, 'my-model.safetensors')]);
  assert.equal(ck.rule, 'quantize_config.json model_file_base_name');
  await ck.dispose();
  assert.equal(maxAbsDiff(await logitsOf(named, IDS), good), 0);
  // a stale model_file_base_name (file absent) falls back to model.safetensors, as Transformers loads it
  const stale = await clone('stale', {}, (c) => { c.model_file_base_name = 'gone'; });
  assert.equal(maxAbsDiff(await logitsOf(stale, IDS), good), 0);
  // config.json transformers_weights names the file explicitly
  const explicit = await clone('explicit', { 'model.safetensors': 'w.safetensors' });
  await writeSafetensors(join(explicit, 'model.safetensors'), { y: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
  const cj = JSON.parse(readFileSync(join(explicit, 'config.json'), 'utf8'));
  writeFileSync(join(explicit, 'config.json'), JSON.stringify({ ...cj, transformers_weights: 'w.safetensors' }));
  assert.equal(maxAbsDiff(await logitsOf(explicit, IDS), good), 0);
  for (const [bad, why] of [['w.bin', 'must name a *.safetensors'], ['../w.safetensors', 'inside'], ['nope.safetensors', 'does not exist']]) {
    writeFileSync(join(explicit, 'config.json'), JSON.stringify({ ...cj, transformers_weights: bad }));
    await rejectsWith(Checkpoint.open(explicit), 'transformers_weights', why!);
  }
  // pickles: refused with how to convert (fp: save_pretrained; GPTQ: save_quantized), also through the CLI
  const pt = fresh('pt');
  await fs.mkdir(pt);
  await fs.copyFile(join(STORIES, 'config.json'), join(pt, 'config.json'));
  writeFileSync(join(pt, 'pytorch_model.bin'), 'x');
  await rejectsWith(Checkpoint.open(pt), pt, 'pytorch_model.bin', 'save_pretrained');
  const r = runCli('generate', pt, 'Once');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^gptq: .*pytorch_model\.bin.*save_pretrained.*\n$/);
  const gpt = await clone('gptq-bin', { 'model.safetensors': null });
  writeFileSync(join(gpt, 'gptq_model-4bit-32g.bin'), 'x');
  await rejectsWith(Checkpoint.open(gpt), 'gptq_model-4bit-32g.bin', 'save_quantized');
});

test('sharded AutoGPTQ checkpoint: <base>.safetensors.index.json', async () => {
  const src = await synth('shard-src', false);
  const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(calibrationSamples(() => [], [{ inputIds: Array.from({ length: 64 }, (_, i) => (i * 5) % 48) }], { nsamples: 4, seqlen: 16 }));
  const q = fresh('sharded');
  await m.saveQuantized(q, { maxShardSize: '4KB' });
  await m.dispose();
  const good = await logitsOf(q, IDS);
  // rename to AutoGPTQ's sharded naming: gptq_model-4bit-32g.safetensors.index.json + its shards
  const index = JSON.parse(readFileSync(join(q, 'model.safetensors.index.json'), 'utf8'));
  const ren = new Map<string, string>();
  for (const f of new Set<string>(Object.values(index.weight_map))) ren.set(f, f.replace(/^model-/, 'gptq_model-4bit-32g-'));
  for (const [a, b] of ren) await fs.rename(join(q, a), join(q, b));
  for (const k of Object.keys(index.weight_map)) index.weight_map[k] = ren.get(index.weight_map[k])!;
  await fs.rm(join(q, 'model.safetensors.index.json'));
  writeFileSync(join(q, 'gptq_model-4bit-32g.safetensors.index.json'), JSON.stringify(index));
  const qc = JSON.parse(readFileSync(join(q, 'quantize_config.json'), 'utf8'));
  qc.model_file_base_name = 'gptq_model-4bit-32g';
  writeFileSync(join(q, 'quantize_config.json'), JSON.stringify(qc));
  assert.ok(ren.size >= 2, `${ren.size} shards`);
  assert.equal(maxAbsDiff(await logitsOf(q, IDS), good), 0);
});

// ------------------------------------------------------------------------------------------ NaN / Inf

const NAN_TENSOR = 'model.layers.2.mlp.up_proj.weight';
/** stories260K in `dtype` with one NaN (or +Inf) at [3, 5] of NAN_TENSOR. */
const storiesBroken = (dtype: 'F32' | 'F16' | 'BF16', value = NaN) => variant(STORIES, `stories-${dtype}-${value}`, (t) => {
  for (const [n, x] of t) {
    const a = x.data as Float32Array;
    if (n === NAN_TENSOR) a[3 * 64 + 5] = value;
    if (dtype === 'F16') t.set(n, { dtype, shape: x.shape, data: toF16Bits(a) });
    if (dtype === 'BF16') t.set(n, { dtype, shape: x.shape, data: Uint16Array.from(a, f32ToBf16) });
  }
});

test('NaN/Inf weights: load refuses naming the tensor, for fp32/fp16/bf16 sources, also through `gptq generate`', async () => {
  for (const [dtype, v] of [['F32', NaN], ['F16', NaN], ['BF16', NaN], ['F16', Infinity], ['F32', -Infinity]] as const) {
    const dir = await storiesBroken(dtype, v);
    await rejectsWith(CausalLM.load(dir, quiet), join(dir, 'model.safetensors'), `"${NAN_TENSOR}"`, `holds ${v} at [3, 5] of [172, 64]`);
    if (dtype === 'BF16') {
      const r = runCli('generate', dir, 'Once upon', '--max-new-tokens', '4');
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^gptq: .*"${NAN_TENSOR.replace(/\./g, '\\.')}" holds NaN`));
    }
  }
});

test('NaN scales in a GPTQ checkpoint: load refuses naming the scales tensor; CLI exits 1 with one line', async () => {
  const m = await GPTQModel.fromPretrained(STORIES, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(calib());
  const q = fresh('q-nan');
  await m.saveQuantized(q);
  await m.dispose();
  const broken = await variant(q, 'q-nan-scales', (t) => { (t.get('model.layers.1.self_attn.o_proj.scales')!.data as Uint16Array)[7] = 0x7e00; });
  await rejectsWith(CausalLM.load(broken, quiet), '"model.layers.1.self_attn.o_proj.scales"', 'holds NaN at [0, 7] of [2, 64]');
  const r = runCli('generate', broken, 'Once upon', '--max-new-tokens', '4');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^gptq: .*o_proj\.scales" holds NaN[^\n]*\n$/);
});

test('NaN reaching the logits anyway (a cached graph holds its own weights): the first logits say which tensor, or why none', async () => {
  const dir = await variant(STORIES, 'in-place', () => undefined);
  const file = join(dir, 'model.safetensors');
  utimesSync(file, 1e9, 1e9); // whole seconds: restorable exactly, so the cache key stays the same
  const cache = fresh('cache');
  const o: LoadOptions = { graphCache: cache, onLog: () => {} };
  const ok = await CausalLM.load(dir, o);
  assert.equal(ok.loadInfo.graphCache, 'miss');
  await ok.dispose();
  const buf = readFileSync(file), hlen = Number(buf.readBigUInt64LE(0));
  const at = 8 + hlen + JSON.parse(buf.subarray(8, 8 + hlen).toString())[NAN_TENSOR].data_offsets[0];
  const weights = buf.subarray(at, at + 172 * 64 * 4);
  // NaN into the cached graph's copy of the tensor (its external data), the checkpoint intact
  const data = readdirSync(cache).filter((f) => f.endsWith('.onnx.data')).map((f) => join(cache, f));
  let copies = 0;
  for (const f of data) {
    const d = readFileSync(f);
    for (let i = d.indexOf(weights); i >= 0; i = d.indexOf(weights, i + 1)) { d.writeFloatLE(NaN, i + 4 * (3 * 64 + 5)); copies++; }
    writeFileSync(f, d);
  }
  assert.ok(copies >= 1, 'the cached graph holds the weights');
  let m = await CausalLM.load(dir, o);
  assert.equal(m.loadInfo.graphCache, 'hit');
  await rejectsWith(m.forwardStep([[1, 403]], m.emptyCache(1)), "the model's logits hold NaN", `no tensor of ${dir} holds NaN/Inf`, 'graphCache: false');
  await m.dispose();
  // the same NaN in the checkpoint too (as if the entry was built from it without the load check): named
  buf.writeFloatLE(NaN, at + 4 * (3 * 64 + 5));
  writeFileSync(file, buf);
  utimesSync(file, 1e9, 1e9);
  m = await CausalLM.load(dir, o);
  assert.equal(m.loadInfo.graphCache, 'hit');
  await rejectsWith(m.forwardStep([[1, 403]], m.emptyCache(1)), `"${NAN_TENSOR}" holds NaN at [3, 5]`, "the model's logits hold NaN");
  await rejectsWith(m.logits([[1, 403]]), `"${NAN_TENSOR}"`);
  await m.dispose();
});

test('logits overflow with finite weights: one line saying no tensor holds NaN/Inf', async () => {
  const dir = await variant(STORIES, 'huge', (t) => { (t.get('model.norm.weight')!.data as Float32Array).fill(3e38); });
  const m = await CausalLM.load(dir, quiet);
  await rejectsWith(m.logits([[1, 403, 407]]), "the model's logits hold", `although no tensor of ${dir} holds NaN/Inf`);
  await m.dispose();
});

test('firstNonFinite: index of the first NaN/±Inf, across block edges, each of the four sums and the tail', () => {
  const a = new Float32Array(20003); // 2 blocks of 8192 and 3619 (not a multiple of 4: a tail after the 4-wide loop)
  assert.equal(firstNonFinite(a), -1);
  for (const [i, v] of [[0, NaN], [8191, Infinity], [8192, -Infinity], [8193, NaN], [8194, Infinity], [20001, NaN], [20002, -Infinity]] as const) {
    const b = a.slice();
    b[i] = v;
    if (i < 20002) b[20002] = NaN; // a later one does not hide the first
    assert.equal(firstNonFinite(b), i);
  }
  assert.equal(firstNonFinite(Float32Array.of(-0, 3.4e38, -3.4e38, 1e-45)), -1);
});
