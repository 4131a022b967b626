/**
 * Loading for inference opens the checkpoint once (issue 11 item 4): CausalLM.load reads every weight through one
 * Checkpoint.open (src/runtime/open-weights.ts) — fp, GPTQ (with and without the quantized head) and AWQ — and none
 * when every graph comes from the graph cache; loadQuantizedModel adds no open of its own.
 * Counted with a spy on Checkpoint.open (every safetensors read goes through it).
 */
import { after, before, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../src/io/safetensors.ts';
import { CausalLM, type LoadOptions } from '../src/runtime/causal-lm.ts';
import { loadQuantizedModel } from '../src/runtime/load.ts';
import { GptqError } from '../src/errors.ts';
import { loadFormatFixture } from './fixture-formats.ts';
import { ROOT, quantizeStories, tmpDir } from './helpers.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const work = tmpDir('gptqjs-open-');
let GPTQ = '';
const quiet = () => {};

before(async () => { GPTQ = await quantizeStories(STORIES, join(work.path, 'stories-q4'), { nsamples: 4, seqlen: 32 }); });
after(() => work.cleanup());

/** Checkpoint.open calls made while `f` runs, and its result. */
async function opens<T>(f: () => Promise<T>): Promise<{ n: number; r: T }> {
  const spy = mock.method(Checkpoint, 'open');
  try { const r = await f(); return { n: spy.mock.callCount(), r }; } finally { spy.mock.restore(); }
}

/** Opens during one CausalLM.load (the model is disposed), with its logits of a short prompt to check it ran. */
async function loadOpens(dir: string, o: LoadOptions): Promise<{ n: number; m: CausalLM }> {
  const { n, r: m } = await opens(() => CausalLM.load(dir, { onLog: quiet, ...o }));
  return { n, m };
}

test('CausalLM.load opens an fp checkpoint once (with and without a quantized head)', async () => {
  for (const o of [{}, { lmHeadBits: 8 as const }, { attention: 'plain' as const }]) {
    const { n, m } = await loadOpens(STORIES, { graphCache: false, ...o });
    try {
      assert.equal(n, 1, `opens with ${JSON.stringify(o)}`);
      assert.equal(m.quantization, undefined);
      assert.equal(m.lmHead?.bits, o.lmHeadBits);
      assert.equal((await m.logits([[1, 2, 3]])).length, 3 * m.cfg.vocabSize);
    } finally { await m.dispose(); }
  }
});

test('CausalLM.load opens a GPTQ checkpoint once (accuracy level 0, and 4 with its default 8-bit head)', async () => {
  for (const accuracyLevel of [0, 4] as const) {
    const { n, m } = await loadOpens(GPTQ, { graphCache: false, accuracyLevel });
    try {
      assert.equal(n, 1, `opens at accuracy level ${accuracyLevel}`);
      assert.equal(m.quantization?.method, 'gptq');
      assert.equal(m.lmHead?.bits, accuracyLevel === 4 ? 8 : undefined);
      assert.equal((await m.logits([[1, 2, 3]])).length, 3 * m.cfg.vocabSize);
    } finally { await m.dispose(); }
  }
});

test('CausalLM.load opens an AWQ checkpoint once', async () => {
  const { n, m } = await loadOpens(loadFormatFixture('awq-gemm-g128').dir, { graphCache: false, accuracyLevel: 4 });
  try {
    assert.equal(n, 1);
    assert.equal(m.quantization?.method, 'awq');
  } finally { await m.dispose(); }
});

test('graph cache: the first load opens the checkpoint once, a second one never (quantization info from the entry)', async () => {
  const cache = join(work.path, 'graphs');
  const logs: string[][] = [];
  for (const expected of [1, 0]) {
    const seen: string[] = [];
    const { n, m } = await loadOpens(GPTQ, { graphCache: cache, accuracyLevel: 4, onLog: (s) => seen.push(s) });
    try {
      assert.equal(n, expected);
      assert.equal(m.loadInfo.graphCache, expected ? 'miss' : 'hit');
      assert.equal(m.quantization?.method, 'gptq');
      logs.push(seen);
    } finally { await m.dispose(); }
  }
  assert.deepEqual(logs[1], logs[0]); // the same notices, from the cache entry the second time
});

test('loadQuantizedModel adds no open; refuses an fp checkpoint before reading weights, and a declared one without quantized tensors', async () => {
  const { n, r } = await opens(() => loadQuantizedModel(GPTQ, { graphCache: false, onLog: quiet }));
  try {
    assert.equal(n, 1);
    assert.equal(r.quantization.method, 'gptq');
  } finally { await r.model.dispose(); }
  const fp = await opens(() => loadQuantizedModel(STORIES, { graphCache: false }).catch((e: unknown) => e));
  assert.equal(fp.n, 0);
  assert.ok(fp.r instanceof GptqError && /is not a quantized checkpoint \(no quantize_config\.json/.test(fp.r.message), String(fp.r));
  const declared = join(work.path, 'declared-fp');
  cpSync(STORIES, declared, { recursive: true });
  writeFileSync(join(declared, 'quantize_config.json'), JSON.stringify({ bits: 4, group_size: 32, desc_act: false, sym: true }));
  await assert.rejects(loadQuantizedModel(declared, { graphCache: false, onLog: quiet }),
    (e: unknown) => e instanceof GptqError && /is not a quantized checkpoint \(no \.qweight tensors/.test(e.message));
});
