/**
 * The parity table of the format fixtures (test/fixtures/formats): per fixture, the largest |Δw| between the weights
 * each quantized linear computes as loaded (ONNX Runtime on the identity; test/fixture-formats.ts effectiveWeights)
 * and the independent float64 dequantizer (test/reference/formats-ref.ts), relative to max |W|; and the largest
 * |Δlogit| of CausalLM.load vs Transformers' float64 forward of the dequantized model. The tests assert the bounds
 * (test/formats.test.ts); this prints the measured values.
 *   node --import tsx scripts/format-parity.ts
 */
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { effectiveWeights, listFormatFixtures, loadFormatFixture, referenceWeight } from '../test/fixture-formats.ts';

console.log('| fixture | kernels | max \\|Δw\\| | max \\|Δw\\| / max \\|W\\| | max \\|Δlogit\\| vs Transformers fp64 | with --dequantize |\n|---|---|---|---|---|---|');
for (const name of listFormatFixtures()) {
  const f = loadFormatFixture(name);
  const { weights, kernels } = await effectiveWeights(f);
  let dw = 0, rel = 0;
  for (const m of f.quantized) {
    const ref = referenceWeight(f, m), got = weights.get(m)!;
    let d = 0, mx = 0;
    for (let i = 0; i < ref.length; i++) { d = Math.max(d, Math.abs(got[i]! - ref[i]!)); mx = Math.max(mx, Math.abs(ref[i]!)); }
    dw = Math.max(dw, d); rel = Math.max(rel, d / mx);
  }
  const logitDiff = async (dequantize: boolean) => {
    const m = await CausalLM.load(f.dir, { graphCache: false, onLog: () => {}, dequantize });
    const lg = await m.logits([f.ids]);
    await m.dispose();
    let d = 0;
    for (let i = 0; i < lg.length; i++) d = Math.max(d, Math.abs(lg[i]! - f.logits[i]!));
    return d;
  };
  const dq = f.format === 'bnb4' || f.format === 'aqlm' ? (await logitDiff(true)).toExponential(1) : '—';
  console.log(`| ${name} | ${[...new Set(kernels.values())].join(', ')} | ${dw.toExponential(1)} | ${rel.toExponential(1)} | ${(await logitDiff(false)).toExponential(1)} | ${dq} |`);
}
