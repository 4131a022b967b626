/**
 * Where a decode step's time goes, by context length: per step wall time, time inside ONNX Runtime's run() (the rest
 * is JS around it: feeds, output copies, cache bookkeeping), process CPU time (all threads), and with --ort-profile
 * ONNX Runtime's own per-op profile (kernel time per op type per step; ORT's profiler, SessionOptions.enableProfiling).
 *
 *   npm run bench:profile -- [--model DIR] [--ctx 128,512,2048] [--steps 24] [--attention auto|gqa|plain|slots]
 *                           [--accuracy-level 0|4] [--lm-head-bits 8] [--threads 2] [--ort-profile] [--top 12]
 *
 * Default model: the SYNTHETIC 4-bit Llama of bench/decode.ts (built when missing). For each context the prompt (random
 * ids) is prefilled in one run, then `steps` single-token steps run through CausalLM.forwardStep, as generate() does.
 * Reported numbers are medians over the steps. Not a product path: the session factory is wrapped here to time run()
 * and to switch the profiler on.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from '../src/platform/ort.ts';
import { CausalLM, type AttentionMode } from '../src/runtime/causal-lm.ts';
import type { AccuracyLevel } from '../src/runtime/quantized-weights.ts';
import type { LmHeadBits } from '../src/runtime/lm-head.ts';
import { mulberry32 } from '../src/io/random.ts';
import { syntheticLlama } from './synthetic.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' }, dir: { type: 'string', default: '/tmp/gptqjs-bench' },
    ctx: { type: 'string', default: '128,512,2048' }, steps: { type: 'string', default: '24' },
    attention: { type: 'string', default: 'auto' }, 'accuracy-level': { type: 'string', default: '0' },
    'lm-head-bits': { type: 'string' }, threads: { type: 'string' }, 'ort-profile': { type: 'boolean', default: false },
    top: { type: 'string', default: '12' }, json: { type: 'boolean', default: false },
  },
});
const model = a.model ? resolve(a.model) : syntheticLlama(resolve(a.dir!)).q4;
const contexts = a.ctx!.split(',').map(Number);
const steps = Number(a.steps);
const profDir = a['ort-profile'] ? mkdtempSync(join(tmpdir(), 'gptqjs-prof-')) : undefined;

// ---- wrap the session factory: time run(), optionally enable ORT's profiler ----
let inRun = 0;
const sessions: ort.InferenceSession[] = [];
const Factory = ort.InferenceSession as unknown as { create: (...args: unknown[]) => Promise<ort.InferenceSession> };
const create = Factory.create.bind(Factory);
Factory.create = async (...args: unknown[]) => {
  const o = args[1] as ort.InferenceSession.SessionOptions;
  if (profDir && o && typeof o === 'object') Object.assign(o, { enableProfiling: true, profileFilePrefix: join(profDir, `s${sessions.length}`) });
  const s = await create(...args);
  const run = s.run.bind(s);
  (s as { run: unknown }).run = async (...r: Parameters<typeof run>) => {
    const t = performance.now();
    try { return await run(...r); } finally { inRun += performance.now() - t; }
  };
  sessions.push(s);
  return s;
};

const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); return s[s.length >> 1]!; };
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

const lm = await CausalLM.load(model, {
  attention: a.attention as AttentionMode, accuracyLevel: Number(a['accuracy-level']) as AccuracyLevel,
  lmHeadBits: a['lm-head-bits'] ? (Number(a['lm-head-bits']) as LmHeadBits) : undefined,
  threads: a.threads ? Number(a.threads) : undefined, onLog: () => {},
});
const rand = mulberry32(7), V = lm.cfg.vocabSize;
const tok = () => 3 + Math.floor(rand() * (Math.min(V, 32000) - 3));
interface Row { ctx: number; prefillMs: number; prefillCpuMs: number; prefillRuns: [number, number]; stepMs: number; runMs: number; outsideMs: number; cpuMs: number; rssMB: number; runs: [number, number] }
const rows: Row[] = [];
let runCount = 0;
const countRuns = () => runCount;
// every forwardStep of the gqa/slots graphs is one run; count them through the wrapper
for (const s of sessions) { const r = s.run.bind(s); (s as { run: unknown }).run = async (...x: Parameters<typeof r>) => { runCount++; return r(...x); }; }

// warm-up (first runs allocate arenas)
{ let c = lm.emptyCache(1, 64); c = (await lm.forwardStep([[tok(), tok(), tok()]], c)).cache; await lm.forwardStep([[tok()]], c); }
for (const ctx of contexts) {
  let cache = lm.emptyCache(1, ctx + steps + 1);
  const prompt = Array.from({ length: ctx }, tok);
  const pr0 = countRuns(), pc0 = cpuMs();
  let t = performance.now();
  cache = (await lm.forwardStep([prompt], cache)).cache;
  const prefillMs = performance.now() - t, prefillCpuMs = cpuMs() - pc0;
  const wall: number[] = [], run: number[] = [], cpu: number[] = [];
  const first = countRuns();
  for (let i = 0; i < steps; i++) {
    const r0 = inRun, c0 = cpuMs();
    t = performance.now();
    cache = (await lm.forwardStep([[tok()]], cache)).cache;
    wall.push(performance.now() - t); run.push(inRun - r0); cpu.push(cpuMs() - c0);
  }
  const stepMs = median(wall), runMs = median(run);
  rows.push({ ctx, prefillMs, prefillCpuMs, prefillRuns: [pr0, first], stepMs, runMs, outsideMs: median(wall.map((w, i) => w - run[i]!)), cpuMs: median(cpu), rssMB: process.memoryUsage().rss / 2 ** 20, runs: [first, countRuns()] });
  console.error(`ctx ${ctx}: prefill ${prefillMs.toFixed(0)} ms, step ${stepMs.toFixed(2)} ms (run ${runMs.toFixed(2)}, outside ${rows.at(-1)!.outsideMs.toFixed(2)}), cpu ${rows.at(-1)!.cpuMs.toFixed(1)} ms, load ${loadavg()[0]!.toFixed(1)}`);
}

console.log(`\n${model}\nattention ${lm.attention}, accuracy level ${a['accuracy-level']}, lm_head ${a['lm-head-bits'] ? 'q' + a['lm-head-bits'] : 'ckpt'}; medians over ${steps} decode steps; 1-min load ${loadavg()[0]!.toFixed(1)}`);
console.log('ctx    prefill tok/s  prefill CPU ms/tok  step ms  in run() ms  outside ms  CPU ms/step  decode tok/s  RSS MB');
for (const r of rows) {
  console.log(`${String(r.ctx).padEnd(6)} ${(r.ctx / r.prefillMs * 1000).toFixed(1).padStart(13)}  ${(r.prefillCpuMs / r.ctx).toFixed(2).padStart(18)}  ${r.stepMs.toFixed(2).padStart(7)}  ${r.runMs.toFixed(2).padStart(11)}  ${r.outsideMs.toFixed(2).padStart(10)}  ${r.cpuMs.toFixed(1).padStart(11)}  ${(1000 / r.stepMs).toFixed(1).padStart(12)}  ${r.rssMB.toFixed(0).padStart(6)}`);
}

if (profDir) {
  // ORT profile: chrome-trace events; "model_run" (cat Session) spans one run, "<node>_kernel_time" (cat Node) one kernel.
  for (const s of sessions) s.endProfiling(); // writes each session's trace file
  await lm.dispose();
  type Ev = { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } };
  // the session that ran the steps: the file with the most runs (timestamps are per file)
  const traces = readdirSync(profDir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(profDir, f), 'utf8')) as Ev[]);
  const isRun = (e: Ev) => e.cat === 'Session' && e.name === 'model_run';
  const events = traces.sort((x, y) => y.filter(isRun).length - x.filter(isRun).length)[0]!;
  const runsEv = events.filter(isRun).sort((x, y) => x.ts - y.ts);
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const summary = (what: string, runs: typeof runsEv, perTokens: number) => {
    const per = new Map<string, number>();
    let kernel = 0;
    for (const e of nodes) {
      if (!runs.some((x) => e.ts >= x.ts && e.ts <= x.ts + x.dur)) continue;
      const op = e.args?.op_name ?? '?';
      per.set(op, (per.get(op) ?? 0) + e.dur);
      kernel += e.dur;
    }
    const runUs = runs.reduce((s, e) => s + e.dur, 0) / perTokens;
    console.log(`\nORT profile, ${what}: model_run ${(runUs / 1000).toFixed(2)} ms, kernels ${(kernel / perTokens / 1000).toFixed(2)} ms, rest of run ${((runUs - kernel / perTokens) / 1000).toFixed(2)} ms (scheduling, allocation)`);
    for (const [op, us] of [...per].sort((x, y) => y[1] - x[1]).slice(0, Number(a.top))) {
      console.log(`  ${op.padEnd(28)} ${(us / perTokens / 1000).toFixed(3).padStart(8)} ms  ${(100 * us / kernel).toFixed(1).padStart(5)}%`);
    }
  };
  for (const r of rows) {
    // the decode runs of this context: runs [first, last) in order (warm-up and prefill runs come before them); the
    // first step is left out
    const own = runsEv.slice(r.runs[0] + 1, r.runs[1]);
    summary(`ctx ${r.ctx}, per decode step (${own.length} steps)`, own, own.length);
    const pre = runsEv.slice(r.prefillRuns[0], r.prefillRuns[1]);
    summary(`ctx ${r.ctx}, prefill per prompt token (${pre.length} run(s))`, pre, r.ctx);
  }
  rmSync(profDir, { recursive: true, force: true });
} else await lm.dispose();
if (a.json) console.log(JSON.stringify(rows));
