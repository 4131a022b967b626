/**
 * Decode/prefill benchmark by context length, fp32 vs 4-bit GPTQ, on a SYNTHETIC Llama at real shape (random weights:
 * the speed and memory are real, the text is not): hidden 2048, intermediate 5632, 32 heads / 4 kv heads, 8 layers,
 * vocab 32000; optionally llama.cpp (Q4_0 GGUF of the same weights, node-llama-cpp) interleaved with it.
 *
 *   npm run bench:decode [-- --dir /tmp/gptqjs-bench --contexts 128,512,2048 --gen-len 64 --configs fp32,q4,q4-exact
 *                           --repeat 1 --llamacpp /tmp/gptqjs-bench/llama1b-synthetic-q4_0.gguf --no-reload --keep-cache]
 *
 * Builds the checkpoints when missing (scripts/synth-model.ts, then `gptq quantize --method rtn --bits 4
 * --group-size 128`; the tokenizer is stories260K's, ids < 512), then runs every configuration × context in its own
 * process (`gptq bench --json`: prompt of `context` random ids, then gen-len greedy tokens; peak RSS per process) with
 * a fresh graph cache, and once more from the cache (load = cached graphs). `--repeat N` interleaves N rounds (the
 * machine's other load hits all alike) and keeps the best prefill and decode rate of each. `--llamacpp GGUF` adds
 * llama.cpp at each context in the same rounds (bench/llamacpp/bench.ts; the GGUF from bench/llamacpp/gguf_from_hf.py;
 * node-llama-cpp installed outside the repo, --llamacpp-module). Both engines use 2 threads (`--threads`).
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatBenchTable, type BenchResult } from '../src/eval/speed.ts';
import { node, syntheticLlama } from './synthetic.ts';
const { values: a } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/gptqjs-bench' },
    contexts: { type: 'string', default: '128,512,2048' },
    'gen-len': { type: 'string', default: '64' },
    configs: { type: 'string', default: 'fp32,q4,q4-exact' },
    threads: { type: 'string', default: '2' },
    llamacpp: { type: 'string' },
    'llamacpp-module': { type: 'string', default: '/work/scratch-llamacpp/node_modules/node-llama-cpp/dist/index.js' },
    'no-reload': { type: 'boolean', default: false },
    'keep-cache': { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
  },
});
const base = resolve(a.dir!);
const { fp: FP, q4: Q4 } = syntheticLlama(base);
const cacheDir = join(base, 'cache');

interface Config { name: string; dir: string; args: string[] }
/** `gptq bench` defaults: accuracy level 4, and for GPTQ checkpoints the 8-bit head. */
const CONFIGS: Record<string, Config> = {
  fp32: { name: 'fp32', dir: FP, args: [] },
  'fp32-h8': { name: 'fp32 + lm_head q8', dir: FP, args: ['--lm-head-bits', '8'] },
  q4: { name: '4-bit (defaults: acc4, head q8)', dir: Q4, args: [] },
  'q4-exact': { name: '4-bit exact (acc0, fp32 head)', dir: Q4, args: ['--accuracy-level', '0', '--lm-head-bits', '0'] },
  'q4-a4-h0': { name: '4-bit acc4, fp32 head', dir: Q4, args: ['--accuracy-level', '4', '--lm-head-bits', '0'] },
  'q4-a0-h8': { name: '4-bit acc0, head q8', dir: Q4, args: ['--accuracy-level', '0', '--lm-head-bits', '8'] },
  'q4-h4': { name: '4-bit acc4, head q4', dir: Q4, args: ['--lm-head-bits', '4'] },
  'q4-spin': { name: '4-bit defaults, --spin', dir: Q4, args: ['--spin'] },
  'fp32-spin': { name: 'fp32, --spin', dir: FP, args: ['--spin'] },
  'q4-gqa': { name: '4-bit defaults, attention gqa', dir: Q4, args: ['--attention', 'gqa'] },
  'q4-plain': { name: '4-bit defaults, attention plain', dir: Q4, args: ['--attention', 'plain'] },
};
const names = a.configs!.split(',').map((s) => s.trim()).filter(Boolean);
for (const n of names) if (!CONFIGS[n]) throw new Error(`unknown config "${n}" (${Object.keys(CONFIGS).join(', ')})`);
const contexts = a.contexts!.split(',').map(Number);
const gen = a['gen-len']!, threads = a.threads!;

