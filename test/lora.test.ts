/**
 * PEFT LoRA adapters (src/runtime/lora.ts) against real PEFT 0.21 (test/fixtures/lora/, made by
 * scripts/fixtures/make_lora_fixtures.py): logits on the fp bases within 1e-4 of PEFT's, several adapters in one model
 * chosen per call and per batch row, the base model untouched by loaded adapters, PEFT's greedy text; on a GPTQ base
 * (stories260K quantized by our pipeline) the unmerged graph equals the fp graph on the dequantized GPTQ weights with
 * the LoRA merged in float64 (W + scaling·B·A, computed here from the fixture's tensors); bad adapters → one line.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CausalLM, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { SlotCache } from '../src/runtime/slots.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { Checkpoint, writeSafetensors } from '../src/io/safetensors.ts';
import { dequantize } from '../src/quant/pack.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import { serve } from '../src/serve/server.ts';
import { readF32Safetensors } from './fixture-archs.ts';
import { cliArgs, maxAbsDiff, quantizeStories, randn, ROOT, tmpDir } from './helpers.ts';

const LORA = join(ROOT, 'test', 'fixtures', 'lora');
const quiet = { graphCache: false as const, onLog: () => {} };
const TOL = 1e-4;

interface LoraFixture {
  name: string; dir: string; base: string; ids: number[][]; logits: Float32Array; baseLogits: Float32Array;
  info: { prompt?: string; prompt_ids?: number[]; greedy?: number[]; greedy_text?: string; greedy_base?: number[] };
}
function fixture(name: string): LoraFixture {
  const dir = join(LORA, name), info = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const t = readF32Safetensors(join(dir, 'expected.safetensors'));
  return { name, dir, base: join(ROOT, info.base), ids: info.input_ids, logits: t.get('logits')!.data, baseLogits: t.get('base_logits')!.data, info };
}
const FIXTURES = ['llama-list', 'llama-regex', 'qwen2-patterns', 'gpt2-conv1d', 'stories260K-qv'];

/** The last position's logits of each row of [B,S,V]. */
function lastRows(l: Float32Array, B: number, S: number, V: number): Float32Array {
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(l.subarray((b * S + S - 1) * V, (b * S + S) * V), b * V);
  return out;
}

const work = tmpDir('gptqjs-lora-');
after(() => work.cleanup());

for (const name of FIXTURES) {
  test(`fp base, ${name}: logits within ${TOL} of PEFT (buffer and plain graphs); adapter null = PEFT with the adapter disabled`, async () => {
    const f = fixture(name);
    for (const attention of ['buffer', 'plain'] as const) {
      const lm = await CausalLM.load(f.base, { ...quiet, attention, adapters: { a: f.dir }, adapter: 'a' });
      try {
        const d = maxAbsDiff(await lm.logits(f.ids), f.logits), d0 = maxAbsDiff(await lm.withAdapter(null).logits(f.ids), f.baseLogits);
        assert.ok(d <= TOL, `${attention}: max |Δlogit| vs PEFT ${d}`);
        assert.ok(d0 <= TOL, `${attention} base: max |Δlogit| vs PEFT disabled ${d0}`);
        assert.ok(maxAbsDiff(f.logits, f.baseLogits) > 1, 'the adapter changes the logits (nonzero lora_B)');
      } finally { await lm.dispose(); }
    }
  });
}

