/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"),
 * matching AutoGPTQ's `GPTQ.fasterquant` (auto_gptq/quantization/gptq.py) step for step:
 *
 *   prepare:          dead = diag(H) == 0 → H[i,i] = 1, W[:,i] = 0
 *                     act-order: perm = argsort(diag H, descending); W = W[:,perm]; H = H[perm][:,perm]
 *   Hessian inverse:  H += damp·mean(diag H)·I;  Hinv = cholesky(H⁻¹, upper)     (retry with more damp if not PD)
 *   blocked solve:    for each block [i1, i2) of blockSize columns:
 *                       for i in block: (group start → quantizer.find_params(W[:, i1+i : i1+i+groupSize]))
 *                         q = quant(w);  err = (w − q) / Hinv[i,i];  Losses += (w − q)² / Hinv[i,i]² / 2
 *                         W1[:, i:] −= err · Hinv[i, i:]
 *                       W[:, i2:] −= Err1 · Hinv[i1:i2, i2:]                     (lazy batch update)
 *   finalize:         scales/zeros per group, g_idx, Q = Q[:, invperm]
 *
 * How it runs here (same arithmetic, reorganized):
 *  - W is kept transposed and permuted (Wt [cols, rows]): a column is a contiguous row of Wt.
 *  - The Hessian inverse is factorized in H's own buffer by blocked reverse Cholesky (hessian-inverse.ts).
 *  - The lazy update is applied left-looking: at block start, W[:, i1:i2] = W0[:, i1:i2] − Err[:, :i1]·Hinv[:i1, i1:i2]
 *    (one ORT GEMM per block). This is exactly AutoGPTQ's W at block start, which is also what its find_params
 *    sees (W, not W1: the block's own updates are not applied yet).
 *  - From 4 panels of 1024 columns on (factorPlan), Hinv is only factorized to its panel form: its diagonal blocks,
 *    and above them V (H = V·Vᵀ) instead of Hinv, which saves the triangular inverse outside those blocks (a third of
 *    the factorization). The errors of earlier panels then enter a block through V and the residuals W0 − Q of their
 *    columns (Err·Hinv = W0 − Q, so Err_A·Hinv_A,B = −(W0 − Q)_A·V_A,B·Hinv_B,B): one GEMM per panel plus one per
 *    block within the panel. The same W at block start in exact arithmetic (test/gptq.test.ts: float64 products give
 *    identical codes); the float32 rounding differs, as it would for another GEMM order.
 *  - Inside a block the same trick one level down: every sub-block of `subBlock` columns first gets the errors of
 *    the block's earlier columns by one GEMM, then TS does the column loop with the few rank-1 updates left.
 *  - Rows are independent, so the column loop runs over row chunks that stay in L2, a sub-block's columns row by row
 *    on values in registers; TS state is float64, the GEMM operands float32 (AutoGPTQ's precision) or float64
 *    (opts.precision). Big linears are split by rows over worker threads (solveParallel), each slice solved alone.
 * The unblocked float64 version of the same algorithm is the test oracle, test/reference/gptq-ref.ts.
 * cfg.arithmetic 'float32' rounds the column state (block-start W, w, q, err, rank-1 updates) to float32 at every step
 * and computes codes from the float32 scales, as AutoGPTQ's torch loop does (test/quantizer-autogptq.test.ts: its
 * codes on real Hessians); cfg.mse + mseWeighting 'hessian' weights each group's MSE search by diag(H).
 */
import { gemm, matmul, operand, type Operand } from '../graph/linalg.ts';
import { fail } from '../errors.ts';
import { firstNonFinite, mirrorTriangle, transpose } from '../tensor.ts';
import { availableParallelism } from '../platform/os.ts';
import { isShared, shared, sharedZeros, workerPool, WorkerDiedError } from '../platform/workers.ts';
import { FACTOR_PANEL, hinvFactorInPlace } from './hessian-inverse.ts';
import { bitsProblem, type Arithmetic, type CheckpointFormat, type MseWeighting, type QuantizeConfig, type ScaleRounding } from './quantize-config.ts';
import { dequantizeCodes, findParams, gridStorage, quantizeCode, storedScales, type FindParamsOptions, type QuantParams } from './quantizer.ts';

/** checkpointFormat (default 'gptq', the saved default) fixes the grid constraints: see GridStorage in quantizer.ts. */
export type GptqConfig = Pick<QuantizeConfig, 'bits' | 'groupSize' | 'descAct' | 'staticGroups' | 'sym' | 'dampPercent' | 'blockSize' | 'mse'>
  & { actGroupAware?: boolean; dampAutoIncrement?: number; checkpointFormat?: CheckpointFormat; arithmetic?: Arithmetic; scaleRounding?: ScaleRounding; mseWeighting?: MseWeighting };

export interface GptqOptions {
  onLog?: (msg: string) => void;
  /** Divisor of AutoGPTQ's logged `avg loss = sum(Losses) / nsamples` (AutoGPTQ counts calibration sequences,
   *  GPTQModel tokens; default 1). */
  nsamples?: number;
  /** Hessian-inverse factorization: panel width (default 1024; scratch: factorScratchBytes; rounded to a multiple of
   *  lcm(blockSize, groupSize) for Hinv's panel form, see factorPlan). Diagonal blocks are factorized recursively with
   *  quarter-width panels down to ≤ 64 columns, which are done in float64 TS; everything else is ORT GEMMs. */
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
  /**
   * Row slices solved at once by worker threads (rows are independent; the results are the same as in one thread).
   * Default: one per core (at most 8, each ≥ 256 rows) for linears of ≥ 2^21 weights, else 1 (in this thread). Browsers
   * solve in-thread.
   */
  workers?: number;
  /**
   * Reuse of the Hessian inverse across linears that share H (q/k/v, gate/up: AutoGPTQ factorizes it again for each):
   * an empty object the caller keeps while those linears are solved. The first call fills it; a later call with the
   * same H array and the same settings that shape Hinv (damp, act-order, precision, panel width) takes Hinv from it
   * (bit for bit what it would compute). Holds one [cols, cols] matrix until the caller drops it.
   */
  hinvCache?: HinvCache;
}

/** See GptqOptions.hinvCache. `diag`: H's diagonal as it was (the call that filled the cache may have consumed H). */
export interface HinvCache { H?: Float32Array; key?: string; U?: Operand; damp?: number; panels?: number[] | null; diag?: Float64Array }

export interface GptqResult {
  /** Dequantized weights [rows, cols] (what AutoGPTQ writes back into layer.weight); computed on first access.
   *  Scales are fp16 values, so Q is exactly what the saved checkpoint dequantizes to (with arithmetic 'float32' the
   *  error feedback used the float32 scales, as AutoGPTQ; Q and `scales` are still the saved fp16 ones). */
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

/** GPTQ-quantize one linear: W [rows=out, cols=in] row-major, H [cols, cols] = 2/n·ΣXᵀX. Throws GptqError on bad input.
 *  W in shared memory (a SharedArrayBuffer, e.g. platform/workers.ts sharedZeros; the layer loop reads weights so) is
 *  read in place by the solve's worker threads; any other W is copied by rows for them (about 0.1 s per 180 MB). W is
 *  not modified. */
export async function gptqQuantize(W: Float32Array, H: Float32Array, rows: number, cols: number, cfg: GptqConfig, opts: GptqOptions = {}): Promise<GptqResult> {
  const t0 = performance.now();
  const plan = factorPlan(cols, cfg, opts);
  const cache = opts.hinvCache, key = JSON.stringify([cfg.dampPercent, cfg.dampAutoIncrement ?? 0, cfg.descAct, cfg.actGroupAware ?? false, cfg.groupSize, opts.precision ?? 'f32', plan]);
  const hit = cache?.U && cache.H === H && cache.key === key;
  checkInputs(W, H, rows, cols, cfg, !hit); // a cache hit: this H array's entries were checked by the call that filled it
  // what the solve needs of H besides Hinv is its diagonal: read before H may be consumed, or as the cache kept it
  const hd = hit ? cache.diag! : Float64Array.from({ length: cols }, (_, j) => H[j * cols + j]!);
  const p = prepare(W, hd, rows, cols, cfg);
  const t1 = performance.now();
  const { U, damp, panels } = hit ? { U: cache.U!, damp: cache.damp!, panels: cache.panels ?? null } : await hessianInverse(H, p, cfg, opts, plan);
  if (cache && !hit) Object.assign(cache, { H, key, U, damp, panels, diag: hd });
  const t2 = performance.now();
  const s = await solve(p, U, panels, cfg, opts, cache);
  const t3 = performance.now();
  const out = finalize(p, s, cfg);
  const t4 = performance.now();
  let Q: Float32Array | undefined; // computed on first use: the layer loop keeps only the codes
  return {
    get Q() { return (Q ??= dequantizeCodes(out.intCodes, out.scales, out.zeros, out.gIdx, rows, cols)); },
    ...out, perm: cfg.descAct ? p.perm : null, loss: s.loss, avgLoss: s.loss / (opts.nsamples ?? 1), dampUsed: damp,
    timings: { prepare: (t1 - t0) / 1e3, cholesky: (t2 - t1) / 1e3, solve: (t3 - t2) / 1e3, lazyGemm: s.tGemm / 1e3, finalize: (t4 - t3) / 1e3, total: (t4 - t0) / 1e3 },
  };
}

function checkInputs(W: Float32Array, H: Float32Array, R: number, n: number, cfg: GptqConfig, scanH: boolean): void {
  const gs = cfg.groupSize, B = cfg.blockSize;
  if (!(Number.isInteger(R) && R > 0 && Number.isInteger(n) && n > 0)) fail(`gptq: bad shape ${R}x${n}`);
  if (W.length !== R * n) fail(`gptq: W has ${W.length} elements, expected ${R}x${n}`);
  if (H.length !== n * n) fail(`gptq: H has ${H.length} elements, expected ${n}x${n}`);
  const badBits = bitsProblem(cfg.bits);
  if (badBits) fail(`gptq: ${badBits}`);
  if (!(gs === -1 || (Number.isInteger(gs) && gs > 0))) fail(`gptq: groupSize must be -1 or > 0, got ${gs}`);
  if (cfg.staticGroups && gs <= 0) fail('gptq: staticGroups needs groupSize > 0');
  if (cfg.actGroupAware && (gs <= 0 || cfg.descAct || cfg.staticGroups)) fail('gptq: actGroupAware needs groupSize > 0 and neither descAct nor staticGroups');
  if (!(Number.isInteger(B) && B > 0)) fail(`gptq: blockSize must be a positive integer, got ${B}`);
  const i = scanH ? firstNonFinite(H) : -1;
  if (i >= 0) fail(`gptq: Hessian has a non-finite entry at [${Math.floor(i / n)}, ${i % n}]`);
}

/** What the solve works on, in processing order. */
interface Prepared {
  R: number; n: number;
  /** find_params options; scales rounded to fp16 and zero points limited to what the format stores, so the Q the
   *  error feedback sees is exactly what the checkpoint dequantizes to. */
  qopt: FindParamsOptions;
  /** groupSize −1: quantizer.find_params(W) of the whole W, taken before the dead columns are zeroed (as AutoGPTQ). */
  params0: QuantParams | null;
  /** diag(H), dead columns set to 1. */
  diag: Float64Array;
  /** static_groups: one quantizer per group of original columns, on the (dead-zeroed) unquantized W. */
  staticParams: QuantParams[];
  /** Processing order → original column (identity without act-order). */
  perm: Int32Array;
  /** The columns are processed in another order than their own (descAct or actGroupAware). */
  reordered: boolean;
  /** Dead columns (diag H = 0, original order), or null when there are none. */
  dead: Uint8Array | null;
  /** W [R, n] as given (the solve transposes its rows into processing order). */
  W: Float32Array;
}

/** Dead columns, static groups, act-order, from W and H's diagonal `hd` [n]. */
function prepare(W: Float32Array, hd: Float64Array, R: number, n: number, cfg: GptqConfig): Prepared {
  const gs = cfg.groupSize;
  const qopt: FindParamsOptions = { bits: cfg.bits, sym: cfg.sym, mse: cfg.mse, float32: cfg.arithmetic === 'float32', storage: gridStorage(cfg.checkpointFormat ?? 'gptq', cfg.arithmetic, cfg.scaleRounding) };
  // Dead columns: no calibration input reaches them (diag H = 0): H[i,i] = 1, W[:, i] = 0.
  const diag = new Float64Array(n), dead = new Uint8Array(n);
  for (let j = 0; j < n; j++) { const v = hd[j]!; dead[j] = v === 0 ? 1 : 0; diag[j] = v === 0 ? 1 : v; }
  const hw = cfg.mse && cfg.mseWeighting === 'hessian'; // the MSE search weighted by diag(H) (original column order here)
  const params0 = gs === -1 ? findParams(W, R, n, hw ? { ...qopt, colWeights: diag } : qopt) : null;
  const hasDead = dead.includes(1);
  const staticParams: QuantParams[] = [];
  if (cfg.staticGroups) {
    let W0 = W;
    if (hasDead) { W0 = W.slice(); for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) if (dead[j]) W0[r * n + j] = 0; }
    for (let c = 0; c < n; c += gs) {
      const o = hw ? { ...qopt, colWeights: diag.subarray(c, c + gs) } : qopt;
      staticParams.push(findParams(W0, R, Math.min(gs, n - c), o, { offset: c, rowStride: n, colStride: 1 }));
    }
  }
  // Act-order. torch.argsort(descending=True) is not documented stable; we break ties by column index (stable).
  let perm: Int32Array = new Int32Array(n).map((_, i) => i);
  if (cfg.descAct) perm.sort((a, b) => diag[b]! - diag[a]! || a - b);
  else if (cfg.actGroupAware) perm = groupAwarePermutation(hd, gs);
  const reordered = !!cfg.descAct || !!cfg.actGroupAware;
  return { R, n, qopt, params0, diag, staticParams, perm, reordered, dead: hasDead ? dead : null, W };
}

/**
 * GPTQModel's group-aware act-order (gptqmodel/quantization/gar.py compute_local_perms / compute_global_perm /
 * compose_final_perm) on the undamped diag(H) [n]: the columns of each whole group of `gs` sorted by diag descending,
 * the whole groups ordered by their largest diag descending (stable: equal scores keep their order), the trailing
 * partial group (n % gs columns) last in its own order. Every group stays contiguous in processing order.
 */
export function groupAwarePermutation(hd: ArrayLike<number>, gs: number): Int32Array {
  const n = hd.length, d = (j: number) => hd[j]!;
  const whole = Math.floor(n / gs);
  const groups = Array.from({ length: whole }, (_, g) => Array.from({ length: gs }, (_, i) => g * gs + i).sort((a, b) => d(b) - d(a) || a - b));
  const order = groups.map((cols, g) => ({ g, score: d(cols[0]!) })).sort((a, b) => b.score - a.score || a.g - b.g);
  const perm = new Int32Array(n);
  let c = 0;
  for (const { g } of order) for (const j of groups[g]!) perm[c++] = j;
  for (let j = whole * gs; j < n; j++) perm[c++] = j;
  return perm;
}

/**
 * How Hinv is factorized for this linear: panel width P and whether the solve takes Hinv's panel form
 * (hessian-inverse.ts hinvFactorInPlace: V above the diagonal P-blocks instead of U, no U pass). The panel form needs
 * every panel boundary to be a block boundary and a group boundary (a group's find_params reads the block-start state
 * of all its columns, which the panel form gives only inside one panel), so P is rounded to a multiple of
 * lcm(blockSize, groupSize) (dynamic groups) or of blockSize. It is taken from 4 panels on: the U pass it saves grows
 * as n³, while the solve pays per linear (one more block of Hinv_KK per block in the block-start GEMM, and W − Q kept),
 * measured on 2 cores: 2048 columns (2 panels) no faster with it, 4096 columns 2.1 → 1.8 s (4096 rows), 11008
 * columns 15.9 → 12.8 s. Hinv is factorized in full with the asked width below 4 panels, when that multiple is more
 * than twice the asked width, or with arithmetic 'float32' (AutoGPTQ's own operation order).
 */
export function factorPlan(n: number, cfg: Pick<GptqConfig, 'blockSize' | 'groupSize' | 'staticGroups' | 'arithmetic'>, opts: Pick<GptqOptions, 'factorLeaf'> = {}): { P: number; panelForm: boolean } {
  const P0 = opts.factorLeaf ?? FACTOR_PANEL;
  if (n <= P0 || cfg.arithmetic === 'float32') return { P: P0, panelForm: false };
  const B = cfg.blockSize, gs = cfg.groupSize;
  if (!Number.isSafeInteger(B) || B <= 0 || !Number.isSafeInteger(gs)) return { P: P0, panelForm: false }; // checkInputs names the field
  let a = B, b = Math.abs(gs);
  while (b) [a, b] = [b, a % b];
  const L = gs > 0 && !cfg.staticGroups ? (B / a) * gs : B;
  const P = Math.max(L, Math.round(P0 / L) * L);
  return L > 2 * P0 || n < MIN_PANELS * P ? { P: P0, panelForm: false } : { P, panelForm: true };
}

/**
 * The damped Hessian, permuted, in M (H's own buffer when the caller hands it over, else a copy), replaced by
 * Hinv = cholesky(H⁻¹, upper) in place (hessian-inverse.ts), or by its panel form (factorPlan; `panels`: the panel
 * starts, null for the full Hinv). When H + damp is not positive definite: GPTQModel's retry with damp +=
 * dampAutoIncrement (H is kept in M's lower triangle), else a one-line error.
 */
async function hessianInverse(H: Float32Array, p: Prepared, cfg: GptqConfig, opts: GptqOptions, plan: { P: number; panelForm: boolean }): Promise<{ U: Operand; damp: number; panels: number[] | null }> {
  const { n, diag, perm } = p, f64 = opts.precision === 'f64', log = opts.onLog ?? (() => {});
  let meanDiag = 0;
  for (let j = 0; j < n; j++) meanDiag += diag[j]!;
  meanDiag /= n;
  // (in shared memory: the solve's worker threads read it as it is)
  const M: Operand = opts.consumeHessian && !f64 ? H : sharedZeros(f64, n * n);
  if (!p.reordered) { if (M !== H) M.set(H); } else if (M === H) permuteInPlace(M, n, perm);
  else permutedCopy(M, H, n, perm);
  let damp = cfg.dampPercent;
  const inc = cfg.dampAutoIncrement ?? 0;
  for (let retry = false; ; retry = true) {
    if (retry) mirrorTriangle(M, n, 'lower'); // H back from the lower triangle, which the factorization keeps
    for (let a = 0; a < n; a++) M[a * n + a] = diag[perm[a]!]! + damp * meanDiag;
    const starts = await hinvFactorInPlace(M, n, plan.P, f64, !plan.panelForm);
    if (starts) return { U: M, damp, panels: plan.panelForm && starts.length > 1 ? starts : null };
    const next = damp + inc;
    if (!(inc > 0) || !(next < 1)) fail(`gptq: Hessian is not positive definite with damp_percent=${damp.toFixed(5)}; raise dampPercent or use more calibration samples`);
    log(`gptq: damp_percent=${damp.toFixed(5)} leaves H not positive definite, retrying with ${next.toFixed(5)}`);
    damp = next;
  }
}

/** M = H[perm][:, perm] (a plain function, not a loop inline in the async hessianInverse: see the note above addInto). */
function permutedCopy(M: Operand, H: Float32Array, n: number, perm: Int32Array): void {
  for (let a = 0; a < n; a++) { const ra = perm[a]! * n, o = a * n; for (let b = 0; b < n; b++) M[o + b] = H[ra + perm[b]!]!; }
}

/** M ← M[perm][:, perm] in place (rows by cycles, then each row through one scratch row). */
function permuteInPlace(M: Operand, n: number, perm: Int32Array): void {
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

/**
 * The blocked solve over all rows: in this thread, or split into row slices solved at once by worker threads
 * (solveParallel) when the linear is big enough and the platform has them. Same codes and params either way.
 */
async function solve(p: Prepared, U: Operand, panels: number[] | null, cfg: GptqConfig, opts: GptqOptions, cache?: HinvCache): Promise<SolvedRows> {
  const { R, n, perm } = p;
  // mseWeighting 'hessian': diag(H) in processing order weights each column's error in the group's MSE search.
  const hw = cfg.mse && cfg.mseWeighting === 'hessian' ? Float64Array.from(perm, (j) => p.diag[j]!) : null;
  const task = (r0: number, r1: number, copy: boolean): SolveTask => ({
    W: copy && !isShared(p.W) ? p.W.slice(r0 * n, r1 * n) : p.W.subarray(r0 * n, r1 * n), rows: r1 - r0, n, perm, reordered: p.reordered, dead: p.dead, qopt: p.qopt,
    params0: p.params0 && rowsOf(p.params0, r0, r1), staticParams: p.staticParams.map((q) => rowsOf(q, r0, r1)), hw, cfg,
    subBlock: opts.subBlock, rowChunk: opts.rowChunk, f64: opts.precision === 'f64', panels,
  });
  const parts = solveParts(R, n, opts.workers);
  const s = parts > 1 ? await solveParallel(parts, R, n, (r0, r1) => task(r0, r1, true), U, cache) : null;
  const one = s ?? await solveRows(task(0, R, false), U);
  return { ...one, loss: one.loss / 2 };
}

/** Rows [r0, r1) of a per-row QuantParams (copies: a worker gets only its slice). */
function rowsOf(q: QuantParams, r0: number, r1: number): QuantParams {
  return { scale: q.scale.slice(r0, r1), zero: q.zero.slice(r0, r1), maxq: q.maxq };
}

/**
 * Bytes the panel form's solve holds beyond the full form's (negative: fewer), for `rows` × `cols` solved in `parts`
 * slices at panel width P with float32 operands: the current panel's errors and Z − Err (Qt) instead of every
 * column's errors (W − Q of the earlier columns, Dt, overwrites their W in Wt), plus each slice's copy of the V rows
 * of one product (≤ 2^22 floats).
 */
export function panelFormBytes(rows: number, cols: number, P: number, parts: number): number {
  return 4 * 2 * P * rows - 4 * rows * cols + 4 * PANEL_PRODUCT_FLOATS * parts;
}

/** Fewest panels for which the solve takes Hinv's panel form (factorPlan). */
const MIN_PANELS = 4;

/** Most floats of V a slice copies for one product of panelStart (solveRows). */
const PANEL_PRODUCT_FLOATS = 1 << 22;

/** Below this many weights a linear is solved in this thread (a worker's hand-off costs more than it saves). */
const PARALLEL_MIN_WEIGHTS = 1 << 21;
/** Fewest rows a worker's slice gets: the column loop runs on row chunks of up to 512 (rowChunk). */
const PARALLEL_MIN_ROWS = 256;

/** Row slices to solve at once: `workers` when given (≥ 1), else one per core, at most 8, each ≥ 256 rows; 1 for a small linear. */
export function solveParts(R: number, n: number, workers: number | undefined): number {
  if (workers !== undefined) return Math.max(1, Math.min(Math.floor(workers), R));
  if (R * n < PARALLEL_MIN_WEIGHTS) return 1;
  return Math.max(1, Math.min(availableParallelism(), 8, Math.floor(R / PARALLEL_MIN_ROWS)));
}

/**
 * The solve split into `parts` row slices run by worker threads (src/platform/workers.ts; each worker's ORT products
 * use cores / parts threads), joined: codes by rows, each group's params by rows, Σ Losses in slice order. Hinv goes
 * to the workers in shared memory: as it is where it was factored there (hessianInverse, calibrate's Hessians), else
 * copied once (kept in `cache` for the next linear sharing H). null where the platform has no
 * worker threads, or a worker could not start or died (the caller solves in-thread: the same result).
 */
async function solveParallel(parts: number, R: number, n: number, task: (r0: number, r1: number) => SolveTask, U: Operand, cache?: HinvCache): Promise<SolvedRows | null> {
  const pool = workerPool('quant/solve-worker', parts, Math.max(1, Math.floor(availableParallelism() / parts)));
  if (!pool) return null;
  const Us = shared(U);
  if (cache?.U === U) cache.U = Us; // the next linear sharing H gets the shared copy
  const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * R) / parts));
  let results: SolvedRows[];
  try {
    results = await Promise.all(Array.from({ length: parts }, (_, i) => {
      const t = task(bounds[i]!, bounds[i + 1]!); // (a copy of the rows, handed over; W in shared memory: a view)
      return pool.run<SolvedRows>({ task: t, U: Us }, isShared(t.W) ? [] : [t.W.buffer as ArrayBuffer]);
    }));
  } catch (e) {
    if (e instanceof WorkerDiedError) return null; // no usable worker threads here (e.g. a bundle without the worker module)
    throw e;
  }
  const intCodes = new Uint8Array(R * n);
  results.forEach((r, i) => intCodes.set(r.intCodes, bounds[i]! * n));
  const groupParams = results[0]!.groupParams.map((q0, g) => {
    const scale = new Float32Array(R), zero = new Float32Array(R);
    results.forEach((r, i) => { scale.set(r.groupParams[g]!.scale, bounds[i]!); zero.set(r.groupParams[g]!.zero, bounds[i]!); });
    return { scale, zero, maxq: q0.maxq };
  });
  let loss = 0;
  for (const r of results) loss += r.loss;
  return { intCodes, groupParams, loss, tGemm: Math.max(...results.map((r) => r.tGemm)) };
}

