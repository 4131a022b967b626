/** Model-loading flags shared by generate / chat / ppl / bench. */
import { num } from './args.ts';
import { parseDevice } from '../graph/session.ts';
import { fail } from '../errors.ts';
import type { AttentionMode, LoadOptions } from '../runtime/causal-lm.ts';
import type { AccuracyLevel } from '../runtime/quantized-weights.ts';
import type { LmHeadBits } from '../runtime/lm-head.ts';

export const LOAD_FLAGS = {
  device: { type: 'string' }, threads: { type: 'string' }, 'accuracy-level': { type: 'string' },
  'lm-head-bits': { type: 'string' }, attention: { type: 'string' }, 'no-graph-cache': { type: 'boolean' },
} as const;

export const LOAD_HELP = `  model loading:
    --accuracy-level 0|4   GPTQ MatMulNBits activations: 0 = fp32, exact (default); 4 = int8, ~2-3x faster decode,
                           small perplexity cost (see README "Inference speed")
    --lm-head-bits 8|4     opt-in: round-to-nearest quantize the output head at load (not exact; logged)
    --attention auto|gqa|plain   KV-cache attention (default auto: GroupQueryAttention in place on CPU)
    --no-graph-cache       rebuild the graphs instead of using ~/.cache/gptqjs/graphs
    --device cpu|webgpu|cuda  --threads N`;

type Values = { device?: string; threads?: string; 'accuracy-level'?: string; 'lm-head-bits'?: string; attention?: string; 'no-graph-cache'?: boolean };

export function loadOptions(v: Values): LoadOptions {
  const acc = num(v['accuracy-level'], 'accuracy-level', 0);
  if (![0, 1, 2, 3, 4].includes(acc)) fail(`--accuracy-level: ${v['accuracy-level']} (use 0 for fp32 activations or 4 for int8)`);
  const head = num(v['lm-head-bits'], 'lm-head-bits');
  if (head !== undefined && head !== 4 && head !== 8) fail(`--lm-head-bits: ${v['lm-head-bits']} (use 8 or 4)`);
  const attention = (v.attention ?? 'auto') as AttentionMode;
  if (!['auto', 'gqa', 'plain'].includes(attention)) fail(`--attention: "${v.attention}" (use auto, gqa or plain)`);
  return {
    device: parseDevice(v.device), threads: num(v.threads, 'threads'), accuracyLevel: acc as AccuracyLevel,
    lmHeadBits: head as LmHeadBits | undefined, attention, graphCache: !v['no-graph-cache'],
  };
}
