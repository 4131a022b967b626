/**
 * The command line as users type it: flag parsing and validation (one spec per command), --help/--version/--json,
 * progress output (piped lines, JSON lines), and data safety: output folders, the source folder, work dirs and
 * their locks (real processes: concurrent runs, a SIGKILLed run's stale lock).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, cliArgs, tmpDir } from './helpers.ts';
import { makeLlamaCheckpoint } from './synth.ts';
import { makeGpt2Checkpoint } from './archs/gpt2.synth.ts';
import { commandHelp, parseCommand, type CommandSpec } from '../src/cli/flags.ts';
import { COMMANDS } from '../src/cli/main.ts';
import { writeDirAtomic } from '../src/io/atomic.ts';
import { GraphCache } from '../src/runtime/graph-cache.ts';
import { GraphBuilder } from '../src/graph/builder.ts';
import { checkDeviceAvailable } from '../src/graph/session.ts';
import { GPTQModel } from '../src/gptq-model.ts';
import { WorkDir } from '../src/quant/workdir.ts';
import { VERSION } from '../src/version.ts';

const STORIES = join(ROOT, 'assets', 'stories260K');
const C4 = join(ROOT, 'assets', 'c4_demo.jsonl');
const cli = (args: string[], o: { cwd?: string; input?: string } = {}) =>
  spawnSync(process.execPath, cliArgs(...args), { encoding: 'utf8', cwd: o.cwd, input: o.input, env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });

function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** The commands' specs (each command module exports COMMAND and HELP). */
async function specs(): Promise<[string, { COMMAND: CommandSpec; HELP: string }][]> {
  return Promise.all(Object.entries(COMMANDS).map(async ([n, c]) => [n, (await c.load()) as unknown as { COMMAND: CommandSpec; HELP: string }] as [string, { COMMAND: CommandSpec; HELP: string }]));
}

// -------------------------------------------------------------------------------- parsing and validation