/**
 * One row slice's share of the solve. Rows are independent in GPTQ (every product, every group's params and every
 * code is per row; only Hinv is shared), so slices can be solved apart and joined (solveParallel). Structured-cloneable:
 * a worker thread runs it (solve-worker.ts).
 */
export interface SolveTask {
  /** Rows [rows, n] of W, row-major, original column order. */
  W: Float32Array;
  rows: number; n: number;
  /** Processing order → original column; reordered: perm is not the identity order. */
  perm: Int32Array; reordered: boolean;
  /** Dead columns (original order), zeroed before the solve; null when none. */
  dead: Uint8Array | null;
  qopt: FindParamsOptions;
  /** These rows' share of: groupSize −1, find_params of the whole W; staticGroups, the per-group params. */
  params0: QuantParams | null; staticParams: QuantParams[];
  /** mseWeighting 'hessian': diag(H) in processing order, else null. */
  hw: Float64Array | null;
  cfg: GptqConfig;
  subBlock?: number; rowChunk?: number; f64: boolean;
  /** U is Hinv's panel form with these panel starts (ascending, > 1 panel; hessian-inverse.ts), null: the full Hinv. */
  panels: number[] | null;
}

/** A slice's result: its codes [rows, n] in original column order, its rows of each dynamic group's params, Σ Losses·2. */
export interface SolvedRows { intCodes: Uint8Array; groupParams: QuantParams[]; loss: number; tGemm: number }

