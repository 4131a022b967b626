/**
 * Test oracle: GPTQ straight from the paper, float64, no blocking, no lazy batching. H⁻¹ as AutoGPTQ builds it
 * (cholesky → cholesky_inverse → cholesky upper), each column's OBS update applied at once to all later columns.
 * The only trace of blocking is AutoGPTQ's semantics for group params: find_params sees W as it was at the start of
 * the current blockSize block (in exact arithmetic the lazy-batched W equals the fully updated one there).
 * Self-contained on purpose: shares no code with src/quant.
 */
export interface RefConfig {
  bits: number; groupSize: number; descAct: boolean; staticGroups: boolean; sym: boolean; dampPercent: number; blockSize: number;
  /** Saved format (default 'gptq'): v1 stores zero − 1, so its zero points are ≥ 1. */
  checkpointFormat?: 'gptq' | 'gptq_v2';
}
export interface RefResult { codes: Uint8Array; Q: Float64Array; scales: Float64Array; zeros: Float64Array; gIdx: Int32Array; loss: number; perm: number[] }

const f32 = Math.fround;
const rne = (x: number) => { const r = Math.round(x); return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r; };

/**
 * Nearest IEEE half value of a positive float (ties to even), from its binary exponent: 11 significant bits for
 * normals, steps of 2^−24 below 2^−14. (Written independently of src/tensor.ts's bit manipulation.)
 */
export function refF16(x: number): number {
  let e = Math.floor(Math.log2(x));
  if (2 ** e > x) e--; // Math.log2 may round across a power of two
  if (2 ** (e + 1) <= x) e++;
  const r = rne(x / 2 ** (Math.max(e, -14) - 10)) * 2 ** (Math.max(e, -14) - 10);
  return r > 65504 ? Infinity : r;
}

/**
 * (scale, zero) of one row of values: AutoGPTQ min/max rule with float32 params, then as saved: scale rounded to
 * fp16 (never below 2^−24) before the zero is taken from it; an asym zero below minZero (v1: 1) becomes minZero with
 * scale xmax / (maxq − minZero).
 */
function rowParams(v: number[], maxq: number, sym: boolean, minZero: number): [number, number] {
  let lo = Math.min(0, ...v), hi = Math.max(0, ...v);
  if (sym) { hi = Math.max(-lo, hi); if (lo < 0) lo = -hi; }
  if (lo === 0 && hi === 0) { lo = -1; hi = 1; }
  const half = (s: number) => Math.max(refF16(s), 2 ** -24);
  let scale = half(f32(f32(hi - lo) / maxq));
  let zero = sym ? (maxq + 1) / 2 : rne(f32(-lo / scale)) + 0; // (+ 0: −0 when lo = 0)
  if (zero < minZero) { zero = minZero; scale = half(f32(hi / (maxq - minZero))); }
  return [scale, zero];
}

function cholLower(A: number[][]): number[][] | null {
  const n = A.length, L = A.map(() => new Array<number>(n).fill(0));
  for (let j = 0; j < n; j++) {
    let s = A[j]![j]!;
    for (let k = 0; k < j; k++) s -= L[j]![k]! ** 2;
    if (!(s > 0)) return null;
    L[j]![j] = Math.sqrt(s);
    for (let i = j + 1; i < n; i++) {
      let t = A[i]![j]!;
      for (let k = 0; k < j; k++) t -= L[i]![k]! * L[j]![k]!;
      L[i]![j] = t / L[j]![j]!;
    }
  }
  return L;
}

/** Upper Cholesky factor of H⁻¹, the AutoGPTQ way; null if H is not PD. */
export function refHinv(H: number[][]): number[][] | null {
  const n = H.length, L = cholLower(H);
  if (!L) return null;
  // cholesky_inverse: H⁻¹ = L⁻ᵀ L⁻¹; columns of L⁻¹ by forward substitution.
  const Li = H.map(() => new Array<number>(n).fill(0));
  for (let j = 0; j < n; j++) for (let i = j; i < n; i++) {
    let t = i === j ? 1 : 0;
    for (let k = j; k < i; k++) t -= L[i]![k]! * Li[k]![j]!;
    Li[i]![j] = t / L[i]![i]!;
  }
  const Hi = H.map(() => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) {
    let t = 0;
    for (let k = i; k < n; k++) t += Li[k]![i]! * Li[k]![j]!;
    Hi[i]![j] = Hi[j]![i] = t;
  }
  const L2 = cholLower(Hi);
  if (!L2) return null;
  return H.map((_, i) => H.map((__, j) => (j >= i ? L2[j]![i]! : 0)));
}

