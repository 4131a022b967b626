/** Load any supported model directory (fp or GPTQ-quantized) with its tokenizer and generation config. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadGenerationConfig, type GenerationConfig } from '../io/config.ts';
import { Checkpoint } from '../io/safetensors.ts';
import { TextTokenizer } from '../io/tokenizer.ts';
import { fail } from '../errors.ts';
import { CausalLM, type LoadOptions } from './causal-lm.ts';
import { quantizedModuleNames, type QuantizedLoadInfo } from './quantized-weights.ts';

export interface LoadedModel { model: CausalLM; tokenizer?: TextTokenizer; gen: GenerationConfig }
export interface LoadedQuantizedModel extends LoadedModel { quantization: QuantizedLoadInfo }

export async function loadAnyModel(dir: string, o: LoadOptions = {}): Promise<LoadedModel> {
  const model = await CausalLM.load(dir, o);
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await TextTokenizer.fromDir(dir) : undefined;
  return { model, tokenizer, gen: await loadGenerationConfig(dir) };
}

/** Like loadAnyModel, but the directory must be a GPTQ checkpoint (has `.qweight` tensors). */
export async function loadQuantizedModel(dir: string, o: LoadOptions = {}): Promise<LoadedQuantizedModel> {
  const ck = await Checkpoint.open(dir);
  const n = quantizedModuleNames(ck).length;
  await ck.dispose();
  if (!n) fail(`${dir} is not a GPTQ checkpoint (no .qweight tensors); load it with CausalLM.load, or quantize it with GPTQModel.fromPretrained`);
  const r = await loadAnyModel(dir, o);
  return { ...r, quantization: r.model.quantization! };
}
