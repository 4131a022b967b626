/**
 * Forward benchmark: one Llama-7B-shaped decoder layer (hidden 4096, intermediate 11008, 32 heads / 32 kv heads,
 * head_dim 128), fp32, batch 1 × seq 2048, SYNTHETIC random weights, built with buildLayerGraph() exactly as
 * inference/calibration do. Two weight modes:
 *   init   — weights as fp32 initializers (InitializerWeights)
 *   input  — weights as graph inputs (InputWeights('model.layers.0.'), the calibration graph)
 * next to bare ORT products 2048×4096 · 4096×11008 in the same process:
 *   MatMul with a constant B initializer (the reference rate), linalg.matmul (Gemm, both operands fed),
 *   and Gemm(transB) against a [11008,4096] initializer (the form gemmLinear uses).
 *
 * Every case is warmed up once, then the cases are timed round-robin (case1, case2, …, case1, …) so that load
 * from other processes on the machine hits all of them alike; the table reports the median (and min).
 *
 *   npm run bench:forward [-- --seq 2048 --runs 3 --modes init,input --profile]
 *
 * FLOPs counted: linears 2·T·(2h² + 2·h·kvH·d + 3·h·inter) (= 2·T·(4h² + 3·h·inter) for MHA) plus attention
 * 2·2·S²·H·d over the FULL S×S score matrix (the graph computes all of it and masks; a causal-only count
 * would halve that term).
 */
import * as ort from 'onnxruntime-node';
import { availableParallelism, loadavg } from 'node:os';
import { readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GraphBuilder } from '../src/graph/builder.ts';
import { matmul } from '../src/graph/linalg.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { InitializerWeights } from '../src/graph/weights.ts';
import { buildLayerGraph, InputWeights } from '../src/quant/calibrate.ts';
import { parseModelConfig } from '../src/io/config.ts';
import { llama } from '../src/models/llama.ts';

const { values: a } = parseArgs({
  options: {
    seq: { type: 'string', default: '2048' },
    runs: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'init,input' },
    hidden: { type: 'string', default: '4096' },
    inter: { type: 'string', default: '11008' },
    heads: { type: 'string', default: '32' },
    'kv-heads': { type: 'string' },
    /** ORT per-op profile of the layer sessions (written to ./ortprof_*.json, summarized, then deleted). */
    profile: { type: 'boolean', default: false },
    'no-matmul': { type: 'boolean', default: false },
  },
});
const SEQ = Number(a.seq), RUNS = Math.max(3, Number(a.runs)), H = Number(a.hidden), I = Number(a.inter);
const NH = Number(a.heads), NKV = Number(a['kv-heads'] ?? a.heads), D = H / NH;
const THREADS = availableParallelism();

const cfg = parseModelConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
  hidden_size: H, intermediate_size: I, num_attention_heads: NH, num_key_value_heads: NKV, head_dim: D,
  num_hidden_layers: 1, vocab_size: 32000, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
  rope_theta: 10000, rope_scaling: null, attention_bias: false, mlp_bias: false, tie_word_embeddings: false,
}, 'bench-llama7b-layer');

/** Fast deterministic uniform fill with the given std (synthetic weights; the values do not matter for speed). */
function randomF32(n: number, seed: number, std: number): Float32Array {
  const o = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  const k = std * Math.sqrt(3) / 2 ** 31; // uniform in [−√3·std, √3·std)
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    o[i] = (s - 2 ** 31) * k;
  }
  return o;
}

/** Synthetic tensors of layer 0 under their checkpoint names. */
function layerWeights(): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  const p = 'model.layers.0.';
  let seed = 1;
  for (const l of llama.layerLinears(cfg)) m.set(`${p}${l.rel}.weight`, randomF32(l.outFeatures * l.inFeatures, seed++, 1 / Math.sqrt(l.inFeatures)));
  for (const n of ['input_layernorm', 'post_attention_layernorm']) m.set(`${p}${n}.weight`, randomF32(H, seed++, 0.1).map((v) => 1 + v));
  return m;
}

const median = (xs: readonly number[]) => { const s = [...xs].sort((x, y) => x - y); return s[s.length >> 1]!; };
const fmtMs = (t: number) => `${t.toFixed(0)} ms`;
const log = (s: string) => process.stderr.write(s + '\n');

async function session(bytes: Uint8Array, profilePrefix?: string): Promise<ort.InferenceSession> {
  if (!profilePrefix) return createSession(bytes);
  // Same options as createSession, plus profiling.
  return ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: THREADS, interOpNumThreads: 1,
    executionMode: 'sequential', enableProfiling: true, profileFilePrefix: profilePrefix,
  });
}

interface Case {
  key: string; what: string; gflop: number; run: () => Promise<unknown>;
  session?: ort.InferenceSession; profile?: string; warm?: number; times: number[];
  /** process CPU seconds (user+sys) per timed run: divided by the thread count, a time-slicing-proof "wall". */
  cpu: number[];
}
const cases: Case[] = [];

