/**
 * Decode benchmark, fp32 vs 4-bit GPTQ, on a SYNTHETIC Llama at real shape (random weights: the speed and memory
 * are real, the text is not): hidden 2048, intermediate 5632, 32 heads / 4 kv heads, 8 layers, vocab 32000
 * (the shape llama.cpp's peer numbers in ../shared/notes were measured on).
 *
 *   npm run bench:decode [-- --dir /tmp/gptqjs-bench --prompt-len 128 --gen-len 128 --configs fp32,q4,q4-a4,q4-a4-h8
 *                           --repeat 1 --no-reload --keep-cache]
 *
 * Builds the checkpoints when missing (scripts/synth-model.ts, then `gptq quantize --method rtn --bits 4
 * --group-size 128`; the tokenizer is stories260K's, ids < 512), then runs every configuration in its own process
 * (`gptq bench --json`, so peak RSS is per configuration) with a fresh graph cache (load = build), and once more
 * from the cache (load = cached graphs). Prints one table plus the ratios the issue asks for.
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatBenchTable, type BenchResult } from '../src/eval/bench.ts';
import { node, syntheticLlama } from './synthetic.ts';
const { values: a } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/gptqjs-bench' },
    'prompt-len': { type: 'string', default: '128' },
    'gen-len': { type: 'string', default: '128' },
    configs: { type: 'string', default: 'fp32,q4,q4-a4,q4-a4-h8' },
    'no-reload': { type: 'boolean', default: false },
    'keep-cache': { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
  },
});
const base = resolve(a.dir!);
const { fp: FP, q4: Q4 } = syntheticLlama(base);
const cacheDir = join(base, 'cache');

interface Config { name: string; dir: string; args: string[] }
const CONFIGS: Record<string, Config> = {
  fp32: { name: 'fp32', dir: FP, args: [] },
  'fp32-h8': { name: 'fp32 + lm_head q8', dir: FP, args: ['--lm-head-bits', '8'] },
  q4: { name: '4-bit', dir: Q4, args: ['--accuracy-level', '0'] },
  'q4-h8': { name: '4-bit + lm_head q8', dir: Q4, args: ['--accuracy-level', '0', '--lm-head-bits', '8'] },
  'q4-h4': { name: '4-bit + lm_head q4', dir: Q4, args: ['--accuracy-level', '0', '--lm-head-bits', '4'] },
  'q4-a4': { name: '4-bit acc4', dir: Q4, args: ['--accuracy-level', '4'] },
  'q4-a4-h8': { name: '4-bit acc4 + lm_head q8', dir: Q4, args: ['--accuracy-level', '4', '--lm-head-bits', '8'] },
  'q4-a4-h4': { name: '4-bit acc4 + lm_head q4', dir: Q4, args: ['--accuracy-level', '4', '--lm-head-bits', '4'] },
  'q4-a4-h8-spin': { name: '4-bit acc4 + lm_head q8, --spin', dir: Q4, args: ['--accuracy-level', '4', '--lm-head-bits', '8', '--spin'] },
  'fp32-spin': { name: 'fp32, --spin', dir: FP, args: ['--spin'] },
  'q4-a4-plain': { name: '4-bit acc4 (plain attention)', dir: Q4, args: ['--accuracy-level', '4', '--attention', 'plain'] },
};
const names = a.configs!.split(',').map((s) => s.trim()).filter(Boolean);
for (const n of names) if (!CONFIGS[n]) throw new Error(`unknown config "${n}" (${Object.keys(CONFIGS).join(', ')})`);

if (!a['keep-cache']) rmSync(cacheDir, { recursive: true, force: true });
const rows: (BenchResult & { label: string })[] = [];
const env = { GPTQJS_CACHE: cacheDir };
const repeat = Math.max(1, Number(a.repeat));
const best = new Map<string, BenchResult & { label: string }>();
for (let rep = 0; rep < repeat; rep++) for (const n of names) {
  // Each configuration runs `repeat` times, interleaved (the machine's other load hits all alike); reported: the best
  // decode rate and the best prefill rate seen, load time and RSS of the first (graph-building) run.
  const c = CONFIGS[n]!;
  console.error(`${c.name} (run ${rep + 1}/${repeat}, load average ${loadavg()[0]!.toFixed(1)})…`);
  const out = node(['src/cli/main.ts', 'bench', c.dir, '--json', '--prompt-len', a['prompt-len']!, '--gen-len', a['gen-len']!, '--label', c.name, ...c.args], env);
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as BenchResult & { label: string };
  const b = best.get(n);
  if (!b) best.set(n, r);
  else {
    if (r.decodeTokensPerSecond > b.decodeTokensPerSecond) Object.assign(b, { decodeTokensPerSecond: r.decodeTokensPerSecond, decodeTokensPerSecondMean: r.decodeTokensPerSecondMean, msPerToken: r.msPerToken, msPerTokenMin: r.msPerTokenMin });
    if (r.prefillTokensPerSecond > b.prefillTokensPerSecond) b.prefillTokensPerSecond = r.prefillTokensPerSecond;
  }
}
for (const n of names) {
  const c = CONFIGS[n]!;
  rows.push(best.get(n)!);
  if (!a['no-reload']) {
    const again = node(['src/cli/main.ts', 'bench', c.dir, '--json', '--prompt-len', '8', '--gen-len', '4', '--label', `${c.name} (reload)`, ...c.args], env);
    rows.push(JSON.parse(again.trim().split('\n').at(-1)!) as BenchResult & { label: string });
  }
}

const main = rows.filter((r) => !r.label.endsWith('(reload)'));
const reload = rows.filter((r) => r.label.endsWith('(reload)'));
console.log(`\nSYNTHETIC Llama (random weights) hidden 2048 / inter 5632 / 8 layers / 32:4 heads / vocab 32000; prompt ${a['prompt-len']}, ${a['gen-len']} new tokens, batch 1, greedy; best of ${repeat} run(s)`);
console.log(formatBenchTable(main));
if (reload.length) {
  console.log('\nsecond load of each configuration (graphs from the cache; prompt 8, 4 tokens — only load s and RSS matter):');
  console.log(formatBenchTable(reload));
}
const fp = main.find((r) => r.label === 'fp32');
if (fp) {
  console.log('\nvs fp32:');
  for (const r of main) if (r !== fp) {
    console.log(`  ${r.label.padEnd(26)} decode ${(r.decodeTokensPerSecond / fp.decodeTokensPerSecond).toFixed(2)}x  prefill ${(r.prefillTokensPerSecond / fp.prefillTokensPerSecond).toFixed(2)}x  peak RSS ${(r.peakRssMB / fp.peakRssMB).toFixed(2)}x  file ${(r.fileMB / fp.fileMB).toFixed(2)}x`);
  }
}
console.log('\nllama.cpp peer (same machine class, Q4_0 + F16 output, ../shared/notes): decode 43.8 tok/s, prefill 190 tok/s (128-token prompt)');
for (const r of main) console.log(`  ${r.label.padEnd(26)} decode ${(r.decodeTokensPerSecond / 43.8).toFixed(2)}x  prefill ${(r.prefillTokensPerSecond / 190).toFixed(2)}x llama.cpp`);
console.log(`\n(decode tok/s = 1 / median step time; 1-min load average at the end ${loadavg()[0]!.toFixed(1)} on ${(await import('node:os')).availableParallelism()} cores — other load on the machine slows every number)`);
