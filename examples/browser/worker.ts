/**
 * The page's Web Worker: all model work (loading, generation, perplexity, GPTQ quantization, zipping) runs here, so
 * the page stays responsive. Messages in: Request; messages out: Reply (examples/browser/protocol.ts).
 */
import { CausalLM, GPTQModel, calibrationSamples, generateTokens, evalTokens, loadModelConfig, mountFiles, mountUrl, ort, perplexity, unmount, zipFolder, type CalibrationInput, type QuantizeProgress } from '../../src/browser.ts';
import type { Reply, Request } from './protocol.ts';

const post = (r: Reply) => (self as unknown as { postMessage(m: unknown): void }).postMessage(r);

// onnxruntime-web's .wasm/.mjs files are served by this site (build.ts copies them next to the bundles): no CDN.
ort.env.wasm.wasmPaths = new URL('./ort/', self.location.href).href;
const cores = self.navigator.hardwareConcurrency || 1;
// Threads need cross-origin isolation (the server sends COOP/COEP); without it onnxruntime-web runs single-threaded.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(cores, 8) : 1;

let dir: string | undefined;
let lm: CausalLM | undefined;
let outDirs = 0;

async function load(req: Extract<Request, { type: 'load' }>): Promise<void> {
  await lm?.dispose();
  lm = undefined;
  if (dir) unmount(dir);
  const t0 = performance.now();
  dir = req.url ? await mountUrl(req.url, { cache: req.cache === false ? false : undefined }) : mountFiles(req.files!);
  if (!req.mountOnly) {
    post({ type: 'status', text: `mounted ${dir}; building graphs…` });
    lm = await CausalLM.load(dir, { nll: true, device: req.device ?? 'cpu', attention: req.attention });
  }
  const c = lm?.cfg ?? await loadModelConfig(dir);
  post({
    type: 'loaded', dir, seconds: (performance.now() - t0) / 1000, modelType: c.modelType, layers: c.numLayers, hidden: c.hiddenSize,
    vocab: c.vocabSize, attention: lm?.attention ?? 'none (mounted only)', quantized: !!c.quantizationConfig, threads: ort.env.wasm.numThreads as number,
    isolated: self.crossOriginIsolated, webgpu: 'gpu' in self.navigator,
  });
}

async function generate(req: Extract<Request, { type: 'generate' }>): Promise<void> {
  if (!lm) throw new Error('load a model first');
  const t0 = performance.now();
  let first = 0;
  const it = lm.stream(req.prompt, { maxNewTokens: req.maxNewTokens });
  let text = '';
  for (;;) {
    const r = await it.next();
    if (r.done) {
      const t1 = performance.now(), n = r.value.completionTokens;
      // decode speed: tokens after the first (which includes the prompt's prefill) over the time after it
      post({ type: 'generated', text, tokens: n, seconds: (t1 - t0) / 1000, decodeTokPerSec: n > 1 ? (n - 1) / ((t1 - first) / 1000) : 0, finishReason: r.value.finishReason });
      return;
    }
    if (!first) first = performance.now();
    text += r.value;
    post({ type: 'token', piece: r.value });
  }
}

async function ppl(req: Extract<Request, { type: 'ppl' }>): Promise<void> {
  if (!lm?.tokenizer) throw new Error('load a model with a tokenizer first');
  const tokens = evalTokens(lm.tokenizer, [req.text]);
  const seqlen = Math.min(req.seqlen, tokens.length);
  const r = await perplexity(lm, tokens, { seqlen });
  post({ type: 'ppl', ppl: r.ppl, nll: r.nll, windows: r.windows, tokens: r.tokens, seconds: r.seconds });
}

/**
 * GPTQ-quantize the mounted model and save the checkpoint into a new in-memory folder; returns the folder and a
 * summary. A function of its own so that the model and its packed results are unreachable once it returns: the
 * caller zips the folder while they are being freed (the tab then holds the checkpoint once, not twice).
 */
