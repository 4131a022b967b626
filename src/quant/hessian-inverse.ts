/**
 * The Hessian inverse GPTQ uses: Hinv = cholesky(H⁻¹, upper), the upper Cholesky factor of the inverse of the damped
 * Hessian (AutoGPTQ fasterquant: torch.linalg.cholesky → cholesky_inverse → cholesky(upper=True)), computed without
 * forming H⁻¹ and in H's own buffer, blocked so the big products are ORT GEMMs (graph/linalg.ts) and only panel-sized
 * blocks are done in float64 TS.
 *
 * Why it is the same matrix: with H = V·Vᵀ for V upper triangular (the "reverse" Cholesky factor, columns right to
 * left), H⁻¹ = V⁻ᵀ·V⁻¹ = Uᵀ·U with U = V⁻¹ upper triangular, which is the unique upper Cholesky factor of H⁻¹.
 * From 4 panels on, GPTQ's solve takes the "panel form" (hinvFactorInPlace with full = false; gptq.ts factorPlan):
 * U on the diagonal panels, V above them, i.e. the factorization without its U pass (gptq.ts solveRows uses V there).
 */
import { matmul, operand, type Operand } from '../graph/linalg.ts';

/**
 * Hinv = upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) without forming H⁻¹, in place: with H = V·Vᵀ, V upper
 * ("reverse" Cholesky), U = V⁻¹. M holds H in its upper triangle (diagonal damped); on return the upper triangle is U.
 * The strict lower triangle is never read or written (it keeps H for a damp retry). n ≤ P: in float64 TS (reverse
 * Cholesky, then triangular inverse). Else blocked by panels of P columns (panel starts 0, P, 2P, …: the last,
 * rightmost one short when P ∤ n):
 *   V: right to left, left-looking: H[0:k1, K] −= V[0:k1, R]·V[K, R]ᵀ for R all columns right of K (one ORT product
 *      per row block, subtracted from the panel's copy: M keeps H until its panel comes), then U_KK = V_KK⁻¹ of the
 *      diagonal block by this same function (panels of max(64, P/4) when P > 64, so the float64 TS leaves stay ≤ 64
 *      wide), kept in M's diagonal block, and V_TK = H_TK·U_KKᵀ (U_KK triangular: two products, ¾ of the multiply-adds)
 *   U: left to right over the same blocks, U_TJ = −U_TT·V_TJ·U_JJ
 * The products are ORT GEMMs on panel-sized copies, so the only extra memory is O(n·P). Returns false if H is not PD.
 */
export async function hinvUpperInPlace(M: Operand, n: number, P: number, f64: boolean): Promise<boolean> {
  return (await hinvFactorInPlace(M, n, P, f64, true)) !== null;
}

/**
 * hinvUpperInPlace, or with `full` false its V pass alone (a third of the work less at n = 4096, P = 1024): the
 * "panel form" of Hinv, where M's upper triangle holds Hinv's diagonal P-blocks U_KK (the same values as the full form)
 * and, above them, V (H = V·Vᵀ) instead of U. GPTQ's solve works from that form directly (gptq.ts, solveRows: the errors
 * of earlier panels enter through V and the weights' own residuals, W − Q, instead of through U). Returns the panel
 * starts (ascending; [0] when n ≤ P, where both forms are the same matrix), or null if H is not positive definite.
 */
