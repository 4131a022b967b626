/**
 * Sharing on the Hub: saveQuantized(dir, { pushToHub }) and `gptq push DIR owner/name` through @huggingface/hub,
 * against the local mock Hub (test/mock-hub.ts) — what was sent is checked against the files on disk (paths,
 * bytes, sha256 of LFS files), plus the model card and the provenance `meta` in quantize_config.json.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CausalLM, GPTQModel, GptqError } from '../src/index.ts';
import { DEFAULT_MODEL_DIR, packageVersion } from '../src/paths.ts';
import { findHfToken, hfTokenPath } from '../src/io/hf-token.ts';
import { modelCardForDir } from '../src/io/model-card.ts';
import { pushToHub } from '../src/io/push.ts';
import { startMockHub, type MockHub } from './mock-hub.ts';
import { ROOT, tmpDir } from './helpers.ts';

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const tmp = tmpDir('gptqjs-push-');
const OUT = join(tmp.path, 'stories-gptq');
let hub: MockHub;
let saved: Awaited<ReturnType<GPTQModel['saveQuantized']>>;
const PPL = { dataset: 'wikitext2', seqlen: 512, value: 122.545, baseValue: 121.9 };

before(async () => {
  hub = await startMockHub();
  await using m = await GPTQModel.fromPretrained(DEFAULT_MODEL_DIR, { quantizeConfig: { bits: 4, groupSize: 32 } });
  await m.quantize('c4', { nsamples: 8, seqlen: 64, onLog: () => {} });
  saved = await m.saveQuantized(OUT, { pushToHub: { repoId: 'alice/stories-gptq', accessToken: hub.token, hubUrl: hub.url }, perplexity: PPL });
});
after(async () => { await hub?.close(); tmp.cleanup(); });

/** Files of a directory as relative paths, without dot files/folders (push skips them). */
const filesOf = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
  .map((e) => join(e.parentPath ?? (e as any).path, e.name).slice(dir.length + 1)).filter((p) => !p.split('/').some((s) => s.startsWith('.'))).sort();

/** The commit's files match the directory: regular files byte for byte, LFS files by sha256 and size. */
function assertCommitMatches(c: (typeof hub.commits)[number], dir: string, extra: Record<string, string> = {}) {
  const sent = [...c.files.keys(), ...c.lfsFiles.keys()].sort();
  assert.deepEqual(sent, [...filesOf(dir), ...Object.keys(extra)].sort());
  for (const [p, bytes] of c.files) assert.ok(bytes.equals(p in extra ? Buffer.from(extra[p]!) : readFileSync(join(dir, p))), `${p} content`);
  for (const [p, { oid, size }] of c.lfsFiles) {
    assert.equal(oid, sha256(join(dir, p)), `${p} sha256`);
    assert.equal(size, readFileSync(join(dir, p)).length);
    assert.ok(hub.lfs.get(oid)!.equals(readFileSync(join(dir, p))), `${p} stored bytes`);
  }
}

test('saveQuantized({ pushToHub }): repo created, one commit with every saved file; LFS for weights with their sha256', () => {
  assert.equal(saved.push!.repoId, 'alice/stories-gptq');
  assert.deepEqual([...hub.repos.keys()], ['alice/stories-gptq']);
  assert.equal(hub.commits.length, 1);
  const c = hub.commits[0]!;
  assert.equal(c.revision, 'main');
  assert.equal(c.summary, `Upload ${filesOf(OUT).length} files with gptqjs`);
  assertCommitMatches(c, OUT);
  assert.ok(c.lfsFiles.has('model.safetensors') && c.files.has('README.md') && c.files.has('quantize_config.json'));
  assert.equal(saved.push!.commitUrl, `${hub.url}/alice/stories-gptq/commit/${saved.push!.commitOid}`);
  assert.equal(saved.push!.generatedCard, false); // the saved README.md was uploaded as is
});

test('provenance in quantize_config.json and config.json: meta.quantizer gptqjs:<version> (GPTQModel\'s field), calibration, perplexity', async () => {
  const qc = JSON.parse(readFileSync(join(OUT, 'quantize_config.json'), 'utf8'));
  const meta = {
    quantizer: [`gptqjs:${packageVersion()}`], uri: 'https://www.npmjs.com/package/gptqjs', damp_percent: 0.01, static_groups: false,
    true_sequential: true, calibration: { dataset: 'c4 (embedded c4_demo.jsonl sample, 300 docs)', nsamples: 8, seqlen: 64, tokens: 512 }, perplexity: PPL,
  };
  assert.deepEqual(qc.meta, meta);
  assert.deepEqual(JSON.parse(readFileSync(join(OUT, 'config.json'), 'utf8')).quantization_config.meta, meta);
  // other loaders' fields unchanged, and the checkpoint still loads
  assert.deepEqual([qc.bits, qc.group_size, qc.desc_act, qc.sym, qc.quant_method], [4, 32, false, true, 'gptq']);
  await using lm = await CausalLM.load(OUT, { onLog: () => {} });
  assert.ok(lm.quantization);
});