test('flags: negative values (--x -1 and --x=-1), every out-of-range value refused in one line naming flag and range', async () => {
  const { COMMAND: Q } = (await import('../src/cli/quantize.ts'));
  assert.equal(parseCommand(Q, ['--out', 'o', '--group-size', '-1']).values['group-size'], -1);
  assert.equal(parseCommand(Q, ['--out', 'o', '--group-size=-1']).values['group-size'], -1);
  assert.equal(parseCommand(Q, ['-o', 'x', '--bits=8']).values.out, 'x');
  assert.equal(parseCommand(Q, ['--out', 'o', '--activation-dtype', 'float32']).values['activation-dtype'], 'fp32');
  assert.equal(parseCommand(Q, ['--out', 'o', '--max-shard-size', '2GiB']).values['max-shard-size'], 2 * 1024 ** 3);
  const { COMMAND: G } = (await import('../src/cli/generate.ts'));
  const d = parseCommand(G, []).values;
  assert.equal(d['max-new-tokens'], 128);
  assert.equal(d.temperature, 0);
  assert.equal(d['top-p'], undefined); // → generation_config.json
  assert.deepEqual(parseCommand(G, ['--stop', 'a', '--stop', '-b']).values.stop, ['a', '-b']);
  assert.deepEqual(parseCommand(G, ['m', '--', '--not-a-flag']).positionals, ['m', '--not-a-flag']);
  const bad: [CommandSpec, string[], RegExp][] = [
    [G, ['--temperature', '-1'], /^--temperature "-1": out of range \(allowed: a number ≥ 0; 0 = greedy\)$/],
    [G, ['--top-p', '5'], /^--top-p "5": out of range \(allowed: a number in \[0, 1\]; 1 = off\)$/],
    [G, ['--top-k', '-3'], /^--top-k "-3": out of range \(allowed: an integer ≥ 0; 0 = off\)$/],
    [G, ['--repetition-penalty', '0'], /^--repetition-penalty "0": out of range \(allowed: a number > 0; 1 = off\)$/],
    [G, ['--max-new-tokens', '0'], /^--max-new-tokens "0": out of range \(allowed: an integer ≥ 1\)$/],
    [G, ['--max-new-tokens', '-5'], /^--max-new-tokens "-5": out of range/],
    [G, ['--max-new-tokens', '1.5'], /^--max-new-tokens "1.5": not an integer/],
    [G, ['--max-new-tokens', ''], /^--max-new-tokens "": not an integer/],
    [G, ['--threads', '0'], /^--threads "0": out of range \(allowed: an integer ≥ 1\)$/],
    [G, ['--device', 'gpu'], /^--device "gpu": not a choice \(allowed: one of cpu, webgpu, cuda\)$/],
    [G, ['--accuracy-level', '5'], /^--accuracy-level "5": not allowed \(allowed: one of 0, 1, 2, 3, 4\)$/],
    [G, ['--max-new-tokens'], /^--max-new-tokens needs a value \(N\)/],
    [G, ['--seed', '--json'], /^--seed needs a value/],
    [G, ['--json=maybe'], /^--json=maybe: a switch takes no value/],
    [G, ['--max-new-tokns', '3'], /^generate: unknown flag --max-new-tokns; did you mean --max-new-tokens\?/],
    [G, ['--temprature=1'], /did you mean --temperature\?/],
    [G, ['m', 'Once', 'upon'], /^generate: unexpected argument "upon" \(takes \[model\] \[prompt\]; quote a prompt/],
    [Q, ['--out', 'o', '--bits', '5'], /^--bits "5": not allowed \(allowed: one of 2, 3, 4, 8\)$/],
    [Q, ['--out', 'o', '--group-size', '0'], /^--group-size "0": out of range \(allowed: -1 or an integer ≥ 1; -1 = one group per output channel\)$/],
    [Q, ['--out', 'o', '--group-size', '-2'], /out of range/],
    [Q, ['--out', 'o', '--nsamples', '0'], /^--nsamples "0": out of range \(allowed: an integer ≥ 1\)$/],
    [Q, ['--out', 'o', '--damp', '1'], /^--damp "1": out of range \(allowed: a number in \(0, 1\)\)$/],
    [Q, ['--out', 'o', '--seqlen', '1'], /^--seqlen "1": out of range/],
    [Q, ['--out', 'o', '--max-shard-size', '5XB'], /^--max-shard-size "5XB": not a size/],
    [Q, ['--out', 'o', '--method', 'awq'], /not a choice \(allowed: one of gptq, rtn\)/],
  ];
  for (const [spec, argv, re] of bad) assert.throws(() => parseCommand(spec, argv), (e: Error) => e.name === 'GptqError' && re.test(e.message) && !e.message.includes('\n'), `${argv.join(' ')}`);
});

test('--help of every command lists every flag with its range and default (generated from the same spec)', async () => {
  for (const [name, m] of await specs()) {
    assert.equal(m.HELP, commandHelp(m.COMMAND), name);
    assert.match(m.HELP, new RegExp(`^usage: gptq ${name}`));
    for (const f of m.COMMAND.flags) {
      assert.ok(m.HELP.includes(`--${f.name}`), `${name}: --${f.name} missing from help`);
      if (f.default !== undefined && f.type !== 'size') assert.ok(m.HELP.includes(`default ${f.defaultText ?? f.default}`), `${name} --${f.name} default`);
    }
    if (m.COMMAND.flags.some((f) => f.name === 'json')) assert.match(m.HELP, /--json +print one JSON object/);
  }
  const all = (await specs()).map(([n]) => n);
  for (const n of ['generate', 'ppl', 'quantize', 'inspect', 'convert', 'bench']) assert.ok(all.includes(n));
  const top = cli(['--help']);
  assert.equal(top.status, 0);
  for (const n of all) assert.match(top.stdout, new RegExp(`^  ${n} +\\S`, 'm'));
  assert.equal(cli(['help', 'quantize']).stdout, `${(await import('../src/cli/quantize.ts')).HELP}\n`);
});

test('gptq --version / -v; unknown command and a prompt in the model position say what to do', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(VERSION, pkg.version);
  for (const a of ['--version', '-v']) {
    const r = cli([a]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, new RegExp(`^gptqjs ${pkg.version.replace(/\./g, '\\.')} \\(onnxruntime-node \\d+\\.\\d+\\.\\d+, Node\\.js \\d+`));
  }
  const typo = cli(['genrate']);
  assert.equal(typo.status, 1);
  assert.equal(typo.stderr, 'gptq: unknown command "genrate"; did you mean "generate"? (commands: generate, chat, quantize, ppl, inspect, convert, export-onnx, push, eval, compare, serve, bench; gptq --help)\n');
  const p = cli(['generate', 'Once upon a time']);
  assert.equal(p.status, 1);
  assert.equal(p.stderr, 'gptq: generate: "Once upon a time" is not a model directory or a Hub id (owner/name); to pass a prompt: gptq generate --prompt "Once upon a time" (embedded model) or gptq generate MODEL "Once upon a time"\n');
  assert.match(cli(['ppl', './no/such/model']).stderr, /^gptq: ppl: model directory \.\/no\/such\/model does not exist/);
  // --json: the error is the one object on stdout, and only there (stderr holds JSON lines only: here none)
  const j = cli(['generate', '--json', '--top-p', '2']);
  assert.equal(j.status, 1);
  assert.deepEqual(JSON.parse(j.stdout), { error: '--top-p "2": out of range (allowed: a number in [0, 1]; 1 = off)' });
  assert.equal(j.stderr, '');
});

