/** Whole-model and single-layer graphs for any ArchDefinition. */
import { GraphBuilder } from './builder.ts';
import { causalMask, dim, ropeTables } from '../models/blocks.ts';
import type { ArchDefinition, LayerContext, WeightSource } from '../models/types.ts';
import type { ModelConfig } from '../io/config.ts';
import { ropeInvFreq } from '../io/config.ts';

export interface ModelGraphOptions {
  /** past/present KV inputs+outputs and an attention_mask/position_ids input (generation). */
  kvCache: boolean;
  /** only the last position's logits [B,1,V] (generation) instead of [B,S,V] (perplexity). */
  lastLogitsOnly?: boolean;
}

/** Names of the KV tensors of layer i. */
export const kvNames = (i: number) => ({
  pastKey: `past_key_values.${i}.key`, pastValue: `past_key_values.${i}.value`,
  presentKey: `present.${i}.key`, presentValue: `present.${i}.value`,
});

function rope(g: GraphBuilder, cfg: ModelConfig, positions: string) {
  const { invFreq, attentionScaling } = ropeInvFreq(cfg);
  return ropeTables(g, positions, invFreq, attentionScaling);
}

/**
 * input_ids [B,S] → logits. With kvCache: inputs position_ids [B,S], attention_mask [B,P+S] and past KV
 * [B,kvH,P,d] per layer; outputs present KV [B,kvH,P+S,d].
 */
export function buildCausalLM(arch: ArchDefinition, cfg: ModelConfig, w: WeightSource, o: ModelGraphOptions): GraphBuilder {
  const g = new GraphBuilder(`${cfg.modelType}_causal_lm`);
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const S = dim(g, ids, 1);
  let positions: string, mask: string;
  const pasts: { key: string; value: string }[] = [];
  if (o.kvCache) {
    positions = g.input('position_ids', 'int64', ['batch', 'seq']);
    const am = g.input('attention_mask', 'int64', ['batch', 'total']);
    for (let i = 0; i < cfg.numLayers; i++) {
      const n = kvNames(i);
      pasts.push({
        key: g.input(n.pastKey, 'float32', ['batch', cfg.numKvHeads, 'past', cfg.headDim]),
        value: g.input(n.pastValue, 'float32', ['batch', cfg.numKvHeads, 'past', cfg.headDim]),
      });
    }
    mask = causalMask(g, S, dim(g, am, 1), am, cfg.slidingWindow);
  } else {
    positions = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
    mask = causalMask(g, S, S, undefined, cfg.slidingWindow);
  }
  let h = arch.embed(g, cfg, w, ids, positions);
  const r = rope(g, cfg, positions);
  for (let i = 0; i < cfg.numLayers; i++) {
    const ctx: LayerContext = { g, cfg, w, prefix: `${arch.layersBlockName}${i}.`, layerIndex: i, rope: r, mask, past: pasts[i] };
    h = arch.layer(ctx, h);
    if (o.kvCache) {
      const n = kvNames(i);
      g.output(ctx.present!.key, 'float32', ['batch', cfg.numKvHeads, 'total', cfg.headDim], n.presentKey);
      g.output(ctx.present!.value, 'float32', ['batch', cfg.numKvHeads, 'total', cfg.headDim], n.presentValue);
    }
  }
  if (o.lastLogitsOnly) h = g.op('Slice', [h, g.constI64([-1]), g.constI64([2 ** 62]), g.constI64([1])]);
  g.output(arch.head(g, cfg, w, h), 'float32', ['batch', o.lastLogitsOnly ? 1 : 'seq', cfg.vocabSize], 'logits');
  return g;
}

/**
 * One decoder layer for calibration: hidden_in [B,S,H] → hidden_out, causal, positions 0..S−1.
 * `hessians` names the linears (relative, e.g. "mlp.down_proj") whose input Gram matrix Σ XᵀX (over B·S rows)
 * is emitted as output `xtx.<name>` [in,in]; with `withHidden` false only those are computed.
 */
export function buildLayerGraph(arch: ArchDefinition, cfg: ModelConfig, w: WeightSource & { taps?: Map<string, { value: string; inFeatures: number }> }, o: { hessians?: readonly string[]; withHidden?: boolean; layerIndex?: number } = {}): GraphBuilder {
  const g = new GraphBuilder(`${cfg.modelType}_layer`);
  const x = g.input('hidden_in', 'float32', ['batch', 'seq', cfg.hiddenSize]);
  const S = dim(g, x, 1);
  const positions = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), S, g.constI64(1)]), g.constI64([0])]);
  const ctx: LayerContext = { g, cfg, w, prefix: `${arch.layersBlockName}0.`, layerIndex: o.layerIndex ?? 0, rope: rope(g, cfg, positions), mask: causalMask(g, S, S, undefined, cfg.slidingWindow) };
  const out = arch.layer(ctx, x);
  if (o.withHidden ?? true) g.output(out, 'float32', ['batch', 'seq', cfg.hiddenSize], 'hidden_out');
  for (const name of o.hessians ?? []) {
    const tap = w.taps?.get(name);
    if (!tap) throw new Error(`layer graph has no linear "${name}"`);
    const x2 = g.op('Reshape', [tap.value, g.constI64([-1, tap.inFeatures])]);
    g.output(g.op('Gemm', [x2, x2], { transA: 1 }), 'float32', [tap.inFeatures, tap.inFeatures], `xtx.${name}`);
  }
  return g.prune();
}
