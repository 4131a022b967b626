/**
 * Browser side of src/paths.ts: the package's own files live at virtual paths. The embedded stories260K is not part
 * of the bundle; a page mounts it where DEFAULT_MODEL_DIR points if it wants `CausalLM.load()` without arguments
 * (mountUrl(url, { at: DEFAULT_MODEL_DIR })).
 */
import type * as nodePaths from '../../paths.ts';

export const CODE_ROOT = '/gptqjs/dist';
export const PACKAGE_ROOT = '/gptqjs';
export const ASSETS_DIR = '/gptqjs/assets';
export const DEFAULT_MODEL_DIR = '/gptqjs/assets/stories260K';

/** package.json "version" (a bundle has no package.json to read; test/browser-seams.test.ts keeps the two equal). */
export const PACKAGE_VERSION = '0.1.0';
export function packageVersion(): string { return PACKAGE_VERSION; }

({ CODE_ROOT, PACKAGE_ROOT, ASSETS_DIR, DEFAULT_MODEL_DIR, packageVersion }) satisfies typeof nodePaths;
