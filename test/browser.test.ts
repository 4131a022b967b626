/**
 * The browser example in a real browser: Debian's Chromium (headless, /usr/bin/chromium; .ci/run installs it) driven
 * by playwright-core, against the page built with esbuild (examples/browser/build.ts) and served on 127.0.0.1 by
 * examples/browser/serve.ts. Everything runs in the page's Web Worker on onnxruntime-web (WASM); the results are
 * compared with the same computations in Node on onnxruntime-node:
 *  - greedy generation from <s>: the same text as Node ("Once upon a time, there was a little girl named Lily…");
 *  - perplexity of a fixed text: equal to Node's within 1e-4 relative;
 *  - GPTQ quantization of the same calibration ids: codes, zeros, g_idx identical, fp16 scales within a stated bound;
 *  - the downloaded zip is an AutoGPTQ checkpoint that loads in Node and generates;
 *  - a second load reads the model from the Cache API (no request reaches the server).
 * Without Chromium the test is skipped with a note — except in CI (CI=true), where it fails.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { ROOT, tmpDir } from './helpers.ts';
import { buildExample } from '../examples/browser/build.ts';
import { serveExample, type Served } from '../examples/browser/serve.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { GPTQModel } from '../src/gptq-model.ts';
import { Checkpoint } from '../src/io/safetensors.ts';
import { evalTokens } from '../src/io/datasets.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { unpackQweight } from '../src/quant/pack.ts';
import { f16ToF32 } from '../src/tensor.ts';

const f16BitsToFloat32 = (a: Uint16Array) => Float32Array.from(a, f16ToF32);

const CHROMIUM = process.env.GPTQJS_CHROMIUM ?? '/usr/bin/chromium';
const HAVE = existsSync(CHROMIUM);
const SKIP = HAVE || process.env.CI ? false : `needs Chromium at ${CHROMIUM} (apt-get install chromium; or set GPTQJS_CHROMIUM)`;
if (SKIP) console.log(`# browser.test.ts skipped: ${SKIP}`);
/** The flags Chromium needs as root on an offline CI box (no sandbox, no GPU, no background network). */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const MODEL = join(ROOT, 'assets', 'stories260K');
const PPL_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily asked her mom to help her get the ball.';
const CALIB_TEXT = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. One day, she saw a big tree in the park.',
  'Tom had a red ball. He liked to throw the ball to his dog, Max. Max ran fast and brought the ball back.',
  'The sun was hot and the sky was blue. Sam and his mom went to the beach. They built a big sand castle and swam in the water.',
  'One day, a little bird was sad because it could not fly. A kind girl helped the bird and they became best friends.',
].join('\n\n');

let tmp: ReturnType<typeof tmpDir>, served: Served, browser: Browser, page: Page;
type Demo = Record<string, any>;
const demo = (): Promise<Demo> => page.evaluate(() => (globalThis as unknown as { gptqjsDemo: Demo }).gptqjsDemo);
async function waitFor(key: string, timeout = 240_000): Promise<any> {
  await page.waitForFunction((k) => { const d = (globalThis as unknown as { gptqjsDemo?: Demo }).gptqjsDemo; return d?.[k] || d?.error; }, key, { timeout, polling: 100 });
  const d = await demo();
  if (d.error) assert.fail(`page error: ${d.error}`);
  return d[key];
}

before(async () => {
  if (SKIP) return;
  if (!HAVE) assert.fail(`Chromium not found at ${CHROMIUM}: CI installs Debian's chromium in .ci/run (apt-get install -y --no-install-recommends chromium)`);
  tmp = tmpDir('gptqjs-browser-');
  const built = await buildExample(join(tmp.path, 'site'));
  served = await serveExample({ root: built.outdir });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await (await browser.newContext({ acceptDownloads: true, viewport: { width: 1000, height: 800 } })).newPage();
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  await page.goto(served.url);
  await waitFor('ready', 60_000);
});

after(async () => {
  await browser?.close();
  await served?.close();
  tmp?.cleanup();
});