export function gptqReference(Wf: Float32Array, Hf: Float32Array, rows: number, cols: number, cfg: RefConfig): RefResult {
  const n = cols, maxq = 2 ** cfg.bits - 1, gs = cfg.groupSize, minZero = (cfg.checkpointFormat ?? 'gptq') === 'gptq' ? 1 : 0;
  let W = Array.from({ length: rows }, (_, r) => Array.from(Wf.subarray(r * n, (r + 1) * n)));
  let H = Array.from({ length: n }, (_, i) => Array.from(Hf.subarray(i * n, (i + 1) * n)));
  const p0 = gs === -1 ? W.map((row) => rowParams(row, maxq, cfg.sym, minZero)) : [];
  for (let j = 0; j < n; j++) if (H[j]![j] === 0) { H[j]![j] = 1; for (const row of W) row[j] = 0; }
  const statics: [number, number][][] = [];
  if (cfg.staticGroups) for (let c = 0; c < n; c += gs) statics.push(W.map((row) => rowParams(row.slice(c, c + gs), maxq, cfg.sym, minZero)));
  const perm = [...Array(n).keys()];
  if (cfg.descAct) perm.sort((a, b) => H[b]![b]! - H[a]![a]! || a - b);
  W = W.map((row) => perm.map((j) => row[j]!));
  H = perm.map((a) => perm.map((b) => H[a]![b]!));
  let mean = 0;
  for (let j = 0; j < n; j++) mean += H[j]![j]!;
  mean /= n;
  for (let j = 0; j < n; j++) H[j]![j] = H[j]![j]! + cfg.dampPercent * mean;
  const U = refHinv(H);
  if (!U) throw new Error('reference: H not PD');

  const codes = new Uint8Array(rows * n), Q = new Float64Array(rows * n);
  const dyn: [number, number][][] = [];
  let snap = W, loss = 0;
  for (let c = 0; c < n; c++) {
    if (c % cfg.blockSize === 0) snap = W.map((row) => row.slice());
    if (gs > 0 && !cfg.staticGroups && c % gs === 0) dyn.push(snap.map((row) => rowParams(row.slice(c, c + gs), maxq, cfg.sym, minZero)));
    const d = U[c]![c]!;
    for (let r = 0; r < rows; r++) {
      const [s, z] = gs === -1 ? p0[r]! : cfg.staticGroups ? statics[Math.floor(perm[c]! / gs)]![r]! : dyn[Math.floor(c / gs)]![r]!;
      const w = W[r]![c]!;
      const q = Math.min(maxq, Math.max(0, rne(w / s) + z));
      const deq = s * (q - z), err = (w - deq) / d;
      codes[r * n + perm[c]!] = q;
      Q[r * n + perm[c]!] = deq;
      loss += (err * err) / 2;
      const row = W[r]!, Uc = U[c]!;
      for (let j = c + 1; j < n; j++) row[j] = row[j]! - err * Uc[j]!;
    }
  }
  const plist = gs === -1 ? [p0] : cfg.staticGroups ? statics : dyn;
  const scales = new Float64Array(plist.length * rows), zeros = new Float64Array(plist.length * rows);
  plist.forEach((g, k) => g.forEach(([s, z], r) => { scales[k * rows + r] = s; zeros[k * rows + r] = z; }));
  const gIdx = new Int32Array(n);
  if (gs > 0) for (let c = 0; c < n; c++) gIdx[perm[c]!] = Math.floor((cfg.staticGroups ? perm[c]! : c) / gs);
  return { codes, Q, scales, zeros, gIdx, loss, perm };
}
