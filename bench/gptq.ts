/**
 * GPTQ speed on synthetic Llama-7B-sized linears (4-bit, g128, H from 2048 random tokens).
 * Reference: a peer's AutoGPTQ fasterquant timings for the same shapes (12.2 s / 18.5 s); goal ≤ 0.5× those.
 *   npm run bench:gptq            (GPTQ_BENCH_SHAPES="4096x4096,11008x4096" to pick shapes: out x in)
 */
import { cpus } from 'node:os';
import { gram } from '../src/graph/linalg.ts';
import { gptqQuantize } from '../src/quant/gptq.ts';
import { resolveQuantizeConfig } from '../src/quant/quantize-config.ts';
import { packLinear } from '../src/quant/pack.ts';
import { randn } from '../test/helpers.ts';

const AUTOGPTQ_S: Record<string, number> = { '4096x4096': 12.2, '11008x4096': 18.5 };
// 4096x11008 (down_proj: H is 11008²) has no peer figure; it sizes the Hessian-inverse factorization.
const shapes = (process.env.GPTQ_BENCH_SHAPES ?? '4096x4096,11008x4096').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const ntok = 2048;
const cfg = resolveQuantizeConfig({ bits: 4, groupSize: 128 });
console.log(`gptq bench: ${cpus().length} cpus, ${cpus()[0]?.model ?? '?'}; 4-bit g${cfg.groupSize} sym, desc_act=${cfg.descAct}, ${ntok} tokens`);
for (const [out, inF] of shapes) {
  // Calibration activations with some shared structure so H is well-conditioned but not diagonal.
  const X = randn(ntok * inF, 1), f = randn(ntok * 16, 2);
  for (let t = 0; t < ntok; t++) for (let j = 0; j < inF; j++) X[t * inF + j]! += 0.5 * f[t * 16 + (j & 15)]!;
  let t0 = performance.now();
  const H = (await gram(X, ntok, inF)) as Float32Array;
  for (let i = 0; i < H.length; i++) H[i] = H[i]! * (2 / ntok);
  const tH = (performance.now() - t0) / 1e3;
  const W = randn(out * inF, 3, 0.02);
  const r = await gptqQuantize(W, H, out, inF, cfg, { nsamples: ntok });
  t0 = performance.now();
  const packed = packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits: cfg.bits, inFeatures: inF, outFeatures: out });
  const tP = (performance.now() - t0) / 1e3;
  const key = `${out}x${inF}`, ref = AUTOGPTQ_S[key];
  const tm = r.timings, quant = tm.total;
  console.log(`${key} (out x in): hessian ${tH.toFixed(2)} s | gptq ${quant.toFixed(2)} s = prepare ${tm.prepare.toFixed(2)} + cholesky ${tm.cholesky.toFixed(2)} + solve ${tm.solve.toFixed(2)} (ORT ${tm.lazyGemm.toFixed(2)}) + finalize ${tm.finalize.toFixed(2)} | pack ${tP.toFixed(2)} s`
    + (ref ? ` | gptq+pack ${(quant + tP).toFixed(2)} s = ${((quant + tP) / ref).toFixed(2)}x AutoGPTQ fasterquant ${ref} s` : '')
    + ` | avg loss ${r.avgLoss.toExponential(3)} | qweight ${packed.qweight.length}`);
}
