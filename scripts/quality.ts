/**
 * Issue-3 quality table on stories260K: wikitext2 ppl of fp32, GPTQ and RTN at 4 and 3 bits (group 32, C4
 * calibration 128×256). Two rows per setting: the saved checkpoint (AutoGPTQ-packable modules, i.e. attention; the
 * 172-wide MLP stays fp32) and all linears fake-quantized (evaluation only, as in the GPTQ paper). Then the cost
 * of storing calibration activations in fp16 (the default) instead of fp32.
 *   node --import tsx scripts/quality.ts [--wikitext FILE] [--seqlen 512]
 */
import { parseArgs } from 'node:util';
import { GPTQModel } from '../src/gptq-model.ts';
import { perplexity } from '../src/eval/perplexity.ts';
import { evalTokens, loadText } from '../src/io/datasets.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';

const { values: v } = parseArgs({ options: { wikitext: { type: 'string' }, seqlen: { type: 'string' }, 'max-windows': { type: 'string' } } });
const dir = 'assets/stories260K';
const seqlen = Number(v.seqlen ?? 512);
const texts = await loadText(v.wikitext ?? 'wikitext2');
const base = await GPTQModel.fromPretrained(dir);
const tokens = evalTokens(base.tokenizer!, texts, 'wikitext2');
const calib = await base.calibration('c4', { nsamples: 128, seqlen: 256, seed: 0 });
const maxWindows = v['max-windows'] ? Number(v['max-windows']) : undefined;
const ppl = async (m: CausalLM) => (await perplexity(m, tokens, { seqlen, maxWindows })).ppl;

const rows: string[][] = [['setting', 'modules quantized', 'wikitext2 ppl']];
rows.push(['fp32', '-', (await ppl(await CausalLM.load(dir, { nll: true }))).toFixed(3)]);
for (const bits of [4, 3] as const) for (const all of [false, true]) for (const method of ['rtn', 'gptq'] as const) {
  const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits, groupSize: 32 } });
  const r = await m.quantize(calib, { method, keepDequantized: true, quantizeUnpackable: all });
  const what = all ? 'all 35 linears (fake-quant)' : `${r.quantized.size} packable (attention)`;
  rows.push([`${bits}-bit g32 ${method.toUpperCase()}`, what, (await ppl(await m.fakeQuantModel())).toFixed(3)]);
  console.error(rows.at(-1)!.join(' | '));
  await m.dispose();
}
console.log(rows.map((r) => `| ${r.join(' | ')} |`).join('\n'));

// Calibration activations stored in fp16 (the default) vs fp32 between layers: same GPTQ runs, both storages.
const act: string[][] = [['setting', 'ppl, fp32 activations', 'ppl, fp16 activations (default)', 'Δppl', 'module loss: max rel diff']];
for (const bits of [4, 3] as const) {
  const res = [];
  for (const activationDtype of ['float32', 'float16'] as const) {
    const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits, groupSize: 32 } });
    const r = await m.quantize(calib, { keepDequantized: true, quantizeUnpackable: true, activationDtype });
    res.push({ ppl: await ppl(await m.fakeQuantModel()), losses: r.losses });
    await m.dispose();
  }
  let maxRel = 0;
  for (const [n, l] of res[0]!.losses) maxRel = Math.max(maxRel, Math.abs(res[1]!.losses.get(n)! - l) / Math.abs(l));
  act.push([`${bits}-bit g32 GPTQ, all 35 linears`, res[0]!.ppl.toFixed(3), res[1]!.ppl.toFixed(3), `${(((res[1]!.ppl - res[0]!.ppl) / res[0]!.ppl) * 100).toFixed(3)}%`, maxRel.toExponential(2)]);
  console.error(act.at(-1)!.join(' | '));
}
console.log(act.map((r) => `| ${r.join(' | ')} |`).join('\n'));