/**
 * The column loop with AutoGPTQ's two-level lazy batching (see the header) on one row slice: per block the block-start
 * W by one GEMM and the params of the groups that start in it, then per sub-block the errors of the block's earlier
 * columns by one GEMM, then quant + error feedback over row chunks (rows4 / rowOne). U: Hinv [n, n] (upper
 * triangle read), or its panel form when task.panels is set (then also one GEMM per panel, panelStart). Returns
 * loss = Σ err² (gptqQuantize halves it).
 */
export async function solveRows(task: SolveTask, U: Operand): Promise<SolvedRows> {
  const { rows: R, n, qopt, perm, hw, cfg, f64 } = task, gs = cfg.groupSize, B = cfg.blockSize;
  const f32 = cfg.arithmetic === 'float32', fr = Math.fround;
  // Wt[c, r] = W[r, perm[c]] (a column is a contiguous row of Wt), 0 for dead columns.
  const Wt = transpose(task.W, R, n, new Float32Array(n * R), task.reordered ? { colOrder: perm } : {});
  if (task.dead) for (let c = 0; c < n; c++) if (task.dead[perm[c]!]) Wt.fill(0, c * R, (c + 1) * R);
  // Hinv's panel form (task.panels): the errors are kept for the current panel only (Et rows from its start k0),
  // Dt = W − Q for the columns before the last panel, and Qt = Z − Err for the current panel, Z = V[:k0, K]ᵀ·Dt[:k0]
  // (see panelStart). Else Et holds every column's errors.
  const panels = task.panels, last = panels ? panels[panels.length - 1]! : 0;
  const widest = panels ? panels[1]! : n; // panels start at 0, P, 2P, …: only the last may be narrower
  const Et = operand(f64, widest * R); // errors (w − q) / Hinv[i,i], processing order [cols, rows]
  // With float32 operands Dt is Wt itself: a column's W − Q overwrites its W once the column is done (nothing reads
  // a done column's W again), which saves a [last, rows] buffer (67 MB per worker at 11008x4096) and its page faults.
  const Dt = panels ? (f64 ? operand(true, last * R) : Wt) : null, Qt = panels ? operand(f64, widest * R) : null;
  let k0 = 0, eo = 0; // the panel form's current panel start, and Et's offset (k0·R there, 0 otherwise)
  // the column loop also writes the block's W − Q into Dt (keep: a later panel needs it) and takes its errors out of
  // Qt (fold: for this panel's later blocks)
  let keep = false, fold = false;
  let tGemm = 0;
  const wmax = Math.max(B, gs), Ucol = operand(f64, n * wmax), Pcol = operand(f64, wmax * R); // scratch
  // Block-start state of columns [c0, c1) while at block i1 → out (f64): Wt[c0:c1] − Hinv[:i1, c0:c1]ᵀ·Err[:, :i1]ᵀ.
  // In the panel form past the first panel (U there holds Hinv only inside the panel K = [k0, k1) ∋ i1, and V above it):
  // Wt[c0:c1] + Hinv[k0:c1, c0:c1]ᵀ·Qt[k0:c1], Hinv taken as 0 below its diagonal, Qt = Z − Err with Err = 0 from i1
  // on. Why that is the same state: with H = V·Vᵀ, Hinv = V⁻¹ and A = [0, k0), Err_A·Hinv_A,B = −(W − Q)_A·V_A,B·Hinv_B,B
  // (the inverse of a block-triangular matrix; Err·Hinv = W − Q column by column, by GPTQ's own update rule), and
  // Hinv_B,B's columns in K are those of Hinv_KK (upper triangular).
  const blockStart = async (i1: number, c0: number, c1: number, out: Float64Array): Promise<void> => {
    const w = c1 - c0, base = c0 * R;
    if (Qt && k0 > 0) {
      const m = c1 - k0;
      upperBlock(Ucol, U, n, k0, m, c0, w, true);
      const tg = performance.now();
      const P = await matmul(Ucol.subarray(0, m * w), Qt.subarray(0, m * R), w, m, R, { out: Pcol });
      tGemm += performance.now() - tg;
      addInto(out, Wt, base, P, 1, w * R, false);
      return;
    }
    if (i1 === 0) { addInto(out, Wt, base, null, 0, w * R, false); return; }
    upperBlock(Ucol, U, n, 0, i1, c0, w, true); // (rows above the block: all of it)
    const tg = performance.now();
    const P = await matmul(Ucol.subarray(0, i1 * w), Et.subarray(0, i1 * R), w, i1, R, { out: Pcol });
    tGemm += performance.now() - tg;
    addInto(out, Wt, base, P, -1, w * R, f32);
  };

  // Panel form, at a panel start k > 0: Qt = Z = V[:k, K]ᵀ·Dt[:k] for K = [k, next start), in row blocks of V that fit VP.
  const VP = PANEL_PRODUCT_FLOATS;
  let Vp: Operand | undefined;
  const panelStart = async (k: number, k1: number): Promise<void> => {
    k0 = k; eo = k * R;
    const m = k1 - k, step = Math.max(1, Math.floor(VP / m)), Z = Qt!.subarray(0, m * R);
    if (!Vp || Vp.length < Math.min(step, k) * m) Vp = operand(f64, Math.min(step, k) * m);
    for (let j0 = 0; j0 < k; j0 += step) {
      const j1 = Math.min(k, j0 + step), V = Vp.subarray(0, (j1 - j0) * m);
      // V = U[j0:j1, K]ᵀ (MLAS runs this product ~8% faster than with transA)
      transpose(U.subarray(j0 * n + k), j1 - j0, m, V, { stride: n });
      const tg = performance.now();
      if (j0 === 0) await matmul(V, Dt!.subarray(0, j1 * R), m, j1 - j0, R, { out: Z });
      else await gemm(V, Dt!.subarray(j0 * R, j1 * R), Z, m, j1 - j0, R, { beta: 1, out: Z });
      tGemm += performance.now() - tg;
    }
  };

  const groupParams: QuantParams[] = [];
  /** The params column c (processing order) is quantized with. */
  const paramsFor = (c: number): QuantParams => (gs === -1 ? task.params0! : cfg.staticGroups ? task.staticParams[Math.floor(perm[c]! / gs)]! : groupParams[Math.floor(c / gs)]!);
  const codes = new Uint8Array(R * n); // [rows, n] in the original column order (AutoGPTQ: Q = Q[:, invperm])
  const sb = Math.max(1, Math.min(task.subBlock ?? 8, B));
  const W1 = new Float64Array(B * R), tile = new Float64Array(B * B), zeroP = operand(f64, sb * R);
  const Asub = operand(f64, B * sb), Psub = operand(f64, sb * R); // scratch of the sub-block products
  const RC = task.rowChunk ?? 512;
  // per sub-block: each column's scale / zero rows, Hinv1 diagonal and upper part; per row: the errors so far
  const maxq = 2 ** cfg.bits - 1;
  const scs: Float32Array[] = [], zrs: Float32Array[] = [], dv = new Float64Array(sb), hs = new Float64Array(sb * sb), ev = new Float64Array(sb), ev4 = new Float64Array(4 * sb);
  let i1 = 0;
  // The sub-block's columns on rows [r0, r1): four at a time (rows4), the tail one by one; st.loss sums err².
  const st: RowsState = { W1, R, dv, n, perm, hs, sb, ev4, scs, zrs, maxq, codes, Et, Wt, Dt, Qt, loss: 0 };
  const rowsF64 = (s0: number, sw: number, r0: number, r1: number, P: Operand): void => {
    for (let r = rows4(st, s0, sw, r0, r1, P, i1, eo, keep, fold); r < r1; r++) rowOne(s0, sw, r, P, false);
  };
  const same = (x: number): number => x;
  // One row (the 4-row loop's tail; every row with arithmetic 'float32', where each value is rounded to float32 as
  // AutoGPTQ's torch loop computes: rd is Math.fround there, the identity otherwise).
  const rowOne = (s0: number, sw: number, r: number, P: Operand, f32: boolean): void => {
    const rd = f32 ? fr : same;
    for (let i = 0; i < sw; i++) {
      let w = W1[(s0 + i) * R + r]!;
      for (let k = 0; k < i; k++) { const h = hs[k * sb + i]!; if (h !== 0) w = rd(w - rd(ev[k]! * h)); }
      w = rd(w - P[i * R + r]!);
      const sc = scs[i]![r]!, z = zrs[i]![r]!, code = quantizeCode(w, sc, z, maxq, f32), co = (i1 + s0 + i) * R + r;
      codes[r * n + perm[i1 + s0 + i]!] = code;
      const e = rd(rd(w - rd(sc * (code - z))) / dv[i]!);
      Et[co - eo] = e;
      ev[i] = Et[co - eo]!;
      st.loss += e * e;
      if (keep) Dt![co] = Wt[co]! - sc * (code - z);
      if (fold) Qt![co - eo]! -= Et[co - eo]!;
    }
  };
  for (; i1 < n; i1 += B) {
    const i2 = Math.min(i1 + B, n), cnt = i2 - i1, p = panels?.indexOf(i1) ?? -1;
    if (p > 0) await panelStart(i1, panels![p + 1] ?? n);
    keep = !!Dt && i1 < last; fold = !!Qt && k0 > 0;
    await blockStart(i1, i1, i2, W1);
    if (gs > 0 && !cfg.staticGroups) { // find_params of the groups starting in this block, on the block-start W
      for (let c = Math.ceil(i1 / gs) * gs; c < i2; c += gs) {
        const e = Math.min(c + gs, n);
        let src = W1, off = (c - i1) * R;
        if (e > i2) { // group reaches past this block: also needs block-start state of columns [i2, e)
          src = new Float64Array((e - c) * R);
          src.set(W1.subarray(off, cnt * R));
          await blockStart(i1, i2, e, src.subarray((i2 - c) * R));
          off = 0;
        }
        const o = hw ? { ...qopt, colWeights: hw.subarray(c, e) } : qopt;
        groupParams.push(findParams(src, R, e - c, o, { offset: off, rowStride: 1, colStride: R }));
      }
    }
    upperBlock(tile, U, n, i1, cnt, i1, cnt); // Hinv1 (its upper triangle is all that is read)
    // Within the block, the same lazy batching one level down: sub-blocks of sb columns get the errors of the
    // block's earlier columns by one GEMM (W1[:, s0:s1] −= Err1[:, :s0]·Hinv1[:s0, s0:s1]); only sb-wide
    // rank-1 updates run in TS.
    for (let s0 = 0; s0 < cnt; s0 += sb) {
      const s1 = Math.min(s0 + sb, cnt), sw = s1 - s0;
      let P: Operand = zeroP; // errors of the block's columns [0, s0) applied to this sub-block
      if (s0 > 0) {
        for (let k = 0; k < s0; k++) for (let j = 0; j < sw; j++) Asub[k * sw + j] = tile[k * cnt + s0 + j]!;
        const tg = performance.now();
        P = await matmul(Asub.subarray(0, s0 * sw), Et.subarray(i1 * R - eo, (i1 + s0) * R - eo), sw, s0, R, { transA: true, out: Psub });
        tGemm += performance.now() - tg;
      }
      // this sub-block's columns: scale / zero rows, Hinv1 diagonal and strict upper part (float32 values in 'float32')
      for (let i = 0; i < sw; i++) {
        const c = i1 + s0 + i;
        const q = paramsFor(c);
        scs[i] = q.scale; zrs[i] = q.zero;
        dv[i] = f32 ? fr(tile[(s0 + i) * cnt + s0 + i]!) : tile[(s0 + i) * cnt + s0 + i]!;
        for (let k = 0; k < i; k++) hs[k * sb + i] = f32 ? fr(tile[(s0 + k) * cnt + s0 + i]!) : tile[(s0 + k) * cnt + s0 + i]!;
      }
      for (let r0 = 0; r0 < R; r0 += RC) {
        const r1 = Math.min(r0 + RC, R);
        if (f32) for (let r = r0; r < r1; r++) rowOne(s0, sw, r, P, true);
        else rowsF64(s0, sw, r0, r1, P);
      }
    }
  }
  return { intCodes: codes, groupParams, loss: st.loss, tGemm };
}

