import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeLlamaCheckpoint } from './synth.ts';
import { ROOT, cliArgs, tmpDir } from './helpers.ts';


/** A synthetic Llama big enough that a run takes a few seconds, with stories260K's tokenizer (vocab 512). */
async function model(dir: string) {
  await makeLlamaCheckpoint(dir, { hidden: 128, intermediate: 256, layers: 10, heads: 4, kvHeads: 2, vocab: 512, seed: 9 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'assets', 'stories260K', f), join(dir, f));
}

const args = (src: string, out: string, extra: string[] = []) =>
  ['quantize', src, '--out', out, '--bits', '4', '--group-size', '32', '--dataset', join(ROOT, 'assets', 'c4_demo.jsonl'), '--nsamples', '16', '--seqlen', '128', ...extra];

function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** Run the CLI, SIGKILL it as soon as it reports that layer `k` is done. */
function runAndKill(argv: string[], k: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, cliArgs(...argv), { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes(`layer ${k}/10 done`)) p.kill('SIGKILL');
    });
    p.on('exit', (code, sig) => (sig === 'SIGKILL' ? resolve(err) : reject(new Error(`not killed (exit ${code}): ${err}`))));
  });
}

test('kill -9 during quantization, rerun resumes and yields byte-identical files', { timeout: 300_000 }, async () => {
  const t = tmpDir();
  try {
    const src = join(t.path, 'src');
    await model(src);
    const a = join(t.path, 'a'), b = join(t.path, 'b');
    const full = spawnSync(process.execPath, cliArgs(...args(src, a)), { encoding: 'utf8' });
    assert.equal(full.status, 0, full.stderr);
    assert.ok(!existsSync(`${a}.partial`), 'work dir removed after success');

    await runAndKill(args(src, b), 3);
    assert.ok(!existsSync(b), 'no output after the kill');
    const layersSaved = readdirSync(`${b}.partial`).filter((f) => f.startsWith('layer-')).length;
    assert.ok(layersSaved >= 3 && layersSaved < 10, `killed mid-run (${layersSaved} layers saved)`);

    // A different config must not reuse that work dir.
    const other = spawnSync(process.execPath, cliArgs(...args(src, b, ['--bits', '8'])), { encoding: 'utf8' });
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /belongs to a different run \(quantize config differs\)/);

    const resumed = spawnSync(process.execPath, cliArgs(...args(src, b)), { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming at layer ${layersSaved + 1}/10`));
    assert.deepEqual(hashes(b), hashes(a));
    assert.deepEqual(readdirSync(t.path).sort(), ['a', 'b', 'src']);
  } finally { t.cleanup(); }
});
