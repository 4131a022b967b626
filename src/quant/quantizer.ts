/**
 * AutoGPTQ `Quantizer` (auto_gptq/quantization/quantizer.py) for weights: per-row asymmetric / symmetric min-max
 * uniform quantization, optional MSE grid search. Params are float32 values (Math.fround) like torch's.
 */

export interface FindParamsOptions {
  bits: number;
  sym: boolean;
  mse?: boolean;
  /** One (scale, zero) per row (default) or one for the whole slice, repeated per row. */
  perchannel?: boolean;
  norm?: number;
  grid?: number;
  maxshrink?: number;
}

/** Where element (r, c) of the slice lives: data[offset + r·rowStride + c·colStride]. Default: dense row-major. */
export interface SliceLayout { offset?: number; rowStride?: number; colStride?: number }

export interface QuantParams { scale: Float32Array; zero: Float32Array; maxq: number }

const fr = Math.fround;

/** torch.round: round half to even. (floor(x + 0.5) with the overshoot / odd-tie fix; faster than Math.round in V8.) */
export function roundHalfEven(x: number): number {
  let q = Math.floor(x + 0.5);
  const t = q - x;
  if (t > 0.5 || (t === 0.5 && (q & 1) !== 0)) q -= 1;
  return q;
}

/** Integer code clamp(round(x/scale) + zero, 0, maxq). */
export function quantizeCode(x: number, scale: number, zero: number, maxq: number): number {
  const q = roundHalfEven(x / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/** AutoGPTQ `quantize`: scale·(clamp(round(x/scale) + zero, 0, maxq) − zero). */
export function quantize(x: number, scale: number, zero: number, maxq: number): number {
  return scale * (quantizeCode(x, scale, zero, maxq) - zero);
}

/** scale/zero from a row's (min, max), exactly as find_params does (float32 arithmetic). */
function paramsOf(mn: number, mx: number, maxq: number, sym: boolean): [xmin: number, xmax: number, scale: number, zero: number] {
  let xmin = Math.min(fr(mn), 0), xmax = Math.max(fr(mx), 0);
  if (sym) {
    xmax = Math.max(Math.abs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; }
  const scale = fr(fr(xmax - xmin) / maxq);
  const zero = sym ? (maxq + 1) / 2 : roundHalfEven(fr(-xmin / scale));
  return [xmin, xmax, scale, zero];
}

/**
 * Quantizer.find_params(x, weight=True) for a rows×cols slice: per row xmin=min(0,min), xmax=max(0,max);
 * sym: xmax=max(|xmin|,xmax), xmin=−xmax if xmin<0; both 0 → ±1; scale=(xmax−xmin)/maxq;
 * zero = sym ? (maxq+1)/2 : round(−xmin/scale). mse: shrink the range p = 1 − i/grid, i < maxshrink·grid,
 * keeping the (scale, zero) with the smallest Σ|q(x)−x|^norm.
 */
export function findParams(x: ArrayLike<number>, rows: number, cols: number, o: FindParamsOptions, lay: SliceLayout = {}): QuantParams {
  const maxq = 2 ** o.bits - 1;
  const off = lay.offset ?? 0, rs = lay.rowStride ?? cols, cs = lay.colStride ?? 1;
  const perchannel = o.perchannel ?? true;
  const n = perchannel ? rows : 1;
  const mn = new Float64Array(rows).fill(Infinity), mx = new Float64Array(rows).fill(-Infinity);
  if (Math.abs(rs) <= Math.abs(cs)) { // rows contiguous (a transposed slice): sweep columns, vectorized over rows
    for (let c = 0; c < cols; c++) {
      const o = off + c * cs;
      for (let r = 0; r < rows; r++) { const v = x[o + r * rs]!; if (v < mn[r]!) mn[r] = v; if (v > mx[r]!) mx[r] = v; }
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const o = off + r * rs;
      let lo = Infinity, hi = -Infinity;
      for (let c = 0; c < cols; c++) { const v = x[o + c * cs]!; if (v < lo) lo = v; if (v > hi) hi = v; }
      mn[r] = lo; mx[r] = hi;
    }
  }
  if (!perchannel) for (let r = 1; r < rows; r++) { mn[0] = Math.min(mn[0]!, mn[r]!); mx[0] = Math.max(mx[0]!, mx[r]!); }
  const scale = new Float32Array(rows), zero = new Float32Array(rows);
  const vals = new Float64Array(perchannel ? cols : rows * cols);
  for (let k = 0; k < n; k++) {
    const [xmin, xmax, s0, z0] = paramsOf(mn[k]!, mx[k]!, maxq, o.sym);
    let s = s0, z = z0;
    if (o.mse) {
      const norm = o.norm ?? 2.4, grid = o.grid ?? 100, steps = Math.trunc((o.maxshrink ?? 0.8) * grid);
      let m = 0;
      for (let r = perchannel ? k : 0; r < (perchannel ? k + 1 : rows); r++) for (let c = 0; c < cols; c++) vals[m++] = x[off + r * rs + c * cs]!;
      let best = Infinity;
      for (let i = 0; i < steps; i++) {
        const p = fr(1 - i / grid);
        const xmin1 = fr(p * xmin), xmax1 = fr(p * xmax);
        const s1 = fr(fr(xmax1 - xmin1) / maxq);
        const z1 = o.sym ? z0 : roundHalfEven(fr(-xmin1 / s1));
        let err = 0;
        for (let t = 0; t < m; t++) { const v = vals[t]!; err += Math.abs(quantize(v, s1, z1, maxq) - v) ** norm; }
        if (err < best) { best = err; s = s1; z = z1; }
      }
    }
    if (perchannel) { scale[k] = s; zero[k] = z; } else { scale.fill(s); zero.fill(z); }
  }
  return { scale, zero, maxq };
}

/** W = scale·(q − zero) in float32, [rows, cols] from codes [rows, cols] and scales/zeros [groups, rows] by g_idx. */
export function dequantizeCodes(codes: Uint8Array, scales: Float32Array, zeros: Int32Array, gIdx: Int32Array, rows: number, cols: number, transposed = false): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) {
    const g = gIdx[j]! * rows + r;
    out[transposed ? j * rows + r : r * cols + j] = scales[g]! * (codes[r * cols + j]! - zeros[g]!);
  }
  return out;
}
