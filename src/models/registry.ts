import { fail } from '../errors.ts';
import { llama } from './llama.ts';
import { gpt2 } from './gpt2.ts';
import { opt } from './opt.ts';
import { gptNeox } from './gpt-neox.ts';
import { gptj } from './gptj.ts';
import { phi } from './phi.ts';
import { bloom } from './bloom.ts';
import { falcon } from './falcon.ts';
import { gemma } from './gemma.ts';
import { mixtral } from './mixtral.ts';
import { gptBigCode } from './gpt-bigcode.ts';
import { starcoder2 } from './starcoder2.ts';
import { internlm } from './internlm.ts';
import { internlm2 } from './internlm2.ts';
import { baichuan } from './baichuan.ts';
import { cohere } from './cohere.ts';
import { mpt } from './mpt.ts';
import { codegen } from './codegen.ts';
import { gptNeo } from './gpt-neo.ts';
import { yi } from './yi.ts';
import { qwen } from './qwen.ts';
import { longllama } from './longllama.ts';
import { phi3 } from './phi3.ts';
import { gemma2 } from './gemma2.ts';
import { gemma3 } from './gemma3.ts';
import { stablelm } from './stablelm.ts';
import { minicpm3 } from './minicpm3.ts';
import { deepseekV2 } from './deepseek-v2.ts';
import { qwen3 } from './qwen3.ts';
import { qwen3Moe } from './qwen3-moe.ts';
import { qwen2Moe } from './qwen2-moe.ts';
import { olmo2 } from './olmo2.ts';
import { granite } from './granite.ts';
import { minicpm } from './minicpm.ts';
import { exaone4 } from './exaone4.ts';
import { exaone } from './exaone.ts';
import type { ArchConfig, ArchDefinition } from './types.ts';

/** Every supported architecture. Adding one = one file + one line here. */
const ARCHS: ArchDefinition[] = [
  llama,
  gpt2,
  opt,
  gptNeox,
  gptj,
  phi,
  bloom,
  falcon,
  gemma,
  mixtral,
  gptBigCode,
  starcoder2,
  internlm,
  internlm2,
  baichuan,
  cohere,
  mpt,
  codegen,
  gptNeo,
  yi,
  qwen,
  longllama,
  phi3,
  gemma2,
  gemma3,
  stablelm,
  minicpm3,
  deepseekV2,
  qwen3,
  qwen3Moe,
  qwen2Moe,
  olmo2,
  granite,
  minicpm,
  exaone4,
  exaone,
];

const custom: ArchDefinition[] = [];
/**
 * Register a user-defined architecture (an ArchDefinition, as defineArchitecture() in src/models/define.ts builds them;
 * see README "Your own architecture"). It takes precedence over built-in ones for its model types, including their
 * config.json defaults.
 */
export function registerArchitecture(def: ArchDefinition): void {
  const bad = (['insideLayerModules', 'layerLinears', 'embed', 'layer', 'head'] as const).filter((k) => typeof def?.[k] !== 'function');
  if (!Array.isArray(def?.modelTypes) || typeof def.layersBlockName !== 'string' || typeof def.lmHead !== 'string') bad.unshift('modelTypes/layersBlockName/lmHead' as never);
  if (bad.length) fail(`registerArchitecture: not an architecture definition (${bad.join(', ')} missing or of the wrong kind); build it with defineArchitecture()`);
  custom.unshift(def);
}

const lookup = (modelType: string) => [...custom, ...ARCHS].find((x) => x.modelTypes.includes(modelType));

/** The config rules (defaults, quirks) of the architecture serving `modelType`, if any (src/io/config.ts). */
export function archConfigFor(modelType: string): ArchConfig | undefined { return lookup(modelType)?.config; }

export function supportedModelTypes(): string[] {
  return [...custom, ...ARCHS].flatMap((a) => a.modelTypes);
}

export function archFor(modelType: string): ArchDefinition {
  const a = lookup(modelType);
  if (!a) fail(`model_type "${modelType}" is not supported (supported: ${supportedModelTypes().join(', ')})`);
  return a;
}
