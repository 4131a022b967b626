/** Platform seam: path functions (node:path in Node; POSIX paths over mounted folders in browsers, ./web/path.ts). */
export { join, basename, dirname, resolve, extname, isAbsolute, relative } from 'node:path';