test('--device cuda without the CUDA execution provider: one line naming what to install', () => {
  const bin = join(ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so');
  if (existsSync(bin)) return; // installed here: nothing to refuse
  assert.throws(() => checkDeviceAvailable('cuda'), (e: Error) => /^--device cuda: onnxruntime-node's CUDA execution provider is not installed .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/.test(e.message));
  const r = cli(['generate', '--device', 'cuda', '--max-new-tokens', '2']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /onnxruntime_src|provider_bridge/);
});

test('generate: --json result; prompt + max-new-tokens past max_position_embeddings warns once (Transformers), seqlen past it is refused', () => {
  const g = cli(['generate', STORIES, 'Once upon', '--max-new-tokens', '6', '--json']);
  assert.equal(g.status, 0, g.stderr);
  const lines = g.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  assert.equal(j.newTokens, 6);
  assert.equal(j.tokens.length, 6);
  assert.equal(j.finishReason, 'length');
  assert.equal(typeof j.text, 'string');
  const long = cli(['generate', '--prompt', 'Once upon', '--max-new-tokens', '510']); // 3 + 510 > 512
  assert.equal(long.status, 0, long.stderr);
  assert.equal(long.stderr.match(/warning: prompt 3 tokens \+ --max-new-tokens 510 > max_position_embeddings 512/g)?.length, 1);
  const s = cli(['ppl', '--seqlen', '4096', '--dataset', C4]);
  assert.equal(s.status, 1);
  assert.match(s.stderr, /^gptq: --seqlen 4096: longer than max_position_embeddings 512 of .*config\.json \(allowed: an integer in \[2, 512\]\)\n$/);
});

test('generate: prompt + --max-new-tokens past a learned position table (gpt2 n_positions 24) is refused in one line before running', async () => {
  const t = tmpDir();
  try {
    await makeGpt2Checkpoint(t.path, { seed: 7, positions: 24 });
    copyFileSync(join(STORIES, 'tokenizer.json'), join(t.path, 'tokenizer.json'));
    const r = cli(['generate', t.path, '--max-new-tokens', '30']); // the bos token + 30 > 24
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^gptq: prompt 1 tokens \+ --max-new-tokens 30 > max_position_embeddings 24 of .*config\.json: gpt2 has a learned position table of 24 rows \(config\.json max_position_embeddings of .*\); use --max-new-tokens ≤ 23\n$/);
  } finally { t.cleanup(); }
});

test('ppl: one plain line per step when piped; --json: JSON lines on stderr and one object on stdout', () => {
  const t = tmpDir();
  // A few documents of the embedded C4 sample: enough for 3 windows of 128 tokens, quick to tokenize.
  const small = join(t.path, 'small.jsonl');
  writeFileSync(small, readFileSync(C4, 'utf8').split('\n').slice(0, 12).join('\n') + '\n');
  try { pplChecks(small); } finally { t.cleanup(); }
});

function pplChecks(data: string) {
  const plain = cli(['ppl', '--dataset', data, '--seqlen', '128', '--max-windows', '3']);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /^ppl \d+\.\d{4} {2}\(.*seqlen 128, 3 windows/);
  assert.ok(!plain.stderr.includes('\r'), 'no carriage returns when piped');
  assert.match(plain.stderr, /^ppl window 3\/3: running ppl \d+\.\d{4} {2}elapsed \d/m);
  const r = cli(['ppl', '--dataset', data, '--seqlen', '128', '--max-windows', '3', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.windows, 3);
  assert.equal(out.seqlen, 128);
  const ev = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
  const prog = ev.filter((e) => e.event === 'progress');
  assert.ok(prog.length >= 1);
  for (const e of prog) { assert.equal(e.task, 'perplexity'); assert.equal(e.total, 3); assert.ok(e.elapsed >= 0); }
  assert.equal(prog.at(-1).done, 3);
  assert.equal(prog.at(-1).ppl.toFixed(4), out.ppl.toFixed(4));
}

test('inspect --json prints one object', () => {
  const r = cli(['inspect', STORIES, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).modelType, 'llama');
  // no model: the embedded stories260K, as every [model] command
  const d = cli(['inspect']);
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stdout, /stories260K/);
  assert.match(d.stdout, /llama/);
});

// -------------------------------------------------------------------------------- never lose user data

const Q = ['--method', 'rtn', '--nsamples', '2', '--seqlen', '32', '--group-size', '32', '--dataset', C4];

test('quantize --out: a user folder is refused before any work (files intact); out = source refused always (path, relative, symlink); --overwrite keeps other files', () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    cpSync(STORIES, src, { recursive: true });
    const srcHashes = hashes(src);
    const out = join(t.path, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    writeFileSync(join(out, 'config.json'), '{"mine": true}');
    const r = cli(['quantize', src, '--out', out, ...Q]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^gptq: output .*out is not empty and does not hold a gptqjs checkpoint only \(notes\.txt\); choose another output folder, or pass --overwrite to replace its checkpoint files/);
    assert.doesNotMatch(r.stderr, /CLI:|overwrite: true/, 'the CLI names only its flag');
    assert.doesNotMatch(r.stderr, /layer|calibration/, 'refused before quantizing');
    assert.deepEqual(readdirSync(out).sort(), ['config.json', 'notes.txt']);
    assert.deepEqual(readdirSync(t.path).sort(), ['out', 'src'], 'no work dir or temp folder left');

    symlinkSync(src, join(t.path, 'link'));
    for (const [o, cwd] of [[src, undefined], [relative(t.path, src), t.path], [join(t.path, 'link') + '/', undefined], ['link', t.path], [`./src/../link`, t.path]] as const) {
      const s = cli(['quantize', src, '--out', o, ...Q, '--overwrite'], { cwd });
      assert.equal(s.status, 1, o);
      assert.match(s.stderr, /is the source model folder .*refused even with overwrite/, o);
    }
    assert.deepEqual(hashes(src), srcHashes, 'source untouched');

    const w = cli(['quantize', src, '--out', out, ...Q, '--overwrite']);
    assert.equal(w.status, 0, w.stderr);
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
    assert.notEqual(readFileSync(join(out, 'config.json'), 'utf8'), '{"mine": true}', 'checkpoint file replaced (asked for)');
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), [], 'no staging/backup folders left');
    const qc = JSON.parse(readFileSync(join(out, 'quantize_config.json'), 'utf8'));
    assert.deepEqual(qc.meta.quantizer, [`gptqjs:${VERSION}`]);
    assert.match(qc.meta.gptqjs_run, /^[0-9a-f]{64}$/);
    assert.deepEqual(readdirSync(t.path).sort(), ['link', 'out', 'src']);
  } finally { t.cleanup(); }
});

