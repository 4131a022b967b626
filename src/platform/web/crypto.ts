/**
 * Browser side of src/platform/crypto.ts. The hashes the library takes are run keys of resumable work dirs and graph
 * cache keys, both Node-only features; WebCrypto has no synchronous sha256, so this fails with a clear line.
 */
import { fail } from '../../errors.ts';

export function createHash(algorithm: string): never {
  return fail(`createHash(${JSON.stringify(algorithm)}): hashing for work dirs and graph caches is not available in the browser build of gptqjs`);
}
