/**
 * Why prefill is where it is: ONNX Runtime's CPU kernels on one prefill-sized product of the decode bench's model
 * (M prompt tokens × K 2048 → N 5632, SYNTHETIC weights), best of 8 runs each, in G-op/s (2·M·K·N per second):
 *   - com.microsoft.MatMulNBits, 4-bit with block 32/64/128/256 and 8-bit, accuracy levels 4 (int8 activations) and
 *     1 (fp32): the kernel every GPTQ linear runs on;
 *   - com.microsoft.DynamicQuantizeMatMul: MLAS's u8s8 QGEMM on int8 weights with one scale per output column and one
 *     per-tensor activation scale. It cannot run a GPTQ checkpoint exactly (one scale per group of 128 inputs per
 *     column, not per column; and one activation scale for all tokens), so it only shows what this CPU's int8 path
 *     reaches without the 4-bit unpacking and per-block scaling;
 *   - fp32 MatMul (MLAS SGEMM).
 *   npm run bench:kernels            (KERNELS_M=128,256 KERNELS_K=2048 KERNELS_N=5632 KERNELS_THREADS=2)
 */
import { cpus } from 'node:os';
import { GraphBuilder } from '../src/graph/builder.ts';
import { matMulNBits, type NBits } from '../src/graph/matmul-nbits.ts';
import { createSession, f32 } from '../src/graph/session.ts';
import { randn } from '../test/helpers.ts';

const Ms = (process.env.KERNELS_M ?? '128,256').split(',').map(Number);
const K = Number(process.env.KERNELS_K ?? 2048), N = Number(process.env.KERNELS_N ?? 5632), threads = Number(process.env.KERNELS_THREADS ?? 2);
console.log(`prefill kernels: ${cpus().length} cpus, ${cpus()[0]?.model ?? '?'}; K ${K}, N ${N}, ${threads} threads, best of 8 (SYNTHETIC weights)`);

/** A one-node graph on input x [M, K] → y [M, N]. */
function graph(build: (g: GraphBuilder, x: string) => string): Uint8Array {
  const g = new GraphBuilder('kernel');
  const x = g.input('x', 'float32', ['m', K]);
  g.output(build(g, x), 'float32', ['m', N], 'y');
  return g.toBytes();
}
function nbits(bits: NBits, block: number, level: number): [string, Uint8Array] {
  const kb = K / block, B = new Uint8Array((N * kb * block * bits) / 8).map((_, i) => (i * 37) & 255);
  const scales = randn(N * kb, 1, 0.01).map(Math.abs), zeroPoints = new Uint8Array(N * Math.ceil((kb * bits) / 8)).fill(bits === 4 ? 0x88 : 128);
  return [`MatMulNBits ${bits}-bit block ${block}, accuracy ${level}`, graph((g, x) => matMulNBits(g, x, 'w', { N, K, bits, block, B, scales, zeroPoints }, level))];
}
const kernels: [string, Uint8Array][] = [
  nbits(4, 128, 4), nbits(4, 32, 4), nbits(4, 64, 4), nbits(4, 256, 4), nbits(8, 128, 4), nbits(4, 128, 1),
  ['DynamicQuantizeMatMul (u8s8 QGEMM, per-column int8 weights)', graph((g, x) => g.ms('DynamicQuantizeMatMul', [x,
    g.init('b', 'int8', [K, N], new Int8Array(K * N).map((_, i) => ((i * 37) % 15) - 7)), g.init('bs', 'float32', [N], randn(N, 2, 0.01).map(Math.abs)),
    g.init('bz', 'int8', [N], new Int8Array(N))])[0]!)],
  ['fp32 MatMul (SGEMM)', graph((g, x) => g.op('MatMul', [x, g.init('b', 'float32', [K, N], randn(K * N, 3, 0.01))]))],
];
for (const [name, model] of kernels) {
  const s = await createSession(model, { threads });
  const row: string[] = [];
  for (const M of Ms) {
    const x = f32(randn(M * K, 4), [M, K]);
    let best = Infinity;
    for (let r = 0; r < 8; r++) { const t = performance.now(); await s.run({ x }); best = Math.min(best, performance.now() - t); }
    row.push(`M=${M} ${best.toFixed(2)} ms ${((2 * M * K * N) / best / 1e6).toFixed(0)} G-op/s`);
  }
  console.log(`${name.padEnd(62)} ${row.join(' | ')}`);
  await s.release();
}
