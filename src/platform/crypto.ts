/** Platform seam: hashing (node:crypto in Node; ./web/crypto.ts in browsers). */
export { createHash, randomInt } from 'node:crypto';
