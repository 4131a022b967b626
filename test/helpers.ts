import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

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
