/** gptqjs public API. */
export { GPTQModel, type CalibrationInput, type QuantizeCallOptions } from './gptq-model.ts';
export { GptqError } from './errors.ts';
export { resolveQuantizeConfig, DEFAULT_QUANTIZE_CONFIG, type QuantizeConfig } from './quant/config.ts';
export { gptqQuantize } from './quant/gptq.ts';
export { packLinear, dequantize, packable } from './quant/pack.ts';
export { CausalLM, type LoadOptions } from './runtime/causal-lm.ts';
export { loadAnyModel } from './runtime/load.ts';
export { generate, type GenerateOptions } from './runtime/generate.ts';
export { perplexity } from './eval/perplexity.ts';
export { TextTokenizer, StreamDecoder, type Detokenizer } from './io/tokenizer.ts';
export { loadModelConfig, type ModelConfig } from './io/config.ts';
export { Checkpoint, SafetensorsFile, writeSafetensors, saveSharded } from './io/safetensors.ts';
export { loadText, calibrationSamples, evalTokens } from './io/datasets.ts';
export { resolveModelDir } from './io/hub.ts';
export { registerArchitecture, supportedModelTypes, archFor } from './models/registry.ts';
export type { ArchDefinition, LayerContext, WeightSource, LinearSpec } from './models/types.ts';
export * as blocks from './models/blocks.ts';