export async function hinvFactorInPlace(M: Operand, n: number, P: number, f64: boolean, full: boolean): Promise<number[] | null> {
  if (n <= P) { // one panel: float64 TS, reverse Cholesky then triangular inverse
    const V = revCholDirect(upperOf(M, n), n);
    if (!V) return null;
    putUpper(M, n, invUpperDirect(V, n));
    return [0];
  }
  const RP = ROW_BLOCK;
  // Scratch reused by every step (no per-step garbage): two n×P panels, an RP×n row block, an RP×P product, a P×P
  // block and a (P/2)² one.
  const pw = Math.min(P, n), P1 = operand(f64, n * pw), P2 = operand(f64, n * pw), RB = operand(f64, Math.min(RP, n) * n), T = operand(f64, Math.min(RP, n) * pw);
  const D = operand(f64, pw * pw), E = operand(f64, (pw - (pw >> 1)) ** 2);
  /** M's diagonal block [k0, k0+b) as a dense upper-triangular operand (zeros below the diagonal) in D. */
  const diagUpper = (k0: number, b: number) => {
    const X = D.subarray(0, b * b);
    for (let i = 0; i < b; i++) { X.fill(0, i * b, i * b + i); X.set(M.subarray((k0 + i) * n + k0 + i, (k0 + i) * n + k0 + b), i * b + i); }
    return X;
  };
  const panel = (rows: number, c0: number, b: number) => { // M[0:rows, c0:c0+b] → P1
    for (let i = 0; i < rows; i++) P1.set(M.subarray(i * n + c0, i * n + c0 + b), i * b);
    return P1.subarray(0, rows * b);
  };
  const putPanel = (X: Operand, rows: number, c0: number, b: number, r0 = 0) => { for (let i = 0; i < rows; i++) M.set(X.subarray(i * b, (i + 1) * b), (r0 + i) * n + c0); };
  // rows [i0, i1) of M's upper triangle over columns [i0, c1) → RB, zero left of the diagonal
  const rowBlock = (i0: number, i1: number, c1: number) => {
    const w = c1 - i0;
    for (let i = i0; i < i1; i++) {
      RB.set(M.subarray(i * n + i0, i * n + c1), (i - i0) * w);
      RB.fill(0, (i - i0) * w, (i - i0) * w + (i - i0));
    }
    return RB.subarray(0, (i1 - i0) * w);
  };
  const child = P > LEAF ? Math.max(LEAF, P >> 2) : P; // panel width of the diagonal blocks' own factorization

  const starts: number[] = []; // panel starts, left to right (the last panel is the short one)
  for (let k0 = 0; k0 < n; k0 += P) starts.push(k0);
  for (let s = starts.length - 1; s >= 0; s--) { // V, right to left; the diagonal blocks get U_KK = V_KK⁻¹ directly (recursion)
    const k0 = starts[s]!, k1 = starts[s + 1] ?? n, b = k1 - k0, r = n - k1;
    const A = panel(k1, k0, b); // H[0:k1, K]
    const h = b >> 1, e = b - h; // K's halves (the triangular blocks are split once: two products, not one)
    if (r > 0) { // left-looking: A −= V[0:k1, R]·V[K, R]ᵀ, the panels R = [k1, n) right of K at once
      const VK = P2.subarray(0, b * r);
      for (let i = 0; i < b; i++) VK.set(M.subarray((k0 + i) * n + k1, (k0 + i + 1) * n), i * r);
      // A[r0:r1, c:b] −= V[r0:r1, R]·V[k0+c:k1, R]ᵀ, RP rows per product (by ORT into T, subtracted here)
      const update = async (r0: number, r1: number, c: number): Promise<void> => {
        const VKc = VK.subarray(c * r), w = b - c;
        for (let i0 = r0; i0 < r1; i0 += RP) {
          const i1 = Math.min(i0 + RP, r1), VT = RB.subarray(0, (i1 - i0) * r);
          for (let i = i0; i < i1; i++) VT.set(M.subarray(i * n + k1, (i + 1) * n), (i - i0) * r);
          const G = await matmul(VT, VKc, i1 - i0, r, w, { transB: true, out: T });
          subRows(A, i0 * b + c, b, G, w, i1 - i0);
        }
      };
      await update(0, k0 + h, 0); // rows above K and K's top half: all of K's columns
      await update(k0 + h, k1, h); // K's bottom half: only its right half (H_KK's upper triangle is what is read)
    }
    const B = D.subarray(0, b * b);
    for (let i = 0; i < b; i++) { B.fill(0, i * b, i * b + i); B.set(A.subarray((k0 + i) * b + i, (k0 + i + 1) * b), i * b + i); } // upper triangle of H_KK
    if (!(await hinvUpperInPlace(B, b, child, f64))) return null;
    for (let i = 0; i < b; i++) M.set(B.subarray(i * b + i, (i + 1) * b), (k0 + i) * n + k0 + i);
    if (k0 > 0) { // V_TK = H_TK·U_KKᵀ, U_KK upper triangular: its top rows times all of H_TK, its bottom-right block times H_TK's right part
      const Y1 = await matmul(A.subarray(0, k0 * b), B.subarray(0, h * b), k0, b, h, { transB: true, out: P2 });
      putPanel(Y1, k0, k0, h);
      const Ar = P2.subarray(0, k0 * e), Ue = E.subarray(0, e * e);
      for (let i = 0; i < k0; i++) Ar.set(A.subarray(i * b + h, (i + 1) * b), i * e);
      for (let i = 0; i < e; i++) Ue.set(B.subarray((h + i) * b + h, (h + i + 1) * b), i * e);
      const Y2 = await matmul(Ar, Ue, k0, e, e, { transB: true, out: A });
      putPanel(Y2, k0, k0 + h, e);
    }
  }
  if (!full) return starts;
  for (let s = 1; s < starts.length; s++) { // U = V⁻¹, left to right: U_TJ = −U_TT·V_TJ·U_JJ (U_JJ is in place already)
    const j0 = starts[s]!, b = (starts[s + 1] ?? n) - j0;
    const Z = await matmul(panel(j0, j0, b), diagUpper(j0, b), j0, b, b, { out: P2 }); // V_TJ·U_JJ
    for (let i0 = 0; i0 < j0; i0 += RP) { // U_TJ = −U_TT·Z; U_TT rows [i0, i1) are zero left of the diagonal
      const i1 = Math.min(i0 + RP, j0);
      const X = await matmul(rowBlock(i0, i1, j0), Z.subarray(i0 * b, j0 * b), i1 - i0, j0 - i0, b, { out: T });
      negate(X);
      putPanel(X, i1 - i0, j0, b, i0);
    }
  }
  return starts;
}