test('page: stories260K loads from the local server and generates the Node text from <s> (streamed)', { skip: SKIP }, async () => {
  await page.click('#load-embedded');
  const loaded = await waitFor('loaded');
  assert.equal(loaded.modelType, 'llama');
  assert.ok(loaded.isolated, 'page is cross-origin isolated (COOP/COEP), so WASM threads are on');
  await page.click('#generate');
  const g = await waitFor('generated');
  assert.match(g.text, /^Once upon a time, there was a little girl named Lily/);
  assert.equal(await page.textContent('#generated'), g.text, 'the streamed pieces add up to the result');
  await using lm = await CausalLM.load(MODEL, { graphCache: false });
  const node = await lm.generate('', { maxNewTokens: 24 });
  assert.equal(g.text, node.text);
  console.log(`# browser decode ${g.decodeTokPerSec.toFixed(1)} tok/s (${loaded.threads} WASM threads, attention ${loaded.attention}); load ${loaded.seconds.toFixed(2)} s`);
  const shot = await page.screenshot({ fullPage: true });
  writeFileSync(join(tmp.path, 'after-generation.png'), shot);
  if (process.env.GPTQJS_SCREENSHOT) { mkdirSync(dirname(process.env.GPTQJS_SCREENSHOT), { recursive: true }); writeFileSync(process.env.GPTQJS_SCREENSHOT, shot); }
});

test('page: perplexity of a fixed text equals Node\'s within 1e-4 relative', { skip: SKIP }, async () => {
  await page.fill('#ppl-text', PPL_TEXT);
  await page.fill('#ppl-seqlen', '32');
  await page.click('#ppl');
  const p = await waitFor('ppl');
  await using lm = await CausalLM.load(MODEL, { nll: true, graphCache: false });
  const tokens = evalTokens(lm.tokenizer!, [PPL_TEXT]);
  const node = await perplexity(lm, tokens, { seqlen: 32 });
  assert.equal(p.windows, node.windows);
  assert.ok(node.windows >= 2);
  const rel = Math.abs(p.ppl - node.ppl) / node.ppl;
  console.log(`# ppl browser ${p.ppl} node ${node.ppl} rel ${rel.toExponential(2)}`);
  assert.ok(rel < 1e-4, `ppl ${p.ppl} vs Node ${node.ppl} (rel ${rel})`);
});

