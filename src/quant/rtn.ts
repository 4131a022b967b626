/** Round-to-nearest baseline: per-group min-max params, no error feedback (what GPTQ is compared against). */
import { transpose } from '../tensor.ts';
import type { QuantizeConfig } from './quantize-config.ts';
import { dequantizeCodes, findParams, gridStorage, quantizeColumn, storedScales } from './quantizer.ts';

/**
 * W [rows, cols] → codes and Q = scale·(code − zero) [rows, cols], scales/zeros [groups, rows], g_idx [cols]. Same grid
 * constraints as GPTQ (fp16 scales, zero points the format stores; see GridStorage). Works on Wᵀ so that a column is
 * contiguous (quantizer.ts quantizeColumn, as GPTQ). `arithmetic: 'float32'`: AutoGPTQ's Quantizer exactly (codes
 * from float32 scales and float32 quotients); scales are returned as the fp16 values saved and Q is what they decode to.
 */
export function rtnQuantize(W: Float32Array, rows: number, cols: number, cfg: Pick<QuantizeConfig, 'bits' | 'groupSize' | 'sym' | 'mse'> & Partial<Pick<QuantizeConfig, 'checkpointFormat' | 'arithmetic' | 'scaleRounding'>>) {
  const gs = cfg.groupSize > 0 ? cfg.groupSize : cols;
  const groups = Math.ceil(cols / gs);
  const Wt = transpose(W, rows, cols, new Float32Array(rows * cols)); // column c at c·rows
  const Qt = new Float32Array(rows * cols), codesT = new Uint8Array(rows * cols);
  const scales = new Float32Array(groups * rows), zeros = new Int32Array(groups * rows);
  const gIdx = Int32Array.from({ length: cols }, (_, j) => Math.floor(j / gs));
  const f32 = cfg.arithmetic === 'float32';
  const o = { bits: cfg.bits, sym: cfg.sym, mse: cfg.mse, float32: f32, storage: gridStorage(cfg.checkpointFormat ?? 'gptq', cfg.arithmetic, cfg.scaleRounding) };
  for (let g = 0; g < groups; g++) {
    const c0 = g * gs, w = Math.min(gs, cols - c0);
    const p = findParams(Wt, rows, w, o, { offset: c0 * rows, rowStride: 1, colStride: rows });
    scales.set(p.scale, g * rows); zeros.set(p.zero, g * rows);
    for (let c = c0; c < c0 + w; c++) quantizeColumn(Wt, c * rows, p, 0, rows, codesT, c * rows, Qt, c * rows, f32);
  }
  // 'float32' (AutoGPTQ): codes from the float32 scales, saved as fp16; Q = what the checkpoint dequantizes to.
  if (f32) {
    const intCodes = transpose(codesT, cols, rows, new Uint8Array(rows * cols));
    storedScales(scales);
    return { Q: dequantizeCodes(intCodes, scales, zeros, gIdx, rows, cols), intCodes, scales, zeros, gIdx };
  }
  return { Q: transpose(Qt, cols, rows, new Float32Array(rows * cols)), intCodes: transpose(codesT, cols, rows, new Uint8Array(rows * cols)), scales, zeros, gIdx };
}
