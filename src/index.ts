/**
 * gptqjs public API. Every type that appears in an exported signature is exported here too (test/exports.test.ts
 * checks it on the emitted .d.ts).
 */

// Quantization (AutoGPTQ's API): GPTQModel.fromPretrained → quantize → saveQuantized
export { GPTQModel, type CalibrationInput, type QuantizeCallOptions, type SaveQuantizedOptions, type SavedQuantized } from './gptq-model.ts';
export { resolveQuantizeConfig, DEFAULT_QUANTIZE_CONFIG, BITS, type QuantizeConfig, type Bits, type CheckpointFormat, type Arithmetic, type MseWeighting, type ScaleRounding } from './quant/quantize-config.ts';
export type { QuantizeEvent, QuantizeLoopResult, SkippedModule, ActivationDtype } from './quant/layer-loop.ts';
export type { SaveOptions } from './quant/save.ts';
export { gptqQuantize, type GptqConfig, type GptqOptions, type GptqResult, type HinvCache } from './quant/gptq.ts';
export type { Operand } from './graph/linalg.ts';
export { packLinear, dequantize, packable, type PackedLinear } from './quant/pack.ts';

// Inference: CausalLM.load → generate / stream / chat (text) or generate(model, ids) / forwardStep (ids)
export { CausalLM, type LoadOptions, type AttentionMode, type KvCache, type GraphKind } from './runtime/causal-lm.ts';
export { DEFAULT_MAX_NEW_TOKENS, type TextGenerationOptions, type TextGenerationResult, type ChatOptions, type ChatResult } from './runtime/text.ts';
export { generate, generateTokens, type GenerateOptions, type GenerateResult, type FinishReason, type TokenEvent } from './runtime/generate.ts';
export type { SamplingOptions } from './runtime/sampling.ts';
export { loadAnyModel, type LoadedModel, type LoadedQuantizedModel } from './runtime/load.ts';
export type { AccuracyLevel } from './runtime/quantized-weights.ts';
export type { QuantizedLoadInfo, QuantizedKernel } from './runtime/gptq-checkpoint.ts';
// Other formats (AWQ, bitsandbytes, AQLM) load through CausalLM.load; AWQ converts losslessly to GPTQ
export { convertAwqToGptq, type ConvertOptions, type ConvertResult } from './formats/convert.ts';
// ONNX export: the inference graph as an onnxruntime-genai model folder
export { exportOnnx, type ExportOnnxOptions, type ExportOnnxResult, type ExportAttention } from './export/onnx.ts';
export type { LmHeadBits } from './runtime/lm-head.ts';
export type { GraphCacheOption } from './runtime/graph-cache.ts';
export type { Device } from './graph/session.ts';
export { perplexity, type PerplexityResult } from './eval/perplexity.ts';
export { serve, type ServeOptions, type Server } from './serve/server.ts';
export { BatchEngine, type EngineOptions, type GenerationRequest, type GenerationResult, type ServeFinishReason, type Submitted } from './serve/engine.ts';
export type { ServeMetrics } from './serve/metrics.ts';
export { SlotCache, type Slot, type SlotCacheOptions } from './runtime/slots.ts';
export { evaluate, TASK_NAMES, type TaskSpec, type TaskSpecObject, type EvaluateOptions, type EvalResults, type EvalModel } from './eval/evaluate.ts';
export { loglikelihood, scoreEncoded, encodePair, type LoglikelihoodRequest, type LoglikelihoodResult, type EncodedRequest, type EvalTokenizer, type ScoreOptions } from './eval/loglikelihood.ts';
export { MULTIPLE_CHOICE_TASKS, type MultipleChoiceTask } from './eval/multiple-choice.ts';
export { rouge, type RougeScores, type RougeScore } from './eval/rouge.ts';

// Files: tokenizers, configs, safetensors, datasets, the Hub
export { TextTokenizer, StreamDecoder, type ChatMessage, type Detokenizer } from './io/tokenizer.ts';
export { loadModelConfig, type ModelConfig, type GenerationConfig, type RopeScaling } from './io/config.ts';
export {
  Checkpoint, SafetensorsFile, writeSafetensors, saveSharded,
  type TensorInfo, type TensorSlice, type TensorLike, type LazyTensor, type TensorMap, type SaveShardedOptions, type SaveShardedResult,
} from './io/safetensors.ts';
export type { Tensor, DType, TypedArray } from './tensor.ts';
export {
  loadText, loadEvalText, calibrationSamples, calibrationData, evalTokens,
  type LoadTextOptions, type EvalText, type CalibrationOptions, type CalibrationSet, type DatasetName, type Split, type Tokenize, type TokenizedExample,
} from './io/datasets.ts';
export { readTable, loadSplit, type Row, type SplitSource } from './io/tables.ts';
export { resolveModelDir, type HubOptions } from './io/hub.ts';
export { pushToHub, type PushOptions, type PushResult } from './io/push.ts';
export { modelCardForDir, type CalibrationInfo, type PerplexityInfo } from './io/model-card.ts';
export { GptqError } from './errors.ts';

// Architectures: defineArchitecture + registerArchitecture, and the graph-building pieces definitions use
export { registerArchitecture, supportedModelTypes, archFor } from './models/registry.ts';
export type { ArchDefinition, ArchConfig, CheckpointRules, LayerContext, WeightSource, LinearSpec, LayerLinear } from './models/types.ts';
export {
  defineArchitecture, linear, repeat, dims, embedTokens, embedWithPositions, configBool, configInt, configNumber, checkActivation,
  type ArchSpec, type ModuleTree, type Modules, type LinearNode, type Dims, type NormAt,
} from './models/define.ts';
export type { ConfigDefaults, ConfigReader } from './io/config.ts';
export type { Rope, RopeParams } from './models/rope.ts';
export * as rope from './models/rope.ts';
export type { GraphBuilder, Attrs } from './graph/builder.ts';
export type { AttrValue, Dim, ElemType, GraphProtoSpec, NodeSpec, TensorInit, ValueInfo } from './graph/onnx-proto.ts';
export * as blocks from './models/blocks.ts';
export type { ProgressEvent, ProgressBase, ProgressCallback, DownloadProgress, QuantizeProgress, PerplexityProgress, EvalProgress } from './progress.ts';
export { VERSION } from './version.ts';
