/** Flags shared by several commands (model loading, sampling), declared once in the flag-spec format of flags.ts. */
import { checkDeviceAvailable, DEVICES, type Device } from '../graph/session.ts';
import type { CausalLM, LoadOptions } from '../runtime/causal-lm.ts';
import type { AccuracyLevel } from '../runtime/quantized-weights.ts';
import type { LmHeadBits } from '../runtime/lm-head.ts';
import type { GenerationConfig } from '../io/config.ts';
import type { Flag, FlagValues } from './flags.ts';
import { fail } from '../errors.ts';
import { basename } from '../platform/path.ts';

const LOAD = 'model loading';

/**
 * Model-loading flags of generate / chat / ppl / bench. Default MatMulNBits accuracy level of a command: 4 (int8
 * activations) for the interactive/speed commands (generate, chat, bench), 0 (fp32 activations, the exact
 * dequantized math) for ppl and the library.
 */
export const loadFlags = (defaultAccuracy: 0 | 4) => [
  { name: 'device', type: 'string', oneOf: DEVICES, default: 'cpu', group: LOAD,
    help: 'ONNX Runtime execution provider; cuda needs onnxruntime-node\'s CUDA binaries (Linux x64, see README)' },
  { name: 'threads', type: 'int', min: 1, metavar: 'N', group: LOAD, defaultText: 'all cores', help: 'ONNX Runtime intra-op threads' },
  { name: 'accuracy-level', type: 'int', oneOf: [0, 1, 2, 3, 4], default: defaultAccuracy, group: LOAD,
    help: 'GPTQ/AWQ/LLM.int8 matmuls (MatMulNBits): 4 = int8 activations, ~2-3x faster decode, small accuracy cost (ppl +0.13% on 4-bit stories260K); 0 = fp32 activations, exact' },
  { name: 'lm-head-bits', type: 'int', oneOf: [8, 4, 0], group: LOAD, defaultText: '8 for quantized checkpoints (GPTQ, AWQ, bnb, AQLM) at accuracy level 4, else 0',
    help: 'output head round-to-nearest quantized at load (8: int8, decode +28% on a 1B shape, perplexity within 0.1%; logged); 0 = the checkpoint\'s head, exact' },
  { name: 'dequantize', type: 'boolean', group: LOAD,
    help: 'bitsandbytes 4-bit / AQLM checkpoints: fp32 weights at load instead of MatMulBnb4 / the codebook gather (exact either way; faster per token, 4 bytes/weight)' },
  { name: 'attention', type: 'string', oneOf: ['auto', 'buffer', 'gqa', 'plain'], default: 'auto', group: LOAD,
    help: 'KV-cache attention (auto: buffer on CPU = the cache read in place, only new keys/values returned; gqa: GroupQueryAttention in place; plain: Concat)' },
  { name: 'no-graph-cache', type: 'boolean', group: LOAD, help: 'rebuild the graphs instead of using the cache (~/.cache/gptqjs/graphs)' },
  { name: 'adapter', type: 'string', multiple: true, metavar: 'NAME=DIR', group: LOAD,
    help: 'PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors), run unmerged beside the base linears; repeatable; NAME defaults to the directory\'s name. generate/chat/ppl/bench run with the first one; serve serves each as "<model id>:NAME"' },
  { name: 'spin', type: 'boolean', group: LOAD,
    help: 'ORT threads busy-wait between kernels (ORT\'s default; off here: much slower when other processes compete for the cores, slightly faster on an idle machine)' },
] as const satisfies readonly Flag[];

type LoadValues = FlagValues<ReturnType<typeof loadFlags>>;

/**
 * LoadOptions from the parsed load flags; `--device cuda` without ORT's CUDA binaries fails here, in one line.
 * `note` receives what loading logs (lm-head choice, dequantized fallbacks, cached-graph notices): the command's
 * Output.note, so that with --json they are {"event":"note"} lines like every other stderr line.
 */
export function loadOptions(v: LoadValues, note: (msg: string) => void): LoadOptions {
  const device = v.device as Device;
  checkDeviceAvailable(device);
  return {
    device, threads: v.threads, accuracyLevel: v['accuracy-level'] as AccuracyLevel,
    lmHeadBits: v['lm-head-bits'] as LmHeadBits | 0 | undefined, attention: v.attention as LoadOptions['attention'],
    graphCache: !v['no-graph-cache'], spinning: v.spin, dequantize: v.dequantize, ...adapterOptions(v.adapter), onLog: note,
  };
}

