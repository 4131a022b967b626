/**
 * Qwen3-MoE (transformers modeling_qwen3_moe.py, Qwen3MoeForCausalLM; model_type "qwen3_moe"): Qwen3 attention (per-head
 * q/k RMSNorm) and, on sparse layers, a mixture of experts (`mlp`):
 *   router `mlp.gate` (nn.Linear-shaped [num_experts, hidden], no bias; never quantized: vLLM's Qwen3MoeSparseMoeBlock
 *   builds it unquantized), p = softmax(x·gateᵀ) in fp32, top-k (num_experts_per_tok) of p, renormalized to sum 1 only
 *   with norm_topk_prob (default false); y = Σ_{e in top-k} p̂_e · down_e(silu(gate_e(x)) · up_e(x)), experts
 *   `mlp.experts.<e>.gate_proj/up_proj/down_proj` (moe_intermediate_size).
 * Layer i is sparse when i ∉ mlp_only_layers and (i + 1) % decoder_sparse_step == 0; other layers have the dense
 * Qwen3 MLP `mlp.gate_proj/up_proj/down_proj` (intermediate_size). Layers then differ: each has its own module tree.
 *
 * Routed dispatch (`routedMoe`): per expert, the (token, top-k slot) pairs routed to it are found (NonZero), its tokens
 * gathered and run through the expert, the outputs written to their slots (ScatterND into [N, k, H]); the slots are
 * then weighted by the routing probabilities and summed. In inference graphs an expert without routed pairs is skipped
 * (ONNX If), so a decode step runs the nodes of its top_k experts only, not all of them
 * (the Mixtral graph, src/models/mixtral.ts, evaluates every expert densely). Calibration sees exactly the routed rows
 * per expert (its Hessian Σ xᵀx over them; the row count tells unrouted experts apart, see layer-loop.ts).
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { activation, gatedMlp, rmsNormAt } from './blocks.ts';
import { checkActivation, configBool, configInt, defineArchitecture, linear, repeat, type Dims, type ModuleTree } from './define.ts';
import { llamaModules } from './llama.ts';
import { qwen3Configure, qwen3Layer } from './qwen3.ts';
import type { LinearSpec, WeightSource } from './types.ts';

/** A SwiGLU expert's linears, under Transformers' names. */
export interface GluLinears { gate_proj: LinearSpec; up_proj: LinearSpec; down_proj: LinearSpec }

/** Sizes and routing of a Qwen MoE config (Qwen3MoeConfig / Qwen2MoeConfig fields; defaults per model type). */
export interface QwenMoeSizes { experts: number; topK: number; moeInter: number; normTopK: boolean; sparseStep: number; mlpOnly: number[] }

const MOE_DEFAULTS: Record<string, { experts: number; topK: number; moeInter: number }> = {
  qwen3_moe: { experts: 128, topK: 8, moeInter: 768 },
  qwen2_moe: { experts: 60, topK: 4, moeInter: 1408 },
};

/** MoE fields of `cfg` with the config class's defaults; one-line errors. (Qwen3MoeConfig maps num_local_experts → num_experts.) */
export function qwenMoeSizes(cfg: ModelConfig): QwenMoeSizes {
  const d = MOE_DEFAULTS[cfg.modelType] ?? MOE_DEFAULTS.qwen3_moe!;
  const experts = configInt(cfg, cfg.raw.num_experts === undefined && cfg.raw.num_local_experts !== undefined ? 'num_local_experts' : 'num_experts', d.experts);
  const only = cfg.raw.mlp_only_layers ?? [];
  if (!Array.isArray(only) || !only.every((i) => Number.isInteger(i) && i >= 0)) fail(`${cfg.path}: field "mlp_only_layers" must be a list of layer indices`);
  return {
    experts, topK: configInt(cfg, 'num_experts_per_tok', d.topK), moeInter: configInt(cfg, 'moe_intermediate_size', d.moeInter),
    normTopK: configBool(cfg, 'norm_topk_prob', false), sparseStep: configInt(cfg, 'decoder_sparse_step', 1), mlpOnly: only as number[],
  };
}

/** Whether decoder layer `i` has the MoE block (Qwen2Moe/Qwen3MoeDecoderLayer.__init__). */
export function isSparseLayer(s: QwenMoeSizes, i: number): boolean {
  return !s.mlpOnly.includes(i) && s.experts > 0 && (i + 1) % s.sparseStep === 0;
}

