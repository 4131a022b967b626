/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`) → install the tarball into a fresh
 * project, offline → a plain .mjs imports gptqjs, loads the embedded model and generates; a .ts consumer with
 * `tsc --init` defaults compiles against the shipped .d.ts and runs; the installed `gptq` binary works.
 *
 * Offline install: after `npm ci` the npm cache holds every dependency's tarball but not the registry metadata
 * (packuments) that `npm install <tgz>` needs to resolve version ranges, so the consumer gets a package-lock.json
 * derived from ours (the same dependency versions CI tested; gptqjs itself from the tarball with its sha512) and runs
 * `npm ci --offline`. ONNXRUNTIME_NODE_INSTALL=skip: no CUDA download (README "Installation").
 * Set GPTQJS_PACKAGE_REPORT=FILE to write the measured sizes and times as JSON.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, tmpDir } from './helpers.ts';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const tmp = tmpDir('gptqjs-package-');
const APP = join(tmp.path, 'app');
const STORY = 'Once upon a time, there was a little girl named Lily';
const report: Record<string, unknown> = {};

/** The environment for child npm/node: no npm_* variables of an enclosing `npm test`, no ORT download. */
const env = (): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  ONNXRUNTIME_NODE_INSTALL: 'skip', GPTQJS_GRAPH_CACHE: '0', NO_UPDATE_NOTIFIER: '1',
});
const npm = (args: string[], cwd: string) => run('npm', args, { cwd, env: env(), encoding: 'utf8', maxBuffer: 1 << 26 });
const node = (args: string[], cwd = APP) => run(process.execPath, args, { cwd, env: env(), encoding: 'utf8', maxBuffer: 1 << 26 });

let packed: { filename: string; size: number; unpackedSize: number; files: { path: string; size: number }[] };

before(async () => {
  let t = performance.now();
  const { stdout } = await npm(['pack', '--json', '--pack-destination', tmp.path], ROOT);
  packed = JSON.parse(stdout.slice(stdout.indexOf('[')))[0];
  report.packSeconds = (performance.now() - t) / 1000;
  const tgz = join(tmp.path, packed.filename);
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  const spec = `file:../${packed.filename}`;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const packages: Record<string, unknown> = {
    '': { name: 'app', dependencies: { gptqjs: spec } },
    'node_modules/gptqjs': { version: pkg.version, resolved: spec, integrity, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [k, v] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (k && !v.dev) packages[k] = v;
  mkdirSync(APP);
  writeFileSync(join(APP, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { gptqjs: spec } }, null, 2));
  writeFileSync(join(APP, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }, null, 2));
  t = performance.now();
  await npm(['ci', '--offline', '--no-audit', '--no-fund'], APP);
  report.installSeconds = (performance.now() - t) / 1000;
});
after(() => {
  if (process.env.GPTQJS_PACKAGE_REPORT) writeFileSync(process.env.GPTQJS_PACKAGE_REPORT, JSON.stringify({ ...report, tarballBytes: packed?.size, unpackedBytes: packed?.unpackedSize, files: packed?.files.map((f) => f.path) }, null, 2));
  tmp.cleanup();
});

test('the tarball holds dist (JS + .d.ts + maps), bin, the run-time assets, README and LICENSE — no sources, tests, benches, CI', () => {
  const paths = packed.files.map((f) => f.path);
  for (const p of ['package.json', 'README.md', 'LICENSE', 'bin/gptq.js', 'dist/index.js', 'dist/index.d.ts', 'dist/index.js.map', 'dist/cli/main.js',
    'dist/runtime/text.js', 'assets/stories260K/model.safetensors', 'assets/stories260K/tokenizer.json', 'assets/c4_demo.jsonl'])
    assert.ok(paths.includes(p), `missing ${p}`);
  const stray = paths.filter((p) => !/^(dist\/.+\.(js|d\.ts|js\.map)|bin\/gptq\.js|assets\/.+|README\.md|LICENSE|package\.json)$/.test(p));
  assert.deepEqual(stray, []);
  assert.ok(packed.size < 2_500_000, `tarball ${packed.size} bytes`);
  report.tarballKB = Math.round(packed.size / 1024);
});

test('installed offline: dependencies only (no tsx, no typescript); plain .mjs imports gptqjs, loads the embedded model, generates', async () => {
  assert.ok(!existsSync(join(APP, 'node_modules', 'tsx')) && !existsSync(join(APP, 'node_modules', 'typescript')));
  assert.ok(!existsSync(join(APP, 'node_modules', 'gptqjs', 'src')));
  writeFileSync(join(APP, 'story.mjs'), `