/** What rows4 reads and writes of solveRows' state (the buffers; see solveRows for each). */
interface RowsState { W1: Float64Array; R: number; dv: Float64Array; n: number; perm: Int32Array; hs: Float64Array; sb: number; ev4: Float64Array; scs: Float32Array[]; zrs: Float32Array[]; maxq: number; codes: Uint8Array; Et: Operand; Wt: Float32Array; Dt: Operand | null; Qt: Operand | null; loss: number }

/**
 * solveRows' column loop on a sub-block's sw columns (block i1, offset s0), rows [r0, r1) four at a time: column i of
 * row r gets the rank-1 updates of the sub-block's earlier columns k < i (in k order, as AutoGPTQ applies them), then
 * the earlier blocks' part P, then q = quant(w), err = (w − q) / d: the same operations in the same order as column by
 * column, on values kept in registers, with four independent dependency chains for the CPU to overlap. Errors go to
 * Et at column i1 + s0 + i (offset eo), codes straight to their place in `codes` (row r, original column
 * perm[i1 + s0 + i]: no transpose back); ev4 holds the rows' errors as stored (float32 operands: what the updates and
 * the GEMMs use); Σ err² is added to st.loss (one sum per row: four independent add chains); `keep`: W − Q into Dt,
 * `fold`: Qt −= errors (the panel form). Returns the first row not done (< 4 rows left). A module-level function with
 * its state passed in: as a closure over solveRows' variables it ran ~9% slower (one worker's solve, 2048x4096).
 */
