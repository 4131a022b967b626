/**
 * Graph nodes for the linears of non-GPTQ formats that do not map onto MatMulNBits:
 *  - bitsandbytes 4-bit → com.microsoft.MatMulBnb4 (onnxruntime/contrib_ops/cpu/quantization/matmul_bnb4.cc): inputs A,
 *    B (the packed codes, bitsandbytes' byte layout: value 2j in the high nibble), absmax (float32, double
 *    quantization undone at load); attributes K, N, block_size, quant_type 0 = FP4 / 1 = NF4. The CPU kernel
 *    dequantizes B to float32 on every call (quant_map[q]·absmax, the same float32 product as bitsandbytes) and runs an
 *    SGEMM, so memory stays at 4 bits/weight while each call pays a full dequantization.
 *  - AQLM → the weight rebuilt on every call from its codes (aqlm/utils.py _dequantize_weight): Cast of the stored
 *    codes to int32 (+ c·2^nbits per codebook) → Gather over the concatenated codebooks → ReduceSum over codebooks →
 *    [out, in] → Gemm, then × the per-output scale (the scale factors out of the sum over inputs).
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
  const codes = g.init(`${p.name}.aqlm_codes`, p.nbits <= 8 ? 'uint8' : 'uint16', [no, ni, C], p.codes);
  let idx = g.op('Cast', [codes], { to: 6 }); // int32
  if (C > 1) idx = g.op('Add', [idx, g.init(`${p.name}.aqlm_offsets`, 'int32', [C], Int32Array.from({ length: C }, (_, c) => c * size))]);
  const books = g.init(`${p.name}.aqlm_codebooks`, 'float32', [C * size, og * ig], p.codebooks);
  const vecs = g.op('Gather', [books, idx], { axis: 0 }); // [no, ni, C, og·ig]
  const sum = C > 1 ? g.op('ReduceSum', [vecs, g.constI64([2])], { keepdims: 0 }) : vecs;
  const W = og === 1
    ? g.op('Reshape', [sum, g.constI64([N, K])])
    : g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [sum, g.constI64([no, ni, og, ig])])], { perm: [0, 2, 1, 3] }), g.constI64([N, K])]);
  const perOut = new Float32Array(N);
  for (let o = 0; o < N; o++) perOut[o] = p.scales[Math.floor(o / og)]!;
  const y = g.op('Mul', [gemmLinear(g, x, W, undefined, N), g.init(`${p.name}.aqlm_scales`, 'float32', [N], perOut)]);
  return bias ? g.op('Add', [y, bias]) : y;
}
