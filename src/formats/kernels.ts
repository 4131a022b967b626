/**
 * Graph nodes for the linears of non-GPTQ formats that do not map onto MatMulNBits:
 *  - bitsandbytes 4-bit → com.microsoft.MatMulBnb4 (onnxruntime/contrib_ops/cpu/quantization/matmul_bnb4.cc): inputs A,
 *    B (the packed codes, bitsandbytes' byte layout: value 2j in the high nibble), absmax (float32, double
 *    quantization undone at load); attributes K, N, block_size, quant_type 0 = FP4 / 1 = NF4. The CPU kernel
 *    dequantizes B to float32 on every call (quant_map[q]·absmax, the same float32 product as bitsandbytes) and runs an
 *    SGEMM, so memory stays at 4 bits/weight while each call pays a full dequantization.
 *  - AQLM → the weight rebuilt on every call from its codes (aqlm/utils.py _dequantize_weight): per codebook, Cast of
 *    its stored codes to int32 → Gather of its vectors; the codebooks' vectors added → [out, in] → Gemm, then × the
 *    per-output scale (the scale factors out of the sum over inputs). Resident: the codes at their stored width and
 *    the codebooks; each call materializes one fp32 weight at a time.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { gemmLinear } from '../graph/weights.ts';
import type { AqlmLinear } from './aqlm.ts';
import type { Bnb4Linear } from './bnb.ts';

export type FormatKernelLinear = ({ kind: 'bnb4' } & Bnb4Linear) | ({ kind: 'aqlm' } & AqlmLinear);

/** y = x·Wᵀ (+ b) for one such linear; x is [..., K]. */
export function formatLinear(g: GraphBuilder, x: string, p: FormatKernelLinear): string {
  const bias = p.bias ? g.init(`${p.name}.bias`, 'float32', [p.N], p.bias) : undefined;
  if (p.kind === 'bnb4') {
    const y = g.ms('MatMulBnb4', [
      x, g.init(`${p.name}.bnb4_weight`, 'uint8', [p.packed.length], p.packed), g.init(`${p.name}.bnb4_absmax`, 'float32', [p.absmax.length], p.absmax),
    ], { K: p.K, N: p.N, block_size: p.state.blocksize, quant_type: p.state.quantType === 'nf4' ? 1 : 0 })[0]!;
    return bias ? g.op('Add', [y, bias]) : y;
  }
  const { K, N, C, og, ig } = p, no = N / og, ni = K / ig, size = 2 ** p.nbits;
  // Per codebook c: its codes [no, ni] → Gather of its vectors → [no, ni, og·ig]; the codebooks' vectors are added
  // (one elementwise Add per extra codebook; a ReduceSum over a middle axis of [no, ni, C, og·ig] measured 10× slower).
  // The codes pass through a Slice whose start is a zero computed from x's batch dimension: every input of the chain
  // would otherwise be an initializer, and ONNX Runtime's constant folding would turn it into a stored fp32 weight at
  // session creation (measured: the AQLM model's RSS and speed became those of fp32 weights).
  const batch = g.op('Shape', [x], { start: 0, end: 1 });
  const zero = g.op('Sub', [batch, batch]);
  let sum = '';
  for (let c = 0; c < C; c++) {
    const own = C === 1 ? p.codes : p.codes.filter((_, i) => i % C === c); // [no, ni] of codebook c
    const stored = g.init(`${p.name}.aqlm_codes${C > 1 ? `_${c}` : ''}`, p.nbits <= 8 ? 'uint8' : 'uint16', [no, ni], own);
    const idx = g.op('Cast', [g.op('Slice', [stored, zero, g.constI64([no]), g.constI64([0])])], { to: 6 }); // int32
    const book = g.init(`${p.name}.aqlm_codebook${C > 1 ? `_${c}` : ''}`, 'float32', [size, og * ig], p.codebooks.subarray(c * size * og * ig, (c + 1) * size * og * ig));
    const vecs = g.op('Gather', [book, idx], { axis: 0 }); // [no, ni, og·ig]
    sum = sum ? g.op('Add', [sum, vecs]) : vecs;
  }
  const W = og === 1
    ? g.op('Reshape', [sum, g.constI64([N, K])])
    : g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [sum, g.constI64([no, ni, og, ig])])], { perm: [0, 2, 1, 3] }), g.constI64([N, K])]);
  const perOut = new Float32Array(N);
  for (let o = 0; o < N; o++) perOut[o] = p.scales[Math.floor(o / og)]!;
  const y = g.op('Mul', [gemmLinear(g, x, W, undefined, N), g.init(`${p.name}.aqlm_scales`, 'float32', [N], perOut)]);
  return bias ? g.op('Add', [y, bias]) : y;
}
