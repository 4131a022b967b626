/**
 * AutoGPTQ `Quantizer` (auto_gptq/quantization/quantizer.py) for weights: per-row asymmetric / symmetric min-max
 * uniform quantization, optional MSE grid search. Params are float32 values (Math.fround) like torch's.
 * With `storage` the grid is also one the checkpoint holds exactly (see GridStorage).
 */
import { fail } from '../errors.ts';
import { f16ToF32, f32ToF16 } from '../tensor.ts';
import type { Arithmetic, CheckpointFormat, ScaleRounding } from './quantize-config.ts';

export interface FindParamsOptions {
  bits: number;
  sym: boolean;
  mse?: boolean;
  /** One (scale, zero) per row (default) or one for the whole slice, repeated per row. */
  perchannel?: boolean;
  norm?: number;
  grid?: number;
  maxshrink?: number;
  /** Constrain (scale, zero) to what the saved checkpoint stores exactly (default: AutoGPTQ's unconstrained params). */
  storage?: GridStorage;
  /**
   * sym only: put ±max|x| on the grid, scale = max|x| / (2^(bits−1) − 1) (zero 2^(bits−1), code 0 unused; llama.cpp's
   * Q8_0, the 8-bit lm-head). Default: AutoGPTQ's, scale = 2·max|x| / (2^bits − 1), so both extremes sit half a step
   * off the grid.
   */
  symFullRange?: boolean;
  /**
   * AutoGPTQ's torch arithmetic (QuantizeConfig `arithmetic: 'float32'`): the quotient x/scale is rounded to float32
   * before round-half-to-even and q = scale·(code − zero) is a float32 product, as torch computes float32 ÷ float32.
   * Default (false): the quotient in float64. Pass `storage.scaleF16: false` with it to get AutoGPTQ's float32 scales.
   */
  float32?: boolean;
  /**
   * mse only: column weights (length cols, ≥ 0): the search minimizes Σ weight[c]·(q(x) − x)² instead of
   * Σ|q(x) − x|^norm. GPTQ passes diag(H) of the group's columns (QuantizeConfig mseWeighting 'hessian').
   */
  colWeights?: ArrayLike<number>;
}

/**
 * What a GPTQ checkpoint can hold, so that the grid GPTQ's error feedback quantizes to is exactly the saved one
 * (dequantized(saved) == Q, bit for bit):
 * - scales are saved as float16 (AutoGPTQ QuantLinear buffers): each scale is rounded to fp16 before the zero point
 *   and the codes are computed from it (an fp16 subnormal-underflowing scale becomes 2^−24; one above 65504 is refused);
 * - v1 "gptq" qzeros store zero − 1 in a bits-wide field and every reader adds 1 back, so only zero ∈ [1, 2^bits − 1]
 *   round-trips (zero 0 would be stored as −1: AutoGPTQ's packer spills ones into the neighbouring fields, exllama /
 *   AutoGPTQ CUDA / gptqjs read 2^bits, AutoGPTQ's torch path reads (x+1) & maxq, GPTQModel's v1→v2 packed add
 *   carries into the next field). An asymmetric group whose min-max zero would be 0 (all weights ≥ 0, or the
 *   negative part under half a step) gets zero 1 and scale xmax / (maxq − 1) instead: the smallest min-max grid with
 *   zero 1 that still covers [xmin, xmax]. gptq_v2 (GPTQModel) stores zero itself: [0, 2^bits − 1], no constraint.
 * Sources: auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py pack() (`zeros -= 1`, uint32) and its torch dequant
 * (`zeros + 1`, `& maxq`); gptqmodel/utils/model.py convert_gptq_v1_to_v2_format_module / v2_to_v1 (packed ± 0x11111111,
 * "sym=False has underflow probability of ~<=13%").
 */
export interface GridStorage {
  /** Scales are rounded to float16 (as saved). */
  scaleF16: boolean;
  /** Smallest zero point the format round-trips: 1 for v1 "gptq", 0 for gptq_v2. */
  minZero: number;
  /** scaleF16: the largest fp16 below the scale instead of the nearest (QuantizeConfig scaleRounding 'down'). */
  scaleDown?: boolean;
}

/**
 * The grid constraints of a checkpoint format. Scales fp16 unless `arithmetic` is 'float32' (AutoGPTQ: the codes are
 * computed with the float32 scale, which is rounded to fp16 only when saved, see storedScales); the zero-point limit
 * of the format holds in both modes (a v1 zero point 0 cannot be stored).
 */
export function gridStorage(format: CheckpointFormat, arithmetic: Arithmetic = 'float64', scaleRounding: ScaleRounding = 'nearest'): GridStorage {
  return { scaleF16: arithmetic !== 'float32', minZero: format === 'gptq' ? 1 : 0, ...(scaleRounding === 'down' ? { scaleDown: true } : {}) };
}

