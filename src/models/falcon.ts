/**
 * Falcon (transformers modeling_falcon.py, FalconForCausalLM; model_type "falcon").
 *  - `transformer.word_embeddings`, rotary (rotate_half) on the full head_dim, `transformer.ln_f`, lm_head tied.
 *  - fused `self_attention.query_key_value` [B,S,groups·(qPer+2)·head_dim], per group [q_0..q_{qPer−1}, k, v]:
 *      new_decoder_architecture: groups = num_kv_heads, qPer = heads / num_kv_heads (GQA);
 *      else multi_query:         groups = 1, qPer = heads (one shared kv head);
 *      else:                     groups = heads, qPer = 1 ([heads, 3, head_dim]).
 *  - decoder layer (FalconDecoderLayer):
 *      new_decoder_architecture: a = ln_attn(x), m = ln_mlp(x) (num_ln_in_parallel_attn 2, the default) or
 *        a = m = input_layernorm(x) (num_ln_in_parallel_attn 1); out = x + attn(a) + mlp(m);
 *      parallel_attn: a = input_layernorm(x); out = x + attn(a) + mlp(a);
 *      else: x2 = x + attn(input_layernorm(x)); out = x2 + mlp(post_attention_layernorm(x2)).
 *  - mlp: dense_4h_to_h(act(dense_h_to_4h)), width ffn_hidden_size (default 4·hidden), act = `activation`
 *    (default "gelu", erf). Every linear has a bias iff `bias`.
 *  - alibi=true Falcon (rare; HF scales ALiBi differently from BLOOM) is rejected.
 * cfg.numKvHeads (the KV-cache head count) is derived from these flags by `configure` (FalconAttention's rule).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { activation, attention, layerNormAt, mergeHeads, splitFusedQkv } from './blocks.ts';
import { checkActivation, configBool, configInt, defineArchitecture, linear } from './define.ts';
import { applyRope } from './rope.ts';

/**
 * The original remote-code Falcon model types (tiiuae's RWConfig, modelling_RW.py; what Transformers' Falcon
 * conversion maps to new_decoder_architecture): "RefinedWeb" = the 40B layout (ln_attn/ln_mlp, n_head_kv kv groups,
 * always parallel), "RefinedWebModel" = the 7B/RW layout (input_layernorm, multi_query / parallel_attn flags with
 * RWConfig's defaults false). Same tensor names as model_type "falcon"; AutoGPTQ/GPTQModel RWGPTQForCausalLM.
 */
const RW_ARCH: Record<string, boolean> = { RefinedWeb: true, RefinedWebModel: false };

/** FalconConfig fields beyond the common ones (defaults as in FalconConfig; RWConfig's for the RefinedWeb types). */
export function falconOptions(cfg: ModelConfig) {
  const rw = RW_ARCH[cfg.modelType];
  const newArch = rw ?? configBool(cfg, 'new_decoder_architecture', false);
  const act = cfg.raw.activation ?? 'gelu';
  if (typeof act !== 'string') fail(`${cfg.path}: field "activation" must be a string, got ${JSON.stringify(act)}`);
  return {
    newArch,
    multiQuery: configBool(cfg, 'multi_query', rw === undefined),
    parallelAttn: rw === true || configBool(cfg, 'parallel_attn', rw === undefined),
    /** Norms in a new-architecture layer: 2 = ln_attn + ln_mlp, 1 = one input_layernorm. */
    numLn: newArch ? configInt(cfg, 'num_ln_in_parallel_attn', 2) : 1,
    bias: configBool(cfg, 'bias', false),
    alibi: configBool(cfg, 'alibi', false),
    ffn: configInt(cfg, 'ffn_hidden_size', 4 * cfg.hiddenSize),
    act,
  };
}

/** q/k/v layout of the fused projection: `groups` groups of qPer query heads + one k + one v head. */
function qkvLayout(cfg: ModelConfig): { groups: number; qPer: number } {
  const o = falconOptions(cfg), nh = cfg.numHeads;
  if (o.newArch) return { groups: cfg.numKvHeads, qPer: nh / cfg.numKvHeads };
  return o.multiQuery ? { groups: 1, qPer: nh } : { groups: nh, qPer: 1 };
}

