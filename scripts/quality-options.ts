/**
 * Issue-16 quality table on stories260K: wikitext2 ppl of RTN and GPTQ per quantizer option — the default
 * (arithmetic float64 on fp16 scales), AutoGPTQ's arithmetic (float32) and the MSE clipping search (mse) — for
 * bits × group size × which linears (the packable ones, saved; or all 35 fake-quantized), over calibration seeds
 * (C4 demo, nsamples × seqlen). GPTQ rows: mean ± half the spread (max − min)/2 over the seeds; RTN needs no
 * calibration (one run). Group 128 = the default (one group per row where in_features < 128, as AutoGPTQ). Time =
 * quantize seconds (mean). One JSON line per run goes to --out as it finishes.
 *   nice node --import tsx scripts/quality-options.ts [--bits 2,3,4] [--groups 32,128] [--seeds 0,1,2]
 *     [--options default,float32,mse] [--max-windows 200] [--nsamples 128] [--seqlen 256] [--out FILE]
 *   node --import tsx scripts/quality-options.ts --table FILE.jsonl[,FILE2.jsonl]   (the markdown table of runs)
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GPTQModel } from '../src/gptq-model.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { evalTokens, loadText } from '../src/io/datasets.ts';
import type { Bits, QuantizeConfig } from '../src/quant/quantize-config.ts';

const { values: v } = parseArgs({ options: {
  bits: { type: 'string', default: '2,3,4' }, groups: { type: 'string', default: '32,128' }, seeds: { type: 'string', default: '0,1,2' },
  options: { type: 'string', default: 'default,float32,mse' }, linears: { type: 'string', default: 'packable,all' },
  'max-windows': { type: 'string', default: '200' }, nsamples: { type: 'string', default: '128' }, seqlen: { type: 'string', default: '256' },
  methods: { type: 'string', default: 'rtn,gptq' }, out: { type: 'string' }, wikitext: { type: 'string' }, table: { type: 'string' },
} });
const list = (s: string) => s.split(',').filter(Boolean);
interface Run { bits: number; groupSize: number; linears: string; method: string; option: string; seed: number; ppl: number; seconds: number }

if (v.table) {
  const runs = list(v.table).filter((f) => existsSync(f)).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Run));
  const opts = [...new Set(runs.map((r) => r.option))];
  const keys = [...new Set(runs.map((r) => `${r.bits}|${r.groupSize}|${r.linears}|${r.method}`))];
  const cell = (rs: Run[]) => {
    if (!rs.length) return '–';
    const p = rs.map((r) => r.ppl), mean = p.reduce((a, b) => a + b, 0) / p.length, half = (Math.max(...p) - Math.min(...p)) / 2;
    const t = rs.reduce((a, r) => a + r.seconds, 0) / rs.length;
    return `${mean.toFixed(2)}${rs.length > 1 ? ` ± ${half.toFixed(2)}` : ''} (${t.toFixed(0)} s${rs.length > 1 ? `, n=${rs.length}` : ''})`;
  };
  console.log(`| bits | group | linears | method | ${opts.join(' | ')} |\n|${'---|'.repeat(4 + opts.length)}`);
  for (const k of keys) {
    const [bits, gs, lin, method] = k.split('|');
    const rs = runs.filter((r) => `${r.bits}|${r.groupSize}|${r.linears}|${r.method}` === k);
    console.log(`| ${bits} | ${gs} | ${lin} | ${method} | ${opts.map((o) => cell(rs.filter((r) => r.option === o))).join(' | ')} |`);
  }
  process.exit(0);
}
const dir = 'assets/stories260K';
const base = await GPTQModel.fromPretrained(dir);
const tokens = evalTokens(base.tokenizer!, await loadText(v.wikitext ?? 'wikitext2'), 'wikitext2');
const maxWindows = Number(v['max-windows']);
const OPTS: Record<string, Partial<QuantizeConfig>> = { default: {}, float32: { arithmetic: 'float32' }, mse: { mse: true }, 'mse-float32': { mse: true, arithmetic: 'float32' }, down: { scaleRounding: 'down' }, hmse: { mse: true, mseWeighting: 'hessian' }, 'mse-down': { mse: true, scaleRounding: 'down' }, gar: { actGroupAware: true }, 'gar-hmse': { actGroupAware: true, mse: true, mseWeighting: 'hessian' } };

for (const bits of list(v.bits).map(Number) as Bits[]) for (const groupSize of list(v.groups).map(Number)) for (const linears of list(v.linears))
  for (const method of list(v.methods) as ('rtn' | 'gptq')[]) for (const opt of list(v.options)) for (const seed of method === 'rtn' ? [0] : list(v.seeds).map(Number)) {
    const calib = await base.calibration('c4', { nsamples: Number(v.nsamples), seqlen: Number(v.seqlen), seed });
    const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits, groupSize: groupSize === 128 ? undefined : groupSize, ...OPTS[opt] } });
    const t0 = performance.now();
    await m.quantize(calib, { method, keepDequantized: true, quantizeUnpackable: linears === 'all' });
    const seconds = (performance.now() - t0) / 1000;
    const ppl = (await perplexity(await m.fakeQuantModel(), tokens, { seqlen: 512, maxWindows })).ppl;
    await m.dispose();
    const row = { bits, groupSize, linears, method, option: opt, seed, ppl, seconds };
    console.log(JSON.stringify(row));
    if (v.out) appendFileSync(v.out, `${JSON.stringify(row)}\n`);
  }
