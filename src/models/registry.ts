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
import type { ArchDefinition } from './types.ts';

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
];

const custom: ArchDefinition[] = [];
/** Register a user-defined architecture (same shape as the built-in files). */
export function registerArchitecture(def: ArchDefinition): void { custom.unshift(def); }

export function supportedModelTypes(): string[] {
  return [...custom, ...ARCHS].flatMap((a) => a.modelTypes);
}

export function archFor(modelType: string): ArchDefinition {
  const a = [...custom, ...ARCHS].find((x) => x.modelTypes.includes(modelType));
  if (!a) fail(`model_type "${modelType}" is not supported (supported: ${supportedModelTypes().join(', ')})`);
  return a;
}