if (!a['keep-cache']) rmSync(cacheDir, { recursive: true, force: true });
type Row = BenchResult & { label: string; ctx: number };
interface Peer { ctx: number; prefillTokensPerSecond: number; decodeTokensPerSecond: number; loadAverage: number }
const env = { GPTQJS_CACHE: cacheDir };
const repeat = Math.max(1, Number(a.repeat));
const best = new Map<string, Row>();
const peers = new Map<number, Peer>();
const loads: number[] = [];
for (let rep = 0; rep < repeat; rep++) for (const ctx of contexts) {
  for (const n of names) {
    // best decode rate and best prefill rate seen per configuration and context; load time and RSS of the first run
    const c = CONFIGS[n]!;
    loads.push(loadavg()[0]!);
    console.error(`${c.name}, context ${ctx} (round ${rep + 1}/${repeat}, load average ${loadavg()[0]!.toFixed(1)})…`);
    const out = node(['src/cli/main.ts', 'bench', c.dir, '--json', '--prompt-len', String(ctx), '--gen-len', gen, '--threads', threads, '--label', c.name, ...c.args], env);
    const r = { ...(JSON.parse(out.trim().split('\n').at(-1)!) as BenchResult & { label: string }), ctx };
    const key = `${n}@${ctx}`, b = best.get(key);
    if (!b) best.set(key, r);
    else {
      if (r.decodeTokensPerSecond > b.decodeTokensPerSecond) Object.assign(b, { decodeTokensPerSecond: r.decodeTokensPerSecond, decodeTokensPerSecondMean: r.decodeTokensPerSecondMean, msPerToken: r.msPerToken, msPerTokenMin: r.msPerTokenMin });
      if (r.prefillTokensPerSecond > b.prefillTokensPerSecond) b.prefillTokensPerSecond = r.prefillTokensPerSecond;
    }
  }
  if (a.llamacpp) {
    loads.push(loadavg()[0]!);
    console.error(`llama.cpp, context ${ctx} (round ${rep + 1}/${repeat}, load average ${loadavg()[0]!.toFixed(1)})…`);
    const out = node(['bench/llamacpp/bench.ts', '--gguf', a.llamacpp, '--module', a['llamacpp-module']!, '--ctx', String(ctx), '--gen', gen, '--threads', threads]);
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as Peer;
    const b = peers.get(ctx);
    if (!b) peers.set(ctx, r);
    else {
      b.decodeTokensPerSecond = Math.max(b.decodeTokensPerSecond, r.decodeTokensPerSecond);
      b.prefillTokensPerSecond = Math.max(b.prefillTokensPerSecond, r.prefillTokensPerSecond);
    }
  }
}
const rows: Row[] = [];
for (const n of names) for (const ctx of contexts) rows.push({ ...best.get(`${n}@${ctx}`)!, label: `${CONFIGS[n]!.name} @${ctx}` });
const reload: (BenchResult & { label: string })[] = [];
if (!a['no-reload']) for (const n of names) {
  const c = CONFIGS[n]!;
  const again = node(['src/cli/main.ts', 'bench', c.dir, '--json', '--prompt-len', '8', '--gen-len', '4', '--threads', threads, '--label', `${c.name} (reload)`, ...c.args], env);
  reload.push(JSON.parse(again.trim().split('\n').at(-1)!) as BenchResult & { label: string });
}

console.log(`\nSYNTHETIC Llama (random weights) hidden 2048 / inter 5632 / 8 layers / 32:4 heads / vocab 32000; prompt = context, ${gen} new tokens, batch 1, greedy, ${threads} threads; best of ${repeat} interleaved round(s)`);
console.log(formatBenchTable(rows));
if (reload.length) {
  console.log('\nsecond load of each configuration (graphs from the cache; prompt 8, 4 tokens — only load s and RSS matter):');
  console.log(formatBenchTable(reload));
}
const at = (n: string, ctx: number) => best.get(`${n}@${ctx}`);
console.log('\ndecode at each context vs the same configuration at the shortest:');
for (const n of names) console.log(`  ${CONFIGS[n]!.name.padEnd(32)} ${contexts.map((ctx) => `@${ctx} ${(at(n, ctx)!.decodeTokensPerSecond / at(n, contexts[0]!)!.decodeTokensPerSecond).toFixed(2)}x`).join('  ')}`);
if (names.includes('fp32')) {
  console.log('\nvs fp32 at the same context (decode / prefill):');
  for (const n of names) if (n !== 'fp32') console.log(`  ${CONFIGS[n]!.name.padEnd(32)} ${contexts.map((ctx) => `@${ctx} ${(at(n, ctx)!.decodeTokensPerSecond / at('fp32', ctx)!.decodeTokensPerSecond).toFixed(2)}x / ${(at(n, ctx)!.prefillTokensPerSecond / at('fp32', ctx)!.prefillTokensPerSecond).toFixed(2)}x`).join('  ')}`);
}
if (peers.size) {
  console.log(`\nllama.cpp Q4_0 + F16 output (node-llama-cpp prebuilt, ${threads} threads), best of ${repeat}:`);
  for (const ctx of contexts) { const p = peers.get(ctx)!; console.log(`  @${ctx}: prefill ${p.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${p.decodeTokensPerSecond.toFixed(1)} tok/s`); }
  console.log('ratio gptqjs / llama.cpp (decode / prefill):');
  for (const n of names) console.log(`  ${CONFIGS[n]!.name.padEnd(32)} ${contexts.map((ctx) => `@${ctx} ${(at(n, ctx)!.decodeTokensPerSecond / peers.get(ctx)!.decodeTokensPerSecond).toFixed(2)}x / ${(at(n, ctx)!.prefillTokensPerSecond / peers.get(ctx)!.prefillTokensPerSecond).toFixed(2)}x`).join('  ')}`);
}
console.log(`\n(decode tok/s = 1 / median step time; 1-min load average during the runs ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}, at the end ${loadavg()[0]!.toFixed(1)}, on ${(await import('node:os')).availableParallelism()} cores — other load on the machine slows every number)`);