const t0 = performance.now();
const { CausalLM } = await import('gptqjs');
const lm = await CausalLM.load();
let first, text = '';
for await (const piece of lm.stream('', { maxNewTokens: 16 })) { first ??= performance.now(); text += piece; }
const r = await lm.generate(['Once upon a time', 'Lily'], { maxNewTokens: 8 });
await lm.dispose();
console.log(JSON.stringify({ text, batch: r.map((x) => x.text), firstTokenMs: first - t0 }));
`);
  const t = performance.now();
  const out = JSON.parse((await node(['story.mjs'])).stdout);
  const processSeconds = (performance.now() - t) / 1000;
  report.mjsProcessSeconds = processSeconds;
  report.importToFirstTokenMs = Math.round(out.firstTokenMs);
  report.installToFirstTokenSeconds = +((report.installSeconds as number) + processSeconds).toFixed(2);
  assert.ok(out.text.startsWith(STORY), out.text);
  assert.equal(out.batch.length, 2);
  assert.ok(out.batch[0].startsWith(','), out.batch[0]);
});

test('a TypeScript consumer with `tsc --init` defaults compiles against the shipped .d.ts and runs', async () => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await node([tsc, '--init']);
  writeFileSync(join(APP, 'consumer.ts'), `
import { CausalLM, GPTQModel, GptqError, generate, type ChatMessage, type LoadOptions, type TextGenerationResult,
  type QuantizeConfig, type KvCache, type PushOptions } from 'gptqjs';

const options: LoadOptions = { threads: 1, attention: 'auto' };
// (\`await using\` compiles to itself at tsc --init's target esnext; Node 20 cannot run it, so dispose() by hand)
const lm = await CausalLM.load(undefined, options);
const r: TextGenerationResult = await lm.generate('Once upon a time', { maxNewTokens: 16, stop: ['.'] });
const ids = await generate(lm, [[1]], { maxNewTokens: 4 });
const cache: KvCache = ids.cache;
const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
const q: Partial<QuantizeConfig> = { bits: 4, groupSize: 128 };
const push: PushOptions = { private: true };
const chat = await lm.chat(messages, { maxNewTokens: 4 }).catch((e: unknown) => (e instanceof GptqError ? e.message : 'other'));
const disposer: AsyncDisposable = lm;
await disposer[Symbol.asyncDispose]();
console.log(JSON.stringify({ text: r.text, finish: r.finishReason, ids: ids.tokens[0], cache: cache.length, chat, q, push, quantizer: typeof GPTQModel.fromPretrained }));
`);
  await node([tsc, '-p', '.']).catch((e) => assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`));
  const out = JSON.parse((await node(['consumer.js'])).stdout);
  assert.equal(out.text, ', there was a little girl named Lily');
  assert.equal(out.finish, 'stop');
  assert.equal(out.ids.length, 4);
  assert.equal(out.chat.message.role, 'assistant'); // no chat template: the User:/Assistant: transcript
  // README: \`await using\` on Node 20 needs a target that downlevels it (es2022 + lib esnext.disposable)
  writeFileSync(join(APP, 'using.ts'), `
import { CausalLM } from 'gptqjs';
let disposed = false;
{
  await using lm = await CausalLM.load();
  const dispose = lm.dispose.bind(lm);
  lm.dispose = async () => { disposed = true; await dispose(); };
  console.log(JSON.stringify((await lm.generate('Once upon a time', { maxNewTokens: 4 })).text));
}
console.log(JSON.stringify(disposed));
`);
  writeFileSync(join(APP, 'tsconfig.es2022.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { target: 'es2022', lib: ['es2022', 'esnext.disposable', 'dom'] }, files: ['using.ts'] }));
  await node([tsc, '-p', 'tsconfig.es2022.json']).catch((e) => assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`));
  assert.doesNotMatch(readFileSync(join(APP, 'using.js'), 'utf8'), /await using/, 'downleveled');
  const u = (await node(['using.js'])).stdout.trim().split('\n');
  assert.deepEqual(u, ['", there was a"', 'true']);
});

test('the installed gptq binary: --version, --help, generate', async () => {
  const gptq = join(APP, 'node_modules', '.bin', 'gptq');
  assert.match((await run(gptq, ['--version'], { cwd: APP, env: env(), encoding: 'utf8' })).stdout.trim(), new RegExp(`^gptqjs ${pkg.version.replace(/\./g, '\\.')} \\(onnxruntime-node `));
  assert.match((await run(gptq, ['--help'], { cwd: APP, env: env(), encoding: 'utf8' })).stdout, /generate/);
  const g = await run(gptq, ['generate', '--max-new-tokens', '16'], { cwd: APP, env: env(), encoding: 'utf8' });
  assert.ok(g.stdout.startsWith(STORY), g.stdout);
});
