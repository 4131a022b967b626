/**
 * Mixtral (MixtralForCausalLM): Llama/Mistral attention (RMSNorm, rotary, GQA, optional sliding window) + a sparse
 * mixture-of-experts MLP (`block_sparse_moe`):
 *   logits = gate(x) [tokens, E] (nn.Linear, no bias; never quantized, as AutoGPTQ)
 *   p = softmax(logits) (fp32); top-k (k = num_experts_per_tok) of p, renormalized to sum 1 (Mixtral always does)
 *   y = Σ_{e in top-k} p̂_e · w2_e(silu(w1_e(x)) · w3_e(x))
 *
 * The graph evaluates EVERY expert on EVERY token and weights it by a dense [tokens, E] routing matrix (the top-k
 * renormalized weights scattered into zeros): exact and simple, but it costs num_local_experts / num_experts_per_tok
 * times the FLOPs of sparse dispatch (4× for Mixtral 8x7B's 8 experts, top-2).
 *
 * Calibration: each expert's linears carry `hessianRowWeight` = its 0/1 routing mask, so its Hessian sums only the
 * tokens routed to it, as AutoGPTQ's forward hooks (which see only the expert's routed tokens) accumulate it.
 */
import { fail } from '../errors.ts';
import { configInt, type ModelConfig } from '../io/config.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { activation, applyRope, attention, mergeHeads, rmsNorm, splitHeads } from './blocks.ts';
import type { ArchDefinition, LayerContext, LayerLinear, LinearSpec, WeightSource } from './types.ts';

const ATTN = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] as const;

/** num_local_experts (MixtralConfig default 8) and num_experts_per_tok (default 2). */
export function moeSizes(cfg: ModelConfig): { experts: number; topK: number } {
  return { experts: configInt(cfg, 'num_local_experts', 8), topK: configInt(cfg, 'num_experts_per_tok', 2) };
}

/** AutoGPTQ's MixtralGPTQForCausalLM.inside_layer_modules for `n` experts. */
function moduleGroups(n: number): string[][] {
  const e = (w: string) => Array.from({ length: n }, (_, i) => `block_sparse_moe.experts.${i}.${w}`);
  return [
    ['self_attn.k_proj', 'self_attn.v_proj', 'self_attn.q_proj'],
    ['self_attn.o_proj'],
    [...e('w1'), ...e('w3')],
    e('w2'),
  ];
}

/**
 * Sparse MoE block on x [..., H]: returns [..., H]. Dense evaluation of every expert (see the file comment);
 * experts' linears get their routing mask as `hessianRowWeight`.
 */
export function sparseMoe(g: GraphBuilder, w: WeightSource, cfg: ModelConfig, x: string, prefix: string): string {
  const { hiddenSize: h, intermediateSize: inter } = cfg;
  const { experts: E, topK: k } = moeSizes(cfg);
  const xf = g.op('Reshape', [x, g.constI64([-1, h])]); // [N, H]
  const logits = w.linear(g, xf, { name: `${prefix}gate`, inFeatures: h, outFeatures: E, bias: false }); // [N, E]
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [topP, topI] = g.opN('TopK', [probs, g.constI64([k])], 2, { axis: -1, largest: 1, sorted: 1 }); // [N, k]
  const norm = g.op('Div', [topP!, g.op('ReduceSum', [topP!, g.constI64([-1])], { keepdims: 1 })]);
  const zeros = g.op('ConstantOfShape', [g.op('Shape', [logits])]); // float32 0, [N, E]
  const route = g.op('ScatterElements', [zeros, topI!, norm], { axis: 1 }); // renormalized weight, 0 if not routed
  const selected = g.op('ScatterElements', [zeros, topI!, g.op('Add', [g.op('Mul', [norm, g.constF(0)]), g.constF(1)])], { axis: 1 }); // 0/1
  let sum: string | undefined;
  for (let e = 0; e < E; e++) {
    const col = (t: string) => g.op('Slice', [t, g.constI64([e]), g.constI64([e + 1]), g.constI64([1])]); // [N, 1]
    const mask = col(selected);
    const lin = (name: string, inF: number, outF: number): LinearSpec =>
      ({ name: `${prefix}experts.${e}.${name}`, inFeatures: inF, outFeatures: outF, bias: false, hessianRowWeight: mask });
    const gate = w.linear(g, xf, lin('w1', h, inter));
    const up = w.linear(g, xf, lin('w3', h, inter));
    const down = w.linear(g, g.op('Mul', [activation(g, gate, cfg.hiddenAct), up]), lin('w2', inter, h));
    const y = g.op('Mul', [down, col(route)]);
    sum = sum ? g.op('Add', [sum, y]) : y;
  }
  return g.op('Reshape', [sum!, g.op('Shape', [x])]);
}

