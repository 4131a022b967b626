/** Minimal host tensor: a typed array plus shape. Row-major. */
export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type TypedArray =
  | Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  /** F16/BF16 are stored as raw Uint16Array bit patterns; BOOL as Uint8Array. */
  data: TypedArray;
}

export const DTYPE_BYTES: Record<DType, number> = {
  F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits → float. (Normal values by their float32 bits: `2 ** (e − 15)` made this ~10× slower.) */
export function f16ToF32(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return (h & 0x8000 ? -m : m) * 5.960464477539063e-8; // subnormal: m·2^−24
  if (e === 31) return m ? NaN : h & 0x8000 ? -Infinity : Infinity;
  u32[0] = ((h & 0x8000) << 16) | ((e + 112) << 23) | (m << 13); // exponent e − 15 + 127
  return f32[0]!;
}

/** float → IEEE half bits, round-to-nearest-even (matches torch .half()). */
export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 31) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Any float tensor (F32/F16/BF16/F64) → new Float32Array. */
export function toFloat32(t: Tensor): Float32Array {
  const n = t.data.length;
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F64': return Float32Array.from(t.data as Float64Array);
    case 'F16': { const o = new Float32Array(n); const d = t.data as Uint16Array; for (let i = 0; i < n; i++) o[i] = f16ToF32(d[i]!); return o; }
    case 'BF16': { const o = new Float32Array(n); const d = t.data as Uint16Array; const ou = new Uint32Array(o.buffer); for (let i = 0; i < n; i++) ou[i] = d[i]! << 16; return o; }
    default: throw new Error(`toFloat32: dtype ${t.dtype} is not a float type`);
  }
}

export function f32Tensor(shape: number[], data?: Float32Array): Tensor {
  return { dtype: 'F32', shape, data: data ?? new Float32Array(numel(shape)) };
}

/** Float32Array → F16 bits. */
export function toF16Bits(a: ArrayLike<number>): Uint16Array {
  const o = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = f32ToF16(a[i]!);
  return o;
}

/** No NaN/Inf in `a`: float32 values, or float16 bit patterns in a Uint16Array (exponent all ones). */
export function allFinite(a: Float32Array | Uint16Array): boolean {
  if (a instanceof Uint16Array) { for (let i = 0; i < a.length; i++) if ((a[i]! & 0x7c00) === 0x7c00) return false; return true; }
  return firstNonFinite(a) < 0;
}

/**
 * Makes the n×n row-major `h` symmetric from one of its triangles: `from` 'upper' copies the strict upper triangle
 * onto the lower one, 'lower' the lower onto the upper (the diagonal stays). In 64×64 tiles, so the column-wise side
 * stays in cache.
 */
export function mirrorTriangle(h: Float32Array | Float64Array, n: number, from: 'upper' | 'lower'): void {
  const T = 64, up = from === 'upper';
  for (let i0 = 0; i0 < n; i0 += T) for (let j0 = 0; j0 <= i0; j0 += T) {
    const i1 = Math.min(i0 + T, n), j1 = Math.min(j0 + T, n);
    for (let i = i0; i < i1; i++) {
      const o = i * n, je = Math.min(j1, i);
      if (up) for (let j = j0; j < je; j++) h[o + j] = h[j * n + i]!;
      else for (let j = j0; j < je; j++) h[j * n + i] = h[o + j]!;
    }
  }
}

/**
 * Index of the first NaN/±Inf of `a`, or −1. x·0 is 0 for every finite x and NaN otherwise, so a block's sum of x·0
 * is 0 exactly when the block is finite: one multiply-add per element, no branch, in four independent sums (12 vs
 * 21 ms for Number.isFinite per element on 4096², 2-core Zen 3; bench/nonfinite.ts times it on a 7B embedding).
 */
export function firstNonFinite(a: Float32Array): number {
  const B = 8192;
  for (let i = 0; i < a.length; i += B) {
    const e = Math.min(a.length, i + B);
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = i;
    for (; k + 3 < e; k += 4) { s0 += a[k]! * 0; s1 += a[k + 1]! * 0; s2 += a[k + 2]! * 0; s3 += a[k + 3]! * 0; }
    for (; k < e; k++) s0 += a[k]! * 0;
    if (s0 + s1 + s2 + s3 !== 0) for (k = i; k < e; k++) if (!Number.isFinite(a[k]!)) return k;
  }
  return -1;
}

/**
 * dst[j, i] = src[r(i), c(j)] for src [rows, cols] row-major, dst [cols, rows]: a transpose, optionally gathering rows
 * (`rowOrder`: r(i) = rowOrder[i]) and columns (`colOrder`) of src, or of a block of a wider matrix (`stride`: src's
 * row stride, default cols), into a block of a wider matrix (`dstStride`: dst's row stride, default rows). Values are
 * assigned as they are (dst's element type converts). Returns dst.
 * Eight source rows at a time, each read along its columns, so every column writes eight consecutive values of dst:
 * 31 ms against 82 ms for 64×64 tiles at 5504×4096 float32 (Node 20).
 */
export function transpose<T extends { [k: number]: number; length: number }>(src: ArrayLike<number>, rows: number, cols: number, dst: T,
  o: { rowOrder?: ArrayLike<number>; colOrder?: ArrayLike<number>; stride?: number; dstStride?: number } = {}): T {
  const ro = o.rowOrder, co = o.colOrder, st = o.stride ?? cols, ds = o.dstStride ?? rows, row = (i: number) => (ro ? ro[i]! : i) * st;
  let i = 0;
  for (; i + 7 < rows; i += 8) {
    const a0 = row(i), a1 = row(i + 1), a2 = row(i + 2), a3 = row(i + 3), a4 = row(i + 4), a5 = row(i + 5), a6 = row(i + 6), a7 = row(i + 7);
    for (let j = 0; j < cols; j++) {
      const c = co ? co[j]! : j, d = j * ds + i;
      dst[d] = src[a0 + c]!; dst[d + 1] = src[a1 + c]!; dst[d + 2] = src[a2 + c]!; dst[d + 3] = src[a3 + c]!;
      dst[d + 4] = src[a4 + c]!; dst[d + 5] = src[a5 + c]!; dst[d + 6] = src[a6 + c]!; dst[d + 7] = src[a7 + c]!;
    }
  }
  for (; i < rows; i++) { const a = row(i); for (let j = 0; j < cols; j++) dst[j * ds + i] = src[a + (co ? co[j]! : j)]!; }
  return dst;
}