function rows4(st: RowsState, s0: number, sw: number, r0: number, r1: number, P: Operand, i1: number, eo: number, keep: boolean, fold: boolean): number {
  const { W1, R, dv, n, perm, hs, sb, ev4, scs, zrs, maxq, codes, Et, Wt, Dt, Qt } = st;
  let r = r0, l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  for (; r + 3 < r1; r += 4) {
    for (let i = 0; i < sw; i++) {
      const wo = (s0 + i) * R + r, po = i * R + r, d = dv[i]!, co = (i1 + s0 + i) * R + r, eoo = co - eo, qo = r * n + perm[i1 + s0 + i]!;
      let w0 = W1[wo]!, w1 = W1[wo + 1]!, w2 = W1[wo + 2]!, w3 = W1[wo + 3]!;
      for (let k = 0; k < i; k++) {
        const h = hs[k * sb + i]!, ko = 4 * k;
        if (h !== 0) { w0 -= ev4[ko]! * h; w1 -= ev4[ko + 1]! * h; w2 -= ev4[ko + 2]! * h; w3 -= ev4[ko + 3]! * h; }
      }
      w0 -= P[po]!; w1 -= P[po + 1]!; w2 -= P[po + 2]!; w3 -= P[po + 3]!;
      const sc = scs[i]!, zr = zrs[i]!;
      const c0 = sc[r]!, c1 = sc[r + 1]!, c2 = sc[r + 2]!, c3 = sc[r + 3]!, z0 = zr[r]!, z1 = zr[r + 1]!, z2 = zr[r + 2]!, z3 = zr[r + 3]!;
      const q0 = quantizeCode(w0, c0, z0, maxq), q1 = quantizeCode(w1, c1, z1, maxq), q2 = quantizeCode(w2, c2, z2, maxq), q3 = quantizeCode(w3, c3, z3, maxq);
      codes[qo] = q0; codes[qo + n] = q1; codes[qo + 2 * n] = q2; codes[qo + 3 * n] = q3;
      const e0 = (w0 - c0 * (q0 - z0)) / d, e1 = (w1 - c1 * (q1 - z1)) / d, e2 = (w2 - c2 * (q2 - z2)) / d, e3 = (w3 - c3 * (q3 - z3)) / d;
      Et[eoo] = e0; Et[eoo + 1] = e1; Et[eoo + 2] = e2; Et[eoo + 3] = e3;
      ev4[4 * i] = Et[eoo]!; ev4[4 * i + 1] = Et[eoo + 1]!; ev4[4 * i + 2] = Et[eoo + 2]!; ev4[4 * i + 3] = Et[eoo + 3]!;
      l0 += e0 * e0; l1 += e1 * e1; l2 += e2 * e2; l3 += e3 * e3;
      if (keep) { const D = Dt!; D[co] = Wt[co]! - c0 * (q0 - z0); D[co + 1] = Wt[co + 1]! - c1 * (q1 - z1); D[co + 2] = Wt[co + 2]! - c2 * (q2 - z2); D[co + 3] = Wt[co + 3]! - c3 * (q3 - z3); }
      if (fold) { const Q = Qt!; Q[eoo]! -= Et[eoo]!; Q[eoo + 1]! -= Et[eoo + 1]!; Q[eoo + 2]! -= Et[eoo + 2]!; Q[eoo + 3]! -= Et[eoo + 3]!; }
    }
  }
  st.loss += (l0 + l1) + (l2 + l3);
  return r;
}