// Loops over whole panels run in these plain functions, not inline in the async code that awaits the products: V8
// optimizes a loop inside an async function poorly after an await (gptq.ts has the measurement).
/** A[ao + i·stride + j] −= G[i·w + j] for i < rows, j < w. */
function subRows(A: Operand, ao: number, stride: number, G: Operand, w: number, rows: number): void {
  for (let i = 0; i < rows; i++) { const o = ao + i * stride, go = i * w; for (let j = 0; j < w; j++) A[o + j]! -= G[go + j]!; }
}

function negate(X: Operand): void { for (let t = 0; t < X.length; t++) X[t] = -X[t]!; }

/** Panels wider than this factorize their diagonal blocks with quarter-width panels (recursion) instead of in TS. */
const LEAF = 64;
/** Rows per product of the left-looking update and of the U pass. */
const ROW_BLOCK = 512;
/** GPTQ's default panel width (GptqOptions.factorLeaf). */
export const FACTOR_PANEL = 1024;

/** Bytes of float32 scratch hinvUpperInPlace holds for an n×n H with panels of P, as its two n×P panels and its
 *  row block (the smaller products and the recursion's own scratch are left out). */
export function factorScratchBytes(n: number, P: number): number {
  return 4 * n * (2 * P + ROW_BLOCK);
}

/** The upper triangle of the n×n M as a float64 matrix (lower part zero). */
function upperOf(M: Operand, n: number): Float64Array {
  const X = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) X[i * n + j] = M[i * n + j]!;
  return X;
}

/** X's upper triangle (n×n) into M's. */
function putUpper(M: Operand, n: number, X: Float64Array): void {
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) M[i * n + j] = X[i * n + j]!;
}

/** Float64 leaf: V upper with H = V·Vᵀ (columns right to left); null if H is not positive definite. */
function revCholDirect(H: Float64Array, n: number): Float64Array | null {
  const V = new Float64Array(n * n);
  for (let j = n - 1; j >= 0; j--) {
    const jr = j * n;
    let s = H[jr + j]!;
    for (let k = j + 1; k < n; k++) s -= V[jr + k]! * V[jr + k]!;
    if (!(s > 0)) return null;
    const d = Math.sqrt(s);
    V[jr + j] = d;
    for (let i = 0; i < j; i++) {
      const ir = i * n;
      let t = H[ir + j]!;
      for (let k = j + 1; k < n; k++) t -= V[ir + k]! * V[jr + k]!;
      V[ir + j] = t / d;
    }
  }
  return V;
}

/** Float64 leaf: U = V⁻¹ for V upper triangular (entries below the diagonal are ignored), by back substitution. */
function invUpperDirect(V: Float64Array, n: number): Float64Array {
  const U = new Float64Array(n * n), x = new Float64Array(n);
  for (let j = 0; j < n; j++) { // column j of U: V·x = e_j
    x[j] = 1 / V[j * n + j]!;
    for (let i = j - 1; i >= 0; i--) {
      const ir = i * n;
      let t = 0;
      for (let k = i + 1; k <= j; k++) t += V[ir + k]! * x[k]!;
      x[i] = -t / V[ir + i]!;
    }
    for (let i = 0; i <= j; i++) U[i * n + j] = x[i]!;
  }
  return U;
}
