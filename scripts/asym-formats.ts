/**
 * Issue 10.1: what the v1 zero-point constraint costs. Asymmetric GPTQ on stories260K (g32, C4 calibration 128×256,
 * wikitext2 ppl at seqlen 512), saved as v1 "gptq" (zero points ≥ 1: a group whose min-max zero would be 0 gets
 * zero 1 and scale xmax/(maxq−1)) and as gptq_v2 (zero 0 stored). Rows: the saved checkpoint (attention linears;
 * the 172-wide MLP is not packable and stays fp32), its saved-and-reloaded ppl, and all 35 linears fake-quantized.
 * First, the worst case on one synthetic 256×512 linear: GPTQ loss v1 vs gptq_v2 when every group's weights are ≥ 0.
 *   node --import tsx scripts/asym-formats.ts [--wikitext FILE] [--max-windows N] [--layer-only]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPTQModel } from '../src/gptq-model.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { evalTokens, loadText } from '../src/io/datasets.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { unpackQzeros, type PackBits } from '../src/quant/pack.ts';
import type { Tensor } from '../src/tensor.ts';
import { gram } from '../src/graph/linalg.ts';
import { gptqQuantize } from '../src/quant/gptq.ts';
import { randn } from '../test/helpers.ts';

const { values: v } = parseArgs({ options: { wikitext: { type: 'string' }, 'max-windows': { type: 'string' }, 'layer-only': { type: 'boolean' } } });

// One linear, W = |N(0, 0.05²)| (every asym group has min ≥ 0) and W ~ N(0, 0.05²); H from correlated random inputs.
{
  const R = 256, C = 512, ntok = 1024, X = randn(ntok * C, 1), f = randn(ntok * 8, 2);
  for (let t = 0; t < ntok; t++) for (let j = 0; j < C; j++) X[t * C + j] += 0.7 * f[t * 8 + (j & 7)]!;
  const H = (await gram(X, ntok, C)) as Float32Array;
  for (let i = 0; i < H.length; i++) H[i] = H[i]! * (2 / ntok);
  const lines = ['| W | bits | v2 zero points = 0 | GPTQ loss v1 | GPTQ loss gptq_v2 | v1 / v2 − 1 |', '|---|---|---|---|---|---|'];
  for (const [label, W] of [['|W|', randn(R * C, 3, 0.05).map(Math.abs)], ['W', randn(R * C, 3, 0.05)]] as const) for (const bits of [2, 3, 4, 8] as const) {
    const loss: number[] = [];
    let z0 = 0;
    for (const checkpointFormat of ['gptq', 'gptq_v2'] as const) {
      const r = await gptqQuantize(W, H.slice(), R, C, { bits, groupSize: 32, descAct: false, staticGroups: false, sym: false, dampPercent: 0.01, blockSize: 128, mse: false, checkpointFormat });
      loss.push(r.loss);
      if (checkpointFormat === 'gptq_v2') z0 = r.zeros.filter((z) => z === 0).length / r.zeros.length;
    }
    lines.push(`| ${label} | ${bits} | ${(100 * z0).toFixed(1)}% | ${loss[0]!.toExponential(3)} | ${loss[1]!.toExponential(3)} | ${((loss[0]! / loss[1]! - 1) * 100).toFixed(1)}% |`);
  }
  console.log(lines.join('\n'));
  if (v['layer-only']) process.exit(0);
}

const dir = 'assets/stories260K', seqlen = 512, maxWindows = v['max-windows'] ? Number(v['max-windows']) : undefined;
const base = await GPTQModel.fromPretrained(dir);
const tokens = evalTokens(base.tokenizer!, await loadText(v.wikitext ?? 'wikitext2'), 'wikitext2');
const calib = await base.calibration('c4', { nsamples: 128, seqlen: 256, seed: 0 });
await base.close();
const ppl = async (m: CausalLM) => { const p = (await perplexity(m, tokens, { seqlen, maxWindows })).ppl; await m.release(); return p; };
const tmp = mkdtempSync(join(tmpdir(), 'asym-formats-'));
const quiet = { onLog: () => {} };

const rows: string[][] = [['setting', 'zero points 0 / 1 (saved modules)', 'ppl fake-quant (saved modules)', 'ppl saved + reloaded', 'ppl all 35 linears fake-quant']];
rows.push(['fp32', '-', '-', (await ppl(await CausalLM.load(dir, { nll: true, ...quiet }))).toFixed(3), '-']);
for (const bits of [4, 3] as const) for (const fmt of ['gptq', 'gptq_v2'] as const) {
  const q = { bits, groupSize: 32, sym: false, checkpointFormat: fmt };
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: q });
  const res = await m.quantize(calib, { keepDequantized: true });
  let z0 = 0, z1 = 0, n = 0;
  for (const [name, t] of res.packed) {
    if (!name.endsWith('.qzeros')) continue;
    const shape = (t as Tensor).shape, z = unpackQzeros((t as Tensor).data as Int32Array, bits as PackBits, shape[0]!, (shape[1]! * 32) / bits, fmt);
    for (const x of z) { if (x === 0) z0++; if (x === 1) z1++; n++; }
  }
  const out = join(tmp, `${bits}-${fmt}`);
  await m.saveQuantized(out);
  const fake = await ppl(await m.fakeQuantModel({ nll: true, ...quiet })), saved = await ppl(await CausalLM.load(out, { nll: true, ...quiet }));
  await m.close();
  const all = await GPTQModel.fromPretrained(dir, { quantizeConfig: q });
  await all.quantize(calib, { keepDequantized: true, quantizeUnpackable: true });
  const allPpl = await ppl(await all.fakeQuantModel({ nll: true, ...quiet }));
  await all.close();
  rows.push([`${bits}-bit g32 asym ${fmt}`, `${z0} / ${z1} of ${n} (${((100 * z0) / n).toFixed(2)}% / ${((100 * z1) / n).toFixed(2)}%)`, fake.toFixed(3), saved.toFixed(3), allPpl.toFixed(3)]);
  console.error(rows.at(-1)!.join(' | '));
}
rmSync(tmp, { recursive: true, force: true });
console.log(rows.map((r) => `| ${r.join(' | ')} |`).join('\n'));
