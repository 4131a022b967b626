/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"),
 * matching AutoGPTQ's `GPTQ.fasterquant` (auto_gptq/quantization/gptq.py) step for step:
 *
 *   dead = diag(H) == 0 → H[i,i] = 1, W[:,i] = 0
 *   act-order: perm = argsort(diag H, descending); W = W[:,perm]; H = H[perm][:,perm]
 *   H += damp·mean(diag H)·I;  Hinv = cholesky(H⁻¹, upper)            (retry with more damp if H is not PD)
 *   for each block [i1, i2) of blockSize columns:
 *     for i in block:  (group start (i1+i) % groupSize == 0 → quantizer.find_params(W[:, i1+i : i1+i+groupSize]))
 *       q = quant(w);  err = (w − q) / Hinv[i,i];  Losses += (w − q)² / Hinv[i,i]² / 2
 *       W1[:, i:] −= err · Hinv[i, i:]
 *     W[:, i2:] −= Err1 · Hinv[i1:i2, i2:]                                (lazy batch update)
 *
 * How it runs here (same arithmetic, reorganized):
 *  - W is kept transposed and permuted (Wt [cols, rows]): a column is a contiguous row of Wt.
 *  - The lazy update is applied left-looking: at block start, W[:, i1:i2] = W0[:, i1:i2] − Err[:, :i1]·Hinv[:i1, i1:i2]
 *    (one ORT GEMM per block). This is exactly AutoGPTQ's W at block start, which is also what its find_params
 *    sees (W, not W1: the block's own updates are not applied yet).
 *  - Inside a block the same trick one level down: every sub-block of `subBlock` columns first gets the errors of
 *    the block's earlier columns by one GEMM, then TS does the column loop with the few rank-1 updates left.
 *  - Rows are independent, so the column loop runs over row chunks that stay in L2; TS state is float64, the GEMM
 *    operands float32 (AutoGPTQ's precision) or float64 (opts.precision).
 */
import { gemm, matmul } from '../graph/linalg.ts';
import { fail } from '../errors.ts';
import type { CheckpointFormat, QuantizeConfig } from './config.ts';
import { dequantizeCodes, findParams, gridStorage, roundHalfEven, type FindParamsOptions, type QuantParams } from './quantizer.ts';

/** checkpointFormat (default 'gptq', the saved default) fixes the grid constraints: see GridStorage in quantizer.ts. */
export type GptqConfig = Pick<QuantizeConfig, 'bits' | 'groupSize' | 'descAct' | 'staticGroups' | 'sym' | 'dampPercent' | 'blockSize' | 'mse'>
  & { dampAutoIncrement?: number; checkpointFormat?: CheckpointFormat };

export interface GptqOptions {
  onLog?: (msg: string) => void;
  /** Divisor of AutoGPTQ's logged `avg loss = sum(Losses) / nsamples` (AutoGPTQ counts calibration sequences,
   *  GPTQModel tokens; default 1). */
  nsamples?: number;
  /** Hessian-inverse factorization: panel width; diagonal blocks of this size are done in float64 TS, the rest
   *  by GEMMs (default 256). */
  factorLeaf?: number;
  /** H may be overwritten (its buffer becomes the Hessian-inverse factor): saves one [cols, cols] copy. */
  consumeHessian?: boolean;
  /** Columns per sub-block of the second lazy-batching level inside a block (default 8). */
  subBlock?: number;
  /** Rows per inner-loop chunk (default 512, so the sub-block's chunk stays in L2). */
  rowChunk?: number;
  /** Precision of the ORT products (lazy batch updates, Hessian-inverse factorization). 'f32' (default) is
   *  AutoGPTQ's own precision; 'f64' (MLAS DGEMM, ~3× slower) matches the unblocked float64 reference to ~1e-8. */
  precision?: 'f32' | 'f64';
}

export interface GptqResult {
  /** Dequantized weights [rows, cols] (what AutoGPTQ writes back into layer.weight); computed on first access.
   *  Scales are fp16 values, so Q is exactly what the saved checkpoint dequantizes to. */
  readonly Q: Float32Array;
  /** Integer codes [rows, cols], original column order. */
  intCodes: Uint8Array;
  /** [groups, rows], groups in g_idx numbering. */
  scales: Float32Array;
  zeros: Int32Array;
  gIdx: Int32Array;
  /** Act-order permutation (processing order → original column), or null. */
  perm: Int32Array | null;
  /** torch.sum(Losses); avgLoss = loss / nsamples. */
  loss: number;
  avgLoss: number;
  /** damp_percent actually used (> cfg.dampPercent after retries). */
  dampUsed: number;
  /** Seconds. solve = lazyGemm (the ORT updates, both levels) + the rest (group params, TS column loop). */
  timings: { prepare: number; cholesky: number; solve: number; lazyGemm: number; finalize: number; total: number };
}

type FArr = Float32Array | Float64Array;
/** Operands of the ORT products are float32 or float64 (opts.precision). */
const alloc = (f64: boolean, len: number): FArr => (f64 ? new Float64Array(len) : new Float32Array(len));
const cast = (f64: boolean, x: Float64Array): FArr => (f64 ? x : new Float32Array(x));

/**
 * Hinv = upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) without forming H⁻¹, in place: with H = V·Vᵀ, V upper
 * ("reverse" Cholesky), U = V⁻¹. M holds H in its upper triangle (diagonal damped); on return the upper triangle is U.
 * The strict lower triangle is never read or written (it keeps H for a damp retry). Blocked by panels of P columns:
 *   V: right to left, V_KK = chol(H_KK) (float64 TS), V_TK = H_TK·V_KK⁻ᵀ, H_TT −= V_TK·V_TKᵀ
 *   U: left to right, U_JJ = V_JJ⁻¹ (float64 TS), U_TJ = −U_TT·V_TJ·U_JJ
 * The products are ORT GEMMs on panel-sized copies, so the only extra memory is O(n·P). Returns false if H is not PD.
 */
async function hinvUpperInPlace(M: FArr, n: number, P: number, f64: boolean): Promise<boolean> {
  const RP = 512; // rows per trailing-update product
  // Scratch reused by every step (no per-step garbage): two n×P panels, an RP×n row block, an RP×P product.
  const pw = Math.min(P, n), P1 = alloc(f64, n * pw), P2 = alloc(f64, n * pw), RB = alloc(f64, Math.min(RP, n) * n), T = alloc(f64, Math.min(RP, n) * pw);
  const block = (k0: number, b: number) => { // symmetric float64 copy of the diagonal block from the upper triangle
    const D = new Float64Array(b * b);
    for (let i = 0; i < b; i++) for (let j = i; j < b; j++) D[i * b + j] = D[j * b + i] = M[(k0 + i) * n + k0 + j]!;
    return D;
  };
  const putUpper = (X: Float64Array, k0: number, b: number) => { for (let i = 0; i < b; i++) for (let j = i; j < b; j++) M[(k0 + i) * n + k0 + j] = X[i * b + j]!; };
  const panel = (rows: number, c0: number, b: number) => { // M[0:rows, c0:c0+b] → P1
    for (let i = 0; i < rows; i++) P1.set(M.subarray(i * n + c0, i * n + c0 + b), i * b);
    return P1.subarray(0, rows * b);
  };
  const putPanel = (X: FArr, rows: number, c0: number, b: number, r0 = 0) => { for (let i = 0; i < rows; i++) M.set(X.subarray(i * b, (i + 1) * b), (r0 + i) * n + c0); };
  // rows [i0, i1) of M's upper triangle over columns [i0, c1) → RB (lower part zeroed when asked)
  const rowBlock = (i0: number, i1: number, c1: number, zeroLower: boolean) => {
    const w = c1 - i0;
    for (let i = i0; i < i1; i++) {
      RB.set(M.subarray(i * n + i0, i * n + c1), (i - i0) * w);
      if (zeroLower) RB.fill(0, (i - i0) * w, (i - i0) * w + (i - i0));
    }
    return RB.subarray(0, (i1 - i0) * w);
  };

  for (let k1 = n; k1 > 0;) { // V, right to left
    const k0 = Math.max(0, k1 - P), b = k1 - k0;
    const V = revCholDirect(block(k0, b), b);
    if (!V) return false;
    putUpper(V, k0, b);
    if (k0 > 0) {
      const Y = await matmul(panel(k0, k0, b), cast(f64, invUpperDirect(V, b)), k0, b, b, { transB: true, out: P2 }); // V_TK
      putPanel(Y, k0, k0, b);
      for (let i0 = 0; i0 < k0; i0 += RP) { // H_TT −= V_TK·V_TKᵀ on the upper triangle, RP rows at a time
        const i1 = Math.min(i0 + RP, k0), w = k0 - i0, C = rowBlock(i0, i1, k0, false);
        const G = await gemm(Y.subarray(i0 * b, i1 * b), Y.subarray(i0 * b, k0 * b), C, i1 - i0, b, w, { transB: true, alpha: -1, out: C });
        for (let i = i0; i < i1; i++) M.set(G.subarray((i - i0) * w + (i - i0), (i - i0 + 1) * w), i * n + i);
      }
    }
    k1 = k0;
  }
  for (let j0 = 0; j0 < n; j0 += P) { // U = V⁻¹, left to right
    const b = Math.min(P, n - j0);
    const Ujj = invUpperDirect(block(j0, b), b); // block() mirrors V's upper triangle: only its upper part is used
    if (j0 > 0) {
      const Z = await matmul(panel(j0, j0, b), cast(f64, Ujj), j0, b, b, { out: P2 }); // V_TJ·U_JJ
      for (let i0 = 0; i0 < j0; i0 += RP) { // U_TJ = −U_TT·Z; U_TT rows [i0, i1) are zero left of the diagonal
        const i1 = Math.min(i0 + RP, j0);
        const X = await matmul(rowBlock(i0, i1, j0, true), Z.subarray(i0 * b, j0 * b), i1 - i0, j0 - i0, b, { out: T });
        for (let t = 0; t < X.length; t++) X[t] = -X[t]!;
        putPanel(X, i1 - i0, j0, b, i0);
      }
    }
    putUpper(Ujj, j0, b);
  }
  return true;
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

/** M ← M[perm][:, perm] in place (rows by cycles, then each row through one scratch row). */
function permuteInPlace(M: FArr, n: number, perm: Int32Array): void {
  const seen = new Uint8Array(n), tmp = M.slice(0, n);
  for (let s = 0; s < n; s++) {
    if (seen[s] || perm[s] === s) continue;
    tmp.set(M.subarray(s * n, (s + 1) * n));
    let a = s;
    for (;;) {
      seen[a] = 1;
      const next = perm[a]!;
      if (next === s) { M.set(tmp, a * n); break; }
      M.copyWithin(a * n, next * n, (next + 1) * n);
      a = next;
    }
  }
  for (let a = 0; a < n; a++) {
    const row = M.subarray(a * n, (a + 1) * n);
    tmp.set(row);
    for (let b = 0; b < n; b++) row[b] = tmp[perm[b]!]!;
  }
}

/** GPTQ-quantize one linear: W [rows=out, cols=in] row-major, H [cols, cols] = 2/n·ΣXᵀX. */
export async function gptqQuantize(W: Float32Array, H: Float32Array, rows: number, cols: number, cfg: GptqConfig, opts: GptqOptions = {}): Promise<GptqResult> {
  const t0 = performance.now();
  const R = rows, n = cols, gs = cfg.groupSize, B = cfg.blockSize;
  if (!(Number.isInteger(R) && R > 0 && Number.isInteger(n) && n > 0)) fail(`gptq: bad shape ${rows}x${cols}`);
  if (W.length !== R * n) fail(`gptq: W has ${W.length} elements, expected ${R}x${n}`);
  if (H.length !== n * n) fail(`gptq: H has ${H.length} elements, expected ${n}x${n}`);
  if (![2, 3, 4, 8].includes(cfg.bits)) fail(`gptq: bits must be 2, 3, 4 or 8, got ${cfg.bits}`);
  if (!(gs === -1 || (Number.isInteger(gs) && gs > 0))) fail(`gptq: groupSize must be -1 or > 0, got ${gs}`);
  if (cfg.staticGroups && gs <= 0) fail('gptq: staticGroups needs groupSize > 0');
  if (!(Number.isInteger(B) && B > 0)) fail(`gptq: blockSize must be a positive integer, got ${B}`);
  for (let i = 0; i < H.length; i++) if (!Number.isFinite(H[i]!)) fail(`gptq: Hessian has a non-finite entry at [${Math.floor(i / n)}, ${i % n}]`);
  const log = opts.onLog ?? (() => {});
  const maxq = 2 ** cfg.bits - 1;
  const f64 = opts.precision === 'f64';
  // Scales rounded to fp16 and zero points limited to what the format stores: the Q the error feedback sees is
  // exactly what the checkpoint dequantizes to.
  const qopt: FindParamsOptions = { bits: cfg.bits, sym: cfg.sym, mse: cfg.mse, storage: gridStorage(cfg.checkpointFormat ?? 'gptq') };

  // quantizer.find_params(W) runs before the dead columns are zeroed; it is what groupSize −1 uses.
  const params0 = gs === -1 ? findParams(W, R, n, qopt) : null;
  const diag = new Float64Array(n);
  const dead = new Uint8Array(n);
  for (let j = 0; j < n; j++) { const v = H[j * n + j]!; dead[j] = v === 0 ? 1 : 0; diag[j] = v === 0 ? 1 : v; }
  const hasDead = dead.includes(1);
  // static_groups: one quantizer per group of original columns, on the (dead-zeroed) unquantized W.
  const staticParams: QuantParams[] = [];
  if (cfg.staticGroups) {
    let W0 = W;
    if (hasDead) { W0 = W.slice(); for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) if (dead[j]) W0[r * n + j] = 0; }
    for (let c = 0; c < n; c += gs) staticParams.push(findParams(W0, R, Math.min(gs, n - c), qopt, { offset: c, rowStride: n, colStride: 1 }));
  }

  // Act-order. torch.argsort(descending=True) is not documented stable; we break ties by column index (stable).
  const perm = new Int32Array(n).map((_, i) => i);
  if (cfg.descAct) perm.sort((a, b) => diag[b]! - diag[a]! || a - b);
  const Wt = new Float32Array(n * R); // Wt[c, r] = W[r, perm[c]] (0 for dead columns), transposed in 64×64 tiles
  for (let c0 = 0; c0 < n; c0 += 64) for (let r0 = 0; r0 < R; r0 += 64) {
    for (let c = c0; c < Math.min(c0 + 64, n); c++) {
      const j = perm[c]!, o = c * R;
      if (!dead[j]) for (let r = r0; r < Math.min(r0 + 64, R); r++) Wt[o + r] = W[r * n + j]!;
    }
  }
  const t1 = performance.now();

  // Damped Hessian, permuted, in M: H's own buffer when the caller hands it over, else a copy. Hinv = upper
  // Cholesky of its inverse, in place. GPTQModel-style retry when not PD (H is kept in M's lower triangle).
  let meanDiag = 0;
  for (let j = 0; j < n; j++) meanDiag += diag[j]!;
  meanDiag /= n;
  const M: FArr = opts.consumeHessian && !f64 ? H : alloc(f64, n * n);
  if (!cfg.descAct) { if (M !== H) M.set(H); } else if (M === H) permuteInPlace(M, n, perm);
  else for (let a = 0; a < n; a++) { const ra = perm[a]! * n, o = a * n; for (let b = 0; b < n; b++) M[o + b] = H[ra + perm[b]!]!; }
  let damp = cfg.dampPercent;
  const inc = cfg.dampAutoIncrement ?? 0;
  for (let retry = false; ; retry = true) {
    if (retry) for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) M[i * n + j] = M[j * n + i]!;
    for (let a = 0; a < n; a++) M[a * n + a] = diag[perm[a]!]! + damp * meanDiag;
    if (await hinvUpperInPlace(M, n, opts.factorLeaf ?? 256, f64)) break;
    const next = damp + inc;
    if (!(inc > 0) || !(next < 1)) fail(`gptq: Hessian is not positive definite with damp_percent=${damp.toFixed(5)}; raise dampPercent or use more calibration samples`);
    log(`gptq: damp_percent=${damp.toFixed(5)} leaves H not positive definite, retrying with ${next.toFixed(5)}`);
    damp = next;
  }
  const U = M;
  const t2 = performance.now();

  // Block-start state of columns [c0, c1) while at block i1: Wt[c0:c1] − Hinv[:i1, c0:c1]ᵀ·Err[:, :i1]ᵀ → out (f64).
  const Et = alloc(f64, n * R);
  let tGemm = 0;
  const wmax = Math.max(B, gs), Ucol = alloc(f64, n * wmax), Pcol = alloc(f64, wmax * R); // scratch
  const blockStart = async (i1: number, c0: number, c1: number, out: Float64Array): Promise<void> => {
    const w = c1 - c0, base = c0 * R;
    if (i1 === 0) { for (let t = 0; t < w * R; t++) out[t] = Wt[base + t]!; return; }
    for (let k = 0; k < i1; k++) for (let j = 0; j < w; j++) Ucol[k * w + j] = U[k * n + c0 + j]!;
    const tg = performance.now();
    const P = await matmul(Ucol.subarray(0, i1 * w), Et.subarray(0, i1 * R), w, i1, R, { transA: true, out: Pcol });
    tGemm += performance.now() - tg;
    for (let t = 0; t < w * R; t++) out[t] = Wt[base + t]! - P[t]!;
  };

  const groupParams: QuantParams[] = [];
  const codesT = new Uint8Array(n * R);
  const sb = Math.max(1, Math.min(opts.subBlock ?? 8, B));
  const W1 = new Float64Array(B * R), tile = new Float64Array(B * B), zeroP = alloc(f64, sb * R);
  const Asub = alloc(f64, B * sb), Psub = alloc(f64, sb * R); // scratch of the sub-block products
  const RC = opts.rowChunk ?? 512;
  let loss = 0;
  for (let i1 = 0; i1 < n; i1 += B) {
    const i2 = Math.min(i1 + B, n), cnt = i2 - i1;
    await blockStart(i1, i1, i2, W1);
    if (gs > 0 && !cfg.staticGroups) {
      for (let c = Math.ceil(i1 / gs) * gs; c < i2; c += gs) {
        const e = Math.min(c + gs, n);
        let src = W1, off = (c - i1) * R;
        if (e > i2) { // group reaches past this block: also needs block-start state of columns [i2, e)
          src = new Float64Array((e - c) * R);
          src.set(W1.subarray(off, cnt * R));
          await blockStart(i1, i2, e, src.subarray((i2 - c) * R));
          off = 0;
        }
        groupParams.push(findParams(src, R, e - c, qopt, { offset: off, rowStride: 1, colStride: R }));
      }
    }
    for (let i = 0; i < cnt; i++) for (let j = 0; j < cnt; j++) tile[i * cnt + j] = U[(i1 + i) * n + i1 + j]!;
    // Within the block, the same lazy batching one level down: sub-blocks of sb columns get the errors of the
    // block's earlier columns by one GEMM (W1[:, s0:s1] −= Err1[:, :s0]·Hinv1[:s0, s0:s1]); only sb-wide
    // rank-1 updates run in TS.
    for (let s0 = 0; s0 < cnt; s0 += sb) {
      const s1 = Math.min(s0 + sb, cnt), sw = s1 - s0;
      let P: FArr = zeroP; // errors of the block's columns [0, s0) applied to this sub-block
      if (s0 > 0) {
        for (let k = 0; k < s0; k++) for (let j = 0; j < sw; j++) Asub[k * sw + j] = tile[k * cnt + s0 + j]!;
        const tg = performance.now();
        P = await matmul(Asub.subarray(0, s0 * sw), Et.subarray(i1 * R, (i1 + s0) * R), sw, s0, R, { transA: true, out: Psub });
        tGemm += performance.now() - tg;
      }
      const qp: QuantParams[] = [];
      for (let i = s0; i < s1; i++) {
        const c = i1 + i;
        qp.push(gs === -1 ? params0! : cfg.staticGroups ? staticParams[Math.floor(perm[c]! / gs)]! : groupParams[Math.floor(c / gs)]!);
      }
      for (let r0 = 0; r0 < R; r0 += RC) {
        const r1 = Math.min(r0 + RC, R);
        for (let i = s0; i < s1; i++) {
          const p = qp[i - s0]!, sc = p.scale, zr = p.zero, d = tile[i * cnt + i]!;
          const wo = i * R, eo = (i - s0) * R, co = (i1 + i) * R;
          for (let r = r0; r < r1; r++) { // q = quant(w); err = (w − q) / d; Losses = err² / 2
            const w = W1[wo + r]! - P[eo + r]!, s = sc[r]!, z = zr[r]!;
            let q = roundHalfEven(w / s) + z;
            q = q < 0 ? 0 : q > maxq ? maxq : q;
            codesT[co + r] = q;
            const e = (w - s * (q - z)) / d;
            Et[co + r] = e;
            loss += e * e;
          }
          for (let j = i + 1; j < s1; j++) { // W1[:, j] −= err · Hinv1[i, j]
            const h = tile[i * cnt + j]!;
            if (h === 0) continue;
            const jo = j * R;
            for (let r = r0; r < r1; r++) W1[jo + r] -= Et[co + r]! * h;
          }
        }
      }
    }
  }
  loss /= 2;
  const t3 = performance.now();

  // Outputs in AutoGPTQ's conventions: scales/zeros [groups, rows]; g_idx per original column.
  const gIdx = new Int32Array(n);
  const plist = gs === -1 ? [params0!] : cfg.staticGroups ? staticParams : groupParams;
  if (gs > 0) for (let c = 0; c < n; c++) gIdx[perm[c]!] = Math.floor((cfg.staticGroups ? perm[c]! : c) / gs);
  const G = plist.length;
  const scales = new Float32Array(G * R), zeros = new Int32Array(G * R);
  plist.forEach((p, g) => { scales.set(p.scale, g * R); zeros.set(p.zero, g * R); });
  // Un-permute (Q = Q[:, invperm]) while transposing back to [rows, cols]; Q = scale·(q − zero) in float32.
  const intCodes = new Uint8Array(R * n);
  for (let c0 = 0; c0 < n; c0 += 64) for (let r0 = 0; r0 < R; r0 += 64) {
    for (let c = c0; c < Math.min(c0 + 64, n); c++) {
      const j = perm[c]!, o = c * R;
      for (let r = r0; r < Math.min(r0 + 64, R); r++) intCodes[r * n + j] = codesT[o + r]!;
    }
  }
  const t4 = performance.now();
  let Q: Float32Array | undefined; // computed on first use: the layer loop keeps only the codes
  return {
    get Q() { return (Q ??= dequantizeCodes(intCodes, scales, zeros, gIdx, R, n)); },
    intCodes, scales, zeros, gIdx, perm: cfg.descAct ? perm : null, loss, avgLoss: loss / (opts.nsamples ?? 1), dampUsed: damp,
    timings: { prepare: (t1 - t0) / 1e3, cholesky: (t2 - t1) / 1e3, solve: (t3 - t2) / 1e3, lazyGemm: tGemm / 1e3, finalize: (t4 - t3) / 1e3, total: (t4 - t0) / 1e3 },
  };
}
