/** Round-to-nearest baseline: per-group min-max params, no error feedback (what GPTQ is compared against). */
import type { QuantizeConfig } from './config.ts';
import { findParams, gridStorage, quantizeCode } from './quantizer.ts';

/** Same grid constraints as GPTQ (fp16 scales, zero points the format stores; see GridStorage). */
export function rtnQuantize(W: Float32Array, rows: number, cols: number, cfg: Pick<QuantizeConfig, 'bits' | 'groupSize' | 'sym' | 'mse'> & Partial<Pick<QuantizeConfig, 'checkpointFormat'>>) {
  const gs = cfg.groupSize > 0 ? cfg.groupSize : cols;
  const groups = Math.ceil(cols / gs);
  const Q = new Float32Array(rows * cols), intCodes = new Uint8Array(rows * cols);
  const scales = new Float32Array(groups * rows), zeros = new Int32Array(groups * rows);
  const gIdx = Int32Array.from({ length: cols }, (_, j) => Math.floor(j / gs));
  for (let g = 0; g < groups; g++) {
    const c0 = g * gs, w = Math.min(gs, cols - c0);
    const p = findParams(W, rows, w, { bits: cfg.bits, sym: cfg.sym, mse: cfg.mse, storage: gridStorage(cfg.checkpointFormat ?? 'gptq') }, { offset: c0, rowStride: cols });
    for (let r = 0; r < rows; r++) {
      const s = p.scale[r]!, z = p.zero[r]!;
      scales[g * rows + r] = s; zeros[g * rows + r] = z;
      for (let c = c0; c < c0 + w; c++) {
        const q = quantizeCode(W[r * cols + c]!, s, z, p.maxq);
        intCodes[r * cols + c] = q; Q[r * cols + c] = s * (q - z);
      }
    }
  }
  return { Q, intCodes, scales, zeros, gIdx };
}
