/**
 * llama.cpp peer numbers for issue 17 (benchmark tooling only; llama.cpp is never part of the product): prefill and
 * decode tok/s of a GGUF model through node-llama-cpp's prebuilt CPU binaries, measured like `gptq bench` (random
 * prompt ids of the given length evaluated as one prompt, then greedy decode; decode tok/s = 1 / median step).
 *
 *   npm install --prefix /work/scratch-llamacpp node-llama-cpp@3      (outside the repo; the binaries ship in the package)
 *   node --import tsx bench/llamacpp/bench.ts --gguf /tmp/gptqjs-bench/llama1b-synthetic-q4_0.gguf \
 *        [--module /work/scratch-llamacpp/node_modules/node-llama-cpp/dist/index.js] [--ctx 128,512,2048] [--gen 64] [--threads 2]
 *
 * The GGUF comes from bench/llamacpp/gguf_from_hf.py (Q4_0 linears, F16 output head). Context defaults of
 * node-llama-cpp are kept (F16 KV cache, flash attention "auto", batch 512), one context of ctx + gen + 16 positions
 * per prompt length. Prints one JSON line per context (and a table on stderr).
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';

const { values: a } = parseArgs({
  options: {
    gguf: { type: 'string', default: '/tmp/gptqjs-bench/llama1b-synthetic-q4_0.gguf' },
    module: { type: 'string', default: '/work/scratch-llamacpp/node_modules/node-llama-cpp/dist/index.js' },
    ctx: { type: 'string', default: '128,512,2048' }, gen: { type: 'string', default: '64' }, threads: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
  },
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { getLlama } = (await import(a.module!)) as any;
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: a.gguf, gpuLayers: 0 });
const threads = Number(a.threads), gen = Number(a.gen);
let seed = Number(a.seed);
const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
for (const ctx of a.ctx!.split(',').map(Number)) {
  const context = await model.createContext({ contextSize: ctx + gen + 16, threads, sequences: 1 });
  const seq = context.getSequence();
  const prompt = Array.from({ length: ctx }, () => 3 + Math.floor(rand() * 31990));
  // warm-up: a short prompt and two tokens
  for await (const _ of seq.evaluate(prompt.slice(0, 8), { temperature: 0 })) { if (seq.nextTokenIndex >= 10) break; }
  await seq.clearHistory();
  const t0 = performance.now();
  const stamps: number[] = [];
  for await (const _ of seq.evaluate(prompt, { temperature: 0 })) {
    stamps.push(performance.now());
    if (stamps.length >= gen) break;
  }
  const prefillMs = stamps[0]! - t0; // prompt evaluation + the first sampled token
  const steps = stamps.slice(1).map((t, i) => t - stamps[i]!);
  const row = { engine: 'llama.cpp (node-llama-cpp)', ctx, gen, threads, prefillTokensPerSecond: ctx / (prefillMs / 1000), decodeTokensPerSecond: 1000 / median(steps), msPerToken: median(steps), loadAverage: loadavg()[0] };
  console.error(`llama.cpp ctx ${ctx}: prefill ${row.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${row.decodeTokensPerSecond.toFixed(1)} tok/s (load ${row.loadAverage!.toFixed(1)})`);
  console.log(JSON.stringify(row));
  await context.dispose();
}
await model.dispose();
await llama.dispose();
