/** A loaded causal LM: config + ORT session over the whole-model graph (fp32 or quantized weights). */
import type { InferenceSession } from 'onnxruntime-node';
import { loadModelConfig, type ModelConfig } from '../io/config.ts';
import { Checkpoint } from '../io/safetensors.ts';
import { buildCausalLM, kvNames } from '../graph/causal-lm.ts';
import { createSession, f32, i64, type Device } from '../graph/session.ts';
import { InitializerWeights } from '../graph/weights.ts';
import { archFor } from '../models/registry.ts';
import type { ArchDefinition, WeightSource } from '../models/types.ts';
import { checkAccuracyLevel, loadQuantizedWeights, type AccuracyLevel, type QuantizedLoadInfo } from './quantized-weights.ts';

export interface LoadOptions {
  device?: Device; threads?: number;
  /**
   * GPTQ checkpoints: MatMulNBits `accuracy_level`. 0 (default) = fp32 activations, the exact math of the
   * dequantized model; 4 = int8-quantized activations (faster, small accuracy cost; also enables the fast
   * 8-bit kernel). Ignored for fp checkpoints.
   */
  accuracyLevel?: AccuracyLevel;
  /** Where load-time notices go (e.g. modules dequantized to fp32); default stderr. */
  onLog?: (msg: string) => void;
}

/** KV cache of a running sequence batch: per layer [B, kvH, P, d]. */
export interface KvCache { keys: Float32Array[]; values: Float32Array[]; length: number; batch: number }

/** Read every float tensor of a checkpoint as fp32 (small/medium models; the quantizer streams instead). */
export async function loadFloatWeights(dir: string): Promise<Map<string, Float32Array>> {
  const ck = await Checkpoint.open(dir);
  try {
    const m = new Map<string, Float32Array>();
    for (const n of ck.names()) {
      const dt = ck.info(n).dtype;
      if (dt === 'F32' || dt === 'F16' || dt === 'BF16' || dt === 'F64') m.set(n, await ck.readFloat32(n));
    }
    return m;
  } finally { await ck.close(); }
}

export class CausalLM {
  /** Set for GPTQ checkpoints: settings and the kernel each quantized module runs on. */
  quantization?: QuantizedLoadInfo;
  private constructor(
    readonly cfg: ModelConfig, readonly arch: ArchDefinition,
    private readonly full: InferenceSession, private readonly step: InferenceSession,
  ) {}

  /** Build both graphs (full-sequence logits for ppl; KV-cache step for generation) from a weight source. */
  static async fromWeights(cfg: ModelConfig, w: () => WeightSource, o: LoadOptions = {}): Promise<CausalLM> {
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const full = await createSession(buildCausalLM(arch, cfg, w(), { kvCache: false }).toBytes(), o);
    const step = await createSession(buildCausalLM(arch, cfg, w(), { kvCache: true, lastLogitsOnly: true }).toBytes(), o);
    return new CausalLM(cfg, arch, full, step);
  }

  /**
   * Load an HF checkpoint directory: fp16/bf16/fp32, or GPTQ (AutoGPTQ / GPTQModel / transformers layouts) when it
   * holds `.qweight` tensors — those modules run on MatMulNBits, modules with a plain `.weight` stay fp32.
   */
  static async load(dir: string, o: LoadOptions = {}): Promise<CausalLM> {
    const cfg = await loadModelConfig(dir);
    const accuracyLevel = checkAccuracyLevel(o.accuracyLevel);
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const q = await loadQuantizedWeights(dir, cfg, arch, { accuracyLevel, onLog: o.onLog });
    if (q) {
      const m = await CausalLM.fromWeights(cfg, q.source, o);
      m.quantization = q.info;
      return m;
    }
    const weights = await loadFloatWeights(dir);
    return CausalLM.fromWeights(cfg, () => new InitializerWeights((n) => weights.get(n)), o);
  }

  /** Logits for every position of each row: ids [B,S] → Float32Array [B,S,V]. */
  async logits(ids: number[][]): Promise<Float32Array> {
    const B = ids.length, S = ids[0]!.length;
    const r = await this.full.run({ input_ids: i64(ids.flat(), [B, S]) });
    return r.logits!.data as Float32Array;
  }

  emptyCache(batch: number): KvCache {
    const z = () => Array.from({ length: this.cfg.numLayers }, () => new Float32Array(0));
    return { keys: z(), values: z(), length: 0, batch };
  }

  /**
   * One cached step: ids [B,S] appended after `cache` (left-padded rows use attentionMask 0 and positions from
   * the mask's cumulative sum). Returns last-position logits [B,V] and the grown cache.
   */
  async forwardStep(ids: number[][], cache: KvCache, attentionMask?: number[][]): Promise<{ logits: Float32Array; cache: KvCache }> {
    const { numLayers, numKvHeads: kvH, headDim: d } = this.cfg;
    const B = ids.length, S = ids[0]!.length, P = cache.length, T = P + S;
    const mask = attentionMask ?? Array.from({ length: B }, () => new Array(T).fill(1));
    const pos: number[] = [];
    for (const row of mask) {
      let c = 0;
      const cum = row.map((m) => (c += m));
      for (let j = P; j < T; j++) pos.push(Math.max(cum[j]! - 1, 0));
    }
    const feeds: Record<string, ReturnType<typeof f32>> = {
      input_ids: i64(ids.flat(), [B, S]), position_ids: i64(pos, [B, S]), attention_mask: i64(mask.flat(), [B, T]),
    };
    for (let i = 0; i < numLayers; i++) {
      const n = kvNames(i);
      feeds[n.pastKey] = f32(cache.keys[i]!, [B, kvH, P, d]);
      feeds[n.pastValue] = f32(cache.values[i]!, [B, kvH, P, d]);
    }
    const r = await this.step.run(feeds);
    const next: KvCache = { keys: [], values: [], length: T, batch: B };
    for (let i = 0; i < numLayers; i++) {
      const n = kvNames(i);
      next.keys.push(r[n.presentKey]!.data as Float32Array);
      next.values.push(r[n.presentValue]!.data as Float32Array);
    }
    return { logits: r.logits!.data as Float32Array, cache: next };
  }

  async release(): Promise<void> { await this.full.release(); await this.step.release(); }
}
