/**
 * Dense linear algebra on ONNX Runtime (MLAS GEMM), for the big products of GPTQ and Hessians.
 * Row-major Float32Array / Float64Array in and out. Sessions are built once per variant with dynamic dims.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from './builder.ts';
import { createSession, f32, f64 } from './session.ts';

type Arr = Float32Array | Float64Array;
const sessions = new Map<string, Promise<InferenceSession>>();

function session(key: string, build: () => GraphBuilder): Promise<InferenceSession> {
  let s = sessions.get(key);
  if (!s) { s = createSession(build().toBytes()); sessions.set(key, s); }
  return s;
}

function tensor(a: Arr, dims: number[]) { return a instanceof Float64Array ? f64(a, dims) : f32(a, dims); }
function elem(a: Arr) { return a instanceof Float64Array ? 'float64' as const : 'float32' as const; }

/** op(A)[m,k] · op(B)[k,n] → [m,n] (Gemm). */
export async function matmul(a: Arr, b: Arr, m: number, k: number, n: number, o: { transA?: boolean; transB?: boolean } = {}): Promise<Arr> {
  const t = elem(a), tA = o.transA ? 1 : 0, tB = o.transB ? 1 : 0;
  const s = await session(`mm:${t}:${tA}${tB}`, () => {
    const g = new GraphBuilder('matmul');
    const A = g.input('A', t, ['a0', 'a1']), B = g.input('B', t, ['b0', 'b1']);
    g.output(g.op('Gemm', [A, B], { transA: tA, transB: tB }, { name: 'C' }), t);
    return g;
  });
  const r = await s.run({ A: tensor(a, tA ? [k, m] : [m, k]), B: tensor(b, tB ? [n, k] : [k, n]) });
  return r.C!.data as Arr;
}

/** Xᵀ·X for X [n, d] → [d, d]. */
export function gram(x: Arr, n: number, d: number): Promise<Arr> {
  return matmul(x, x, d, n, d, { transA: true });
}
