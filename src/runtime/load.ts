/** Load any supported model directory (fp or GPTQ-quantized) with its tokenizer and generation config. */
import { loadModelConfig, type GenerationConfig } from '../io/config.ts';
import { declaresQuantization } from '../formats/common.ts';
import { resolveModelDir } from '../io/hub.ts';
import type { TextTokenizer } from '../io/tokenizer.ts';
import { fail } from '../errors.ts';
import { CausalLM, type LoadOptions } from './causal-lm.ts';
import type { QuantizedLoadInfo } from './gptq-checkpoint.ts';

export interface LoadedModel { model: CausalLM; tokenizer?: TextTokenizer; gen: GenerationConfig }
export interface LoadedQuantizedModel extends LoadedModel { quantization: QuantizedLoadInfo }

/** CausalLM.load with its tokenizer and generation config as separate fields (what the CLI commands destructure). */
export async function loadAnyModel(dir: string, o: LoadOptions = {}): Promise<LoadedModel> {
  const model = await CausalLM.load(dir, o);
  return { model, tokenizer: model.tokenizer, gen: model.generationConfig };
}

/**
 * Like loadAnyModel, but the directory must be a quantized checkpoint: GPTQ (`.qweight` tensors and quantize_config.json
 * or config.json#quantization_config), or AWQ / bitsandbytes / AQLM (config.json#quantization_config or AutoAWQ's
 * quant_config.json, src/formats). A directory whose config files declare no quantization is refused before any weight
 * is read; one that declares it but loads as fp (no quantized tensors) after loading.
 */
export async function loadQuantizedModel(model: string, o: LoadOptions = {}): Promise<LoadedQuantizedModel> {
  const dir = await resolveModelDir(model, o.hub);
  const how = 'load it with CausalLM.load, or quantize it with GPTQModel.fromPretrained';
  if (!declaresQuantization(dir, await loadModelConfig(dir))) fail(`${dir} is not a quantized checkpoint (no quantize_config.json, no quantization_config in config.json, no AWQ quant_config.json); ${how}`);
  const r = await loadAnyModel(dir, o);
  const quantization = r.model.quantization;
  if (!quantization) {
    await r.model.dispose();
    fail(`${dir} is not a quantized checkpoint (no .qweight tensors, no AWQ/bitsandbytes/AQLM quantization_config); ${how}`);
  }
  return { ...r, quantization };
}
