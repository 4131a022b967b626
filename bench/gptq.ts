/**
 * GPTQ speed on synthetic Llama-7B-sized linears (q/k/v/o 4096x4096, gate/up 11008x4096, down 4096x11008, out x in;
 * 4-bit, g128, H from 2048 random tokens): absolute seconds on this
 * machine, per step (prepare, Hessian inverse, solve and its ORT share, finalize) and for packing. To compare with
 * AutoGPTQ, time its fasterquant on the same shapes on the same machine.
 *   npm run bench:gptq            (GPTQ_BENCH_SHAPES="4096x4096,11008x4096,4096x11008" to pick shapes: out x in;
 *                                  GPTQ_BENCH_CONFIG='{"arithmetic":"float32","mse":true}' for other quantizer options,
 *                                  GPTQ_BENCH_OPTS='{"workers":1}' for gptqQuantize options, GPTQ_BENCH_REPEAT=3 for the
 *                                  best of 3 runs of each shape; the first run also pays for the solve's worker start)
 * Then, per shape, the layer loop's way: the linears of Llama-7B that share one H (q/k/v: 3 at 4096x4096, gate/up: 2 at
 * 11008x4096, down alone; GPTQ_BENCH_SHARING="3,2,1" in the order of the shapes) quantized in a row with one Hinv
 * (GptqOptions.hinvCache, H consumed by the last), best of the same repeats: seconds per linear. AutoGPTQ factors
 * H again for every linear (modeling/_base.py: a GPTQ object, its own H and fasterquant per module of the subset).
 */
import { cpus } from 'node:os';
import { gram } from '../src/graph/linalg.ts';
import { gptqQuantize, type GptqOptions, type GptqResult, type HinvCache } from '../src/quant/gptq.ts';
import { resolveQuantizeConfig } from '../src/quant/quantize-config.ts';
import { packLinear } from '../src/quant/pack.ts';
import { randn } from '../test/helpers.ts';
import { shared } from '../src/platform/workers.ts';

const shapes = (process.env.GPTQ_BENCH_SHAPES ?? '4096x4096,11008x4096,4096x11008').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const sharing = (process.env.GPTQ_BENCH_SHARING ?? '3,2,1').split(',').map(Number);
const ntok = 2048;
const cfg = resolveQuantizeConfig({ bits: 4, groupSize: 128, ...JSON.parse(process.env.GPTQ_BENCH_CONFIG ?? '{}') });
console.log(`gptq bench: ${cpus().length} cpus, ${cpus()[0]?.model ?? '?'}; options ${process.env.GPTQ_BENCH_OPTS ?? '{}'}, best of ${process.env.GPTQ_BENCH_REPEAT ?? 1}; ${cfg.bits}-bit g${cfg.groupSize} sym=${cfg.sym}, desc_act=${cfg.descAct}, mse=${cfg.mse}, arithmetic ${cfg.arithmetic}, ${ntok} tokens`);
for (const [si, [out, inF]] of shapes.entries()) {
  // Calibration activations with some shared structure so H is well-conditioned but not diagonal.
  const X = randn(ntok * inF, 1), f = randn(ntok * 16, 2);
  for (let t = 0; t < ntok; t++) for (let j = 0; j < inF; j++) X[t * inF + j]! += 0.5 * f[t * 16 + (j & 15)]!;
  let t0 = performance.now();
  const H = (await gram(X, ntok, inF)) as Float32Array;
  for (let i = 0; i < H.length; i++) H[i] = H[i]! * (2 / ntok);
  const tH = (performance.now() - t0) / 1e3;
  const W = shared(randn(out * inF, 3, 0.02)); // in shared memory, as the layer loop reads weights for GPTQ
  const opts = JSON.parse(process.env.GPTQ_BENCH_OPTS ?? '{}') as GptqOptions;
  let r: GptqResult | undefined;
  const repeat = Math.max(1, Number(process.env.GPTQ_BENCH_REPEAT ?? 1));
  for (let rep = 0; rep < repeat; rep++) {
    const x = await gptqQuantize(W, H, out, inF, cfg, { nsamples: ntok, ...opts });
    if (!r || x.timings.total < r.timings.total) r = x;
  }
  if (!r) throw new Error('unreachable');
  t0 = performance.now();
  const packed = packLinear({ codes: r.intCodes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx, bits: cfg.bits, inFeatures: inF, outFeatures: out });
  const tP = (performance.now() - t0) / 1e3;
  const tm = r.timings;
  console.log(`${out}x${inF} (out x in): hessian ${tH.toFixed(2)} s | gptq ${tm.total.toFixed(2)} s = prepare ${tm.prepare.toFixed(2)} + cholesky ${tm.cholesky.toFixed(2)} + solve ${tm.solve.toFixed(2)} (ORT ${tm.lazyGemm.toFixed(2)}) + finalize ${tm.finalize.toFixed(2)} | pack ${tP.toFixed(2)} s | gptq+pack ${(tm.total + tP).toFixed(2)} s`
    + ` | avg loss ${r.avgLoss.toExponential(3)} | qweight ${packed.qweight.length}`);
  const k = sharing[si] ?? 1;
  if (k > 1) {
    const Ws = Array.from({ length: k }, (_, i) => (i === 0 ? W : shared(randn(out * inF, 4 + i, 0.02))));
    let best = Infinity;
    for (let rep = 0; rep < repeat; rep++) {
      const Hc = H.slice(), cache: HinvCache = {}; // a fresh H (the last linear consumes it)
      t0 = performance.now();
      for (let i = 0; i < k; i++) await gptqQuantize(Ws[i]!, Hc, out, inF, cfg, { nsamples: ntok, ...opts, hinvCache: cache, consumeHessian: i === k - 1 });
      best = Math.min(best, (performance.now() - t0) / 1e3);
    }
    console.log(`${out}x${inF}: ${k} linears sharing H (the layer loop's way): ${best.toFixed(2)} s, ${(best / k).toFixed(2)} s per linear`);
  }
}