test('the model card (README.md in the output dir): YAML metadata, settings, calibration, perplexity, tool, usage', () => {
  const card = readFileSync(join(OUT, 'README.md'), 'utf8');
  assert.match(card, /^---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- gptq\n- 4-bit\n- gptqjs\n---\n/);
  assert.doesNotMatch(card, /base_model:/); // a local source has no Hub id
  for (const line of ['# llama — GPTQ 4-bit', '4-bit GPTQ quantization of a causal language model (`llama`)', '| bits | 4 |', '| group size | 32 |', '| desc_act (act-order) | false |', '| sym | true |',
    '| damp_percent | 0.01 |', `| quantizer | gptqjs:${packageVersion()} |`, 'c4 (embedded c4_demo.jsonl sample, 300 docs): 8 samples of up to 64 tokens (512 tokens in all).',
    '| wikitext2 | 512 | 122.545 | 121.9 |', 'const lm = await CausalLM.load("alice/stories-gptq");', 'npx gptq generate alice/stories-gptq'])
    assert.ok(card.includes(line), `card lacks: ${line}\n${card}`);
});

test('a card saved without a repo id is uploaded with the repo id filled in when unedited; an edited README.md as is', async () => {
  const q = await GPTQModel.fromPretrained(DEFAULT_MODEL_DIR, { quantizeConfig: { bits: 8, groupSize: 32 } });
  await q.quantize(['Once upon a time there was a cat.', 'Lily went to the park with her mom.'], { method: 'rtn', onLog: () => {} });
  const dir = join(tmp.path, 'local-card');
  await q.saveQuantized(dir, { baseModel: 'karpathy/tinyllamas' });
  await q.dispose();
  const disk = readFileSync(join(dir, 'README.md'), 'utf8');
  assert.match(disk, /^---\nbase_model: karpathy\/tinyllamas\nbase_model_relation: quantized\n/);
  assert.match(disk, /# tinyllamas — GPTQ 8-bit/);
  assert.match(disk, /2 texts: 2 samples of up to \d+ tokens/);
  assert.match(disk, /CausalLM\.load\("path\/to\/this\/model"\)/);
  assert.equal(JSON.parse(readFileSync(join(dir, 'quantize_config.json'), 'utf8')).meta.base_model, 'karpathy/tinyllamas');
  const r = await pushToHub(dir, 'dave/tiny-8bit', { accessToken: hub.token, hubUrl: hub.url });
  const sent = hub.commits.at(-1)!.files.get('README.md')!.toString();
  assert.equal(sent, disk.replaceAll('path/to/this/model', 'dave/tiny-8bit'));
  assert.equal(r.generatedCard, true);
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), disk, 'the directory is not changed');
  writeFileSync(join(dir, 'README.md'), disk + '\nMy notes.\n');
  await pushToHub(dir, 'dave/tiny-8bit', { accessToken: hub.token, hubUrl: hub.url });
  assert.equal(hub.commits.at(-1)!.files.get('README.md')!.toString(), disk + '\nMy notes.\n');
  await assert.rejects(q.saveQuantized(join(tmp.path, 'x'), { baseModel: 'not a hub id' }), /baseModel: "not a hub id" is not a Hub id/);
});

test('gptq push DIR (no README.md): card generated for the upload only, --private --revision --message, token from the token file', async () => {
  const dir = join(tmp.path, 'no-card');
  cpSync(OUT, dir, { recursive: true });
  rmSync(join(dir, 'README.md'));
  mkdirSync(join(dir, '.cache'));
  writeFileSync(join(dir, '.cache', 'junk'), 'not uploaded');
  const tokenFile = join(tmp.path, 'token');
  writeFileSync(tokenFile, `${hub.token}\n`);
  const env = { ...process.env, HF_TOKEN: '', HUGGING_FACE_HUB_TOKEN: '', HF_TOKEN_PATH: tokenFile, HF_ENDPOINT: hub.url };
  const before = hub.commits.length;
  // asynchronously: the mock Hub runs in this process
  const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'push', dir, 'bob/private-model', '--private', '--revision', 'dev', '--message', 'first upload'],
    { encoding: 'utf8', env, cwd: ROOT });
  const c = hub.commits[before]!;
  assert.match(r.stdout.trim(), new RegExp(`^${hub.url}/bob/private-model/commit/[0-9a-f]{40}$`));
  assert.deepEqual([c.repo, c.revision, c.summary], ['bob/private-model', 'dev', 'first upload']);
  assert.equal(hub.repos.get('bob/private-model')!.visibility, 'private');
  assert.ok(hub.repos.get('bob/private-model')!.branches.has('dev'));
  const card = await modelCardForDir(dir, { repoId: 'bob/private-model' });
  assertCommitMatches(c, dir, { 'README.md': card });
  assert.ok(!existsSync(join(dir, 'README.md')), 'README.md must not be written into the pushed directory');
  assert.ok(!c.files.has('.cache/junk'));
  assert.match(card, /const lm = await CausalLM\.load\("bob\/private-model"\)/);
  assert.match(r.stderr, /created branch dev/);
});