export const falcon = defineArchitecture({
  modelTypes: ['falcon', 'RefinedWeb', 'RefinedWebModel'],
  // FalconConfig: max_position_embeddings 2048, activation gelu, ffn_hidden_size 4·hidden. RWConfig: bos 1, eos 2.
  config: {
    falcon: { hidden_act: 'gelu', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 11, eos_token_id: 11 },
    RefinedWeb: { hidden_act: 'gelu', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 },
    RefinedWebModel: { hidden_act: 'gelu', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 },
  },
  // FalconAttention: num_kv_heads (old configs: n_head_kv) with new_decoder_architecture, one shared head when
  // multi_query (the default), else one per head.
  configure: (cfg, f) => {
    const rw = RW_ARCH[cfg.modelType];
    if (rw ?? cfg.raw.new_decoder_architecture === true) return { numKvHeads: f.int('num_kv_heads', typeof cfg.raw.n_head_kv === 'number' ? cfg.raw.n_head_kv : cfg.numHeads) };
    const multiQuery = typeof cfg.raw.multi_query === 'boolean' ? cfg.raw.multi_query : rw === undefined;
    return { numKvHeads: multiQuery ? 1 : cfg.numHeads };
  },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.word_embeddings', 'transformer.ln_f'],
  // AutoGPTQ RWGPTQForCausalLM (rw.py), also used for Falcon.
  modules: (cfg, { h, d }) => {
    const o = falconOptions(cfg), { groups, qPer } = qkvLayout(cfg);
    return {
      self_attention: { query_key_value: linear(0, h, groups * (qPer + 2) * d, o.bias), dense: linear(1, h, h, o.bias) },
      mlp: { dense_h_to_4h: linear(2, h, o.ffn, o.bias), dense_4h_to_h: linear(3, o.ffn, h, o.bias) },
    };
  },
  embedding: 'transformer.word_embeddings',
  norm: ['transformer.ln_f', layerNormAt],

  check(cfg) {
    const o = falconOptions(cfg);
    const { hiddenSize: h, numHeads: nh } = cfg;
    if (o.alibi) fail(`${cfg.path}: falcon with alibi=true is not supported (only rotary Falcon models are)`);
    if (h % nh !== 0 || cfg.headDim * nh !== h) fail(`${cfg.path}: falcon needs head_dim = hidden_size (${h}) / num_attention_heads (${nh})`);
    if (cfg.rotaryDim !== cfg.headDim) fail(`${cfg.path}: falcon applies rotary to the whole head (partial_rotary_factor must be 1)`);
    const kv = o.newArch ? cfg.numKvHeads : o.multiQuery ? 1 : nh;
    if (cfg.numKvHeads !== kv || nh % kv !== 0) fail(`${cfg.path}: falcon kv heads ${cfg.numKvHeads} do not match the layout (expected ${kv})`);
    if (o.newArch && !o.parallelAttn) fail(`${cfg.path}: falcon with new_decoder_architecture needs parallel_attn=true (as transformers)`);
    if (o.newArch && o.numLn !== 1 && o.numLn !== 2) fail(`${cfg.path}: field "num_ln_in_parallel_attn" must be 1 or 2, got ${o.numLn}`);
    if (!o.newArch && cfg.raw.num_ln_in_parallel_attn === 2) fail(`${cfg.path}: num_ln_in_parallel_attn=2 needs new_decoder_architecture=true`);
    checkActivation(cfg, o.act, 'activation');
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const o = falconOptions(cfg);
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, h, cfg.rmsNormEps);
    const { groups, qPer } = qkvLayout(cfg);

    const two = o.newArch && o.numLn === 2;
    const a = ln(two ? 'ln_attn' : 'input_layernorm', x);
    const { q, k, v } = splitFusedQkv(g, w.linear(g, a, m.self_attention.query_key_value), groups, qPer, d);
    const attn = mergeHeads(g, attention(ctx, applyRope(g, q, ctx.rope, d), applyRope(g, k, ctx.rope, d), v, nh, nkv, d), nh, d);
    const attnOut = w.linear(g, attn, m.self_attention.dense);
    const mlp = (v2: string) => w.linear(g, activation(g, w.linear(g, v2, m.mlp.dense_h_to_4h), o.act), m.mlp.dense_4h_to_h);
    if (o.newArch || o.parallelAttn) {
      const mm = two ? ln('ln_mlp', x) : a;
      return g.op('Add', [x, g.op('Add', [mlp(mm), attnOut])]);
    }
    const x2 = g.op('Add', [x, attnOut]);
    return g.op('Add', [x2, mlp(ln('post_attention_layernorm', x2))]);
  },
});
