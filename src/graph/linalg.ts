/**
 * Dense linear algebra on ONNX Runtime (MLAS GEMM), for the big products of GPTQ and Hessians.
 * Row-major Float32Array / Float64Array in and out. Sessions are built once per variant with dynamic dims.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from './builder.ts';
import { createSession, f32, f64, runInto } from './session.ts';

/** Operands of the products: float32 (AutoGPTQ's precision) or float64. */
export type Operand = Float32Array | Float64Array;
/** A zeroed operand of `len` elements, float64 when `f64`. */
export const operand = (f64: boolean, len: number): Operand => (f64 ? new Float64Array(len) : new Float32Array(len));
/** `x` as an operand: itself when `f64`, else rounded to float32. */
export const asOperand = (f64: boolean, x: Float64Array): Operand => (f64 ? x : new Float32Array(x));
const sessions = new Map<string, Promise<InferenceSession>>();
let threads: number | undefined;

/** ORT intra-op threads of the sessions created from now on (default: one per core). A worker thread of the GPTQ
 *  solve sets its share of the cores. */
export function setLinalgThreads(n: number): void { threads = n; }

function session(key: string, build: () => GraphBuilder): Promise<InferenceSession> {
  let s = sessions.get(key);
  // No CPU arena: GPTQ's products come in many sizes and an arena would keep the largest ones resident. No spinning:
  // between products this thread does TS work, while a spinning pool thread only takes the core from whoever needs it
  // (GPTQ of 4096x4096 on 2 cores: 1.61-1.66 -> 1.44-1.48 s, the Hessian inverse 0.53-0.61 -> 0.41-0.44 s).
  if (!s) { s = createSession(build().toBytes(), { lowMemory: true, spinning: false, ...(threads ? { threads } : {}) }); sessions.set(key, s); }
  return s;
}

/** Run with the output written into `out` (its first m·n elements) when given, else into a new array. */
async function run(s: InferenceSession, feeds: Record<string, ReturnType<typeof tensor>>, name: string, dims: [number, number], out?: Operand): Promise<Operand> {
  if (!out) return (await s.run(feeds))[name]!.data as Operand;
  const view = out.subarray(0, dims[0] * dims[1]);
  await runInto(s, feeds, { [name]: tensor(view, dims) });
  return view;
}

function tensor(a: Operand, dims: number[]) { return a instanceof Float64Array ? f64(a, dims) : f32(a, dims); }
function elem(a: Operand) { return a instanceof Float64Array ? 'float64' as const : 'float32' as const; }

/** op(A)[m,k] · op(B)[k,n] → [m,n] (Gemm); `out`: preallocated result buffer (≥ m·n elements, same type). */
export async function matmul(a: Operand, b: Operand, m: number, k: number, n: number, o: { transA?: boolean; transB?: boolean; out?: Operand } = {}): Promise<Operand> {
  const t = elem(a), tA = o.transA ? 1 : 0, tB = o.transB ? 1 : 0;
  const s = await session(`mm:${t}:${tA}${tB}`, () => {
    const g = new GraphBuilder('matmul');
    const A = g.input('A', t, ['a0', 'a1']), B = g.input('B', t, ['b0', 'b1']);
    g.output(g.op('Gemm', [A, B], { transA: tA, transB: tB }, { name: 'C' }), t);
    return g;
  });
  return run(s, { A: tensor(a, tA ? [k, m] : [m, k]), B: tensor(b, tB ? [n, k] : [k, n]) }, 'C', [m, n], o.out);
}

/** alpha·op(A)[m,k]·op(B)[k,n] + beta·C[m,n] (Gemm with C; `out` may be C itself: computed in place). */
export async function gemm(a: Operand, b: Operand, c: Operand, m: number, k: number, n: number, o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; out?: Operand } = {}): Promise<Operand> {
  const t = elem(a), tA = o.transA ? 1 : 0, tB = o.transB ? 1 : 0, alpha = o.alpha ?? 1, beta = o.beta ?? 1;
  const s = await session(`gemm:${t}:${tA}${tB}:${alpha}:${beta}`, () => {
    const g = new GraphBuilder('gemm');
    const A = g.input('A', t, ['a0', 'a1']), B = g.input('B', t, ['b0', 'b1']), C = g.input('C', t, ['c0', 'c1']);
    g.output(g.op('Gemm', [A, B, C], { transA: tA, transB: tB, alpha: { kind: 'float', v: alpha }, beta: { kind: 'float', v: beta } }, { name: 'Y' }), t);
    return g;
  });
  return run(s, { A: tensor(a, tA ? [k, m] : [m, k]), B: tensor(b, tB ? [n, k] : [k, n]), C: tensor(c, [m, n]) }, 'Y', [m, n], o.out);
}

/** Xᵀ·X for X [n, d] → [d, d]. */
export function gram(x: Operand, n: number, d: number): Promise<Operand> {
  return matmul(x, x, d, n, d, { transA: true });
}
