/** Load any supported model directory (fp or GPTQ-quantized) with its tokenizer and generation config. */
import { loadModelConfig, type GenerationConfig } from '../io/config.ts';
import { detectFormat } from '../formats/common.ts';
import { resolveModelDir } from '../io/hub.ts';
import { Checkpoint } from '../io/safetensors.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import { fail } from '../errors.ts';
import { CausalLM, type LoadOptions } from './causal-lm.ts';
import { quantizedModuleNames, type QuantizedLoadInfo } from './gptq-checkpoint.ts';

export interface LoadedModel { model: CausalLM; tokenizer?: TextTokenizer; gen: GenerationConfig }
export interface LoadedQuantizedModel extends LoadedModel { quantization: QuantizedLoadInfo }

/** CausalLM.load with its tokenizer and generation config as separate fields (what the CLI commands destructure). */
export async function loadAnyModel(dir: string, o: LoadOptions = {}): Promise<LoadedModel> {
  const model = await CausalLM.load(dir, o);
  return { model, tokenizer: model.tokenizer, gen: model.generationConfig };
}

/**
 * Like loadAnyModel, but the directory must be a quantized checkpoint: GPTQ (has `.qweight` tensors), or AWQ /
 * bitsandbytes / AQLM (config.json#quantization_config, src/formats).
 */
export async function loadQuantizedModel(model: string, o: LoadOptions = {}): Promise<LoadedQuantizedModel> {
  const dir = await resolveModelDir(model, o.hub);
  const ck = await Checkpoint.open(dir);
  const n = quantizedModuleNames(ck).length;
  await ck.dispose();
  if (!n && !detectFormat(dir, await loadModelConfig(dir))) fail(`${dir} is not a quantized checkpoint (no .qweight tensors, no AWQ/bitsandbytes/AQLM quantization_config); load it with CausalLM.load, or quantize it with GPTQModel.fromPretrained`);
  const r = await loadAnyModel(dir, o);
  return { ...r, quantization: r.model.quantization! };
}
