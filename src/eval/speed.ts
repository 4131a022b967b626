/**
 * Inference benchmark of one model directory: load time, prefill and decode throughput, ms/token, peak RSS.
 * Decode is the real generation loop (`generate`, greedy, no stop tokens), timed per token; the reported decode rate
 * is batch / median per-step time (robust to other load on the machine; the mean is reported too). Peak RSS is the
 * process's maxRSS, so run one configuration per process when comparing memory (bench/decode.ts does).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { CausalLM, type LoadOptions } from '../runtime/causal-lm.ts';
import { generate } from '../runtime/generate.ts';
import { mulberry32 } from '../io/random.ts';
import { fail } from '../errors.ts';

export interface BenchOptions extends LoadOptions {
  /** prompt tokens per row (default 512, at most max_position_embeddings − genLen) */
  promptLen?: number;
  /** generated tokens per row (default 128, at most max_position_embeddings / 4) */
  genLen?: number;
  /** rows (default 1) */
  batch?: number;
  seed?: number;
  /** Notes while it runs (lengths shortened to fit the model, …), one line each. */
  onNote?: (msg: string) => void;
}

export interface BenchResult {
  model: string; attention: string; graphCache: string;
  /** MatMulNBits accuracy level in effect; null when the model has no MatMulNBits (fp checkpoint, fp/8-bit head) */
  accuracyLevel: number | null; lmHeadBits: number | null;
  promptLen: number; genLen: number; batch: number;
  loadSeconds: number;
  prefillTokensPerSecond: number;
  /** batch / median step time */
  decodeTokensPerSecond: number;
  /** batch · steps / total decode time */
  decodeTokensPerSecondMean: number;
  msPerToken: number; msPerTokenMin: number;
  peakRssMB: number;
  /** safetensors bytes of the checkpoint */
  fileMB: number;
  loadAverage: number;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[s.length >> 1]! : NaN; };

export async function benchModel(dir: string, o: BenchOptions = {}): Promise<BenchResult> {
  const B = o.batch ?? 1;
  const say = o.onNote ?? (() => {});
  const t0 = performance.now();
  const m = await CausalLM.load(dir, o);
  const loadSeconds = (performance.now() - t0) / 1000;
  // Defaults fit the model's context (stories260K: 512 positions → 384 + 128); lengths asked for past it: a warning,
  // as generate gives (positions beyond the trained context), not a silent measurement of untrained positions.
  const max = m.cfg.maxPositionEmbeddings;
  const genLen = o.genLen ?? (max > 0 ? Math.max(2, Math.min(128, Math.floor(max / 4))) : 128);
  const promptLen = o.promptLen ?? (max > 0 ? Math.max(1, Math.min(512, max - genLen)) : 512);
  if (!(promptLen >= 1 && genLen >= 2 && B >= 1)) { await m.dispose(); fail('bench: prompt length ≥ 1, generation length ≥ 2 and batch ≥ 1'); }
  if (o.promptLen === undefined && promptLen < 512) say(`note: prompt length ${promptLen} (not 512): ${promptLen} + ${genLen} generated tokens fill max_position_embeddings ${max}`);
  if (max > 0 && promptLen + genLen > max) say(`warning: prompt ${promptLen} + generated ${genLen} tokens > max_position_embeddings ${max} of ${m.cfg.path}; the model was not trained on positions beyond ${max} (Transformers warns the same: depending on the model, you may observe degraded output)`);
  say(`loaded in ${loadSeconds.toFixed(2)} s (graph cache ${m.loadInfo.graphCache}, attention ${m.attention})`);
  const V = m.cfg.vocabSize, rand = mulberry32(o.seed ?? 1);
  const hi = Math.min(V, 32000);
  const prompts = Array.from({ length: B }, () => Array.from({ length: promptLen }, () => 3 + Math.floor(rand() * (hi - 3))));
  await generate(m, prompts.map((p) => p.slice(0, Math.min(8, promptLen))), { maxNewTokens: 3, eosTokenIds: [] }); // warm-up
  say(`prefill ${B}×${promptLen}, decode ${genLen} tokens…`);
  const stamps: number[] = [];
  // eosTokenIds []: always genLen tokens, as llama-bench does
  const r = await generate(m, prompts, { maxNewTokens: genLen, eosTokenIds: [], onToken: (b) => { if (b === 0) stamps.push(performance.now()); } });
  const steps = stamps.slice(1).map((t, i) => t - stamps[i]!);
  const med = median(steps);
  let fileBytes = 0;
  for (const f of await fs.readdir(dir)) if (f.endsWith('.safetensors')) fileBytes += (await fs.stat(join(dir, f))).size;
  const res: BenchResult = {
    model: dir, attention: m.attention, graphCache: m.loadInfo.graphCache,
    accuracyLevel: m.quantization || m.lmHead?.bits === 4 ? (o.accuracyLevel ?? 0) : null, lmHeadBits: m.lmHead?.bits ?? null,
    promptLen, genLen, batch: B, loadSeconds,
    prefillTokensPerSecond: (B * promptLen) / (r.prefillMs / 1000),
    decodeTokensPerSecond: (B * 1000) / med,
    decodeTokensPerSecondMean: (B * steps.length * 1000) / steps.reduce((a, b) => a + b, 0),
    msPerToken: med, msPerTokenMin: Math.min(...steps),
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    fileMB: fileBytes / 1024 ** 2,
    loadAverage: loadavg()[0]!,
  };
  await m.dispose();
  return res;
}

/** Fixed-width table of results (one row each). */
export function formatBenchTable(rows: (BenchResult & { label?: string })[]): string {
  const cols: [string, (r: BenchResult & { label?: string }) => string][] = [
    ['model', (r) => r.label ?? r.model],
    ['acc', (r) => (r.accuracyLevel === null ? '-' : String(r.accuracyLevel))],
    ['lm_head', (r) => (r.lmHeadBits ? `q${r.lmHeadBits}` : 'ckpt')],
    ['attn', (r) => r.attention],
    ['load s', (r) => `${r.loadSeconds.toFixed(2)}${r.graphCache === 'hit' ? '*' : ''}`],
    ['prefill tok/s', (r) => r.prefillTokensPerSecond.toFixed(1)],
    ['decode tok/s', (r) => r.decodeTokensPerSecond.toFixed(1)],
    ['ms/token', (r) => r.msPerToken.toFixed(1)],
    ['peak RSS MB', (r) => r.peakRssMB.toFixed(0)],
    ['file MB', (r) => r.fileMB.toFixed(0)],
  ];
  const cells = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => f(r)))];
  const w = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(cells[0]!), w.map((n) => '-'.repeat(n)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
