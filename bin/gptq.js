#!/usr/bin/env node
// `gptq` command: runs the compiled CLI in dist/ (plain JavaScript; no TypeScript or tsx at run time). dist/ is
// built by `npm run build`, which npm runs itself on `npm ci`/`npm install` in a clone or git install (`prepare`)
// and on `npm pack`/`npm publish`. While editing sources in a clone, `npm run gptq -- …` runs src/ through tsx.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('gptq: dist/cli/main.js is missing; build it with `npm run build` (or run `npm run gptq -- …` in a clone)\n');
  process.exit(1);
}
// Stack traces (GPTQJS_DEBUG=1) point into the TypeScript sources through dist/'s source maps.
if (process.env.GPTQJS_DEBUG === '1') process.setSourceMapsEnabled(true);
await import(main.href);