/** `--adapter NAME=DIR|DIR` values → LoadOptions.adapters (the first one is the default adapter). */
function adapterOptions(values: readonly string[]): Pick<LoadOptions, 'adapters' | 'adapter'> {
  if (!values.length) return {};
  const adapters: Record<string, string> = {};
  for (const v of values) {
    const m = /^([\w.-]+)=(.+)$/.exec(v);
    const [name, dir] = m ? [m[1]!, m[2]!] : [basename(v.replace(/[\\/]+$/, '')), v];
    if (!name) fail(`--adapter ${JSON.stringify(v)}: give NAME=DIR or a directory`);
    if (name in adapters) fail(`--adapter: the name "${name}" is given twice (use NAME=DIR to name them apart)`);
    adapters[name] = dir;
  }
  return { adapters, adapter: Object.keys(adapters)[0]! };
}

/** One stderr line when a GPTQ model runs at accuracy level 4 because that is the command's default. */
export function noteDefaultAccuracy(given: Set<string>, model: CausalLM, o: LoadOptions, note: (s: string) => void): void {
  // only where a MatMulNBits kernel runs (GPTQ, AWQ, LLM.int8 at level 4), not bitsandbytes 4-bit / AQLM
  if (!given.has('accuracy-level') && o.accuracyLevel === 4 && model.quantization?.modules.some((m) => m.kernel.startsWith('matmulnbits')))
    note('quantized matmuls (MatMulNBits) use int8 activations (accuracy level 4, the default for this command: faster, not bit-exact); --accuracy-level 0 for fp32 activations');
}

const SAMPLING = 'sampling (Transformers\' semantics: repetition penalty → temperature → top-k → top-p)';

/** Sampling flags of generate / chat; ranges as Transformers' logits processors check them. */
export const samplingFlags = (maxNewTokens: number) => [
  { name: 'max-new-tokens', type: 'int', min: 1, metavar: 'N', default: maxNewTokens, group: SAMPLING, help: 'tokens to generate at most' },
  { name: 'temperature', type: 'number', min: 0, metavar: 'T', default: 0, note: '0 = greedy', group: SAMPLING, help: 'sampling temperature' },
  { name: 'top-k', type: 'int', min: 0, metavar: 'K', note: '0 = off', defaultText: 'generation_config.json top_k, else 50', group: SAMPLING, help: 'sample from the K most likely tokens' },
  { name: 'top-p', type: 'number', min: 0, max: 1, metavar: 'P', note: '1 = off', defaultText: 'generation_config.json top_p, else 1', group: SAMPLING, help: 'nucleus sampling: the smallest set of tokens whose probability reaches P' },
  { name: 'repetition-penalty', type: 'number', gt: 0, metavar: 'R', note: '1 = off', defaultText: 'generation_config.json, else 1', group: SAMPLING, help: 'divide the logits of tokens already seen by R (CTRL paper)' },
  { name: 'seed', type: 'int', min: 0, max: 2 ** 32 - 1, metavar: 'S', default: 0, group: SAMPLING, help: 'random seed of sampling' },
] as const satisfies readonly Flag[];

type SamplingValues = FlagValues<ReturnType<typeof samplingFlags>>;

/** generate()'s sampling options: the flags, else the model's generation_config.json. */
export function samplingOptions(v: SamplingValues, gen: GenerationConfig) {
  return {
    maxNewTokens: v['max-new-tokens'], temperature: v.temperature, topK: v['top-k'] ?? gen.topK, topP: v['top-p'] ?? gen.topP,
    repetitionPenalty: v['repetition-penalty'] ?? gen.repetitionPenalty, seed: v.seed,
  };
}

let warnedContext = false;

/**
 * Prompt + new tokens beyond max_position_embeddings: one warning line, as Transformers' MaxLengthCriteria warns
 * ("the current text generation call will exceed the model's predefined maximum length"); an error for models with a
 * learned position table (Transformers fails there with an IndexError). Warns once per process, as Transformers.
 */
export function checkContext(model: CausalLM, promptTokens: number, maxNewTokens: number, note: (s: string) => void): void {
  const max = model.cfg.maxPositionEmbeddings;
  if (!max || promptTokens + maxNewTokens <= max) return;
  const what = `prompt ${promptTokens} tokens + --max-new-tokens ${maxNewTokens} > max_position_embeddings ${max} of ${model.cfg.path}`;
  if (promptTokens + maxNewTokens > model.positionLimit) {
    const room = max - promptTokens;
    fail(`${what}: ${model.positionTable}; ${room > 0 ? `use --max-new-tokens ≤ ${room}` : 'shorten the prompt'}`);
  }
  if (warnedContext) return;
  warnedContext = true;
  note(`warning: ${what}; the model was not trained on positions beyond ${max} (Transformers warns the same: depending on the model, you may observe degraded output)`);
}