test('quantize --out: rerun of the same run replaces its own output; another run (config or calibration data) is refused before quantizing; --overwrite drops stale shards only', () => {
  const t = tmpDir();
  try {
    const out = join(t.path, 'q');
    const a = cli(['quantize', STORIES, '--out', out, ...Q, '--max-shard-size', '100KB']);
    assert.equal(a.status, 0, a.stderr);
    const first = hashes(out);
    assert.ok(Object.keys(first).some((f) => /^model-00001-of-0000\d\.safetensors$/.test(f)));
    const again = cli(['quantize', STORIES, '--out', out, ...Q, '--max-shard-size', '100KB']);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(hashes(out), first, 'same run: same bytes');
    const other = cli(['quantize', STORIES, '--out', out, ...Q, '--bits', '8']);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /holds a gptqjs checkpoint of a different run \(bits 4 ≠ 8\)/);
    assert.doesNotMatch(other.stderr, /layer /);
    assert.deepEqual(hashes(out), first);
    // a run that differs only in its calibration data (known once the data is read): refused before the first
    // layer, and its fresh work dir is not left behind (it used to quantize everything, refuse at save time and
    // leave q.partial, which then blocked the first command)
    const calib = cli(['quantize', STORIES, '--out', out, ...Q, '--max-shard-size', '100KB', '--nsamples', '3']);
    assert.equal(calib.status, 1);
    assert.match(calib.stderr, /holds a gptqjs checkpoint of a different run/);
    assert.doesNotMatch(calib.stderr, /layer /);
    assert.deepEqual(readdirSync(t.path), ['q']);
    assert.deepEqual(hashes(out), first);
    const back = cli(['quantize', STORIES, '--out', out, ...Q, '--max-shard-size', '100KB']);
    assert.equal(back.status, 0, back.stderr);
    writeFileSync(join(out, 'README.md'), 'my notes');
    const ow = cli(['quantize', STORIES, '--out', out, ...Q, '--bits', '8', '--overwrite']);
    assert.equal(ow.status, 0, ow.stderr);
    assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')), ['model.safetensors'], 'stale shards + index removed');
    assert.equal(readFileSync(join(out, 'README.md'), 'utf8'), 'my notes');
  } finally { t.cleanup(); }
});

