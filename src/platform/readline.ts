/** Platform seam: line reading of local files (node:readline in Node; ./web/readline.ts in browsers). */
export { createInterface } from 'node:readline';