test('several adapters in one model: chosen per call (withAdapter, generate { adapter }) and per batch row (KV slots); the base is the no-adapter model', async () => {
  const a = fixture('llama-list'), b = fixture('llama-regex');
  const lm = await CausalLM.load(a.base, { ...quiet, adapters: { list: a.dir, regex: b.dir } });
  const plain = await CausalLM.load(a.base, quiet);
  try {
    assert.deepEqual(lm.adapters, ['list', 'regex']);
    assert.equal(lm.adapter, null);
    assert.ok(maxAbsDiff(await lm.withAdapter('list').logits(a.ids), a.logits) <= TOL);
    assert.ok(maxAbsDiff(await lm.withAdapter('regex').logits(b.ids), b.logits) <= TOL);
    assert.equal(maxAbsDiff(await lm.logits(a.ids), await plain.logits(a.ids)), 0, 'gate 0: exactly the model loaded without adapters');
    assert.equal(lm.withAdapter('list'), lm.withAdapter('list').withAdapter('list'), 'views are cached');
    assert.throws(() => lm.withAdapter('nope'), /adapter "nope" is not loaded \(loaded: list, regex/);
    assert.throws(() => plain.withAdapter('list'), /loaded without adapters/);
    // nll() on a view builds the separate NLL session once, gated by the view's adapter
    const nll = await lm.withAdapter('regex').nll(b.ids), V = 128, S = b.ids[0]!.length;
    const want = -Math.log(softmaxAt(b.logits.subarray(0, V), b.ids[0]![1]!));
    assert.ok(Math.abs(nll[0]! - want) < 1e-4, `nll ${nll[0]} vs PEFT ${want}`);
    assert.equal(nll.length, 2 * (S - 1));
  } finally { await lm.dispose(); await plain.dispose(); }
  // per row: one decode step with rows of three different adapters (continuous batching)
  const slotsLm = await CausalLM.load(a.base, { ...quiet, attention: 'slots', adapters: { list: a.dir, regex: b.dir } });
  try {
    const V = 128, S = a.ids[0]!.length;
    const cache = new SlotCache(slotsLm, 3, 16, { minRows: 2 });
    const rows: [string | null, LoraFixture, Float32Array][] = [['list', a, a.logits], ['regex', b, b.logits], [null, a, a.baseLogits]];
    const slots = rows.map(([ad]) => cache.acquire(ad)!);
    rows.forEach(([ad], i) => assert.equal(slots[i]!.adapter, ad));
    for (const [i, [, f]] of rows.entries()) await cache.extend(slots[i]!, f.ids[0]!.slice(0, S - 1));
    const step = await cache.step(slots, rows.map(([, f]) => f.ids[0]![S - 1]!));
    for (const [i, [ad, f, want]] of rows.entries()) {
      const d = maxAbsDiff(step.subarray(i * V, (i + 1) * V), lastRows(want, 2, S, V).subarray(0, V));
      assert.ok(d <= TOL, `row ${i} (${ad ?? 'base'}, ${f.name}): ${d}`);
    }
    assert.throws(() => cache.acquire('nope'), /adapter "nope" is not loaded/);
  } finally { await slotsLm.dispose(); }
});

function softmaxAt(l: Float32Array, i: number): number {
  let m = -Infinity, s = 0;
  for (const v of l) m = Math.max(m, v);
  for (const v of l) s += Math.exp(v - m);
  return Math.exp(l[i]! - m) / s;
}

test('stories260K + adapter: greedy tokens are PEFT\'s (generate { adapter }, adapter null = the base\'s greedy tokens)', async () => {
  const f = fixture('stories260K-qv');
  const lm = await CausalLM.load(f.base, { ...quiet, adapters: { qv: f.dir } });
  try {
    const on = await lm.generate(f.info.prompt!, { adapter: 'qv', maxNewTokens: 16 });
    assert.deepEqual(on.tokenIds, f.info.greedy);
    assert.equal(on.text, f.info.greedy_text);
    assert.deepEqual((await lm.generate(f.info.prompt!, { maxNewTokens: 16 })).tokenIds, f.info.greedy_base);
    await assert.rejects(lm.generate('x', { adapter: 'other' }), /adapter "other" is not loaded/);
  } finally { await lm.dispose(); }
});

let gptqDir = '';
before(async () => { gptqDir = await quantizeStories(join(ROOT, 'assets', 'stories260K'), join(work.path, 'stories-gptq')); });

/** fp32 weights of a GPTQ checkpoint: each quantized linear dequantized, with the adapter's LoRA merged in float64. */
async function mergedReference(dir: string, adapter?: LoraFixture): Promise<Map<string, Float32Array>> {
  const ck = await Checkpoint.open(dir), out = new Map<string, Float32Array>();
  const lora = adapter ? readF32Safetensors(join(adapter.dir, 'adapter_model.safetensors')) : undefined;
  const ac = adapter ? JSON.parse(readFileSync(join(adapter.dir, 'adapter_config.json'), 'utf8')) : undefined;
  try {
    for (const n of ck.names()) {
      if (n.endsWith('.qweight')) {
        const m = n.slice(0, -'.qweight'.length), scales = await ck.read(`${m}.scales`);
        const [groups, N] = scales.shape as [number, number];
        const K = ck.info(n).shape[0]! * 8;
        const W = dequantize({ qweight: (await ck.read(n)).data as Int32Array, qzeros: (await ck.read(`${m}.qzeros`)).data as Int32Array,
          scales: scales.data as Uint16Array, gIdx: (await ck.read(`${m}.g_idx`)).data as Int32Array, bits: 4, inFeatures: K, outFeatures: N });
        void groups;
        const A = lora?.get(`base_model.model.${m}.lora_A.weight`), B = lora?.get(`base_model.model.${m}.lora_B.weight`);
        if (A && B) {
          const r = A.shape[0]!, s = ac.lora_alpha / ac.r;
          for (let o = 0; o < N; o++) for (let k = 0; k < K; k++) {
            let acc = 0;
            for (let j = 0; j < r; j++) acc += B.data[o * r + j]! * A.data[j * K + k]!;
            W[o * K + k] = W[o * K + k]! + s * acc;
          }
        }
        out.set(`${m}.weight`, W);
      } else if (!/\.(qzeros|scales|g_idx)$/.test(n)) out.set(n, await ck.readFloat32(n));
    }
  } finally { await ck.dispose(); }
  return out;
}

test('GPTQ base (stories260K 4-bit by our pipeline): adapter unmerged beside MatMulNBits = fp graph on the dequantized weights + merged LoRA', async () => {
  const f = fixture('stories260K-qv');
  const cfg = await loadModelConfig(gptqDir);
  const lm = await CausalLM.load(gptqDir, { ...quiet, adapters: { qv: f.dir }, accuracyLevel: 0 });
  try {
    assert.ok(lm.quantization, 'GPTQ checkpoint');
    for (const [ad, w] of [['qv', await mergedReference(gptqDir, f)], [null, await mergedReference(gptqDir)]] as const) {
      const ref = await CausalLM.fromWeights(cfg, () => new InitializerWeights((n) => w.get(n)), { attention: 'plain' });
      const want = await ref.logits(f.ids), got = await lm.withAdapter(ad).logits(f.ids);
      await ref.dispose();
      const d = maxAbsDiff(got, want);
      assert.ok(d <= 2e-4, `${ad ?? 'base'}: max |Δlogit| ${d}`);
      if (ad) assert.ok(maxAbsDiff(got, await lm.withAdapter(null).logits(f.ids)) > 1, 'the adapter changes the GPTQ model');
    }
  } finally { await lm.dispose(); }
});

test('graph cache: the adapters are part of the key (hit with the same adapters, miss with others)', async () => {
  const a = fixture('llama-list'), b = fixture('llama-regex'), cache = join(work.path, 'graphs');
  const load = async (o: LoadOptions, ids = a.ids) => { const m = await CausalLM.load(a.base, { onLog: () => {}, graphCache: cache, ...o }); const r = { info: m.loadInfo.graphCache, l: await m.logits(ids) }; await m.dispose(); return r; };
  const first = await load({ adapters: { x: a.dir }, adapter: 'x' });
  const again = await load({ adapters: { x: a.dir }, adapter: 'x' });
  const other = await load({ adapters: { x: b.dir }, adapter: 'x' }, b.ids);
  const none = await load({});
  assert.deepEqual([first.info, again.info, other.info, none.info], ['miss', 'hit', 'miss', 'miss']);
  assert.ok(maxAbsDiff(again.l, a.logits) <= TOL, `cached graph: ${maxAbsDiff(again.l, a.logits)}`);
  assert.ok(maxAbsDiff(other.l, b.logits) <= TOL, `other adapter: ${maxAbsDiff(other.l, b.logits)}`);
});

test('bad adapters are refused in one line naming the file and field/tensor', async () => {
  const f = fixture('llama-list');
  const copy = (name: string, edit: (cfg: Record<string, unknown>) => void) => {
    const d = join(work.path, name);
    cpSync(f.dir, d, { recursive: true });
    const p = join(d, 'adapter_config.json'), c = JSON.parse(readFileSync(p, 'utf8'));
    edit(c);
    writeFileSync(p, JSON.stringify(c));
    return d;
  };
  const refuse = async (dir: string, re: RegExp, base = f.base) => {
    await assert.rejects(CausalLM.load(base, { ...quiet, adapters: { a: dir } }), (e: Error) => {
      assert.equal(e.name, 'GptqError'); assert.ok(!e.message.includes('\n'), e.message); assert.match(e.message, re); return true;
    });
  };
  await refuse(join(work.path, 'nowhere'), /adapter .*nowhere: no such directory/);
  const noWeights = copy('no-weights', () => {});
  rmSync(join(noWeights, 'adapter_model.safetensors'));
  await refuse(noWeights, /no-weights\/adapter_model\.safetensors: no such file/);
  await refuse(copy('ia3', (c) => { c.peft_type = 'IA3'; }), /ia3\/adapter_config\.json: peft_type "IA3" is not supported \(only "LORA"/);
  await refuse(copy('dora', (c) => { c.use_dora = true; }), /dora\/adapter_config\.json: "use_dora": true: DoRA/);
  await refuse(copy('bias', (c) => { c.bias = 'all'; }), /"bias": "all": trained biases/);
  await refuse(copy('notarget', (c) => { c.target_modules = ['query_key_value']; }), /"target_modules" \["query_key_value"\] matches no linear of the llama model/);
  await refuse(copy('fewer', (c) => { c.target_modules = ['q_proj', 'v_proj']; }), /tensor "base_model\.model\.model\.layers\.0\.mlp\.down_proj\.lora_A\.weight": module "model\.layers\.0\.mlp\.down_proj" is not matched by target_modules/);
  await refuse(copy('more', (c) => { c.target_modules = ['q_proj', 'v_proj', 'down_proj', 'k_proj']; }), /no tensor "base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight", but .* targets module/);
  await refuse(copy('rank', (c) => { c.r = 2; }), /rank\/adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.0\.self_attn\.[qv]_proj\.lora_A\.weight" has shape \[4, 64\], expected \[2, 64\] \(.*r = 2\)/);
  await refuse(fixture('gpt2-conv1d').dir, /"target_modules" \["c_attn","c_fc","c_proj"\] matches no linear of the llama model/);
  await refuse(copy('regex', (c) => { c.target_modules = '(unclosed'; }), /target_modules: not a regular expression/);
  // qwen2's adapter on llama: same module names, other shapes (hidden 64 both; qwen2's layers differ) or no match
  await assert.rejects(CausalLM.load(f.base, { ...quiet, adapters: { a: f.dir }, adapter: 'b' }), /adapter "b" is not among the adapters loaded \(a\)/);
  await assert.rejects(CausalLM.load(f.base, { ...quiet, adapters: { 'a:b': f.dir } }), /adapter name "a:b" must be/);
});

test('CLI: --adapter NAME=DIR on generate (PEFT\'s greedy text); repeated names refused', () => {
  const f = fixture('stories260K-qv');
  const run = (args: string[]) => spawnSync(process.execPath, cliArgs(...args), { encoding: 'utf8', env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });
  const g = run(['generate', f.base, f.info.prompt!, '--adapter', `qv=${f.dir}`, '--max-new-tokens', '16', '--json']);
  assert.equal(g.status, 0, g.stderr);
  assert.deepEqual(JSON.parse(g.stdout.trim()).tokens, f.info.greedy);
  const dup = run(['generate', f.base, 'x', '--adapter', f.dir, '--adapter', f.dir]);
  assert.notEqual(dup.status, 0);
  assert.match(dup.stderr, /--adapter: the name "stories260K-qv" is given twice/);
});

test('serve: "<model>:<adapter>" ids in /v1/models; a request picks the adapter, base and adapter requests batch together', async () => {
  const f = fixture('stories260K-qv');
  const s = await serve({ model: f.base, modelId: 'st', port: 0, maxBatch: 2, ...quiet, adapters: { qv: f.dir } });
  try {
    const models = await (await fetch(`${s.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ['st', 'st:qv']);
    const ask = (model: string) => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model, prompt: f.info.prompt, max_tokens: 16, temperature: 0, ignore_eos: true }) }).then((r) => r.json() as Promise<{ model: string; choices: { text: string }[] }>);
    const [on, off] = await Promise.all([ask('st:qv'), ask('st')]);
    assert.equal(on.model, 'st:qv');
    assert.equal(on.choices[0]!.text, f.info.greedy_text);
    const lm = await CausalLM.load(f.base, quiet);
    const base = await lm.generate(f.info.prompt!, { maxNewTokens: 16 });
    await lm.dispose();
    assert.equal(off.choices[0]!.text, base.text);
    const bad = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'st:nope', prompt: 'x' }) });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /The model 'st:nope' does not exist \(served: st, st:qv\)/);
  } finally { await s.close(); }
});

test('AWQ, bitsandbytes NF4 / LLM.int8 and AQLM bases: adapter beside their kernels = fp graph on the independent float64 dequantizer\'s weights + merged LoRA', async (t) => {
  const { loadFormatFixture, referenceWeight, linearShape } = await import('./fixture-formats.ts');
  const { values } = await import('./reference/formats-ref.ts');
  for (const name of ['awq-gemm-g32-sym', 'bnb-nf4', 'bnb-int8', 'aqlm-2x8']) {
    const f = loadFormatFixture(name), r = 4, alpha = 8, L = f.config.num_hidden_layers as number;
    // a random adapter in PEFT's layout on q_proj, v_proj, down_proj (quantized modules of these fixtures)
    const dir = join(work.path, `adapter-${name}`), lora = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    let seed = 100;
    for (let l = 0; l < L; l++) for (const rel of ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj']) {
      const m = `model.layers.${l}.${rel}`, [outF, inF] = linearShape(f.config, m);
      lora.set(`base_model.model.${m}.lora_A.weight`, { dtype: 'F32', shape: [r, inF], data: randn(r * inF, seed++, 1 / Math.sqrt(inF)) });
      lora.set(`base_model.model.${m}.lora_B.weight`, { dtype: 'F32', shape: [outF, r], data: randn(outF * r, seed++, 0.3) });
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: alpha, target_modules: ['q_proj', 'v_proj', 'down_proj'], bias: 'none' }));
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), lora);
    // reference weights: fp tensors as stored, quantized modules from the float64 dequantizer, W + (α/r)·B·A in float64
    const w = new Map<string, Float32Array>();
    for (const [n, t] of f.tensors) if ((n.endsWith('.bias') || !f.quantized.some((m) => n.startsWith(`${m}.`))) && ['F32', 'F16', 'BF16'].includes(t.dtype)) w.set(n, Float32Array.from(values(t)));
    for (const m of f.quantized) {
      const W = referenceWeight(f, m), [outF, inF] = linearShape(f.config, m);
      const A = lora.get(`base_model.model.${m}.lora_A.weight`), B = lora.get(`base_model.model.${m}.lora_B.weight`);
      if (A && B) for (let o = 0; o < outF; o++) for (let k = 0; k < inF; k++) {
        let acc = 0;
        for (let j = 0; j < r; j++) acc += B.data[o * r + j]! * A.data[j * inF + k]!;
        W[o * inF + k] = W[o * inF + k]! + (alpha / r) * acc;
      }
      w.set(`${m}.weight`, Float32Array.from(W));
    }
    const cfg = await loadModelConfig(f.dir);
    const ref = await CausalLM.fromWeights(cfg, () => new InitializerWeights((n) => w.get(n)), { attention: 'plain' });
    const want = await ref.logits([f.ids]);
    await ref.dispose();
    const lm = await CausalLM.load(f.dir, { ...quiet, adapters: { a: dir } });
    try {
      const got = await lm.withAdapter('a').logits([f.ids]), d = maxAbsDiff(got, want);
      t.diagnostic(`${name}: max |Δlogit| ${d.toExponential(2)}`);
      assert.ok(d <= TOL, `${name}: max |Δlogit| ${d}`);
      assert.ok(maxAbsDiff(got, await lm.logits([f.ids])) > 0.1, `${name}: the adapter changes the logits`);
    } finally { await lm.dispose(); }
  }
});
