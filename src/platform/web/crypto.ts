/**
 * Browser side of src/platform/crypto.ts: `createHash('sha256')` with Node's update/digest shape, on @noble/hashes
 * (audited, dependency-free, synchronous — WebCrypto's digest is async only). The library hashes save-time module
 * digests (src/quant/save.ts), work-dir run keys and graph-cache keys with it.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { fail } from '../../errors.ts';

export interface Hash {
  update(data: string | Uint8Array): Hash;
  digest(encoding: 'hex'): string;
}

export function createHash(algorithm: string): Hash {
  if (algorithm !== 'sha256') fail(`createHash(${JSON.stringify(algorithm)}): only sha256 is available in the browser build of gptqjs`);
  const h = sha256.create();
  const enc = new TextEncoder();
  const self: Hash = {
    update(data) { h.update(typeof data === 'string' ? enc.encode(data) : data); return self; },
    digest() { return bytesToHex(h.digest()); },
  };
  return self;
}

/** A uniform integer in [0, max) (max ≤ 2^32) from the browser's crypto.getRandomValues, as node:crypto randomInt(max). */
export function randomInt(max: number): number {
  if (!(Number.isInteger(max) && max > 0 && max <= 2 ** 32)) fail(`randomInt: max must be an integer in [1, 2^32], got ${max}`);
  const lim = 2 ** 32 - (2 ** 32 % max), u = new Uint32Array(1);
  for (;;) { globalThis.crypto.getRandomValues(u); if (u[0]! < lim) return u[0]! % max; }
}
