/**
 * Build the browser example with esbuild: main.ts (page) and worker.ts (the library, onnxruntime-web, tokenizers) as
 * ES module bundles, index.html, and onnxruntime-web's WASM runtime files under ort/ (served by the page's own
 * server: nothing is fetched from a CDN). esbuild honours gptqjs's package.json "browser" field, which swaps the Node
 * modules for src/platform/web/*.
 *   node --import tsx examples/browser/build.ts [outdir]     (default examples/browser/dist)
 */
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE_DIR = dirname(fileURLToPath(import.meta.url));
/** The onnxruntime-web runtime the default ("onnxruntime-web") bundle loads: WASM threads+SIMD with the WebGPU EP (JSEP). */
export const ORT_FILES = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

export interface BuildResult { outdir: string; bytes: Record<string, number> }

export async function buildExample(outdir = join(EXAMPLE_DIR, 'dist'), o: { minify?: boolean } = {}): Promise<BuildResult> {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(join(outdir, 'ort'), { recursive: true });
  await esbuild.build({
    entryPoints: { main: join(EXAMPLE_DIR, 'main.ts'), worker: join(EXAMPLE_DIR, 'worker.ts') },
    outdir, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: o.minify ?? true, sourcemap: false,
    logLevel: 'error', legalComments: 'none',
  });
  copyFileSync(join(EXAMPLE_DIR, 'index.html'), join(outdir, 'index.html'));
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
  for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(outdir, 'ort', f));
  const bytes: Record<string, number> = {};
  for (const f of ['main.js', 'worker.js', 'index.html', ...ORT_FILES.map((f) => `ort/${f}`)]) bytes[f] = statSync(join(outdir, f)).size;
  return { outdir, bytes };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildExample(process.argv[2]);
  for (const [f, n] of Object.entries(r.bytes)) console.log(`${f.padEnd(40)} ${(n / 1024).toFixed(1).padStart(9)} KiB`);
  console.log(`built ${r.outdir}`);
}
