/** Up-front estimate of the quantizer's resident memory (so `--max-memory` can refuse before hours of work). */
import type { ModelConfig } from '../io/config.ts';
import type { ArchDefinition } from '../models/types.ts';
import { GRAM_CHUNK_FLOATS, type ActivationDtype } from './calibrate.ts';
import type { QuantizeConfig } from './quantize-config.ts';
import { factorPlan, panelFormBytes, solveParts } from './gptq.ts';
import { factorScratchBytes } from './hessian-inverse.ts';

export interface MemoryEstimate { layerWeights: number; activations: number; hessians: number; gptq: number; workspace: number; outside: number; total: number }

/**
 * Bytes, as the layer loop (src/quant/layer-loop.ts) holds them: the layer's integer codes (1 byte per weight;
 * with act-order groups, which cannot be dequantized in-graph, also 4 bytes per weight of fp32 copies), calibration
 * activations (2 or 4 bytes per value; one buffer), the Hessians of the largest sequential group plus the transient
 * copy onnxruntime-node returns of each bound output (a whole H up to 64 MB, else one 1024-row panel, its product and
 * a chunk of the tap rows transposed) or, at the end, the largest H's scaled copy in shared memory, GPTQ's buffers
 * for the largest linear (fp32 weight, its transposed working copy and errors, codes, the panel form's buffers in
 * place of the errors; solved by worker threads: + the joined codes, and Hinv's own buffer where H is not consumed,
 * the weight being read into shared memory, which the workers read in place; the Hessian-inverse factorization's
 * scratch), ORT workspace for one batch (the widest
 * intermediate a few times, plus attention scores), and outside modules (embeddings, during capture only: counted,
 * not summed with the layer phase), + 300 MB for the runtime itself.
 */
export function estimateMemory(arch: ArchDefinition, cfg: ModelConfig, q: QuantizeConfig, tokens: number, seqlen: number, batchTokens = 4096, activationDtype: ActivationDtype = 'float16'): MemoryEstimate {
  const lin = arch.layerLinears(cfg);
  const inGraph = !q.descAct || q.staticGroups;
  const layerWeights = (inGraph ? 1 : 5) * lin.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
  const batch = Math.min(tokens, Math.max(seqlen, batchTokens));
  const activations = (activationDtype === 'float16' ? 2 : 4) * cfg.hiddenSize * tokens;
  const inside = arch.insideLayerModules(cfg);
  const groups = q.trueSequential ? inside : [inside.flat()];
  const byRel = new Map(lin.map((l) => [l.rel, l]));
  const hessians = Math.max(...groups.map((g) => {
    const ins = [...new Set(g.map((m) => byRel.get(m)?.inFeatures ?? 0))];
    // in-graph H: its copy; summed from the tap rows (addGram): a panel's product and its copy, and X transposed in chunks
    // (at the end, each H is scaled into a shared-memory copy, one at a time: + the largest H, more than any copy above)
    const m = Math.max(...ins), copy = 4 * m * m <= 64e6 ? 4 * m * m : 2 * 4 * 1024 * m + 4 * GRAM_CHUNK_FLOATS;
    return ins.reduce((a, i) => a + 4 * i * i, 0) + Math.max(copy, 4 * m * m);
  }));
  const gptq = Math.max(...lin.map((l) => { // W, Wᵀ, errors (fp32), codes ×2 (u8); in workers + the joined codes, Hinv;
    const w = l.inFeatures * l.outFeatures; // + the factorization's scratch, ± the panel form's buffers
    const parts = solveParts(l.outFeatures, l.inFeatures, undefined), plan = factorPlan(l.inFeatures, q);
    return (parts > 1 ? 15 * w + 4 * l.inFeatures ** 2 : 14 * w) + factorScratchBytes(l.inFeatures, plan.P) + (plan.panelForm ? panelFormBytes(l.outFeatures, l.inFeatures, plan.P, parts) : 0);
  }));
  const widest = Math.max(cfg.intermediateSize, ...lin.map((l) => l.outFeatures));
  const workspace = 4 * batch * widest * 4 + 4 * cfg.numHeads * batch * Math.min(seqlen, batch);
  const outside = 4 * cfg.vocabSize * cfg.hiddenSize;
  const layerPhase = layerWeights + activations + hessians + Math.max(workspace, gptq);
  return { layerWeights, activations, hessians, gptq, workspace, outside, total: Math.max(layerPhase, outside + activations) + 300e6 };
}

export function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(0)} MB`;
}