/** Scales [groups, rows] rounded to the float16 values the checkpoint stores (storedScale), in place. */
export function storedScales(scales: Float32Array): Float32Array {
  for (let i = 0; i < scales.length; i++) {
    const h = f16ToF32(f32ToF16(scales[i]!));
    if (!Number.isFinite(h)) fail(`quantizer: scale ${scales[i]} is above float16's largest value 65504 (GPTQ checkpoints store scales as fp16)`);
    scales[i] = h === 0 ? F16_TINY : h;
  }
  return scales;
}

const F16_TINY = 2 ** -24;

/** The scale of a group spanning [xmin, xmax] as saved: the nearest float16, or with `down` the largest float16 below
 *  s (never 0: 2^−24 at least; an overflow is a one-line error). */
export function storedScale(s: number, xmin: number, xmax: number, down = false): number {
  let h = f16ToF32(f32ToF16(s));
  if (down && h >= s && h > F16_TINY) h = f16ToF32(f32ToF16(h) - 1); // positive fp16: bits − 1 = the next one below
  if (!Number.isFinite(h)) fail(`quantizer: a weight group spanning [${xmin}, ${xmax}] needs scale ${s}, above float16's largest value 65504 (GPTQ checkpoints store scales as fp16)`);
  return h === 0 ? F16_TINY : h;
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

/** Integer code clamp(round(x/scale) + zero, 0, maxq); `f32`: the quotient rounded to float32 first (torch). */
export function quantizeCode(x: number, scale: number, zero: number, maxq: number, f32 = false): number {
  const q = roundHalfEven(f32 ? fr(x / scale) : x / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/** AutoGPTQ `quantize`: scale·(clamp(round(x/scale) + zero, 0, maxq) − zero) (`f32`: in float32, as torch). */
export function quantize(x: number, scale: number, zero: number, maxq: number, f32 = false): number {
  const q = scale * (quantizeCode(x, scale, zero, maxq, f32) - zero);
  return f32 ? fr(q) : q;
}

/**
 * AutoGPTQ `quantize` on rows [r0, r1) of one weight column, stored contiguously (element r of the column at
 * x[xo + r]) with row r's (scale, zero) from `p`: codes[co + r] = clamp(round(x/scale) + zero, 0, maxq) and
 * q[qo + r] = scale·(code − zero). The column step of GPTQ (gptq.ts) and of RTN (rtn.ts). `f32`: torch's float32
 * quotient and product (x must hold float32 values).
 */
export function quantizeColumn(x: ArrayLike<number>, xo: number, p: QuantParams, r0: number, r1: number,
  codes: Uint8Array, co: number, q: Float32Array | Float64Array, qo: number, f32 = false): void {
  const sc = p.scale, zr = p.zero, maxq = p.maxq;
  if (f32) {
    for (let r = r0; r < r1; r++) {
      const s = sc[r]!, z = zr[r]!, c = quantizeCode(x[xo + r]!, s, z, maxq, true);
      codes[co + r] = c;
      q[qo + r] = fr(s * (c - z));
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const s = sc[r]!, z = zr[r]!, c = quantizeCode(x[xo + r]!, s, z, maxq);
    codes[co + r] = c;
    q[qo + r] = s * (c - z);
  }
}

/** (scale, zero) of the range [xmin, xmax] (xmin ≤ 0 ≤ xmax): find_params' rule, then the storage constraints. */
function gridOf(xmin: number, xmax: number, maxq: number, sym: boolean, st?: GridStorage, full?: boolean): [scale: number, zero: number] {
  let scale = sym && full ? fr(xmax / (maxq >> 1)) : fr(fr(xmax - xmin) / maxq);
  if (st?.scaleF16) scale = storedScale(scale, xmin, xmax, st.scaleDown);
  let zero = sym ? (maxq + 1) / 2 : roundHalfEven(fr(-xmin / scale));
  if (st && zero < st.minZero) { // asym only (sym zero is 2^(bits−1)); here xmax > 0 and −xmin < scale/2
    zero = st.minZero;
    scale = fr(xmax / (maxq - zero));
    if (st.scaleF16) scale = storedScale(scale, xmin, xmax, st.scaleDown);
  }
  return [scale, zero];
}

/** scale/zero from a row's (min, max), exactly as find_params does (float32 arithmetic). */
function paramsOf(mn: number, mx: number, maxq: number, sym: boolean, st?: GridStorage, full?: boolean): [xmin: number, xmax: number, scale: number, zero: number] {
  let xmin = Math.min(fr(mn), 0), xmax = Math.max(fr(mx), 0);
  if (sym) {
    xmax = Math.max(Math.abs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin === 0 && xmax === 0) { xmin = -1; xmax = 1; }
  return [xmin, xmax, ...gridOf(xmin, xmax, maxq, sym, st, full)];
}

/**
 * Quantizer.find_params(x, weight=True) for a rows×cols slice: per row xmin=min(0,min), xmax=max(0,max);
 * sym: xmax=max(|xmin|,xmax), xmin=−xmax if xmin<0; both 0 → ±1; scale=(xmax−xmin)/maxq;
 * zero = sym ? (maxq+1)/2 : round(−xmin/scale). mse: shrink the range p = 1 − i/grid, i < maxshrink·grid,
 * keeping the (scale, zero) with the smallest Σ|q(x)−x|^norm. `o.storage`: every candidate grid is constrained first.
 * The error sum is float64 in both arithmetics (torch sums float32 |q−x|^2.4 in an order of its own, so with
 * `o.float32` two candidates whose errors agree to float32 precision may be chosen differently than AutoGPTQ does).
 */
export function findParams(x: ArrayLike<number>, rows: number, cols: number, o: FindParamsOptions, lay: SliceLayout = {}): QuantParams {
  const maxq = 2 ** o.bits - 1;
  const off = lay.offset ?? 0, rs = lay.rowStride ?? cols, cs = lay.colStride ?? 1;
  const perchannel = o.perchannel ?? true;
  const n = perchannel ? rows : 1;
  const mn = new Float64Array(rows), mx = new Float64Array(rows);
  rowRanges(x, rows, cols, off, rs, cs, mn, mx);
  if (!perchannel) for (let r = 1; r < rows; r++) { mn[0] = Math.min(mn[0]!, mn[r]!); mx[0] = Math.max(mx[0]!, mx[r]!); }
  const scale = new Float32Array(rows), zero = new Float32Array(rows);
  const vals = new Float64Array(perchannel ? cols : rows * cols);
  for (let k = 0; k < n; k++) {
    const [xmin, xmax, s0, z0] = paramsOf(mn[k]!, mx[k]!, maxq, o.sym, o.storage, o.symFullRange);
    let s = s0, z = z0;
    if (o.mse) {
      const f32 = !!o.float32, cw = o.colWeights;
      const norm = o.norm ?? 2.4, grid = o.grid ?? 100, steps = Math.trunc((o.maxshrink ?? 0.8) * grid);
      let m = 0;
      for (let r = perchannel ? k : 0; r < (perchannel ? k + 1 : rows); r++) for (let c = 0; c < cols; c++) vals[m++] = x[off + r * rs + c * cs]!;
      let best = Infinity;
      for (let i = 0; i < steps; i++) {
        const p = fr(1 - i / grid);
        const xmin1 = fr(p * xmin), xmax1 = fr(p * xmax);
        const [s1, z1] = gridOf(xmin1, xmax1, maxq, o.sym, o.storage, o.symFullRange); // sym: z1 = z0, as AutoGPTQ
        // Terms are ≥ 0, so a partial sum ≥ best already loses (the same choice as the full sum, 2-4× fewer powers).
        let err = 0;
        if (cw) for (let t = 0; t < m && err < best; t++) { const v = vals[t]!, e = quantize(v, s1, z1, maxq, f32) - v; err += cw[t % cols]! * e * e; }
        else for (let t = 0; t < m && err < best; t++) { const v = vals[t]!; err += Math.abs(quantize(v, s1, z1, maxq, f32) - v) ** norm; }
        if (err < best) { best = err; s = s1; z = z1; }
      }
    }
    if (perchannel) { scale[k] = s; zero[k] = z; } else { scale.fill(s); zero.fill(z); }
  }
  return { scale, zero, maxq };
}

/**
 * mn[r] / mx[r] = min / max of row r of a slice (element (r, c) at x[off + r·rs + c·cs]; ±Infinity for an empty row;
 * NaN is skipped). Four rows at a time in registers, in either layout: 32 groups of 128 × 5504 float64 in 51 ms,
 * against 74-83 ms one row at a time or column by column over all rows (Node 20).
 */
function rowRanges(x: ArrayLike<number>, rows: number, cols: number, off: number, rs: number, cs: number, mn: Float64Array, mx: Float64Array): void {
  let r = 0;
  for (; r + 3 < rows; r += 4) {
    let l0 = Infinity, l1 = Infinity, l2 = Infinity, l3 = Infinity, h0 = -Infinity, h1 = -Infinity, h2 = -Infinity, h3 = -Infinity;
    for (let c = 0, o = off + r * rs; c < cols; c++, o += cs) {
      const v0 = x[o]!, v1 = x[o + rs]!, v2 = x[o + 2 * rs]!, v3 = x[o + 3 * rs]!;
      if (v0 < l0) l0 = v0; if (v0 > h0) h0 = v0; if (v1 < l1) l1 = v1; if (v1 > h1) h1 = v1;
      if (v2 < l2) l2 = v2; if (v2 > h2) h2 = v2; if (v3 < l3) l3 = v3; if (v3 > h3) h3 = v3;
    }
    mn[r] = l0; mn[r + 1] = l1; mn[r + 2] = l2; mn[r + 3] = l3; mx[r] = h0; mx[r + 1] = h1; mx[r + 2] = h2; mx[r + 3] = h3;
  }
  for (; r < rows; r++) {
    let lo = Infinity, hi = -Infinity;
    for (let c = 0, o = off + r * rs; c < cols; c++, o += cs) { const v = x[o]!; if (v < lo) lo = v; if (v > hi) hi = v; }
    mn[r] = lo; mx[r] = hi;
  }
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
