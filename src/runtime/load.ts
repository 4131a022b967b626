/** Load any supported model directory (fp or GPTQ-quantized) with its tokenizer and generation config. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadGenerationConfig, type GenerationConfig } from '../io/config.ts';
import { TextTokenizer } from '../io/tokenizer.ts';
import { CausalLM, type LoadOptions } from './causal-lm.ts';

export interface LoadedModel { model: CausalLM; tokenizer?: TextTokenizer; gen: GenerationConfig }

export async function loadAnyModel(dir: string, o: LoadOptions = {}): Promise<LoadedModel> {
  const model = await CausalLM.load(dir, o);
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await TextTokenizer.fromDir(dir) : undefined;
  return { model, tokenizer, gen: await loadGenerationConfig(dir) };
}
