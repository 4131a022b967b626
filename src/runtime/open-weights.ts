/**
 * Open a checkpoint directory's weights for inference — fp (fp16/bf16/fp32), GPTQ (src/runtime/gptq-checkpoint.ts) or
 * AWQ / bitsandbytes / AQLM (src/formats/load.ts) — with one open of its safetensors, the model's loading rules
 * applied (src/runtime/model-checkpoint.ts). What comes back builds graphs (a WeightSource per graph); sessions are
 * CausalLM's job (src/runtime/causal-lm.ts). The split follows llama2.c, whose `read_checkpoint` is apart from the
 * forward, and transformers.js, whose sessions are apart from its model classes.
 */
import type { ModelConfig } from '../io/config.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { ArchDefinition, WeightSource } from '../models/types.ts';
import { InitializerWeights } from '../graph/weights.ts';
import { loadFormatWeights } from '../formats/load.ts';
import { collectGarbage } from '../gc.ts';
import { openModelCheckpoint, readFloatTensors } from './model-checkpoint.ts';
import { loadQuantizedWeights, type QuantizedLoadInfo } from './gptq-checkpoint.ts';
import { HeadQuantizedWeights, isQuantizedModule, quantizeHead, readHeadWeight, type LmHeadBits, type QuantizedHead } from './lm-head.ts';
import type { AccuracyLevel } from './quantized-weights.ts';

export interface OpenWeightsOptions {
  /** MatMulNBits accuracy_level of the quantized linears (LoadOptions.accuracyLevel). */
  accuracyLevel: AccuracyLevel;
  /** bitsandbytes 4-bit and AQLM linears as fp32 weights (LoadOptions.dequantize). */
  dequantize?: boolean;
  /** Round-to-nearest quantize the output head at load (LoadOptions.lmHeadBits); `asked`: the caller chose it. */
  lmHead?: { bits: LmHeadBits; accuracyLevel: AccuracyLevel; asked: boolean };
  /** Each load notice as it happens (modules dequantized to fp32, lmHeadBits ignored); they are also in `notes`. */
  onLog?: (msg: string) => void;
}

export interface OpenedWeights {
  /** A new WeightSource for each graph (all share the tensors read). */
  source: () => WeightSource;
  /** Quantized checkpoints: the format, its settings and the kernel each quantized module runs on. */
  quantization?: QuantizedLoadInfo;
  /** The load notices, in order. */
  notes: string[];
  /**
   * False while a quantized head was prepared (OpenWeightsOptions.lmHead) but no graph built from `source` ran it: the
   * architecture's head is not the linear `arch.lmHead`.
   */
  headUsed: () => boolean;
}

/**
 * Read the weights of `dir` for graphs: opens its checkpoint once (Checkpoint.open through openModelCheckpoint), reads
 * every tensor the graphs need, closes it. Throws GptqError (one line) for a missing or malformed checkpoint, an
 * unsupported quantization format, or tensors that do not fit the config.
 */
export async function openWeights(dir: string, cfg: ModelConfig, arch: ArchDefinition, o: OpenWeightsOptions): Promise<OpenedWeights> {
  const notes: string[] = [];
  const note = (msg: string) => { notes.push(msg); o.onLog?.(msg); };
  const ck = await openModelCheckpoint(dir, cfg, arch);
  try {
    // The head first (read, quantized, its fp32 copy dropped) so that it is not held next to all other weights.
    const head = o.lmHead ? await quantizedHead(ck, arch, cfg, o.lmHead.bits) : undefined;
    if (head) await collectGarbage(); // the fp32 head is garbage now
    const qw = await loadFormatWeights(ck, cfg, arch, { accuracyLevel: o.accuracyLevel, dequantize: o.dequantize, onLog: note })
      ?? await loadQuantizedWeights(ck, cfg, arch, { accuracyLevel: o.accuracyLevel, onLog: note });
    let source: () => WeightSource;
    if (qw) source = qw.source;
    else {
      const fp = await readFloatTensors(ck), where = ck.location;
      source = () => new InitializerWeights((n) => fp.get(n), undefined, where);
    }
    let headUsed = true;
    if (o.lmHead && (!head || isQuantizedModule(qw?.info, arch.lmHead))) {
      if (o.lmHead.asked) note(`lm-head: the output head of ${dir} is GPTQ-quantized already; lmHeadBits ignored`);
    } else if (head) {
      const inner = source, acc = o.lmHead!.accuracyLevel;
      headUsed = false;
      source = () => {
        const hq = new HeadQuantizedWeights(inner(), arch.lmHead, head, acc);
        return {
          tensor: (g, n, shape) => hq.tensor(g, n, shape),
          linear: (g, x, spec) => { const y = hq.linear(g, x, spec); if (hq.used) headUsed = true; return y; },
        };
      };
    }
    return { source, quantization: qw?.info, notes, headUsed: () => headUsed };
  } finally { await ck.dispose(); }
}

/** The checkpoint's fp head quantized (undefined when it is stored GPTQ-quantized); its fp32 copy is garbage after. */
async function quantizedHead(ck: Checkpoint, arch: ArchDefinition, cfg: ModelConfig, bits: LmHeadBits): Promise<QuantizedHead | undefined> {
  const hw = await readHeadWeight(ck, arch, cfg);
  return hw && quantizeHead(hw, cfg.vocabSize, cfg.hiddenSize, bits);
}