/*
 * The solve's long loops over whole blocks live in these module-level functions, not inline in the async solveRows:
 * V8 optimizes a loop inside an async function poorly once it has resumed from an await (measured on Node 20: the
 * same 22.5M-element add 97 ms inline after an await, 22 ms in a plain function it calls).
 */

/** out[t] = a[ao + t] + s·b[t] for t < len (b null: out[t] = a[ao + t]); `f32`: each result rounded to float32. */
function addInto(out: Float64Array, a: Float32Array, ao: number, b: Operand | null, s: number, len: number, f32: boolean): void {
  if (!b) { for (let t = 0; t < len; t++) out[t] = a[ao + t]!; return; }
  if (f32) { for (let t = 0; t < len; t++) out[t] = Math.fround(a[ao + t]! + s * b[t]!); return; }
  if (s === 1) for (let t = 0; t < len; t++) out[t] = a[ao + t]! + b[t]!;
  else for (let t = 0; t < len; t++) out[t] = a[ao + t]! - b[t]!;
}

/** dst[j·w + c] = U[(r0 + j)·n + c0 + c] on or above U's diagonal (c0 + c ≥ r0 + j), else 0; j < rows, c < w.
 *  `transposed`: into dst[c·rows + j] instead (the products then need no transA, which MLAS runs ~8% slower). */
