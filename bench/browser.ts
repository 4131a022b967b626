/**
 * Browser vs Node speed: greedy decode tok/s from [bos] and GPTQ 4-bit quantize seconds on the same calibration ids,
 * in headless Chromium (onnxruntime-web WASM, threads = cores, page built by examples/browser/build.ts) and in Node
 * (onnxruntime-node), for stories260K and a synthetic Llama (scripts/synth-model.ts; random weights: speed only).
 *   nice node --import tsx bench/browser.ts [--synth-dir DIR] [--hidden 512 --intermediate 1536 --layers 6 --vocab 32000]
 *     [--tokens 64] [--nsamples 16 --seqlen 128] [--skip-synth]
 * Memory (issue 14: the largest model that quantizes in a tab): --memory quantizes the synthetic model only (no
 * runtime model, no decode, no Node run; the model is mounted without cache, so weights come by HTTP Range reads) and
 * reports the peak resident memory (VmHWM) of the tab's renderer process (worker JS heap + ArrayBuffers + the
 * onnxruntime-web wasm heap) and of Chromium's browser process (where Blob data such as the zip lives), sampled from
 * /proc (Linux).
 * Prints a markdown table. Needs Chromium (/usr/bin/chromium or GPTQJS_CHROMIUM).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { buildExample } from '../examples/browser/build.ts';
import { serveExample } from '../examples/browser/serve.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { generateTokens } from '../src/runtime/generate.ts';
import { GPTQModel } from '../src/gptq-model.ts';
import { loadModelConfig } from '../src/io/config.ts';
import { mulberry32 } from '../src/io/random.ts';

const { values: v } = parseArgs({ options: {
  'synth-dir': { type: 'string' }, hidden: { type: 'string' }, intermediate: { type: 'string' }, layers: { type: 'string' }, vocab: { type: 'string' },
  tokens: { type: 'string' }, nsamples: { type: 'string' }, seqlen: { type: 'string' }, 'skip-synth': { type: 'boolean' }, memory: { type: 'boolean' },
} });
const ROOT = resolve(import.meta.dirname, '..');
const tokens = Number(v.tokens ?? 64), nsamples = Number(v.nsamples ?? 16), seqlen = Number(v.seqlen ?? 128);
const tmp = mkdtempSync(join(tmpdir(), 'gptqjs-bench-browser-'));

const models: Record<string, string> = v.memory ? {} : { stories260K: join(ROOT, 'assets/stories260K') };
if (!v['skip-synth']) {
  const dir = v['synth-dir'] ?? join(tmp, 'synth');
  if (!existsSync(join(dir, 'config.json'))) {
    execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/synth-model.ts'), '--out', dir, '--hidden', v.hidden ?? '512', '--intermediate', v.intermediate ?? '1536',
      '--layers', v.layers ?? '6', '--heads', '8', '--kv-heads', '8', '--vocab', v.vocab ?? '32000'], { stdio: 'inherit' });
  }
  models.synth = dir;
}

async function nodeRun(dir: string, calib: number[][], groupSize: number) {
  let t = performance.now();
  const lm = await CausalLM.load(dir, { graphCache: false });
  const loadSeconds = (performance.now() - t) / 1000;
  let first = 0, n = 0;
  t = performance.now();
  for await (const _ of generateTokens(lm, [[lm.bosTokenId ?? 1]], { maxNewTokens: tokens, eosTokenIds: [] })) { if (!n++) first = performance.now(); }
  const decodeTokPerSec = (n - 1) / ((performance.now() - first) / 1000);
  await lm.dispose();
  t = performance.now();
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize, descAct: false } });
  const ids = calib.map((r) => Int32Array.from(r));
  await m.quantize({ inputIds: ids, attentionMask: ids.map((r) => new Uint8Array(r.length).fill(1)), concatenated: false });
  const quantizeSeconds = (performance.now() - t) / 1000;
  await m.dispose();
  return { loadSeconds, decodeTokPerSec, quantizeSeconds };
}

const built = await buildExample(join(tmp, 'site'));
const served = await serveExample({ root: built.outdir, models });
const browser = await chromium.launch({ executablePath: process.env.GPTQJS_CHROMIUM ?? '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const rows: string[] = [];

/** Peak resident memory (VmHWM, bytes) per Chromium process below this one, by role (renderer, browser, gpu, …). */
function chromiumPeaks(): Map<string, number> {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try { parent.set(Number(e), Number(readFileSync(`/proc/${e}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1])); } catch { /* gone */ }
  }
  const mine = (pid: number): boolean => { for (let p = parent.get(pid); p; p = parent.get(p)) if (p === process.pid) return true; return false; };
  const out = new Map<string, number>();
  for (const pid of parent.keys()) {
    if (!mine(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chrom')) continue;
      const role = /--type=([\w-]+)/.exec(cmd)?.[1] ?? 'browser', hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      out.set(role, Math.max(out.get(role) ?? 0, hwm));
    } catch { /* gone */ }
  }
  return out;
}

try {
  for (const [name, dir] of Object.entries(models)) {
    const cfg = await loadModelConfig(dir);
    const r = mulberry32(7), s = Math.min(seqlen, cfg.maxPositionEmbeddings), groupSize = cfg.hiddenSize < 128 ? 32 : 128;
    const calib = Array.from({ length: nsamples }, () => Array.from({ length: s }, () => 3 + Math.floor(r() * (cfg.vocabSize - 3))));
    if (v.memory) {
      // One fresh tab per model; peaks are polled (VmHWM is the process's own high-water mark, so no sample is missed
      // as long as the process lives; polling keeps the values of processes that exit).
      const page = await browser.newPage();
      const peak = new Map<string, number>(), poll = () => { for (const [k, b] of chromiumPeaks()) peak.set(k, Math.max(peak.get(k) ?? 0, b)); };
      const timer = setInterval(poll, 1000);
      await page.goto(served.url);
      await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.ready);
      await page.evaluate((url) => (globalThis as any).gptqjsSend({ type: 'load', url, cache: false, mountOnly: true }), `${served.url}models/${name}/`);
      await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.loaded || (globalThis as any).gptqjsDemo?.error, null, { timeout: 600_000 });
      poll();
      const before = new Map(peak), reqs0 = served.requests.length;
      await page.evaluate((a) => (globalThis as any).gptqjsSend({ type: 'bench', tokens: 0, calibIds: a.calib, bits: 4, groupSize: a.groupSize }), { calib, groupSize });
      await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.bench || (globalThis as any).gptqjsDemo?.error, null, { timeout: 3_600_000, polling: 2000 });
      poll();
      clearInterval(timer);
      const b = await page.evaluate(() => (globalThis as any).gptqjsDemo.bench ?? { error: (globalThis as any).gptqjsDemo.error });
      if (b.error) throw new Error(`${name}: ${b.error}`);
      await page.close();
      const gets = served.requests.slice(reqs0).filter((q) => q.method === 'GET' && q.path.includes('.safetensors'));
      const gib = (x: number | undefined) => ((x ?? 0) / 2 ** 30).toFixed(2), st = statSync(join(dir, 'model.safetensors')).size;
      rows.push(`| ${name}: h${cfg.hiddenSize}/i${cfg.intermediateSize}/${cfg.numLayers} layers/vocab ${cfg.vocabSize}, ${(st / 2 ** 30).toFixed(2)} GiB safetensors | ${(b.quantizeSeconds + b.saveSeconds).toFixed(1)} | ${gib(before.get('renderer'))} | ${gib(peak.get('renderer'))} | ${gib(peak.get('browser'))} | ${(b.zipBytes / 2 ** 20).toFixed(1)} | ${gets.filter((q) => q.status === 206).length}/${gets.length} |`);
      console.log(rows.at(-1));
      continue;
    }
    const page = await browser.newPage();
    await page.goto(served.url);
    await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.ready);
    let t = performance.now();
    await page.evaluate((url) => (globalThis as any).gptqjsSend({ type: 'load', url, cache: false }), `${served.url}models/${name}/`);
    await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.loaded || (globalThis as any).gptqjsDemo?.error, null, { timeout: 600_000 });
    const loadSeconds = (performance.now() - t) / 1000;
    const threads = await page.evaluate(() => (globalThis as any).gptqjsDemo.loaded?.threads);
    await page.evaluate((a) => (globalThis as any).gptqjsSend({ type: 'bench', tokens: a.tokens, calibIds: a.calib, bits: 4, groupSize: a.groupSize }), { tokens, calib, groupSize });
    await page.waitForFunction(() => (globalThis as any).gptqjsDemo?.bench || (globalThis as any).gptqjsDemo?.error, null, { timeout: 1_800_000 });
    const b = await page.evaluate(() => (globalThis as any).gptqjsDemo.bench ?? { error: (globalThis as any).gptqjsDemo.error });
    if (b.error) throw new Error(`${name}: ${b.error}`);
    await page.close();
    const n = await nodeRun(dir, calib, groupSize);
    const params = (statSync(join(dir, 'model.safetensors')).size / 4 / 1e6).toFixed(1);
    rows.push(`| ${name} (${params}M params fp32) | ${b.decodeTokPerSec.toFixed(1)} | ${n.decodeTokPerSec.toFixed(1)} | ${b.quantizeSeconds.toFixed(2)} | ${n.quantizeSeconds.toFixed(2)} | ${loadSeconds.toFixed(2)} | ${n.loadSeconds.toFixed(2)} | ${threads} |`);
    console.log(rows.at(-1));
  }
} finally {
  await browser.close();
  await served.close();
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`\ncalibration: ${nsamples} × ${seqlen} random ids; GPTQ 4-bit g128 (g32 for stories260K); decode: ${tokens} greedy tokens from [bos]`);
if (v.memory) {
  console.log('| model | quantize+save s | renderer peak RSS before quantize GiB | renderer peak RSS GiB | browser-process peak RSS GiB | zip MiB | safetensors GETs 206/all |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  process.exit(0);
}
console.log('| model | browser decode tok/s | Node decode tok/s | browser quantize s | Node quantize s | browser load s | Node load s | WASM threads |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
