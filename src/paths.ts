/**
 * Where the package's own files are, from this module's URL: `src/paths.ts` in a clone (run through tsx) and
 * `dist/paths.js` when installed — both one level below the package root, so every path below holds in both.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of the running code: `<root>/src` or `<root>/dist`. */
export const CODE_ROOT = dirname(fileURLToPath(import.meta.url));
/** The package root (package.json, assets/). */
export const PACKAGE_ROOT = resolve(CODE_ROOT, '..');
/** Run-time assets shipped with the package (`files` in package.json). */
export const ASSETS_DIR = join(PACKAGE_ROOT, 'assets');
/** The embedded default model: llama2.c's stories260K (Llama, 260K parameters, MIT; assets/README.md). */
export const DEFAULT_MODEL_DIR = join(ASSETS_DIR, 'stories260K');

let version: string | undefined;
/** gptqjs's version (package.json "version"). */
export function packageVersion(): string {
  if (version) return version;
  try { version = String(JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version ?? '0.0.0'); } catch { version = '0.0.0'; }
  return version;
}