function upperBlock(dst: Operand, U: Operand, n: number, r0: number, rows: number, c0: number, w: number, transposed = false): void {
  for (let j = 0; j < rows; j++) {
    const ur = (r0 + j) * n + c0, o = j * w, d = r0 + j - c0;
    if (transposed) for (let c = 0; c < w; c++) dst[c * rows + j] = c >= d ? U[ur + c]! : 0;
    else for (let c = 0; c < w; c++) dst[o + c] = c >= d ? U[ur + c]! : 0;
  }
}

/** AutoGPTQ's output conventions: scales/zeros [groups, rows]; g_idx per original column (the codes come from the
 *  solve in the original column order already). */
function finalize(p: Prepared, s: SolvedRows, cfg: GptqConfig): Pick<GptqResult, 'intCodes' | 'scales' | 'zeros' | 'gIdx'> {
  const { R, n, perm } = p, gs = cfg.groupSize;
  const gIdx = new Int32Array(n);
  let plist = gs === -1 ? [p.params0!] : cfg.staticGroups ? p.staticParams : s.groupParams;
  // actGroupAware: processing-order group k is the whole original group perm[k·gs] / gs; g_idx stays in order and
  // the params go back to original group order.
  const inOrder = cfg.staticGroups || cfg.actGroupAware;
  if (gs > 0) for (let c = 0; c < n; c++) gIdx[perm[c]!] = Math.floor((inOrder ? perm[c]! : c) / gs);
  if (cfg.actGroupAware) {
    const byOriginal: QuantParams[] = new Array(plist.length);
    plist.forEach((q, k) => { byOriginal[Math.floor(perm[k * gs]! / gs)] = q; });
    plist = byOriginal;
  }
  const G = plist.length;
  const scales = new Float32Array(G * R), zeros = new Int32Array(G * R);
  plist.forEach((q, g) => { scales.set(q.scale, g * R); zeros.set(q.zero, g * R); });
  if (cfg.arithmetic === 'float32') storedScales(scales); // AutoGPTQ: float32 scales for the codes, fp16 when saved
  return { intCodes: s.intCodes, scales, zeros, gIdx };
}