test('library: saveQuantized refuses a non-empty folder without overwrite and out = source; --work-dir on a user folder is refused', async () => {
  const t = tmpDir();
  try {
    const m = await GPTQModel.fromPretrained(STORIES, { quantizeConfig: { bits: 4, groupSize: 32 } });
    await m.quantize(C4, { nsamples: 2, seqlen: 32, method: 'rtn' });
    const out = join(t.path, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'x');
    await assert.rejects(m.saveQuantized(out), /is not empty .*pass `overwrite: true` \(CLI: --overwrite\) to replace/);
    await assert.rejects(m.saveQuantized(STORIES, { overwrite: true }), /is the source model folder/);
    assert.deepEqual(readdirSync(out), ['keep.txt']);
    await m.saveQuantized(out, { overwrite: true });
    assert.ok(readdirSync(out).includes('model.safetensors') && readdirSync(out).includes('keep.txt'));
    // saved without a work dir: no run id, so even its own output needs overwrite next time
    await assert.rejects(m.saveQuantized(out), /overwrite/);
    await m.dispose();
  } finally { t.cleanup(); }
  const u = tmpDir();
  try {
    const user = join(u.path, 'mine');
    mkdirSync(user);
    writeFileSync(join(user, 'thesis.tex'), 'precious');
    const r = cli(['quantize', '--out', join(u.path, 'q'), '--work-dir', user, ...Q]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /work dir .*mine holds files that are not gptqjs's \(thesis\.tex\)/);
    assert.equal(readFileSync(join(user, 'thesis.tex'), 'utf8'), 'precious');
    assert.match(cli(['quantize', '--out', join(u.path, 'q'), '--work-dir', join(u.path, 'q'), ...Q]).stderr, /--work-dir .* is the output folder --out/);
    // a work dir's removal deletes only its own files
    const wd = join(u.path, 'wd');
    const w = await WorkDir.acquire(wd);
    writeFileSync(join(wd, 'added-later.txt'), 'x');
    await w.remove();
    assert.deepEqual(readdirSync(wd), ['added-later.txt']);
    // the folder goes only when gptqjs made it: an empty folder the user made and named as the work dir stays
    const made = join(u.path, 'made-by-user');
    mkdirSync(made);
    await (await WorkDir.acquire(made)).remove();
    assert.deepEqual(readdirSync(made), []);
    const ours = join(u.path, 'ours');
    await (await WorkDir.acquire(ours)).remove();
    assert.equal(existsSync(ours), false);
  } finally { u.cleanup(); }
});

test('writeDirAtomic: a failing write changes nothing in an existing folder; a group size above in_features: one group per row, as AutoGPTQ (default or chosen alike)', async () => {
  const t = tmpDir();
  try {
    const d = join(t.path, 'd');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), 'old');
    writeFileSync(join(d, 'other'), 'o');
    await assert.rejects(writeDirAtomic(d, async (tmp) => { writeFileSync(join(tmp, 'config.json'), 'new'); throw new Error('disk full'); }, { overwrite: true, owns: (n) => n === 'config.json' }), /disk full/);
    assert.deepEqual(readdirSync(d).sort(), ['config.json', 'other']);
    assert.equal(readFileSync(join(d, 'config.json'), 'utf8'), 'old');
    await assert.rejects(writeDirAtomic(d, async () => {}), /is not empty/);
  } finally { t.cleanup(); }
  for (const groupSize of [1024, undefined]) {
    const m = await GPTQModel.fromPretrained(STORIES, { quantizeConfig: { groupSize } });
    const logs: string[] = [];
    const r = await m.quantize(C4, { nsamples: 2, seqlen: 32, method: 'rtn', onLog: (s) => logs.push(s) });
    const g = groupSize ?? 128;
    assert.deepEqual(logs.filter((l) => l.startsWith('group size')), [`group size ${g} is larger than the 64 input features of self_attn.k_proj: one group per row there (as AutoGPTQ does, recorded as group_size ${g}); \`quantizeConfig.groupSize\` (CLI: --group-size) ≤ 64 or -1 sets it`]);
    assert.equal(r.packed.get('model.layers.0.self_attn.q_proj.scales')!.shape[0], 1, 'one group of the whole 64-column row');
    const gIdx = r.packed.get('model.layers.0.self_attn.q_proj.g_idx')!;
    assert.ok(Array.from(('data' in gIdx ? gIdx.data : await gIdx.load()) as Int32Array).every((x) => x === 0));
    await m.dispose();
  }
});

