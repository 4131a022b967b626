import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * node arguments that run the `gptq` CLI from the TypeScript sources (tsx), so tests exercise src/ as edited; the
 * compiled bin/gptq.js → dist/ path is covered by test/package.test.ts.
 */
export const cliArgs = (...args: string[]) => ['--import', import.meta.resolve('tsx'), join(ROOT, 'src', 'cli', 'main.ts'), ...args];
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** ../shared next to the project root, overridable with GPTQJS_SHARED. */
export const SHARED = process.env.GPTQJS_SHARED ?? resolve(ROOT, '..', 'shared');
export const HAVE_SHARED = existsSync(SHARED);
/** In CI ../shared exists; never silently skip there. */
export const SKIP_SHARED = HAVE_SHARED ? false : process.env.CI ? false : 'needs ../shared (set GPTQJS_SHARED)';

export function tmpDir(prefix = 'gptqjs-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Deterministic PRNG (mulberry32) for synthetic weights. */
import { mulberry32 } from '../src/io/random.ts';
export const rng = mulberry32;

/** Standard normal samples via Box-Muller. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const o = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12), v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    o[i] = m * Math.cos(2 * Math.PI * v) * scale;
    if (i + 1 < n) o[i + 1] = m * Math.sin(2 * Math.PI * v) * scale;
  }
  return o;
}

/**
 * Float64 reference of the per-token NLL perplexity uses: −log softmax(logits[b,s])[ids[b][s+1]] for rows `ids` [B][S]
 * and their fp32 logits [B,S,V]; returns [B·(S−1)], row-major (CausalLM.nll's layout).
 */
export function refNll(logits: Float32Array, ids: number[][], V: number): Float64Array {
  const S = ids[0]!.length, out = new Float64Array(ids.length * (S - 1));
  ids.forEach((row, b) => {
    for (let s = 0; s < S - 1; s++) {
      const o = (b * S + s) * V;
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[o + v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[o + v]! - max);
      out[b * (S - 1) + s] = Math.log(z) + max - logits[o + row[s + 1]!]!;
    }
  });
  return out;
}

/** Largest |a − b| over two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * GPTQ 4-bit g32 of a stories260K-like checkpoint `src` (attention quantized, the 172-wide MLP kept fp) on the embedded
 * C4 sample, saved to `out`; returns `out`.
 */
export async function quantizeStories(src: string, out: string, o: { nsamples?: number; seqlen?: number } = {}): Promise<string> {
  const { GPTQModel } = await import('../src/gptq-model.ts');
  const m = await GPTQModel.fromPretrained(src, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize(resolve(ROOT, 'assets', 'c4_demo.jsonl'), { nsamples: o.nsamples ?? 16, seqlen: o.seqlen ?? 128 });
  await m.saveQuantized(out);
  await m.close();
  return out;
}

/** Largest |a − ref| / max(|ref|, 1) (relative, absolute near 0). */
export function maxRelDiff(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length !== ref.length) throw new Error(`length ${a.length} ≠ ${ref.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - ref[i]!) / Math.max(Math.abs(ref[i]!), 1));
  return m;
}

/** exp(mean over rows of the row's mean NLL): the perplexity of those windows from a [B·(S−1)] NLL array. */
export function pplOf(nll: ArrayLike<number>, rows: number): number {
  const n = nll.length / rows;
  let total = 0;
  for (let b = 0; b < rows; b++) { let s = 0; for (let i = b * n; i < (b + 1) * n; i++) s += nll[i]!; total += s / n; }
  return Math.exp(total / rows);
}
