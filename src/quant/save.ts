/** Write an AutoGPTQ-format checkpoint: packed safetensors, quantize_config.json, config.json#quantization_config. */
import { promises as fs, existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../io/atomic.ts';
import { lazyFrom, saveSharded, type Checkpoint, type TensorLike } from '../io/safetensors.ts';
import type { ModelConfig } from '../io/config.ts';
import { toF16Bits, type Tensor } from '../tensor.ts';
import type { ArchDefinition } from '../models/types.ts';
import { tensorNamesToSave } from '../runtime/model-checkpoint.ts';
import { toQuantizeConfigJson, type QuantizeConfig } from './config.ts';
import type { QuantizedModule, QuantizeLoopResult, SkippedModule } from './quantize-model.ts';

/** Files copied unchanged from the source model directory. */
export const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json', 'chat_template.jinja', 'vocab.json', 'merges.txt'];

/** AutoGPTQ's tensors for one quantized linear (bias in fp16, as its QuantLinear buffers are). */
export function moduleTensors(m: QuantizedModule, bits: number): Record<string, Tensor> {
  const groups = m.scales.length / m.outFeatures;
  const t: Record<string, Tensor> = {
    [`${m.name}.qweight`]: { dtype: 'I32', shape: [(m.inFeatures * bits) / 32, m.outFeatures], data: m.qweight },
    [`${m.name}.qzeros`]: { dtype: 'I32', shape: [groups, (m.outFeatures * bits) / 32], data: m.qzeros },
    [`${m.name}.scales`]: { dtype: 'F16', shape: [groups, m.outFeatures], data: m.scales },
    [`${m.name}.g_idx`]: { dtype: 'I32', shape: [m.inFeatures], data: m.gIdx },
  };
  if (m.bias) t[`${m.name}.bias`] = { dtype: 'F16', shape: [m.outFeatures], data: toF16Bits(m.bias) };
  return t;
}

/**
 * quantization_config for config.json (transformers GPTQConfig keys). Skipped modules are recorded as
 * transformers' `modules_in_block_to_quantize` (what to convert inside each block) and GPTQModel's `dynamic`
 * negative rules, so loaders keep them in full precision.
 */
export function quantizationConfigJson(arch: ArchDefinition, cfg: ModelConfig, q: QuantizeConfig, skipped: SkippedModule[]): Record<string, unknown> {
  const j: Record<string, unknown> = { ...toQuantizeConfigJson(q), block_name_to_quantize: arch.layersBlockName.replace(/\.$/, '') };
  const skippedRel = [...new Set(skipped.map((s) => s.name.replace(/^.*?\.\d+\./, '')))];
  if (skippedRel.length) {
    j.modules_in_block_to_quantize = (arch.insideLayerModulesFor?.(cfg) ?? arch.insideLayerModules).map((g) => g.filter((m) => !skippedRel.includes(m))).filter((g) => g.length);
    j.dynamic = Object.fromEntries(skippedRel.map((m) => [`-:.*\\.${m.replace(/\./g, '\\.')}$`, {}]));
  }
  return j;
}

export interface SaveOptions { maxShardSize?: string | number }

/** Write the checkpoint atomically; tensors stream from the source checkpoint and the quantizer's result. */
export async function saveQuantizedCheckpoint(out: string, src: { dir: string; ck: Checkpoint; cfg: ModelConfig; arch: ArchDefinition }, q: QuantizeConfig,
  res: Pick<QuantizeLoopResult, 'quantized' | 'packed' | 'skipped'>, o: SaveOptions = {}): Promise<void> {
  const tensors = new Map<string, TensorLike>();
  for (const n of tensorNamesToSave(src.ck, src.cfg, src.arch)) if (!res.quantized.has(n.replace(/\.(weight|bias)$/, ''))) tensors.set(n, lazyFrom(src.ck, n));
  for (const [n, t] of res.packed) tensors.set(n, t);
  const qjson = quantizationConfigJson(src.arch, src.cfg, q, res.skipped);
  await writeDirAtomic(out, async (tmp) => {
    await saveSharded(tmp, tensors, { maxShardSize: o.maxShardSize ?? '5GB', metadata: { format: 'pt' } });
    const config = { ...src.cfg.raw, quantization_config: qjson };
    await fs.writeFile(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const qc = { ...toQuantizeConfigJson(q), model_file_base_name: 'model' };
    await fs.writeFile(join(tmp, 'quantize_config.json'), JSON.stringify(qc, null, 2) + '\n');
    for (const f of SIDE_FILES) if (existsSync(join(src.dir, f))) await fs.copyFile(join(src.dir, f), join(tmp, f));
  });
}
