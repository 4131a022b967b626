/**
 * Which stored tensor each parameter of a model reads, by the rules Transformers (and AutoGPTQ/GPTQModel, which load
 * through Transformers' model classes) apply when loading a checkpoint:
 *
 * - Renamed and fused weights (transformers conversion_mapping.py), as transformers v5 stores them with
 *   `save_original_format=False`: each architecture's `checkpoint` rules (ArchDefinition.checkpoint), e.g.
 *   GPTNeoXForCausalLM's head `embed_out` as "lm_head.weight" (gpt-neox.ts); Mixtral's experts stacked into
 *   `mlp.experts.gate_up_proj`/`down_proj` and its router as `mlp.gate` (mixtral.ts, read as slices/aliases).
 * - Tied embeddings (modeling_utils.py `tie_weights`, `get_expanded_tied_weights_keys`): only when the config's
 *   `tie_word_embeddings` (default per architecture, src/io/config.ts) is true, the head and the input embedding are
 *   one tensor; while loading the tie is symmetric — whichever of the two is stored serves both. When both are stored
 *   each is used as stored (transformers v5 ties them only if they are equal; v4 ignored a stored head). With
 *   `tie_word_embeddings` false, or with neither stored, Transformers would initialize the missing one randomly: we
 *   refuse with one line naming the tensor, the file and the config field instead.
 * - Tensors shared in the file itself (safetensors `save_model` aliases in `__metadata__`) and base-model prefixes are
 *   handled by Checkpoint (src/io/safetensors.ts).
 * Any other tensor the graph needs and the checkpoint lacks is refused when the graph is built (InitializerWeights).
 */
import type { ModelConfig } from '../io/config.ts';
import { loadModelConfig } from '../io/config.ts';
import { Checkpoint, checkFinite } from '../io/safetensors.ts';
import { archFor } from '../models/registry.ts';
import type { ArchDefinition } from '../models/types.ts';
import { fail } from '../errors.ts';

/** Name of a model's input embedding tensor (the tie target of its head). */
export const embeddingName = (arch: ArchDefinition): string => arch.tiedEmbedding ?? 'model.embed_tokens.weight';

/** Apply the renaming and tied-embedding rules to an open checkpoint (adds aliases); one-line errors. */
export function bindModel(ck: Checkpoint, cfg: ModelConfig, arch: ArchDefinition): void {
  for (const [from, to] of arch.checkpoint?.renames ?? []) {
    for (const n of ck.names()) if (n.startsWith(from) && !ck.has(to + n.slice(from.length))) ck.alias(to + n.slice(from.length), n, true);
  }
  arch.checkpoint?.bind?.(ck, cfg);
  const embed = ck.resolve(embeddingName(arch));
  const head = ck.resolve(`${arch.lmHead}.weight`);
  const headQuantized = ck.has(ck.resolve(`${arch.lmHead}.qweight`));
  const hasEmbed = ck.has(embed), hasHead = headQuantized || ck.has(head);
  if (hasEmbed && hasHead) return;
  const tie = cfg.tieWordEmbeddings;
  const field = `"tie_word_embeddings" ${tie} (${cfg.path}${cfg.raw.tie_word_embeddings === undefined ? `: absent, the ${cfg.modelType || 'default'} default` : ''})`;
  if (!hasEmbed && !hasHead) {
    fail(`${ck.location}: has neither the input embedding "${embed}" nor the output head "${head}"; Transformers would initialize both randomly`);
  }
  if (!tie) {
    const [missing, what, other] = hasEmbed ? [head, 'output head', embed] : [embed, 'input embedding', head];
    fail(`${ck.location}: no tensor "${missing}" (the ${what}) and ${field}, so it is not tied to "${other}"; Transformers would initialize it randomly (if the model ties them, set "tie_word_embeddings": true)`);
  }
  if (hasEmbed) ck.alias(head, embed);
  else if (!headQuantized) ck.alias(embed, head);
  else fail(`${ck.location}: no tensor "${embed}" (the input embedding) and the tied head "${arch.lmHead}" is GPTQ-quantized, so it cannot stand in for it`);
}

/** Open a model directory's checkpoint with the model's loading rules applied (see bindModel). */
export async function openModelCheckpoint(dir: string, cfg?: ModelConfig, arch?: ArchDefinition): Promise<Checkpoint> {
  const c = cfg ?? await loadModelConfig(dir);
  const a = arch ?? archFor(c.modelType);
  const ck = await Checkpoint.open(dir);
  try { bindModel(ck, c, a); } catch (e) { await ck.dispose(); throw e; }
  return ck;
}

/**
 * The tensor names a copy of this checkpoint should store: the names the model reads (Checkpoint.modelNames: renamed
 * and fused tensors under the model's own names, as transformers `save_pretrained` writes them by default), except
 * that a tied head reading the same tensor as the input embedding is left out (`remove_tied_weights_from_state_dict`):
 * every loader ties it back.
 */
export function tensorNamesToSave(ck: Checkpoint, cfg: ModelConfig, arch: ArchDefinition): string[] {
  const embed = ck.resolve(embeddingName(arch)), head = ck.resolve(`${arch.lmHead}.weight`);
  const dropHead = cfg.tieWordEmbeddings && ck.has(embed) && ck.has(head) && ck.storedName(embed) === ck.storedName(head);
  return ck.modelNames().filter((n) => !(dropHead && n === head));
}

/**
 * Every float tensor a model reads from `ck` (Checkpoint.modelNames, except those `skip` names) as fp32; names that read
 * the same stored tensor (aliases) share one array.
 */
export async function readFloatTensors(ck: Checkpoint, skip?: (name: string) => boolean): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>(), byStored = new Map<string, Float32Array>();
  for (const n of ck.modelNames()) {
    if (skip?.(n)) continue;
    const dt = ck.info(n).dtype;
    if (!(dt === 'F32' || dt === 'F16' || dt === 'BF16' || dt === 'F64')) continue;
    if (ck.isView(n)) { m.set(n, await ck.readFloat32(n)); continue; }
    const s = ck.storedName(n);
    let a = byStored.get(s);
    if (!a) byStored.set(s, a = await ck.readFloat32(s));
    m.set(n, a);
  }
  return m;
}

/**
 * Scan every stored float tensor of `dir`'s checkpoint for NaN/Inf (CausalLM names the broken tensor when an output is
 * not finite): throws checkFinite's one-line GptqError for the first one found. Reads the whole checkpoint.
 */
export async function checkStoredFinite(dir: string): Promise<void> {
  const ck = await Checkpoint.open(dir);
  try {
    for (const n of ck.names()) {
      const { dtype, shape } = ck.info(n);
      if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') checkFinite(await ck.readFloat32(n), n, ck.location, shape);
    }
  } finally { await ck.dispose(); }
}
