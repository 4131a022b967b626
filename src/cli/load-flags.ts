/** Model-loading flags shared by generate / chat / ppl / bench. */
import { num } from './args.ts';
import { parseDevice } from '../graph/session.ts';
import { fail } from '../errors.ts';
import type { AttentionMode, CausalLM, LoadOptions } from '../runtime/causal-lm.ts';
import type { AccuracyLevel } from '../runtime/quantized-weights.ts';
import type { LmHeadBits } from '../runtime/lm-head.ts';

export const LOAD_FLAGS = {
  device: { type: 'string' }, threads: { type: 'string' }, 'accuracy-level': { type: 'string' },
  'lm-head-bits': { type: 'string' }, attention: { type: 'string' }, 'no-graph-cache': { type: 'boolean' },
  spin: { type: 'boolean' },
} as const;

/**
 * Default MatMulNBits accuracy level of a command: 4 (int8 activations) for the interactive/speed commands
 * (generate, chat, bench), 0 (fp32 activations, the exact dequantized math) for ppl and the library.
 */
export const loadHelp = (defaultAccuracy: 0 | 4) => `  model loading:
    --accuracy-level 0|4   GPTQ matmuls (MatMulNBits): 4 = int8 activations, ~2-3x faster decode, small accuracy cost
                           (ppl +0.13% on 4-bit stories260K); 0 = fp32 activations, exact. Default here: ${defaultAccuracy}
    --lm-head-bits 8|4     opt-in: round-to-nearest quantize the output head at load (faster, not exact; logged)
    --attention auto|gqa|plain   KV-cache attention (default auto: GroupQueryAttention in place on CPU)
    --no-graph-cache       rebuild the graphs instead of using the cache (~/.cache/gptqjs/graphs)
    --spin                 ORT threads busy-wait between kernels (ORT's default; off here: much slower when
                           other processes compete for the cores, slightly faster on an idle machine)
    --device cpu|webgpu|cuda  --threads N`;

type Values = { device?: string; threads?: string; 'accuracy-level'?: string; 'lm-head-bits'?: string; attention?: string; 'no-graph-cache'?: boolean; spin?: boolean };

export function loadOptions(v: Values, defaultAccuracy: 0 | 4 = 0): LoadOptions {
  const acc = num(v['accuracy-level'], 'accuracy-level', defaultAccuracy);
  if (![0, 1, 2, 3, 4].includes(acc)) fail(`--accuracy-level: ${v['accuracy-level']} (use 0 for fp32 activations or 4 for int8)`);
  const head = num(v['lm-head-bits'], 'lm-head-bits');
  if (head !== undefined && head !== 4 && head !== 8) fail(`--lm-head-bits: ${v['lm-head-bits']} (use 8 or 4)`);
  const attention = (v.attention ?? 'auto') as AttentionMode;
  if (!['auto', 'gqa', 'plain'].includes(attention)) fail(`--attention: "${v.attention}" (use auto, gqa or plain)`);
  return {
    device: parseDevice(v.device), threads: num(v.threads, 'threads'), accuracyLevel: acc as AccuracyLevel,
    lmHeadBits: head as LmHeadBits | undefined, attention, graphCache: !v['no-graph-cache'],
    spinning: !!v.spin,
  };
}

/** One stderr line when a GPTQ model runs at accuracy level 4 because that is the command's default. */
export function noteDefaultAccuracy(v: Values, model: CausalLM, o: LoadOptions): void {
  if (v['accuracy-level'] === undefined && o.accuracyLevel === 4 && model.quantization) {
    process.stderr.write('[gptqjs] GPTQ matmuls use int8 activations (accuracy level 4, the default for this command: faster, not bit-exact); --accuracy-level 0 for fp32 activations\n');
  }
}