test('page: GPTQ 4-bit g32 matches Node\'s quantizer on the same ids (bounded kernel differences) and the zip loads in Node', { skip: SKIP }, async () => {
  await page.fill('#calib', CALIB_TEXT);
  await page.selectOption('#bits', '4');
  await page.selectOption('#group', '32');
  await page.fill('#nsamples', '8');
  await page.fill('#calib-seqlen', '32');
  const download = page.waitForEvent('download', { timeout: 240_000 });
  await page.click('#quantize');
  const q = await waitFor('quantized');
  const calib = (await demo()).calibration as { ids: number[][] };
  assert.equal(calib.ids.length, 8);
  assert.equal(q.modules, 20); // q/k/v/o of 5 layers; the 172-wide MLP cannot be packed (kept fp, as AutoGPTQ)
  await page.click('#download');
  const dl = await download;
  assert.equal(dl.suggestedFilename(), 'stories260K-gptq-4bit-g32.zip');
  const zipPath = join(tmp.path, 'q.zip');
  await dl.saveAs(zipPath);

  // unzip → a checkpoint folder
  const files = unzipSync(new Uint8Array(await (await import('node:fs/promises')).readFile(zipPath)));
  const out = join(tmp.path, 'unzipped');
  for (const [name, bytes] of Object.entries(files)) { mkdirSync(dirname(join(out, name)), { recursive: true }); writeFileSync(join(out, name), bytes); }
  const ckDir = join(out, 'stories260K-gptq-4bit-g32');
  for (const f of ['config.json', 'quantize_config.json', 'model.safetensors', 'tokenizer.json', 'README.md']) assert.ok(existsSync(join(ckDir, f)), f);

  // Node quantizer on the same calibration ids
  await using m = await GPTQModel.fromPretrained(MODEL, { quantizeConfig: { bits: 4, groupSize: 32, descAct: false } });
  const set = { inputIds: calib.ids.map((r) => Int32Array.from(r)), attentionMask: calib.ids.map((r) => new Uint8Array(r.length).fill(1)), concatenated: false };
  const res = await m.quantize(set);
  await using ck = await Checkpoint.open(ckDir);
  // WASM and native MLAS kernels sum in different orders (Hessian, layer outputs, GPTQ's block updates): the fp32
  // results differ in the last bits, and a weight sitting on a rounding boundary can take the neighbouring code (then
  // GPTQ's error feedback shifts later codes of that row, by up to 2 steps where stories260K's Hessians (256 tokens,
  // 64 inputs) are badly conditioned). Measured: 464 of 61440 codes (0.76%), max step 2, scales and zeros identical,
  // GPTQ losses within 4.5%. Bound: ≤ 2 steps, < 2% of the codes, the same zeros and g_idx, scales within one fp16
  // ulp, per-module loss within 10%, and the two quantized models generate the same text with ppl within 1%.
  let codes = 0, codeDiff = 0, maxStep = 0, maxScaleRel = 0, maxLossRel = 0;
  for (const mod of res.quantized) {
    const t = (n: string) => res.packed.get(`${mod}.${n}`) as { data: Int32Array | Uint16Array; shape: number[] };
    const [inF, outF] = [t('g_idx').shape[0]!, t('scales').shape[1]!];
    const a = unpackQweight((await ck.read(`${mod}.qweight`)).data as Int32Array, 4, inF, outF), b = unpackQweight(t('qweight').data as Int32Array, 4, inF, outF);
    codes += a.length;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { codeDiff++; maxStep = Math.max(maxStep, Math.abs(a[i]! - b[i]!)); }
    assert.deepEqual((await ck.read(`${mod}.qzeros`)).data, t('qzeros').data, `${mod}.qzeros`);
    assert.deepEqual((await ck.read(`${mod}.g_idx`)).data, t('g_idx').data, `${mod}.g_idx`);
    const sa = f16BitsToFloat32((await ck.read(`${mod}.scales`)).data as Uint16Array), sb = f16BitsToFloat32(t('scales').data as Uint16Array);
    for (let i = 0; i < sa.length; i++) maxScaleRel = Math.max(maxScaleRel, Math.abs(sa[i]! - sb[i]!) / Math.abs(sb[i]!));
    const la = q.losses[mod] as number, lb = res.losses.get(mod)!;
    maxLossRel = Math.max(maxLossRel, Math.abs(la - lb) / lb);
  }
  console.log(`# GPTQ browser vs Node: ${codeDiff}/${codes} codes differ (max step ${maxStep}), max scale rel diff ${maxScaleRel.toExponential(2)}, max loss rel diff ${maxLossRel.toExponential(2)}`);
  assert.ok(maxStep <= 2, `a code differs by ${maxStep} steps`);
  assert.ok(codeDiff / codes < 0.02, `${codeDiff} of ${codes} codes differ`);
  assert.ok(maxScaleRel <= 2 ** -10, `scales differ by ${maxScaleRel} (more than one fp16 ulp)`);
  assert.ok(maxLossRel < 0.1, `GPTQ losses differ by ${maxLossRel}`);

  // the downloaded checkpoint runs in Node (MatMulNBits) and generates like the Node-quantized one
  await using qlm = await CausalLM.load(ckDir, { graphCache: false });
  assert.equal(qlm.quantization?.modules.filter((x) => x.kernel !== 'fp32').length, q.modules);
  const gen = await qlm.generate('', { maxNewTokens: 24 });
  assert.match(gen.text, /^Once upon a time/);
  const mine = join(tmp.path, 'node-quantized');
  await m.saveQuantized(mine);
  await using nlm = await CausalLM.load(mine, { graphCache: false });
  assert.equal(gen.text, (await nlm.generate('', { maxNewTokens: 24 })).text);
  const pb = await perplexity(qlm, evalTokens(qlm.tokenizer!, [PPL_TEXT]), { seqlen: 32 }), pn = await perplexity(nlm, evalTokens(nlm.tokenizer!, [PPL_TEXT]), { seqlen: 32 });
  console.log(`# ppl of the quantized model: browser-quantized ${pb.ppl.toFixed(5)}, Node-quantized ${pn.ppl.toFixed(5)}`);
  assert.ok(Math.abs(pb.ppl - pn.ppl) / pn.ppl < 0.01);
  console.log(`# browser quantize ${q.seconds.toFixed(2)} s; zip ${q.bytes} bytes`);
});

test('page: a second load reads the model from the Cache API (no request reaches the server)', { skip: SKIP }, async () => {
  const before = served.requests.filter((r) => r.path.startsWith('/models/')).length;
  assert.ok(before > 0);
  await page.evaluate(() => { (globalThis as unknown as { gptqjsDemo: Demo }).gptqjsDemo.loaded = undefined; });
  await page.click('#load-embedded');
  await waitFor('loaded');
  assert.deepEqual(served.requests.filter((r) => r.path.startsWith('/models/')).slice(before), []);
});
