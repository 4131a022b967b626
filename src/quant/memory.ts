/** Up-front estimate of the quantizer's resident memory (so `--max-memory` can refuse before hours of work). */
import type { ModelConfig } from '../io/config.ts';
import type { ArchDefinition } from '../models/types.ts';
import type { QuantizeConfig } from './config.ts';

export interface MemoryEstimate { layerWeights: number; activations: number; hessians: number; workspace: number; outside: number; total: number }

/**
 * Bytes: one layer's fp32 weights twice (source + quantized copy), calibration activations (fp32, plus one batch
 * in flight), the Hessians of the largest sequential group, ORT workspace for one batch (the widest intermediate
 * a few times, plus attention scores), and outside modules (embeddings, during capture only: counted, not summed
 * with the layer phase), + 300 MB for the runtime itself.
 */
export function estimateMemory(arch: ArchDefinition, cfg: ModelConfig, q: QuantizeConfig, tokens: number, seqlen: number, batchTokens = 4096): MemoryEstimate {
  const lin = arch.layerLinears(cfg);
  const layerWeights = 2 * 4 * lin.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
  const batch = Math.min(tokens, Math.max(seqlen, batchTokens));
  const activations = 4 * cfg.hiddenSize * (tokens + batch);
  const inside = arch.insideLayerModulesFor?.(cfg) ?? arch.insideLayerModules;
  const groups = q.trueSequential ? inside : [inside.flat()];
  const byRel = new Map(lin.map((l) => [l.rel, l]));
  const hessians = Math.max(...groups.map((g) => {
    const ins = new Set(g.map((m) => byRel.get(m)?.inFeatures ?? 0));
    return [...ins].reduce((a, i) => a + 2 * 4 * i * i, 0); // accumulator + one run's output
  }));
  const widest = Math.max(cfg.intermediateSize, ...lin.map((l) => l.outFeatures));
  const workspace = 4 * batch * widest * 4 + 4 * cfg.numHeads * batch * Math.min(seqlen, batch);
  const outside = 4 * cfg.vocabSize * cfg.hiddenSize;
  const layerPhase = layerWeights + activations + hessians + workspace;
  return { layerWeights, activations, hessians, workspace, outside, total: Math.max(layerPhase, outside + activations) + 300e6 };
}

export function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(0)} MB`;
}
