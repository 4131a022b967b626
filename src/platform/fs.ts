/**
 * Platform seam: the file system the library reads and writes. In Node this is node:fs itself (same functions, same
 * errors). Browser bundles get ./web/fs.ts instead (package.json "browser" field): folders mounted from URLs, picked
 * files and in-memory output folders (src/platform/web/vfs.ts).
 */
export { promises, existsSync, realpathSync, readFileSync, unlinkSync, createReadStream } from 'node:fs';