async function quantizeToFolder(bits: 2 | 3 | 4 | 8, groupSize: number, calib: (m: GPTQModel) => CalibrationInput, onProgress?: (e: QuantizeProgress) => void) {
  const t0 = performance.now();
  const m = await GPTQModel.fromPretrained(dir!, { quantizeConfig: { bits, groupSize, descAct: false } });
  try {
    const res = await m.quantize(calib(m), { onProgress: onProgress && ((e) => onProgress(e as QuantizeProgress)), onLog: (msg) => post({ type: 'status', text: msg }) });
    const quantizeSeconds = (performance.now() - t0) / 1000;
    const out = `/out-${++outDirs}`; // an in-memory folder, zipped by the caller and then dropped
    await m.saveQuantized(out);
    return { out, quantizeSeconds, saveSeconds: (performance.now() - t0) / 1000 - quantizeSeconds, modules: res.quantized.size, skipped: res.skipped.map((s) => `${s.name}: ${s.reason}`), losses: Object.fromEntries(res.losses) };
  } finally { await m.dispose(); }
}

async function quantize(req: Extract<Request, { type: 'quantize' }>): Promise<void> {
  if (!dir) throw new Error('load a model first');
  const q = await quantizeToFolder(req.bits, req.groupSize, (m) => {
    // Paragraphs are documents; samples are random seqlen-token windows (gptq's C4 recipe; joined documents when
    // none is long enough), the same ids Node's calibrationSamples gives for the same text and seed.
    const texts = req.text.split(/\n\s*\n/).map((s) => s.trim()).filter(Boolean);
    if (!m.tokenizer) throw new Error(`${dir} has no tokenizer.json`);
    const calib = calibrationSamples(m.tokenizer, texts, { nsamples: req.nsamples, seqlen: req.seqlen, seed: 0 });
    post({ type: 'calibration', samples: calib.inputIds.length, tokens: calib.inputIds.reduce((a, r) => a + r.length, 0), ids: calib.inputIds.map((r) => Array.from(r)) });
    return calib;
  }, (e) => post({ type: 'progress', event: e }));
  const name = `${dir.split('/').pop()}-gptq-${req.bits}bit-g${req.groupSize}`;
  const zip = await zipFolder(q.out, { topFolder: name });
  unmount(q.out);
  post({ type: 'quantized', seconds: q.quantizeSeconds, zip, name: `${name}.zip`, bytes: zip.size, modules: q.modules, skipped: q.skipped, losses: q.losses });
}

/** bench/browser.ts: decode speed from [bos] (eos ignored; none when tokens is 0) and GPTQ time on given ids, as bench does it in Node. */
async function bench(req: Extract<Request, { type: 'bench' }>): Promise<void> {
  if (!dir || (!lm && req.tokens > 0)) throw new Error('load a model first');
  let t = performance.now(), first = 0, n = 0;
  if (lm && req.tokens > 0) for await (const _ of generateTokens(lm, [[lm.bosTokenId ?? 1]], { maxNewTokens: req.tokens, eosTokenIds: [] })) { if (!n++) first = performance.now(); }
  const decodeTokPerSec = n > 1 ? (n - 1) / ((performance.now() - first) / 1000) : 0, prefillSeconds = n ? (first - t) / 1000 : 0;
  const ids = req.calibIds.map((r) => Int32Array.from(r));
  const q = await quantizeToFolder(req.bits, req.groupSize, () => ({ inputIds: ids, attentionMask: ids.map((r) => new Uint8Array(r.length).fill(1)), concatenated: false }));
  t = performance.now();
  const zip = await zipFolder(q.out);
  unmount(q.out);
  post({ type: 'bench', loadSeconds: 0, decodeTokPerSec, prefillSeconds, quantizeSeconds: q.quantizeSeconds, saveSeconds: q.saveSeconds + (performance.now() - t) / 1000, zipBytes: zip.size });
}

self.onmessage = async (ev: MessageEvent<Request>) => {
  const req = ev.data;
  try {
    if (req.type === 'load') await load(req);
    else if (req.type === 'generate') await generate(req);
    else if (req.type === 'ppl') await ppl(req);
    else if (req.type === 'quantize') await quantize(req);
    else if (req.type === 'bench') await bench(req);
  } catch (e) {
    post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
post({ type: 'ready' });
