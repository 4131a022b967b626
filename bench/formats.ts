/**
 * Speed and memory of the formats gptqjs loads, on a SYNTHETIC Llama of the 1B shape (hidden 2048, intermediate 5632,
 * 32/4 heads, vocab 32000; --layers, default 8) with random codes (scripts/synth-model.ts + scripts/synth-formats.ts).
 * The GPTQ model is `gptq convert` of the AWQ one: the same codes, zeros and scales, so AWQ vs GPTQ compares loaders,
 * not weights. Runs `gptq bench` in a child process per configuration (peak RSS per process), interleaving the
 * configurations round by round, each under `nice`; prints a markdown table (median decode tok/s over the rounds, the
 * load average each bench recorded) and writes the raw JSON lines to --out/results.jsonl.
 *   node --import tsx bench/formats.ts [--out /tmp/gptqjs-formats] [--layers 8] [--rounds 2] [--prompt-len 128] [--gen-len 64] [--only awq,gptq]
 */
import { parseArgs } from 'node:util';
import { existsSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';

const { values: v } = parseArgs({ options: {
  out: { type: 'string' }, layers: { type: 'string' }, rounds: { type: 'string' }, 'prompt-len': { type: 'string' }, 'gen-len': { type: 'string' }, only: { type: 'string' },
} });
const OUT = v.out ?? '/tmp/gptqjs-formats', L = v.layers ?? '8', rounds = Number(v.rounds ?? 2);
const ROOT = join(import.meta.dirname, '..');
const node = (args: string[], nice = true) => {
  const r = spawnSync(nice ? 'nice' : process.execPath, nice ? [process.execPath, '--import', 'tsx', ...args] : ['--import', 'tsx', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

const fp = join(OUT, 'fp16');
if (!existsSync(join(fp, 'config.json'))) {
  node(['scripts/synth-model.ts', '--out', fp, '--hidden', '2048', '--intermediate', '5632', '--layers', L, '--heads', '32', '--kv-heads', '4', '--vocab', '32000', '--dtype', 'F16']);
}
for (const f of ['awq', 'bnb-nf4', 'bnb-nf4-dq', 'bnb-int8', 'aqlm-2x8', 'aqlm-1x16']) {
  if (!existsSync(join(OUT, f, 'config.json'))) node(['scripts/synth-formats.ts', '--src', fp, '--out', join(OUT, f), '--format', f]);
}
if (!existsSync(join(OUT, 'gptq', 'config.json'))) node(['src/cli/main.ts', 'convert', join(OUT, 'awq'), '--to', 'gptq', '--out', join(OUT, 'gptq')]);

/** label → [dir, extra flags] */
const CONFIGS: [string, string, string[]][] = [
  ['fp16 (fp32 weights)', 'fp16', ['--accuracy-level', '0']],
  ['GPTQ 4-bit g128, acc 0', 'gptq', ['--accuracy-level', '0']],
  ['AWQ 4-bit g128, acc 0', 'awq', ['--accuracy-level', '0']],
  ['GPTQ 4-bit g128, acc 4', 'gptq', ['--accuracy-level', '4']],
  ['AWQ 4-bit g128, acc 4', 'awq', ['--accuracy-level', '4']],
  ['bnb NF4 (MatMulBnb4)', 'bnb-nf4', []],
  ['bnb NF4 double quant (MatMulBnb4)', 'bnb-nf4-dq', []],
  ['bnb NF4 --dequantize (fp32)', 'bnb-nf4', ['--dequantize']],
  ['LLM.int8, acc 0 (fp32)', 'bnb-int8', ['--accuracy-level', '0']],
  ['LLM.int8, acc 4 (MatMulNBits 8-bit)', 'bnb-int8', ['--accuracy-level', '4']],
  ['AQLM 2x8 (gather)', 'aqlm-2x8', []],
  ['AQLM 1x16 (gather)', 'aqlm-1x16', []],
  ['AQLM 2x8 --dequantize (fp32)', 'aqlm-2x8', ['--dequantize']],
];
const only = v.only?.split(',');
const todo = CONFIGS.filter(([, dir]) => !only || only.includes(dir));
const results = new Map<string, Record<string, number | string>[]>();
for (let r = 0; r < rounds; r++) {
  for (const [label, dir, flags] of todo) {
    const before = loadavg()[0]!;
    const out = node(['src/cli/main.ts', 'bench', join(OUT, dir), '--prompt-len', v['prompt-len'] ?? '128', '--gen-len', v['gen-len'] ?? '64', '--json', '--no-graph-cache', '--label', label, ...flags]);
    const j = { ...JSON.parse(out.trim().split('\n').pop()!), loadBefore: before, round: r };
    appendFileSync(join(OUT, 'results.jsonl'), `${JSON.stringify(j)}\n`);
    (results.get(label) ?? results.set(label, []).get(label)!).push(j);
    process.stderr.write(`${label}: decode ${j.decodeTokensPerSecond.toFixed(2)} tok/s, prefill ${j.prefillTokensPerSecond.toFixed(1)} tok/s, RSS ${j.peakRssMB.toFixed(0)} MB, load avg ${before.toFixed(1)}\n`);
  }
}
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b), h = s.length >> 1; return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2; };
console.log(`| configuration | decode tok/s (median; each run) | prefill tok/s | load s | peak RSS MB | file MB | load avg (1 min, per run) |\n|---|---|---|---|---|---|---|`);
for (const [label] of todo) {
  const rs = results.get(label)!, f = (k: string, d = 1) => rs.map((x) => (x[k] as number).toFixed(d)).join(' / ');
  console.log(`| ${label} | ${med(rs.map((x) => x.decodeTokensPerSecond as number)).toFixed(2)} (${f('decodeTokensPerSecond', 2)}) | ${f('prefillTokensPerSecond')} | ${f('loadSeconds')} | ${f('peakRssMB', 0)} | ${(rs[0]!.fileMB as number).toFixed(0)} | ${f('loadBefore')} |`);
}