/** True when some layers are dense and others sparse (their graphs and module trees differ). */
export function moeLayersDiffer(cfg: ModelConfig): boolean {
  const s = qwenMoeSizes(cfg);
  const kinds = new Set(Array.from({ length: cfg.numLayers }, (_, i) => isSparseLayer(s, i)));
  return kinds.size > 1;
}

/** Refuse routing settings the graph cannot honour. */
export function checkMoe(cfg: ModelConfig): void {
  checkActivation(cfg);
  const s = qwenMoeSizes(cfg);
  if (s.topK > s.experts) fail(`${cfg.path}: num_experts_per_tok (${s.topK}) must be <= num_experts (${s.experts})`);
}

/**
 * The sparse-layer tree's routed part: router `gate` (never quantized) and `experts` (up/gate in group `g`, down in
 * `g + 1`), listed leaf-major (experts.0.up_proj … experts.n.up_proj, then gate_proj …) as AutoGPTQ expands them.
 */
export function routedExpertModules(s: QwenMoeSizes, d: Dims, g: number) {
  return {
    gate: linear(null, d.h, s.experts),
    experts: repeat(s.experts, () => ({ up_proj: linear(g, d.h, s.moeInter), gate_proj: linear(g, d.h, s.moeInter), down_proj: linear(g + 1, s.moeInter, d.h) })),
  };
}

/**
 * The `mlp` subtree of decoder layer `layer` (undefined: the union over all layers): the routed experts (and `extra`
 * sparse-block linears, e.g. qwen2_moe's shared expert) on sparse layers, the dense MLP `dense` on the others.
 */
export function qwenMoeMlp(cfg: ModelConfig, d: Dims, layer: number | undefined, dense: ModuleTree, g: number, extra: ModuleTree = {}): ModuleTree {
  const s = qwenMoeSizes(cfg);
  const kinds = new Set(layer === undefined ? Array.from({ length: cfg.numLayers }, (_, i) => isSparseLayer(s, i)) : [isSparseLayer(s, layer)]);
  return { ...(kinds.has(false) ? dense : {}), ...(kinds.has(true) ? { ...extra, ...routedExpertModules(s, d, g) } : {}) };
}

let dispatch: 'routed' | 'all' = 'routed';
/**
 * How MoE graphs built from now on evaluate experts: 'routed' (default; only the rows routed to each expert) or 'all'
 * (every expert on every row, weighted by a dense routing matrix, as the Mixtral graph). For benchmarks
 * (bench/moe-dispatch.ts); both give the same logits.
 */
export function setMoeDispatch(mode: 'routed' | 'all'): void { dispatch = mode; }

/**
 * Top-k routed experts on x [..., H] → [..., H] (Qwen2Moe/Qwen3MoeSparseMoeBlock without the shared expert): softmax of
 * the router logits, top-k, renormalized when `normTopK`, each expert's SwiGLU output weighted by its probability.
 */
