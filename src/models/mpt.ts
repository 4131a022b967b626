/**
 * MPT (transformers models/mpt/modeling_mpt.py, MptForCausalLM; MosaicML mpt-7b/30b).
 *  - `transformer.wte` token embeddings, no positions: ALiBi. Bias = slope_h · (j − (max_seq_len − 1)) for key index
 *    j (build_mpt_alibi_tensor), equal up to a per-row constant (softmax-invariant) to slope_h · pos_j of alibiMask.
 *    Slopes (MPT's own rule, not BLOOM's get_slopes): with p = 2^⌈log2 heads⌉, slope_i = 2^−((i+1)·alibi_bias_max/p)
 *    for i < p; when p ≠ heads the odd-indexed slopes then the even-indexed ones, first `heads` of them.
 *  - attention: fused `attn.Wqkv` [3·hidden, hidden] = q | k | v (chunk(3)), clamped to ±clip_qkv when set;
 *    scores · softmax_scale (default 1/√head_dim); `attn.out_proj`. No biases anywhere (no_bias).
 *  - block: x2 = x + attn(norm_1(x)); out = x2 + down_proj(gelu(up_proj(norm_2(x2)))), GELU erf, width always
 *    4·d_model (MptMLP ignores expansion_ratio). Norms are LayerNorm without bias (low_precision_layernorm).
 *  - `transformer.norm_f` (no bias), lm_head tied to wte.
 *  - config.json: d_model, n_heads, n_layers, max_seq_len, attn_config {alibi_bias_max, clip_qkv, softmax_scale, …}.
 * Transformers ignores attn_config.alibi=false, qk_ln, attn_type multiquery, no_bias=false, logit_scale and
 * learned_pos_emb without alibi (its module tree has no tensors for them): gptqjs refuses those configs in one line.
 * Quantized as GPTQModel's MptQModel / AutoGPTQ's MPTGPTQForCausalLM: Wqkv is one linear (saved as
 * `transformer.blocks.N.attn.Wqkv.qweight`, what vLLM's mpt.py loads), groups [Wqkv], [out_proj], [up_proj], [down_proj].
 */
import { fail } from '../errors.ts';
import { F, type GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { activation, alibiMask, attention, mergeHeads, splitHeads } from './blocks.ts';
import { defineArchitecture, linear } from './define.ts';
import type { LayerContext, WeightSource } from './types.ts';

/** MPT's LayerNorm without bias: `<name>.weight` [n] only. */
function noBiasNorm(g: GraphBuilder, w: WeightSource, name: string, x: string, n: number, eps: number): string {
  return g.op('LayerNormalization', [x, w.tensor(g, `${name}.weight`, [n])], { axis: -1, epsilon: F(eps) });
}

/** The attn_config dict (MptAttentionConfig defaults). */
function attnConfig(cfg: ModelConfig) {
  const a = cfg.raw.attn_config ?? {};
  if (typeof a !== 'object' || Array.isArray(a)) fail(`${cfg.path}: field "attn_config" must be an object`);
  const o = a as Record<string, unknown>;
  const num = (k: string, def: number | null): number | null => {
    const v = o[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${cfg.path}: field "attn_config.${k}" must be a number or null, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    alibi: o.alibi ?? true, alibiBiasMax: num('alibi_bias_max', 8)!, clipQkv: num('clip_qkv', null), softmaxScale: num('softmax_scale', null),
    qkLn: o.qk_ln ?? false, attnType: o.attn_type ?? 'multihead_attention', prefixLm: o.prefix_lm ?? false,
  };
}

/** build_mpt_alibi_tensor's slopes for `heads` heads and alibi_bias_max `max`. */
export function mptAlibiSlopes(heads: number, max = 8): Float64Array {
  const p = 2 ** Math.ceil(Math.log2(heads));
  const s = Array.from({ length: p }, (_, i) => 2 ** -((i + 1) * (max / p)));
  const ordered = p === heads ? s : [...s.filter((_, i) => i % 2 === 1), ...s.filter((_, i) => i % 2 === 0)];
  return Float64Array.from(ordered.slice(0, heads));
}

export const mpt = defineArchitecture({
  modelTypes: ['mpt'],
  // MptConfig: d_model 2048, n_heads 16, n_layers 24, max_seq_len 2048, layer_norm_epsilon 1e-5, tied; no token ids.
  config: { mpt: { hidden_act: 'gelu', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true } },
  // MptMLP: 4·d_model whatever expansion_ratio says.
  configure: (cfg) => ({ intermediateSize: 4 * cfg.hiddenSize }),
  layersBlockName: 'transformer.blocks.',
  outsideLayerModules: ['transformer.wte', 'transformer.norm_f'],
  modules: (_, { h }) => ({
    attn: { Wqkv: linear(0, h, 3 * h), out_proj: linear(1, h, h) },
    ffn: { up_proj: linear(2, h, 4 * h), down_proj: linear(3, 4 * h, h) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.norm_f', noBiasNorm],

  check(cfg) {
    const a = attnConfig(cfg);
    const no = (what: string) => fail(`${cfg.path}: mpt with ${what} is not supported (Transformers' MptForCausalLM ignores it too)`);
    if (cfg.hiddenSize % cfg.numHeads !== 0) fail(`${cfg.path}: d_model (${cfg.hiddenSize}) must be divisible by n_heads (${cfg.numHeads})`);
    if (a.alibi !== true) no('attn_config.alibi false (learned positions)');
    if (a.qkLn !== false) no('attn_config.qk_ln');
    if (a.attnType !== 'multihead_attention') no(`attn_config.attn_type "${String(a.attnType)}"`);
    if (a.prefixLm !== false) no('attn_config.prefix_lm');
    if (cfg.raw.no_bias === false) no('no_bias false (biased linears and norms)');
    if (cfg.raw.logit_scale !== undefined && cfg.raw.logit_scale !== null) no('logit_scale');
    if (cfg.raw.expansion_ratio !== undefined && cfg.raw.expansion_ratio !== 4) no(`expansion_ratio ${JSON.stringify(cfg.raw.expansion_ratio)} (MptMLP is always 4·d_model)`);
    if (a.clipQkv !== null && a.clipQkv < 0) fail(`${cfg.path}: field "attn_config.clip_qkv" must be ≥ 0, got ${a.clipQkv}`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const a = attnConfig(cfg);
    let qkv = w.linear(g, noBiasNorm(g, w, `${p}norm_1`, x, h, cfg.rmsNormEps), m.attn.Wqkv);
    if (a.clipQkv) qkv = g.op('Clip', [qkv, g.constF(-a.clipQkv), g.constF(a.clipQkv)]);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([h, h, h])], 3, { axis: -1 }).map((t) => splitHeads(g, t, nh, d));
    const actx: LayerContext = { ...ctx, mask: alibiMask(g, ctx.mask, nh, mptAlibiSlopes(nh, a.alibiBiasMax)) };
    const attn = attention(actx, q!, k!, v!, nh, nh, d, a.softmaxScale ?? 1 / Math.sqrt(d));
    if (actx.present) ctx.present = actx.present;
    const x2 = g.op('Add', [x, w.linear(g, mergeHeads(g, attn, nh, d), m.attn.out_proj)]);
    const up = activation(g, w.linear(g, noBiasNorm(g, w, `${p}norm_2`, x2, h, cfg.rmsNormEps), m.ffn.up_proj), 'gelu');
    return g.op('Add', [x2, w.linear(g, up, m.ffn.down_proj)]);
  },
});
