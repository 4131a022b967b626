/**
 * DeepSeek-V2 / V2-Lite / V2.5 (transformers modeling_deepseek_v2.py, DeepseekV2ForCausalLM; model_type
 * "deepseek_v2"). Llama's pre-norm layer (RMSNorms, untied lm_head) with
 *  - multi-head latent attention as MiniCPM3's (src/models/minicpm3.ts mlaAttention) but DeepSeek's complex rotary
 *    (interleaved channel pairs) on the rope part;
 *  - MLP: layers < first_k_dense_replace a dense SwiGLU (`mlp.gate_proj/up_proj/down_proj`, intermediate_size); the
 *    others a mixture of experts: router `mlp.gate` (fp32 softmax over n_routed_experts, greedy top-k, weights ×
 *    routed_scaling_factor, not renormalized: DeepseekV2TopkRouter), experts `mlp.experts.<e>.gate_proj/up_proj/
 *    down_proj` (moe_intermediate_size), plus the shared expert `mlp.shared_experts.*` (moe_intermediate_size ·
 *    n_shared_experts) on every token. Experts are evaluated densely and weighted (src/models/mixtral.ts sparseMoe).
 * The layers differ (dense vs MoE), so the module tree is per layer; groups: attention [q_a|q_proj, kv_a], [q_b, kv_b],
 * [o], then MLP [gate, up of the dense MLP / shared expert / every expert], [every down] (router never quantized).
 * topk_method "greedy" (V2-Lite) or "group_limited_greedy" (V2 / V2.5: the experts' n_group groups are ranked by
 * their best probability, only the topk_group best groups' experts may be chosen). Refused: norm_topk_prob true (the
 * original remote code renormalizes, Transformers 5 does not: ambiguous).
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, layerIndexOf, rmsNormAt } from './blocks.ts';
import { checkActivation, configBool, configInt, configNumber, defineArchitecture, linear, repeat, type LinearNode } from './define.ts';
import { mlaAttention, mlaConfigure, mlaModules } from './minicpm3.ts';
import { sparseMoe } from './mixtral.ts';
import type { LinearSpec } from './types.ts';

/** A non-negative integer field (null / absent → def). */
function count(cfg: ModelConfig, key: string, def: number): number {
  const v = cfg.raw[key] ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(`${cfg.path}: field "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/** DeepseekV2Config MoE sizes. */
const sizes = (cfg: ModelConfig) => ({
  experts: configInt(cfg, 'n_routed_experts', 64), topK: configInt(cfg, 'num_experts_per_tok', 1), shared: count(cfg, 'n_shared_experts', 2),
  moeInter: configInt(cfg, 'moe_intermediate_size', 1407), dense: count(cfg, 'first_k_dense_replace', 0),
});

const swiglu = (h: number, i: number) => ({ gate_proj: linear(3, h, i), up_proj: linear(3, h, i), down_proj: linear(4, i, h) });

/**
 * DeepseekV2TopkRouter's group_limited_greedy: probabilities [N, E] with the experts outside the topk_group groups of
 * highest max-probability (n_group groups of consecutive experts) set to 0.
 */
function groupLimited(g: GraphBuilder, cfg: ModelConfig, probs: string): string {
  const E = sizes(cfg).experts, G = configInt(cfg, 'n_group', 1), per = E / G;
  const best = g.op('ReduceMax', [g.op('Reshape', [probs, g.constI64([-1, G, per])]), g.constI64([2])], { keepdims: 0 }); // [N, G]
  const [top, idx] = g.opN('TopK', [best, g.constI64([configInt(cfg, 'topk_group', 1)])], 2, { axis: -1, largest: 1, sorted: 1 });
  const ones = g.op('Add', [g.op('Mul', [top!, g.constF(0)]), g.constF(1)]);
  const groups = g.op('ScatterElements', [g.op('ConstantOfShape', [g.op('Shape', [best])]), idx!, ones], { axis: 1 }); // 0/1 [N, G]
  const mask = g.op('Reshape', [g.op('Mul', [g.op('Unsqueeze', [groups, g.constI64([2])]), g.constF(new Array(per).fill(1), [1, 1, per])]), g.constI64([-1, E])]);
  return g.op('Mul', [probs, mask]);
}

export const deepseekV2 = defineArchitecture({
  modelTypes: ['deepseek_v2'],
  // DeepseekV2Config defaults.
  config: { deepseek_v2: { hidden_act: 'silu', intermediate_size: 11008, rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 } },
  configure: (cfg) => mlaConfigure(cfg),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (cfg, { h, i }, layer) => {
    const s = sizes(cfg);
    const dense = layer === undefined ? s.dense > 0 : layer < s.dense;
    const moe = layer === undefined ? s.dense < cfg.numLayers : layer >= s.dense;
    const mlp: Record<string, LinearNode | Record<string, LinearNode> | Record<string, LinearNode>[]> = dense ? swiglu(h, i) : {};
    if (moe) {
      mlp.gate = linear(null, h, s.experts);
      mlp.experts = repeat(s.experts, () => swiglu(h, s.moeInter));
      if (s.shared) mlp.shared_experts = swiglu(h, s.moeInter * s.shared);
    }
    return { self_attn: mlaModules(cfg, h, cfg.attentionBias), mlp };
  },
  norm: ['model.norm', rmsNormAt],
  layerGraphVaries: (cfg) => sizes(cfg).dense > 0 && sizes(cfg).dense < cfg.numLayers,

  check(cfg) {
    checkActivation(cfg);
    const s = sizes(cfg);
    if (s.topK > s.experts) fail(`${cfg.path}: num_experts_per_tok (${s.topK}) must be <= n_routed_experts (${s.experts})`);
    const method = cfg.raw.topk_method ?? 'greedy';
    if (method !== 'greedy' && method !== 'group_limited_greedy') fail(`${cfg.path}: topk_method "${String(method)}" is not supported (supported: greedy, group_limited_greedy)`);
    if (method === 'group_limited_greedy') {
      const G = configInt(cfg, 'n_group', 1), tg = configInt(cfg, 'topk_group', 1);
      if (s.experts % G || tg > G) fail(`${cfg.path}: n_group (${G}) must divide n_routed_experts (${s.experts}) and be >= topk_group (${tg})`);
    }
    if (configBool(cfg, 'norm_topk_prob', false)) fail(`${cfg.path}: norm_topk_prob true is not supported (Transformers ignores it, the original DeepSeek-V2 code renormalizes)`);
    configNumber(cfg, 'routed_scaling_factor', 1);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, mlaAttention(ctx, n1, m.self_attn as Record<string, LinearSpec>, { interleaved: true })]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    type Swiglu = { gate_proj: LinearSpec; up_proj: LinearSpec; down_proj: LinearSpec };
    const s = sizes(cfg), mlp = m.mlp as unknown as Swiglu & { gate: LinearSpec; experts: Swiglu[]; shared_experts: Swiglu };
    if (layerIndexOf(ctx) < s.dense) return g.op('Add', [x2, gatedMlp(g, w, n2, mlp, cfg.hiddenAct)]);
    const experts = mlp.experts.map((e) => ({ w1: e.gate_proj, w3: e.up_proj, w2: e.down_proj }));
    let y = sparseMoe(g, w, cfg, n2, { gate: mlp.gate, experts },
      { topK: s.topK, normalize: false, scale: configNumber(cfg, 'routed_scaling_factor', 1), eligible: cfg.raw.topk_method === 'group_limited_greedy' ? (p) => groupLimited(g, cfg, p) : undefined });
    if (s.shared) y = g.op('Add', [y, gatedMlp(g, w, n2, mlp.shared_experts, cfg.hiddenAct)]);
    return g.op('Add', [x2, y]);
  },
});