test('pushing again (existing repo, unchanged weights): LFS objects the Hub has are not uploaded again', async () => {
  const uploads = hub.uploads.basic.length + hub.uploads.parts.length;
  const r = await pushToHub(OUT, 'alice/stories-gptq', { accessToken: hub.token, hubUrl: hub.url, commitMessage: 'again' });
  assert.equal(hub.uploads.basic.length + hub.uploads.parts.length, uploads);
  const c = hub.commits.at(-1)!;
  assert.equal(c.summary, 'again');
  assertCommitMatches(c, OUT);
  assert.deepEqual(r.files, filesOf(OUT));
});

test('large files: multipart upload when the Hub asks for it (parts + completion, bytes checked by the server)', async () => {
  const big = await startMockHub({ multipartOver: 100_000, chunkSize: 64 * 1024 });
  try {
    await pushToHub(OUT, 'carol/multi', { accessToken: big.token, hubUrl: big.url });
    const size = readFileSync(join(OUT, 'model.safetensors')).length;
    const oid = sha256(join(OUT, 'model.safetensors'));
    assert.ok(size > 100_000);
    assert.equal(big.uploads.parts.filter((p) => p.startsWith(oid)).length, Math.ceil(size / (64 * 1024)));
    assert.deepEqual(big.uploads.completes, [oid]);
    assertCommitMatches(big.commits[0]!, OUT);
  } finally { await big.close(); }
});

test('push errors: one line naming what is wrong', async () => {
  await assert.rejects(pushToHub(OUT, 'not-a-repo-id', { accessToken: hub.token, hubUrl: hub.url }), /"not-a-repo-id" is not a Hub repo id/);
  await assert.rejects(pushToHub(join(tmp.path, 'missing'), 'a/b', { accessToken: hub.token, hubUrl: hub.url }), /missing is not a directory/);
  await assert.rejects(pushToHub(OUT, 'a/b', { accessToken: 'abc', hubUrl: hub.url }), /does not look like a Hugging Face token/);
  await assert.rejects(pushToHub(OUT, 'a/b', { accessToken: 'hf_wrong', hubUrl: hub.url }), (e: Error) => e instanceof GptqError && /cannot create .*a\/b/.test(e.message) && !e.message.includes('\n'));
  // offline: the network cause, worded as downloads word it (src/io/hub.ts networkCause), no local-cache hint
  const dns = async () => { throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND huggingface.co'), { code: 'ENOTFOUND' }) }); };
  await assert.rejects(pushToHub(OUT, 'me/test-model', { accessToken: hub.token, hubUrl: 'https://huggingface.co', fetch: dns as typeof fetch }), (e: Error) =>
    e.message === 'push: cannot create https://huggingface.co/me/test-model: cannot reach https://huggingface.co (ENOTFOUND: DNS lookup failed); check the network or proxy (HTTPS_PROXY)');
  const saved = { HF_TOKEN: process.env.HF_TOKEN, HF_TOKEN_PATH: process.env.HF_TOKEN_PATH, HUGGING_FACE_HUB_TOKEN: process.env.HUGGING_FACE_HUB_TOKEN };
  try {
    delete process.env.HF_TOKEN; delete process.env.HUGGING_FACE_HUB_TOKEN;
    process.env.HF_TOKEN_PATH = join(tmp.path, 'no-such-token');
    await assert.rejects(pushToHub(OUT, 'a/b', { hubUrl: hub.url }), /no Hugging Face token: set HF_TOKEN .*no-such-token/);
  } finally { for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v; }
});

test('token lookup follows huggingface_hub: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, $HF_HOME/token, $XDG_CACHE_HOME/huggingface/token', () => {
  const d = join(tmp.path, 'tok');
  mkdirSync(join(d, 'xdg', 'huggingface'), { recursive: true });
  mkdirSync(join(d, 'home'), { recursive: true });
  writeFileSync(join(d, 'xdg', 'huggingface', 'token'), ' hf_xdg \r\n');
  writeFileSync(join(d, 'home', 'token'), 'hf_home\n');
  writeFileSync(join(d, 'explicit'), 'hf_explicit');
  assert.deepEqual(findHfToken({ HF_TOKEN: ' hf_env\n', HUGGING_FACE_HUB_TOKEN: 'hf_old' }), { token: 'hf_env', source: 'env HF_TOKEN' });
  assert.equal(findHfToken({ HF_TOKEN: '', HUGGING_FACE_HUB_TOKEN: 'hf_old' })?.token, 'hf_old');
  assert.equal(findHfToken({ HF_TOKEN_PATH: join(d, 'explicit'), HF_HOME: join(d, 'home') })?.token, 'hf_explicit');
  assert.equal(findHfToken({ HF_HOME: join(d, 'home'), XDG_CACHE_HOME: join(d, 'xdg') })?.token, 'hf_home');
  assert.deepEqual(findHfToken({ XDG_CACHE_HOME: join(d, 'xdg') }), { token: 'hf_xdg', source: join(d, 'xdg', 'huggingface', 'token') });
  assert.equal(findHfToken({ HF_TOKEN_PATH: join(d, 'none') }), undefined);
  assert.equal(hfTokenPath({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/token');
});