const T = SEQ; // batch 1
const linFlop = 2 * T * (2 * H * H + 2 * H * NKV * D + 3 * H * I);
const attnFlop = 2 * 2 * SEQ * SEQ * NH * D;
const layerGflop = (linFlop + attnFlop) / 1e9;

console.log('gptqjs forward bench — SYNTHETIC random weights (not a real checkpoint)');
console.log(`layer: llama hidden ${H}, inter ${I}, heads ${NH}/${NKV} kv, head_dim ${D}, fp32, batch 1 × seq ${SEQ}; `
  + `onnxruntime-node ${ort.env.versions.common} CPU EP, ${THREADS} threads`);
console.log(`FLOPs/layer: linears ${(linFlop / 1e9).toFixed(1)} G + attention (full S², QKᵀ+PV) ${(attnFlop / 1e9).toFixed(1)} G `
  + `= ${layerGflop.toFixed(1)} G (causal-only attention count: ${((linFlop + attnFlop / 2) / 1e9).toFixed(1)} G)`);
const load0 = loadavg()[0]!;

// ---- bare products 2048×4096 · 4096×11008 ----
if (!a['no-matmul']) {
  const M = T, K = H, N = I, g = 2 * M * K * N / 1e9;
  const A = randomF32(M * K, 11, 1);
  const Bkn = randomF32(K * N, 12, 1 / Math.sqrt(K));
  {
    const gb = new GraphBuilder('mm_const');
    gb.output(gb.op('MatMul', [gb.input('A', 'float32', ['m', K]), gb.init('B', 'float32', [K, N], Bkn)], {}, { name: 'C' }), 'float32');
    const s = await session(gb.toBytes());
    const feed = { A: f32(A, [M, K]) };
    cases.push({ key: 'mm', what: `bare MatMul ${M}×${K}·${K}×${N}, B initializer`, gflop: g, session: s, run: () => s.run(feed), times: [], cpu: [] });
  }
  cases.push({ key: 'linalg', what: `bare linalg.matmul (Gemm, A and B fed)`, gflop: g, run: () => matmul(A, Bkn, M, K, N), times: [], cpu: [] });
  {
    const gb = new GraphBuilder('gemm_const');
    const W = randomF32(N * K, 13, 1 / Math.sqrt(K));
    gb.output(gb.op('Gemm', [gb.input('A', 'float32', ['m', K]), gb.init('W', 'float32', [N, K], W)], { transB: 1 }, { name: 'C' }), 'float32');
    const s = await session(gb.toBytes());
    const feed = { A: f32(A, [M, K]) };
    cases.push({ key: 'gemmT', what: `bare Gemm(transB) vs ${N}×${K} initializer`, gflop: g, session: s, run: () => s.run(feed), times: [], cpu: [] });
    // The calibration form: the same Gemm(transB) with W fed as an input (packed by MLAS on every run).
    const gi = new GraphBuilder('gemm_fed');
    gi.output(gi.op('Gemm', [gi.input('A', 'float32', ['m', K]), gi.input('W', 'float32', [N, K])], { transB: 1 }, { name: 'C' }), 'float32');
    const si = await session(gi.toBytes());
    const feedW = { A: feed.A, W: f32(W, [N, K]) };
    cases.push({ key: 'gemmTin', what: `bare Gemm(transB), ${N}×${K} W fed`, gflop: g, session: si, run: () => si.run(feedW), times: [], cpu: [] });
  }
}

// ---- the layer, both weight modes ----
const weights = layerWeights();
const x = f32(randomF32(T * H, 999, 1), [1, T, H]);
for (const mode of String(a.modes).split(',')) {
  const t0 = performance.now();
  const profile = a.profile ? `ortprof_${mode}_${process.pid}` : undefined;
  let s: ort.InferenceSession;
  const feeds: Record<string, ort.Tensor> = { hidden_in: x };
  if (mode === 'init') {
    s = await session(buildLayerGraph(llama, cfg, new InitializerWeights((n) => weights.get(n))).toBytes(), profile);
  } else if (mode === 'input') {
    const w = new InputWeights('model.layers.0.');
    s = await session(buildLayerGraph(llama, cfg, w).toBytes(), profile);
    for (const i of w.inputs) feeds[i.rel] = f32(weights.get(i.name)!, i.shape); // wraps, no copy
  } else throw new Error(`unknown mode "${mode}" (init | input)`);
  log(`  [${mode}] session created in ${fmtMs(performance.now() - t0)}`);
  cases.push({
    key: mode, what: `layer, weights as ${mode === 'init' ? 'fp32 initializers' : 'graph inputs (calibration)'}`,
    gflop: layerGflop, session: s, profile, times: [], cpu: [],
    run: async () => {
      const y = (await s.run(feeds)).hidden_out!.data as Float32Array;
      if (!Number.isFinite(y[0]!) || !Number.isFinite(y[y.length - 1]!)) throw new Error('non-finite layer output');
    },
  });
}