test('graph cache eviction deletes only cache entries, never other files in its folder', async () => {
  const t = tmpDir();
  const prev = process.env.GPTQJS_GRAPH_CACHE_MAX_GB;
  try {
    writeFileSync(join(t.path, 'notes.txt'), 'mine');
    writeFileSync(join(t.path, `${'a'.repeat(32)}-model.onnx`), 'old entry');
    writeFileSync(join(t.path, `${'a'.repeat(32)}-model.onnx.data`), 'old entry');
    process.env.GPTQJS_GRAPH_CACHE_MAX_GB = String(1e-10); // under one byte: every old entry must go
    const cache = GraphCache.open(t.path)!;
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float32', [1, 4]);
    g.output(g.op('Add', [x, g.init('w', 'float32', [1, 4], new Float32Array(4))]), 'float32');
    await cache.save('b'.repeat(32), g);
    assert.ok(existsSync(join(t.path, 'notes.txt')), 'user file kept');
    assert.ok(!existsSync(join(t.path, `${'a'.repeat(32)}-model.onnx`)), 'old entry evicted');
  } finally {
    if (prev === undefined) delete process.env.GPTQJS_GRAPH_CACHE_MAX_GB; else process.env.GPTQJS_GRAPH_CACHE_MAX_GB = prev;
    t.cleanup();
  }
});

