/**
 * The SYNTHETIC benchmark checkpoints (random weights: speed and memory are real, text is not): a Llama at real
 * shape — hidden 2048, intermediate 5632, 32 heads / 4 kv heads, 8 layers, vocab 32000 (the shape llama.cpp's peer
 * numbers in ../shared/notes were measured on) — in fp32 and RTN 4-bit group 128. Built when missing
 * (scripts/synth-model.ts, then `gptq quantize --method rtn`); the tokenizer is stories260K's (ids < 512).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Run `node --import tsx …args` in the project root; returns stdout, throws with stderr on failure. */
export function node(args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Paths of the fp32 and 4-bit checkpoints under `base`, built first when missing. */
export function syntheticLlama(base: string): { fp: string; q4: string } {
  const fp = join(base, 'llama1b-synthetic'), q4 = join(base, 'llama1b-synthetic-gptq-4bit-g128');
  mkdirSync(base, { recursive: true });
  if (!existsSync(join(fp, 'model.safetensors'))) {
    console.error(`building ${fp} (synthetic fp32, ~1.9 GB)…`);
    node(['scripts/synth-model.ts', '--out', fp, '--hidden', '2048', '--intermediate', '5632', '--layers', '8', '--heads', '32', '--kv-heads', '4', '--vocab', '32000']);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'assets', 'stories260K', f), join(fp, f));
  }
  if (!existsSync(join(q4, 'model.safetensors'))) {
    console.error(`quantizing ${q4} (RTN 4-bit, group 128)…`);
    node(['src/cli/main.ts', 'quantize', fp, '--out', q4, '--method', 'rtn', '--bits', '4', '--group-size', '128', '--nsamples', '4', '--seqlen', '128']);
  }
  return { fp, q4 };
}
