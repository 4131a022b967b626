/**
 * The page's Web Worker: all model work (loading, generation, perplexity, GPTQ quantization, zipping) runs here, so
 * the page stays responsive. Messages in: Request; messages out: Reply (examples/browser/protocol.ts).
 */
import { CausalLM, GPTQModel, calibrationSamples, generateTokens, evalTokens, mountFiles, mountUrl, ort, perplexity, unmount, zipFolder, type QuantizeProgress } from '../../src/browser.ts';
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
  post({ type: 'status', text: `mounted ${dir}; building graphs…` });
  lm = await CausalLM.load(dir, { nll: true, device: req.device ?? 'cpu', attention: req.attention });
  const c = lm.cfg;
  post({
    type: 'loaded', dir, seconds: (performance.now() - t0) / 1000, modelType: c.modelType, layers: c.numLayers, hidden: c.hiddenSize,
    vocab: c.vocabSize, attention: lm.attention, quantized: !!lm.quantization, threads: ort.env.wasm.numThreads as number,
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

async function quantize(req: Extract<Request, { type: 'quantize' }>): Promise<void> {
  if (!dir) throw new Error('load a model first');
  const t0 = performance.now();
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: req.bits, groupSize: req.groupSize, descAct: false } });
  try {
    // Paragraphs are documents; samples are random seqlen-token windows (gptq's C4 recipe; joined documents when
    // none is long enough), the same ids Node's calibrationSamples gives for the same text and seed.
    const texts = req.text.split(/\n\s*\n/).map((s) => s.trim()).filter(Boolean);
    if (!m.tokenizer) throw new Error(`${dir} has no tokenizer.json`);
    const calib = calibrationSamples(m.tokenizer, texts, { nsamples: req.nsamples, seqlen: req.seqlen, seed: 0 });
    post({ type: 'calibration', samples: calib.inputIds.length, tokens: calib.inputIds.reduce((a, r) => a + r.length, 0), ids: calib.inputIds.map((r) => Array.from(r)) });
    const res = await m.quantize(calib, {
      onProgress: (e) => post({ type: 'progress', event: e as QuantizeProgress }),
      onLog: (msg) => post({ type: 'status', text: msg }),
    });
    const quantizeSeconds = (performance.now() - t0) / 1000;
    const name = `${dir.split('/').pop()}-gptq-${req.bits}bit-g${req.groupSize}`;
    const out = `/out-${++outDirs}`; // an in-memory folder, zipped below and then dropped
    await m.saveQuantized(out);
    const zip = await zipFolder(out, { topFolder: name });
    unmount(out);
    post({
      type: 'quantized', seconds: quantizeSeconds, zip, name: `${name}.zip`, bytes: zip.size, modules: res.quantized.size,
      skipped: res.skipped.map((s) => `${s.name}: ${s.reason}`), losses: Object.fromEntries(res.losses),
    });
  } finally { await m.dispose(); }
}

/** bench/browser.ts: decode speed from [bos] (eos ignored) and GPTQ time on given ids, as bench does it in Node. */
async function bench(req: Extract<Request, { type: 'bench' }>): Promise<void> {
  if (!lm || !dir) throw new Error('load a model first');
  let t = performance.now(), first = 0, n = 0;
  for await (const _ of generateTokens(lm, [[lm.bosTokenId ?? 1]], { maxNewTokens: req.tokens, eosTokenIds: [] })) { if (!n++) first = performance.now(); }
  const decodeTokPerSec = (n - 1) / ((performance.now() - first) / 1000), prefillSeconds = (first - t) / 1000;
  t = performance.now();
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: req.bits, groupSize: req.groupSize, descAct: false } });
  try {
    const ids = req.calibIds.map((r) => Int32Array.from(r));
    await m.quantize({ inputIds: ids, attentionMask: ids.map((r) => new Uint8Array(r.length).fill(1)), concatenated: false });
    const quantizeSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const out = `/out-${++outDirs}`;
    await m.saveQuantized(out);
    const zip = await zipFolder(out);
    unmount(out);
    post({ type: 'bench', loadSeconds: 0, decodeTokPerSec, prefillSeconds, quantizeSeconds, saveSeconds: (performance.now() - t) / 1000, zipBytes: zip.size });
  } finally { await m.dispose(); }
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
