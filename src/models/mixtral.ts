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
import type { ModelConfig } from '../io/model-config.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { activation, rmsNormAt, selfAttention } from './blocks.ts';
import { configInt, defineArchitecture, linear, repeat } from './define.ts';
import { llamaModules } from './llama.ts';
import type { Checkpoint } from '../io/safetensors.ts';
import type { LinearSpec, WeightSource } from './types.ts';

/** num_local_experts (MixtralConfig default 8) and num_experts_per_tok (default 2). */
export function moeSizes(cfg: ModelConfig): { experts: number; topK: number } {
  return { experts: configInt(cfg, 'num_local_experts', 8), topK: configInt(cfg, 'num_experts_per_tok', 2) };
}

/** A sparse MoE block's linears: the router `gate` and per expert gate (w1) / up (w3) / down (w2) projections. */
export interface MoeLinears { gate: LinearSpec; experts: { w1: LinearSpec; w2: LinearSpec; w3: LinearSpec }[] }

/**
 * Sparse MoE block on x [..., H]: returns [..., H]. Dense evaluation of every expert (see the file comment);
 * experts' linears get their routing mask as `hessianRowWeight`. Experts: `lin.experts`; `o.topK` (default
 * num_experts_per_tok), `o.normalize` (renormalize the top-k probabilities, default true: Mixtral), `o.scale` (a
 * factor on the routing weights, DeepSeek's routed_scaling_factor) and `o.eligible` (probabilities [N, E] → the same
 * with experts that may not be chosen zeroed, DeepSeek's group-limited routing) for other routers.
 */
export function sparseMoe(g: GraphBuilder, w: WeightSource, cfg: ModelConfig, x: string, lin: MoeLinears,
  o: { topK?: number; normalize?: boolean; scale?: number; eligible?: (probs: string) => string } = {}): string {
  const { hiddenSize: h } = cfg;
  const E = lin.experts.length, k = o.topK ?? moeSizes(cfg).topK;
  const xf = g.op('Reshape', [x, g.constI64([-1, h])]); // [N, H]
  const logits = w.linear(g, xf, lin.gate); // [N, E]
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [topP, topI] = g.opN('TopK', [o.eligible ? o.eligible(probs) : probs, g.constI64([k])], 2, { axis: -1, largest: 1, sorted: 1 }); // [N, k]
  let norm = o.normalize === false ? topP! : g.op('Div', [topP!, g.op('ReduceSum', [topP!, g.constI64([-1])], { keepdims: 1 })]);
  if (o.scale !== undefined && o.scale !== 1) norm = g.op('Mul', [norm, g.constF(o.scale)]);
  const zeros = g.op('ConstantOfShape', [g.op('Shape', [logits])]); // float32 0, [N, E]
  const route = g.op('ScatterElements', [zeros, topI!, norm], { axis: 1 }); // renormalized weight, 0 if not routed
  const selected = g.op('ScatterElements', [zeros, topI!, g.op('Add', [g.op('Mul', [norm, g.constF(0)]), g.constF(1)])], { axis: 1 }); // 0/1
  let sum: string | undefined;
  for (let e = 0; e < E; e++) {
    const col = (t: string) => g.op('Slice', [t, g.constI64([e]), g.constI64([e + 1]), g.constI64([1])]); // [N, 1]
    const mask = col(selected);
    const routed = (s: LinearSpec): LinearSpec => ({ ...s, hessianRowWeight: mask });
    const ex = lin.experts[e]!;
    const gate = w.linear(g, xf, routed(ex.w1));
    const up = w.linear(g, xf, routed(ex.w3));
    const down = w.linear(g, g.op('Mul', [activation(g, gate, cfg.hiddenAct), up]), routed(ex.w2));
    const y = g.op('Mul', [down, col(route)]);
    sum = sum ? g.op('Add', [sum, y]) : y;
  }
  return g.op('Reshape', [sum!, g.op('Shape', [x])]);
}

/**
 * Mixtral saved by transformers v5 with `save_original_format=False` (conversion_mapping.py "mixtral"): per layer
 * `mlp.gate.weight` (the router, `block_sparse_moe.gate.weight`), `mlp.experts.gate_up_proj` [experts, 2·inter,
 * hidden] (expert e: rows [0, inter) = w1, [inter, 2·inter) = w3) and `mlp.experts.down_proj` [experts, hidden, inter]
 * (w2). Each expert matrix is a contiguous slice of the stacked tensor, read as a view.
 */
function splitFusedExperts(ck: Checkpoint, cfg: ModelConfig): void {
  const H = cfg.hiddenSize, I = cfg.intermediateSize;
  for (const n of ck.names()) {
    const m = /^(.*\.)?mlp\.experts\.gate_up_proj$/.exec(n);
    if (!m) continue;
    const p = m[1] ?? '', down = `${p}mlp.experts.down_proj`, moe = `${p}block_sparse_moe.`;
    const gu = ck.info(n).shape, E = gu[0]!;
    if (gu.length !== 3 || gu[1] !== 2 * I || gu[2] !== H) fail(`${ck.location}: tensor "${n}" is [${gu}], expected [experts, 2·intermediate_size ${2 * I}, hidden_size ${H}] (${cfg.path})`);
    if (!ck.has(down) || ck.info(down).shape.join() !== [E, H, I].join()) fail(`${ck.location}: tensor "${down}" must be [${E}, ${H}, ${I}] next to "${n}"`);
    for (let e = 0; e < E; e++) {
      ck.view(`${moe}experts.${e}.w1.weight`, n, { offset: e * 2 * I * H, shape: [I, H] });
      ck.view(`${moe}experts.${e}.w3.weight`, n, { offset: (e * 2 + 1) * I * H, shape: [I, H] });
      ck.view(`${moe}experts.${e}.w2.weight`, down, { offset: e * H * I, shape: [H, I] });
    }
    if (ck.has(`${p}mlp.gate.weight`) && !ck.has(`${moe}gate.weight`)) ck.alias(`${moe}gate.weight`, `${p}mlp.gate.weight`, true);
  }
}

export const mixtral = defineArchitecture({
  modelTypes: ['mixtral'],
  // MixtralConfig: rms_norm_eps 1e-5, rope_theta 1e6, sliding_window None, 8 kv heads, intermediate 14336.
  config: { mixtral: { hidden_act: 'silu', intermediate_size: 14336, num_key_value_heads: 8, rms_norm_eps: 1e-5, max_position_embeddings: 4096 * 32, rope_theta: 1e6, sliding_window: null, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 } },
  checkpoint: { bind: splitFusedExperts },
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ MixtralGPTQForCausalLM: [k, v, q], [o], [every w1, every w3], [every w2]; the router `gate` stays fp.
  modules: (cfg, d) => ({
    self_attn: llamaModules(d).self_attn,
    block_sparse_moe: {
      gate: linear(null, d.h, moeSizes(cfg).experts),
      experts: repeat(moeSizes(cfg).experts, () => ({ w1: linear(2, d.h, d.i), w2: linear(3, d.i, d.h), w3: linear(2, d.h, d.i) })),
    },
  }),
  norm: ['model.norm', rmsNormAt],

  check(cfg) {
    const { experts, topK } = moeSizes(cfg);
    if (topK > experts) fail(`${cfg.path}: num_experts_per_tok (${topK}) must be <= num_local_experts (${experts})`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, m.self_attn)]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, sparseMoe(g, w, cfg, n2, m.block_sparse_moe)]);
  },
});