// ---- warm-up once each, then round-robin timing ----
for (const c of cases) {
  const t = performance.now();
  await c.run();
  c.warm = performance.now() - t;
  log(`  warm-up ${c.key}: ${fmtMs(c.warm)}`);
}
for (let r = 0; r < RUNS; r++) {
  for (const c of cases) {
    const u = process.cpuUsage(), t = performance.now();
    await c.run();
    c.times.push(performance.now() - t);
    const du = process.cpuUsage(u);
    c.cpu.push((du.user + du.system) / 1e6);
  }
  log(`  round ${r + 1}/${RUNS}: ${cases.map((c) => `${c.key} ${fmtMs(c.times[r]!)}`).join(', ')}`);
}
const load1 = loadavg()[0]!;

// ---- report ----
const rate = (c: Case, t: number) => c.gflop / (t / 1000);
const ref = cases.find((c) => c.key === 'mm');
console.log('');
/** GFLOP per (CPU seconds / threads): what the run would reach on dedicated cores if only time-slicing slowed it. */
const cpuRate = (c: Case) => c.gflop / (median(c.cpu) / THREADS);
console.log(`${'case'.padEnd(46)} ${'GFLOP'.padStart(6)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'GFLOP/s'.padStart(8)} `
  + `${'(min)'.padStart(7)} ${'×MatMul'.padStart(8)} ${'cpu-GF/s'.padStart(9)} ${'×MatMul'.padStart(8)}`);
for (const c of cases) {
  const med = median(c.times), mn = Math.min(...c.times);
  const ratio = ref ? (rate(c, med) / rate(ref, median(ref.times))).toFixed(2) : '';
  const cratio = ref ? (cpuRate(c) / cpuRate(ref)).toFixed(2) : '';
  console.log(`${c.what.padEnd(46)} ${c.gflop.toFixed(1).padStart(6)} ${fmtMs(med).padStart(9)} ${fmtMs(mn).padStart(9)} `
    + `${rate(c, med).toFixed(1).padStart(8)} ${rate(c, mn).toFixed(1).padStart(7)} ${ratio.padStart(8)} `
    + `${cpuRate(c).toFixed(1).padStart(9)} ${cratio.padStart(8)}`);
}
console.log(`GFLOP/s = GFLOP / median wall time; (min) = from the fastest run; cpu-GF/s = GFLOP / (median process CPU time / ${THREADS} threads)`);
if (ref) {
  const goal = 0.6;
  for (const c of cases.filter((c) => c.key === 'init' || c.key === 'input')) {
    const ratio = rate(c, median(c.times)) / rate(ref, median(ref.times));
    const cratio = cpuRate(c) / cpuRate(ref);
    console.log(`${c.key.padEnd(5)} layer / bare MatMul = ${ratio.toFixed(2)} wall, ${cratio.toFixed(2)} cpu-time `
      + `(goal ≥ ${goal}: ${Math.min(ratio, cratio) >= goal ? 'met' : 'NOT met'})`);
  }
}
console.log(`timed ${RUNS} rounds after 1 warm-up each; 1-min load average ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${THREADS} cores`
  + (Math.max(load0, load1) > THREADS + 0.5 ? ' (machine busy: absolute rates are pessimistic; ratios were timed interleaved)' : ''));

// ---- optional per-op profile ----
for (const c of cases) {
  if (!c.profile || !c.session) continue;
  c.session.endProfiling();
  const files = readdirSync('.').filter((f) => f.startsWith(c.profile!) && f.endsWith('.json'))
    .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs);
  if (!files.length) { console.log(`(no profile file for ${c.key})`); continue; }
  const ev = JSON.parse(readFileSync(files[0]!, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
  for (const f of files) unlinkSync(f);
  const runs = ev.filter((e) => e.cat === 'Session' && e.name === 'model_run').length || 1;
  const byOp = new Map<string, { us: number; n: number }>();
  const byNode = new Map<string, number>();
  for (const e of ev) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const r = byOp.get(op) ?? { us: 0, n: 0 };
    r.us += e.dur; r.n++; byOp.set(op, r);
    const nn = `${op} ${e.name.replace(/_kernel_time$/, '')}`;
    byNode.set(nn, (byNode.get(nn) ?? 0) + e.dur);
  }
  const tot = [...byOp.values()].reduce((s, r) => s + r.us, 0);
  console.log(`\nprofile ${c.key}: kernel time per run (${runs} runs incl. warm-up), total ${(tot / runs / 1000).toFixed(0)} ms`);
  for (const [op, r] of [...byOp].sort((p, q) => q[1].us - p[1].us).slice(0, 12))
    console.log(`  ${op.padEnd(22)} ${(r.us / runs / 1000).toFixed(1).padStart(8)} ms ${(100 * r.us / tot).toFixed(1).padStart(5)}%  ×${r.n / runs}`);
  console.log('  top nodes:');
  for (const [n, us] of [...byNode].sort((p, q) => q[1] - p[1]).slice(0, 10))
    console.log(`    ${n.slice(0, 58).padEnd(58)} ${(us / runs / 1000).toFixed(1).padStart(8)} ms`);
}
for (const c of cases) await c.session?.release();