export function routedMoe(g: GraphBuilder, w: WeightSource, cfg: ModelConfig, x: string, router: LinearSpec, experts: GluLinears[], o: { topK: number; normTopK: boolean }): string {
  const H = cfg.hiddenSize, E = experts.length;
  const xf = g.op('Reshape', [x, g.constI64([-1, H])]); // [N, H]
  const probs = g.op('Softmax', [w.linear(g, xf, router)], { axis: -1 }); // [N, E]
  const [topP, topI] = g.opN('TopK', [probs, g.constI64([o.topK])], 2, { axis: -1, largest: 1, sorted: 1 }); // [N, k]
  const p = o.normTopK ? g.op('Div', [topP!, g.op('ReduceSum', [topP!, g.constI64([-1])], { keepdims: 1 })]) : topP!;
  const expert = (b: GraphBuilder, xe: string, ex: GluLinears, rowWeight: string) => {
    const r = (s: LinearSpec): LinearSpec => ({ ...s, hessianRowWeight: rowWeight });
    return w.linear(b, b.op('Mul', [activation(b, w.linear(b, xe, r(ex.gate_proj)), cfg.hiddenAct), w.linear(b, xe, r(ex.up_proj))]), r(ex.down_proj));
  };
  if (dispatch === 'all') {
    const zeros = g.op('ConstantOfShape', [g.op('Shape', [probs])]); // float 0 [N, E]
    const route = g.op('ScatterElements', [zeros, topI!, p], { axis: 1 }); // routed weight, 0 elsewhere
    const chosen = g.op('ScatterElements', [zeros, topI!, g.op('Add', [g.op('Mul', [p, g.constF(0)]), g.constF(1)])], { axis: 1 }); // 0/1
    const col = (t: string, e: number) => g.op('Squeeze', [g.op('Slice', [t, g.constI64([e]), g.constI64([e + 1]), g.constI64([1])]), g.constI64([1])]); // [N]
    let sum: string | undefined;
    for (let e = 0; e < E; e++) {
      const y = g.op('Mul', [expert(g, xf, experts[e]!, col(chosen, e)), g.op('Unsqueeze', [col(route, e), g.constI64([1])])]);
      sum = sum ? g.op('Add', [sum, y]) : y;
    }
    return g.op('Reshape', [sum!, g.op('Shape', [x])]);
  }
  // Each (token, slot) of the top-k is filled by exactly one expert: expert e's outputs go to the slots where topI = e
  // (ScatterND into [N, k, H]), then the slots are weighted by p and summed.
  const N = g.op('Shape', [xf], { start: 0, end: 1 });
  let slots = g.op('ConstantOfShape', [g.op('Concat', [N, g.constI64([o.topK, H])], { axis: 0 })]); // [N, k, H] zeros
  // Calibration graphs (weights with Hessian taps) see every expert's input in the main graph; inference graphs skip an
  // expert no token is routed to (ONNX If on its pair count), so a decode step runs only the top-k experts' nodes.
  const calibrating = 'taps' in w;
  for (let e = 0; e < E; e++) {
    const nz = g.op('NonZero', [g.op('Equal', [topI!, g.constI64(e)])]); // [2, n]: (token, slot) pairs routed to e
    const scatter = (b: GraphBuilder) => {
      const at = b.op('Transpose', [nz], { perm: [1, 0] }); // [n, 2]
      const idx = b.op('Gather', [at, b.constI64(0)], { axis: 1 }); // [n] tokens
      const ones = b.op('Add', [b.op('ConstantOfShape', [b.op('Shape', [idx])]), b.constF(1)]); // [n]: every gathered row counts
      return b.op('ScatterND', [slots, at, expert(b, b.op('Gather', [xf, idx], { axis: 0 }), experts[e]!, ones)]);
    };
    slots = calibrating ? scatter(g)
      : g.ifElse(g.op('Greater', [g.op('Size', [nz]), g.constI64(0)]), (b) => [scatter(b)], (b) => [b.op('Identity', [slots])], ['float32'])[0]!;
  }
  const y = g.op('ReduceSum', [g.op('Mul', [slots, g.op('Unsqueeze', [p, g.constI64([2])])]), g.constI64([1])], { keepdims: 0 }); // [N, H]
  return g.op('Reshape', [y, g.op('Shape', [x])]);
}

export const qwen3Moe = defineArchitecture({
  modelTypes: ['qwen3_moe'],
  // Qwen3MoeConfig defaults (configuration_qwen3_moe.py, transformers 5.18); head_dim = hidden / heads unless given.
  config: { qwen3_moe: { hidden_act: 'silu', intermediate_size: 6144, num_key_value_heads: 4, rms_norm_eps: 1e-6, max_position_embeddings: 32768, sliding_window: 4096, tie_word_embeddings: false } },
  configure: qwen3Configure,
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // Groups: [k, v, q], [o], [experts' up + gate], [experts' down] (dense layers: [up, gate], [down]); router fp.
  modules: (cfg, d, layer) => {
    const attn = llamaModules(d, { qkv: cfg.attentionBias, o: cfg.attentionBias });
    return { self_attn: attn.self_attn, mlp: qwenMoeMlp(cfg, d, layer, attn.mlp, 2) };
  },
  norm: ['model.norm', rmsNormAt],
  check: checkMoe,
  layerGraphVaries: moeLayersDiffer,
  layer(ctx, x, m) {
    const { g, w, cfg } = ctx;
    const s = qwenMoeSizes(cfg);
    const mlp = m.mlp as Record<string, unknown>;
    return qwen3Layer(ctx, x, m.self_attn, (n) => (mlp.experts
      ? routedMoe(g, w, cfg, n, mlp.gate as LinearSpec, mlp.experts as GluLinears[], s)
      : gatedMlp(g, w, n, mlp as unknown as GluLinears, cfg.hiddenAct)));
  },
});