// -------------------------------------------------------------------------------- work dir lock (real processes)

/** A synthetic Llama whose quantization takes a few seconds (10 layers), with stories260K's tokenizer. */
async function slowModel(dir: string) {
  await makeLlamaCheckpoint(dir, { hidden: 128, intermediate: 256, layers: 10, heads: 4, kvHeads: 2, vocab: 512, seed: 9 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(STORIES, f), join(dir, f));
}
const slowArgs = (src: string, out: string, extra: string[] = []) =>
  ['quantize', src, '--out', out, '--bits', '4', '--group-size', '32', '--dataset', C4, '--nsamples', '16', '--seqlen', '128', ...extra];

/** Spawn the CLI; resolves once stderr matches `re` (with the process), and `done` when it exits. */
function start(argv: string[], re: RegExp) {
  const p = spawn(process.execPath, cliArgs(...argv), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GPTQJS_GRAPH_CACHE: '0' } });
  let err = '';
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res) => p.on('exit', (code, signal) => res({ code, signal, stderr: err })));
  const seen = new Promise<void>((res, rej) => {
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); if (re.test(err)) res(); });
    void done.then(() => rej(new Error(`exited before ${re}: ${err}`)));
  });
  return { p, seen, done, stderr: () => err };
}

test('two quantize runs with the same --out: the second refuses at once naming the first; a SIGKILLed run\'s lock is taken over; Ctrl-C exits 130 and the rerun resumes', { timeout: 300_000 }, async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src'), out = join(t.path, 'q');
    await slowModel(src);
    const a = start(slowArgs(src, out), /layer 1\/10 /);
    await a.seen;
    const t0 = performance.now();
    const b = cli(slowArgs(src, out));
    const bSeconds = (performance.now() - t0) / 1000;
    assert.equal(b.status, 1);
    assert.match(b.stderr, new RegExp(`work dir .*q\\.partial is in use by another gptq quantize run \\(pid ${a.p.pid}, started `));
    assert.doesNotMatch(b.stderr, /layer \d/, 'the second run did no work');
    assert.ok(bSeconds < 30, `refused at once (${bSeconds.toFixed(1)} s)`);
    const ra = await a.done;
    assert.equal(ra.code, 0, ra.stderr);
    assert.ok(existsSync(join(out, 'model.safetensors')));
    assert.ok(!existsSync(`${out}.partial`));
    const good = hashes(out);

    // kill -9 mid-run: its lock stays; the next run takes it over (naming the dead pid) and resumes.
    const out2 = join(t.path, 'q2');
    const k = start(slowArgs(src, out2), /layer 3\/10 done/);
    await k.seen;
    k.p.kill('SIGKILL');
    await k.done;
    const lock = JSON.parse(readFileSync(join(`${out2}.partial`, 'lock.json'), 'utf8'));
    assert.equal(lock.pid, k.p.pid);
    const r = cli(slowArgs(src, out2));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`taking over the lock of process ${k.p.pid} \\(started .*\\), which is no longer running`));
    assert.match(r.stderr, /resuming at layer \d+\/10/);
    assert.deepEqual(hashes(out2), good, 'resumed output identical');

    // Ctrl-C: stops after the current module, exit status 130 (128 + SIGINT) with the resume hint; the rerun resumes
    const out3 = join(t.path, 'q3');
    const c = start(slowArgs(src, out3), /layer 2\/10 done/);
    await c.seen;
    c.p.kill('SIGINT');
    const rc = await c.done;
    assert.equal(rc.code, 130, rc.stderr);
    assert.match(rc.stderr, /gptq: interrupted; the finished layers are kept in .*q3\.partial: run the same command again to resume\n$/);
    const r3 = cli(slowArgs(src, out3));
    assert.equal(r3.status, 0, r3.stderr);
    assert.match(r3.stderr, /resuming at layer \d+\/10/);
    assert.deepEqual(hashes(out3), good, 'resumed output identical');
    assert.deepEqual(readdirSync(t.path).sort(), ['q', 'q2', 'q3', 'src']);
  } finally { t.cleanup(); }
});

