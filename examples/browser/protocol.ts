/** Messages between the page (main.ts) and its worker (worker.ts). */
import type { QuantizeProgress } from '../../src/browser.ts';

export type Request =
  /** mountOnly: mount the folder and read its config, build no runtime model (bench/browser.ts --memory quantizes only). */
  | { type: 'load'; url?: string; files?: File[]; cache?: boolean; device?: 'cpu' | 'webgpu'; attention?: 'auto' | 'plain'; mountOnly?: boolean }
  | { type: 'generate'; prompt: string; maxNewTokens: number }
  | { type: 'ppl'; text: string; seqlen: number }
  | { type: 'quantize'; text: string; bits: 2 | 3 | 4 | 8; groupSize: number; nsamples: number; seqlen: number }
  /** Speed measurement (bench/browser.ts): greedy decode of `tokens` ids from [bos] (none when 0), then GPTQ on the given ids. */
  | { type: 'bench'; tokens: number; calibIds: number[][]; bits: 4; groupSize: number };

export type Reply =
  | { type: 'ready' }
  | { type: 'status'; text: string }
  | { type: 'error'; message: string }
  | {
    type: 'loaded'; dir: string; seconds: number; modelType: string; layers: number; hidden: number; vocab: number;
    attention: string; quantized: boolean; threads: number; isolated: boolean; webgpu: boolean;
  }
  | { type: 'token'; piece: string }
  | { type: 'generated'; text: string; tokens: number; seconds: number; decodeTokPerSec: number; finishReason: string }
  | { type: 'ppl'; ppl: number; nll: number; windows: number; tokens: number; seconds: number }
  | { type: 'calibration'; samples: number; tokens: number; ids: number[][] }
  | { type: 'progress'; event: QuantizeProgress }
  | { type: 'bench'; loadSeconds: number; decodeTokPerSec: number; prefillSeconds: number; quantizeSeconds: number; saveSeconds: number; zipBytes: number }
  | { type: 'quantized'; seconds: number; zip: Blob; name: string; bytes: number; modules: number; skipped: string[]; losses: Record<string, number> };
