/** The page: UI only; every model operation is a message to worker.ts. */
import type { Reply, Request } from './protocol.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const send = (r: Request) => worker.postMessage(r);
/** For scripts (bench/browser.ts): send a request to the worker directly. */
(window as unknown as { gptqjsSend: typeof send }).gptqjsSend = send;

/** What the page measured, for scripts and tests (window.gptqjsDemo). */
const demo: Record<string, unknown> = { events: [] as string[] };
(window as unknown as { gptqjsDemo: unknown }).gptqjsDemo = demo;

const device = () => $<HTMLSelectElement>('device').value as 'cpu' | 'webgpu';
const busy = (on: boolean) => { for (const id of ['generate', 'ppl', 'quantize']) $<HTMLButtonElement>(id).disabled = on || !demo.loaded; };

worker.onmessage = (ev: MessageEvent<Reply>) => {
  const r = ev.data;
  (demo.events as string[]).push(r.type);
  switch (r.type) {
    case 'ready': $('env').textContent = `worker ready · cross-origin isolated: ${self.crossOriginIsolated} · cores: ${navigator.hardwareConcurrency} · navigator.gpu: ${'gpu' in navigator ? 'yes' : 'no'}`; demo.ready = true; break;
    case 'status': $('model').textContent += `\n${r.text}`; break;
    case 'error': demo.error = r.message; $('env').innerHTML = `<span class="err">${r.message.replace(/</g, '&lt;')}</span>`; busy(false); break;
    case 'loaded':
      demo.loaded = r;
      $('model').textContent = `${r.dir}: ${r.modelType}, ${r.layers} layers, hidden ${r.hidden}, vocab ${r.vocab}${r.quantized ? ', GPTQ' : ''} · attention ${r.attention} · ${r.threads} WASM thread(s) · loaded in ${r.seconds.toFixed(2)} s`;
      busy(false);
      break;
    case 'token': $('generated').textContent += r.piece; break;
    case 'generated':
      demo.generated = r;
      $('gen-stats').textContent = `${r.tokens} tokens in ${r.seconds.toFixed(2)} s · decode ${r.decodeTokPerSec.toFixed(1)} tok/s · ${r.finishReason}`;
      busy(false);
      break;
    case 'ppl': demo.ppl = r; $('ppl-out').textContent = `ppl ${r.ppl.toFixed(4)} (${r.windows} window(s), ${r.tokens} tokens, ${r.seconds.toFixed(2)} s)`; busy(false); break;
    case 'calibration': demo.calibration = r; $('layers').textContent = `calibration: ${r.samples} samples, ${r.tokens} tokens\n`; break;
    case 'progress': {
      const e = r.event;
      $<HTMLProgressElement>('qbar').value = e.done / e.total;
      if (e.stage === 'module' || e.stage === 'layer-done' || e.stage === 'skip') {
        const line = e.stage === 'module' ? `layer ${e.layer! + 1}/${e.layers} ${e.module}: loss ${e.loss?.toExponential(3)} (${e.seconds?.toFixed(2)} s)`
          : e.stage === 'skip' ? `layer ${e.layer! + 1}/${e.layers} ${e.module}: kept in full precision (${e.message})` : `layer ${e.layer! + 1}/${e.layers} done · eta ${e.eta?.toFixed(1) ?? '?'} s`;
        $('layers').textContent += line + '\n';
        $('layers').scrollTop = 1e9;
      }
      break;
    }
    case 'bench': demo.bench = r; break;
    case 'quantized': {
      demo.quantized = { ...r, zip: undefined };
      const a = document.createElement('a');
      a.href = URL.createObjectURL(r.zip);
      a.download = r.name;
      a.id = 'download';
      a.textContent = `Download ${r.name} (${(r.bytes / 1024).toFixed(1)} KiB, AutoGPTQ format)`;
      $('download-row').replaceChildren(a, document.createTextNode(` · quantized ${r.modules} modules in ${r.seconds.toFixed(2)} s${r.skipped.length ? ` · ${r.skipped.length} kept in full precision` : ''}`));
      busy(false);
      break;
    }
  }
};

$('load-embedded').onclick = () => { busy(true); demo.loaded = undefined; $('model').textContent = 'loading…'; send({ type: 'load', url: new URL('./models/stories260K/', location.href).href, device: device() }); };
$<HTMLInputElement>('folder').onchange = (ev) => {
  const files = [...((ev.target as HTMLInputElement).files ?? [])];
  if (!files.length) return;
  busy(true); demo.loaded = undefined; $('model').textContent = 'loading…';
  send({ type: 'load', files, device: device() });
};
$('generate').onclick = () => {
  busy(true); demo.generated = undefined; $('generated').textContent = ''; $('gen-stats').textContent = '';
  send({ type: 'generate', prompt: $<HTMLInputElement>('prompt').value, maxNewTokens: Number($<HTMLInputElement>('max-new').value) });
};
$('ppl').onclick = () => { busy(true); demo.ppl = undefined; send({ type: 'ppl', text: $<HTMLTextAreaElement>('ppl-text').value, seqlen: Number($<HTMLInputElement>('ppl-seqlen').value) }); };
$('quantize').onclick = () => {
  busy(true); demo.quantized = undefined; $('download-row').replaceChildren(); $('layers').textContent = '';
  send({
    type: 'quantize', text: $<HTMLTextAreaElement>('calib').value, bits: Number($<HTMLSelectElement>('bits').value) as 4,
    groupSize: Number($<HTMLSelectElement>('group').value), nsamples: Number($<HTMLInputElement>('nsamples').value), seqlen: Number($<HTMLInputElement>('calib-seqlen').value),
  });
};