test('quantize --json: one result object on stdout, progress JSON lines (task quantize, done/total layers) on stderr', () => {
  const t = tmpDir();
  try {
    const out = join(t.path, 'q');
    const r = cli(['quantize', '--out', out, ...Q, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.equal(res.out, out);
    assert.equal(res.quantized, 20);
    const ev = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
    const layerDone = ev.filter((e) => e.event === 'progress' && e.task === 'quantize' && e.stage === 'layer-done');
    assert.deepEqual(layerDone.map((e) => [e.layer, e.done, e.total]), [0, 1, 2, 3, 4].map((i) => [i, i + 1, 5]));
    assert.ok(layerDone.every((e) => e.elapsed > 0 && e.eta >= 0));
    assert.equal(layerDone.at(-1).eta, 0);
    assert.ok(ev.some((e) => e.event === 'progress' && e.stage === 'module' && typeof e.module === 'string'));
    assert.ok(ev.some((e) => e.event === 'note' && /^quantizing /.test(e.message)));
    // kept modules grouped by their own reason (down_proj: in_features), no "note: " inside a note event
    assert.deepEqual(ev.filter((e) => e.event === 'note' && /kept in full precision/.test(e.message)).map((e) => e.message),
      ['15 module(s) kept in full precision (mlp.up_proj, mlp.gate_proj: out_features 172 is not a multiple of 32 (qzeros packs 32 output columns per 4 int32 columns); mlp.down_proj: in_features 172 is not a multiple of 32 (qweight packs 32 input rows per 4 int32 rows)); recorded in quantization_config (modules_in_block_to_quantize, dynamic)']);
    assert.ok(ev.every((e) => e.event !== 'note' || !e.message.startsWith('note:')));
    // a GPTQ checkpoint at level 4: the load log (lm-head) is a note event too; stderr holds JSON lines only
    const g = cli(['generate', out, '--prompt', 'Once', '--max-new-tokens', '2', '--json', '--no-graph-cache']);
    assert.equal(g.status, 0, g.stderr);
    const gev = g.stderr.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(gev.some((e) => e.event === 'note' && /^lm-head: output head round-to-nearest quantized to int8.*; --lm-head-bits 0 keeps the checkpoint's head\)$/.test(e.message)), g.stderr);
    assert.doesNotMatch(g.stderr, /lmHeadBits|CLI:/, 'the CLI names its flags only');
    // an error with --json: once, as the stdout object; nothing on stderr
    const e = cli(['ppl', out, '--seqlen', '4096', '--json']);
    assert.equal(e.status, 1);
    assert.match(JSON.parse(e.stdout).error, /^--seqlen 4096: longer than max_position_embeddings 512/);
    assert.equal(e.stderr, '');
  } finally { t.cleanup(); }
});