export const mixtral: ArchDefinition = {
  modelTypes: ['mixtral'],
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  insideLayerModules: moduleGroups(8), // Mixtral 8x7B / 8x22B; insideLayerModulesFor follows num_local_experts
  insideLayerModulesFor: (cfg) => moduleGroups(moeSizes(cfg).experts),
  lmHead: 'lm_head',

  check(cfg) {
    const { experts, topK } = moeSizes(cfg);
    if (topK > experts) fail(`${cfg.path}: num_experts_per_tok (${topK}) must be <= num_local_experts (${experts})`);
  },

  /** Quantizable linears (the router `block_sparse_moe.gate` is not one: AutoGPTQ keeps it in fp). */
  layerLinears(cfg) {
    const { hiddenSize: h, intermediateSize: i, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const out: LayerLinear[] = [
      { rel: 'self_attn.q_proj', inFeatures: h, outFeatures: nh * d, bias: false },
      { rel: 'self_attn.k_proj', inFeatures: h, outFeatures: nkv * d, bias: false },
      { rel: 'self_attn.v_proj', inFeatures: h, outFeatures: nkv * d, bias: false },
      { rel: 'self_attn.o_proj', inFeatures: nh * d, outFeatures: h, bias: false },
    ];
    for (let e = 0; e < moeSizes(cfg).experts; e++) {
      const p = `block_sparse_moe.experts.${e}.`;
      out.push({ rel: `${p}w1`, inFeatures: h, outFeatures: i, bias: false }, { rel: `${p}w2`, inFeatures: i, outFeatures: h, bias: false },
        { rel: `${p}w3`, inFeatures: h, outFeatures: i, bias: false });
    }
    return out;
  },

  embed(g, cfg, w, ids) {
    return g.op('Gather', [w.tensor(g, 'model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]), ids], { axis: 0 });
  },

  layer(ctx: LayerContext, x: string): string {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const lin = Object.fromEntries(mixtral.layerLinears(cfg).filter((l) => (ATTN as readonly string[]).includes(l.rel)).map((l) => [l.rel, { ...l, name: p + l.rel }]));
    const n1 = rmsNorm(g, x, w.tensor(g, `${p}input_layernorm.weight`, [h]), cfg.rmsNormEps);
    const q = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.q_proj']!), nh, d), ctx.rope, d);
    const k = applyRope(g, splitHeads(g, w.linear(g, n1, lin['self_attn.k_proj']!), nkv, d), ctx.rope, d);
    const v = splitHeads(g, w.linear(g, n1, lin['self_attn.v_proj']!), nkv, d);
    const attn = mergeHeads(g, attention(ctx, q, k, v, nh, nkv, d), nh, d);
    const x2 = g.op('Add', [x, w.linear(g, attn, lin['self_attn.o_proj']!)]);
    const n2 = rmsNorm(g, x2, w.tensor(g, `${p}post_attention_layernorm.weight`, [h]), cfg.rmsNormEps);
    return g.op('Add', [x2, sparseMoe(g, w, cfg, n2, `${p}block_sparse_moe.`)]);
  },

  head(g, cfg, w, x) {
    const n = rmsNorm(g, x, w.tensor(g, 'model.norm.weight', [cfg.hiddenSize]), cfg.rmsNormEps);
    return w.linear(g, n, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false });
  },
};
