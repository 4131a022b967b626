/**
 * Browser side of src/platform/ort.ts: onnxruntime-web (WASM EP with threads + SIMD; WebGPU EP where the browser has
 * it). Same API as onnxruntime-node, with one difference made good here: onnxruntime-web 1.30 ignores CPU tensors
 * passed as pre-allocated outputs (session.run(feeds, { y: tensor }) leaves tensor.data untouched and returns it —
 * zeros), while the library binds outputs to its own buffers (KV cache appended in place, Hessians accumulated in
 * place, GEMM results written into panels). Sessions created here run such calls by fetching the outputs and copying
 * them into the bound tensors' data, so callers see onnxruntime-node's semantics.
 */
import * as ortWeb from 'onnxruntime-web';
import type { InferenceSession as Session, Tensor as OrtTensor } from 'onnxruntime-web';

export * from 'onnxruntime-web';

export const ORT_PACKAGE = 'onnxruntime-web';

/** No native binaries in a browser. */
export function ortNativeDir(): string | undefined { return undefined; }

type Fetches = Record<string, OrtTensor | null> | readonly string[];

function withBoundOutputs(s: Session): Session {
  const run = s.run.bind(s) as (feeds: Session.FeedsType, fetches?: unknown, options?: Session.RunOptions) => Promise<Session.ReturnType>;
  const patched = async (feeds: Session.FeedsType, fetchesOrOptions?: Fetches | Session.RunOptions, options?: Session.RunOptions) => {
    const isFetchMap = fetchesOrOptions && !Array.isArray(fetchesOrOptions) && Object.keys(fetchesOrOptions).some((k) => s.outputNames.includes(k));
    if (!isFetchMap) return run(feeds, fetchesOrOptions, options);
    const bound = fetchesOrOptions as Record<string, OrtTensor | null>;
    const r = await run(feeds, Object.keys(bound), options);
    const out: Record<string, OrtTensor> = {};
    for (const [name, t] of Object.entries(bound)) {
      const got = r[name]!;
      if (!t) { out[name] = got; continue; }
      const src = got.data as ArrayLike<number> & { length: number }, dst = t.data as unknown as { length: number; set(a: ArrayLike<number>): void };
      if (src.length !== dst.length) throw new Error(`output "${name}": ${src.length} elements, the bound tensor holds ${dst.length}`);
      dst.set(src);
      got.dispose?.();
      out[name] = t;
    }
    return out as Session.ReturnType;
  };
  (s as { run: unknown }).run = patched;
  return s;
}

/** onnxruntime-web's InferenceSession whose sessions honour bound CPU outputs (see above). */
export const InferenceSession = {
  ...ortWeb.InferenceSession,
  create: async (...args: unknown[]) => withBoundOutputs(await (ortWeb.InferenceSession.create as (...a: unknown[]) => Promise<Session>)(...args)),
} as typeof ortWeb.InferenceSession;
