/** Platform seam: gunzip streams for .json.gz dataset shards (node:zlib in Node; ./web/zlib.ts in browsers). */
export { createGunzip } from 'node:zlib';
