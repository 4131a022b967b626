/**
 * The browser build's seams, checked in Node (no browser needed): the browser entry bundles with no `node:` module
 * reachable; the package.json "browser" map is complete and points at real files; the browser file system
 * (src/platform/web/*) behaves like node:fs for what the library does with it (reads by range from a URL, writes,
 * atomic renames, error codes) and its zip holds exactly the written bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { unzipSync } from 'fflate';
import { ROOT } from './helpers.ts';
import { serveExample } from '../examples/browser/serve.ts';
import { promises as wfs, existsSync as wExists, readFileSync as wReadFileSync } from '../src/platform/web/fs.ts';
import { join as wjoin, resolve as wresolve, dirname as wdirname, basename as wbasename, extname as wextname, relative as wrelative, isAbsolute as wisAbsolute } from '../src/platform/web/path.ts';
import { mountFiles, mountUrl, listFiles, zipFolder, unmount, lookup } from '../src/platform/web/vfs.ts';
import { PACKAGE_VERSION } from '../src/platform/web/paths.ts';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

test('the browser entry bundles with no node: module reachable (esbuild, platform browser, package.json "browser" map)', async () => {
  const r = await esbuild.build({
    entryPoints: [join(ROOT, 'src/browser.ts')], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent',
  });
  const nodeImports: string[] = [], inputs = Object.keys(r.metafile.inputs);
  for (const [file, v] of Object.entries(r.metafile.inputs)) for (const i of v.imports) if (i.path.startsWith('node:') || (i.external && !i.path.startsWith('<'))) nodeImports.push(`${file} → ${i.path}`);
  assert.deepEqual(nodeImports, []);
  // the Node-only modules are swapped out, their browser versions in
  for (const f of ['src/io/hub.ts', 'src/runtime/graph-cache.ts', 'src/gc.ts', 'src/paths.ts', 'src/platform/fs.ts', 'src/platform/ort.ts']) assert.ok(!inputs.includes(f), `${f} is in the browser bundle`);
  for (const f of ['src/platform/web/fs.ts', 'src/platform/web/ort.ts', 'src/runtime/causal-lm.ts', 'src/quant/layer-loop.ts', 'src/gptq-model.ts']) assert.ok(inputs.includes(f), `${f} is not in the browser bundle`);
  assert.ok(inputs.some((f) => f.includes('node_modules/onnxruntime-web/')) && !inputs.some((f) => f.includes('onnxruntime-node')));
});

test('package.json "browser" map: every src entry has its dist twin and both sides exist in src/', () => {
  const map = pkg.browser as Record<string, string>;
  const src = Object.entries(map).filter(([k]) => k.startsWith('./src/'));
  assert.ok(src.length >= 10);
  for (const [from, to] of src) {
    assert.ok(existsSync(join(ROOT, from)) && existsSync(join(ROOT, to)), `${from} → ${to}`);
    const dist = (p: string) => p.replace('./src/', './dist/').replace(/\.ts$/, '.js');
    assert.equal(map[dist(from)], dist(to), `dist twin of ${from}`);
  }
  assert.equal(Object.keys(map).length, 2 * src.length);
  assert.equal(pkg.exports['./browser'].default, './dist/browser.js');
});

test('the browser build knows the package version (src/platform/web/paths.ts = package.json)', () => {
  assert.equal(PACKAGE_VERSION, pkg.version);
});

test('web path functions agree with node:path posix on the paths the library builds', async () => {
  const posix = (await import('node:path')).posix;
  for (const a of [['/a/b', 'c.json'], ['/a/b/', '../c'], ['/', 'x'], ['/a', '.x.tmp-0-ab'], ['a', 'b/c'], ['/out-1', 'model.safetensors']])
    assert.equal(wjoin(...a), posix.join(...a), a.join(' + '));
  for (const p of ['/a/b/c.json', '/a/', '/a', '/', 'rel/x.txt', '/a/b.tar.gz'])
    assert.deepEqual([wdirname(p), wbasename(p), wextname(p)], [posix.dirname(p), posix.basename(p), posix.extname(p)], p);
  for (const [a, b] of [['/a/b', '/a/c/d'], ['/a', '/a'], ['/x/y/z', '/x'], ['/', '/q/r']]) assert.equal(wrelative(a!, b!), posix.relative(a!, b!), `${a} → ${b}`);
  assert.ok(wisAbsolute('/a') && !wisAbsolute('a'));
  assert.equal(wresolve('x', 'y'), '/x/y');
  assert.equal(wresolve('/a/b', '../c'), '/a/c');
});

test('web fs: writes, exclusive create, rename over a file, folder moves, rm, error codes like node:fs', async () => {
  const d = '/t-fs';
  await wfs.mkdir(d);
  await assert.rejects(wfs.mkdir(d), { code: 'EEXIST' });
  await assert.rejects(wfs.readFile(`${d}/missing.json`, 'utf8'), { code: 'ENOENT' });
  await assert.rejects(wfs.writeFile('/no-such-dir/x', 'x'), { code: 'ENOENT' });
  const fh = await wfs.open(`${d}/a.bin`, 'wx');
  await fh.write(new Uint8Array([1, 2, 3, 4, 5]), 1, 3);
  await fh.write(new Uint8Array([9]));
  await fh.close();
  await assert.rejects(wfs.open(`${d}/a.bin`, 'wx'), { code: 'EEXIST' });
  assert.deepEqual([...(await wfs.readFile(`${d}/a.bin`))], [2, 3, 4, 9]);
  const r = await wfs.open(`${d}/a.bin`, 'r'), buf = new Uint8Array(3);
  assert.deepEqual(await r.read(buf, 0, 3, 2).then((x) => x.bytesRead), 2); // past the end: fewer bytes
  assert.deepEqual([...buf.subarray(0, 2)], [4, 9]);
  assert.equal((await r.stat()).size, 4);
  await wfs.writeFile(`${d}/b.json`, '{"x":1}');
  await wfs.rename(`${d}/b.json`, `${d}/a.bin`); // replaces a file
  assert.equal(await wfs.readFile(`${d}/a.bin`, 'utf8'), '{"x":1}');
  await wfs.mkdir(`${d}/sub/deeper`, { recursive: true });
  await wfs.writeFile(`${d}/sub/deeper/c.txt`, 'c');
  await assert.rejects(wfs.rmdir(`${d}/sub`), { code: 'ENOTEMPTY' });
  await wfs.rename(`${d}/sub`, `${d}/moved`);
  assert.deepEqual(await wfs.readdir(d), ['a.bin', 'moved']);
  assert.equal(await wfs.readFile(`${d}/moved/deeper/c.txt`, 'utf8'), 'c');
  assert.ok((await wfs.stat(`${d}/moved`)).isDirectory() && (await wfs.stat(`${d}/a.bin`)).isFile());
  await assert.rejects(wfs.rm(`${d}/moved`), { code: 'EISDIR' });
  await wfs.rm(`${d}/moved`, { recursive: true });
  await wfs.rm(`${d}/moved`, { force: true });
  assert.ok(!wExists(`${d}/moved/deeper/c.txt`));
  unmount(d);
  assert.ok(!wExists(d));
});

test('mountUrl without the Cache API reads files by HTTP Range (206) and gets the same bytes as the files on disk', async () => {
  const s = await serveExample({ root: join(ROOT, 'assets') });
  try {
    const dir = await mountUrl(`${s.url}models/stories260K/`, { at: '/t-url', cache: false });
    assert.equal(dir, '/t-url');
    const names = listFiles(dir).sort();
    assert.deepEqual(names, ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json']);
    const disk = readFileSync(join(ROOT, 'assets/stories260K/model.safetensors'));
    const fh = await wfs.open(`${dir}/model.safetensors`, 'r'), buf = new Uint8Array(1000);
    assert.equal((await fh.stat()).size, disk.length);
    const { bytesRead } = await fh.read(buf, 0, 1000, 123_456);
    assert.equal(bytesRead, 1000);
    assert.deepEqual(Buffer.from(buf), disk.subarray(123_456, 124_456));
    assert.equal(await wfs.readFile(`${dir}/config.json`, 'utf8'), readFileSync(join(ROOT, 'assets/stories260K/config.json'), 'utf8'));
    const ranged = s.requests.filter((r) => r.path.endsWith('/model.safetensors') && r.method === 'GET');
    assert.deepEqual(ranged.map((r) => r.status), [206]); // one Range request, not the whole 1 MB file
    await assert.rejects(mountUrl(`${s.url}models/nothing-here/`, { cache: false }), /no config\.json there/);
    unmount(dir);
  } finally { await s.close(); }
});

test('zipFolder: a stored zip of exactly the files written (mounted sources copied by reference)', async () => {
  const src = mountFiles({ 'config.json': '{"a":1}', 'w.bin': new Uint8Array([7, 8, 9]), 'sub/t.txt': new Blob(['hi']) }, { at: '/t-zip-src' });
  await wfs.mkdir('/t-zip');
  await wfs.copyFile(`${src}/w.bin`, '/t-zip/w.bin');
  await wfs.writeFile('/t-zip/config.json', '{"b":2}');
  const big = new Uint8Array(40_000_000).map((_, i) => i % 251); // more than one 16 MB read step
  await wfs.writeFile('/t-zip/big.bin', big);
  const files = unzipSync(new Uint8Array(await (await zipFolder('/t-zip', { topFolder: 'ckpt' })).arrayBuffer()));
  assert.deepEqual(Object.keys(files).sort(), ['ckpt/big.bin', 'ckpt/config.json', 'ckpt/w.bin']);
  assert.deepEqual([...files['ckpt/w.bin']!], [7, 8, 9]);
  assert.equal(new TextDecoder().decode(files['ckpt/config.json']), '{"b":2}');
  assert.ok(Buffer.from(files['ckpt/big.bin']!).equals(Buffer.from(big)));
  unmount('/t-zip'); unmount(src);
});

test('written files: 16 MiB of pending writes move into a Blob (out of the JS heap); reads across the seams are exact', async () => {
  await wfs.mkdir('/t-seal');
  const fh = await wfs.open('/t-seal/w.bin', 'w'), all: number[] = [];
  const part = (k: number, n: number) => new Uint8Array(n).map((_, i) => (i * 7 + k) % 253);
  for (const [k, n] of [[1, 7 << 20], [2, 7 << 20], [3, 3 << 20], [4, 1000]] as const) { const b = part(k, n); await fh.write(b); for (const x of b) all.push(x); }
  await fh.close();
  const n = lookup('/t-seal/w.bin') as { chunks: unknown[]; size: number };
  assert.equal(n.size, all.length);
  assert.deepEqual(n.chunks.map((c) => (c instanceof Uint8Array ? 'bytes' : c instanceof Blob ? 'blob' : '?')), ['blob', 'bytes']); // 17 MiB sealed, 1000 bytes pending
  const want = Uint8Array.from(all), got = await wfs.readFile('/t-seal/w.bin') as Uint8Array;
  assert.ok(Buffer.from(got).equals(Buffer.from(want)));
  const r = await wfs.open('/t-seal/w.bin', 'r'), buf = new Uint8Array(3000);
  await r.read(buf, 0, 3000, all.length - 2000); // spans the Blob / bytes seam
  assert.ok(Buffer.from(buf.subarray(0, 2000)).equals(Buffer.from(want.subarray(all.length - 2000))));
  assert.throws(() => wReadFileSync('/t-seal/w.bin'), /written files over 16 MiB are read asynchronously/);
  await wfs.writeFile('/t-seal/small.json', '{"a":1}');
  assert.equal(wReadFileSync('/t-seal/small.json', 'utf8'), '{"a":1}');
  unmount('/t-seal');
});

test('zipFolder: an archive over 4 GiB (no ZIP64 in fflate) fails with one line before reading anything', async () => {
  let reads = 0;
  const huge = { size: 2 ** 32, name: 'model.safetensors', slice: () => { reads++; return new Blob([]); } } as unknown as Blob;
  const dir = mountFiles([huge], { at: '/t-zip-huge' });
  await assert.rejects(zipFolder(dir), /the archive would be 4294967\d+ bytes; over 4 GiB needs ZIP64/);
  assert.equal(reads, 0);
  unmount(dir);
});
