/** Platform seam: hashing (node:crypto in Node; ./web/crypto.ts in browsers). */
export { createHash } from 'node:crypto';
