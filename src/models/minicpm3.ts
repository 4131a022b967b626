/**
 * MiniCPM3 (transformers modeling_minicpm3.py, MiniCPM3ForCausalLM; model_type "minicpm3"; openbmb/MiniCPM3-4B).
 * Llama's layer layout with Multi-head Latent Attention (MLA, as DeepSeek-V2) and MiniCPM's μP scalings:
 *  - embeddings × scale_emb; each residual branch × scale_depth / √num_hidden_layers; the final normed hidden ÷
 *    (hidden_size / dim_model_base) before the (tied) lm_head;
 *  - MLA: q = q_b_proj(RMSNorm_q_a(q_a_proj(x))) (or q_proj(x) when q_lora_rank is null), heads of qk_nope + qk_rope
 *    channels; kv_a_proj_with_mqa(x) = [latent (kv_lora_rank) ; k_rot (qk_rope, shared by all heads)];
 *    kv_b_proj(RMSNorm_kv_a(latent)) = per head [k_nope ; v]; rotary (rotate_half, base rope_theta) on q_rot and
 *    k_rot; key = [k_nope ; k_rot], query = [q_pass ; q_rot]; scale qk_head_dim^-0.5 (× mscale² for yarn with
 *    mscale_all_dim); q_a / kv_a RMSNorms have eps 1e-6 (their module default), the layer norms rms_norm_eps.
 * The KV cache holds the expanded per-head keys and values (heads × max(qk_head_dim, v_head_dim), v zero-padded),
 * so every attention path (plain, GroupQueryAttention, buffer) runs unchanged; Transformers caches the latent.
 * AutoGPTQ MiniCPM3GPTQForCausalLM groups: [q_a_proj, kv_a_proj_with_mqa], [q_b_proj, kv_b_proj], [o_proj],
 * [gate_proj, up_proj], [down_proj] (GPTQModel MiniCpm3QModel the same).
 */
import { fail } from '../errors.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { attention, gatedMlp, mergeHeads, rmsNormAt, splitHeads } from './blocks.ts';
import { checkActivation, configInt, configNumber, defineArchitecture, linear, type LinearNode } from './define.ts';
import { applyRope, applyRopeInterleaved } from './rope.ts';
import type { LayerContext, LinearSpec } from './types.ts';

/** MLA sizes from config.json (DeepseekV2Config / MiniCPM3Config names). */
export function mlaDims(cfg: ModelConfig) {
  const qLora = cfg.raw.q_lora_rank === null ? null : configInt(cfg, 'q_lora_rank', cfg.modelType === 'minicpm3' ? 768 : 1536);
  const nope = configInt(cfg, 'qk_nope_head_dim', cfg.modelType === 'minicpm3' ? 64 : 128);
  const rope = configInt(cfg, 'qk_rope_head_dim', cfg.modelType === 'minicpm3' ? 32 : 64);
  const v = configInt(cfg, 'v_head_dim', cfg.modelType === 'minicpm3' ? Math.floor(cfg.hiddenSize / cfg.numHeads) : 128);
  return { qLora, kvLora: configInt(cfg, 'kv_lora_rank', cfg.modelType === 'minicpm3' ? 256 : 512), nope, rope, v, qk: nope + rope };
}

/** ModelConfig fields of an MLA model: one cache head per attention head, head_dim max(qk, v), rotary on qk_rope. */
export function mlaConfigure(cfg: ModelConfig): Partial<ModelConfig> {
  const d = mlaDims(cfg), headDim = Math.max(d.qk, d.v);
  return { numKvHeads: cfg.numHeads, headDim, rotaryDim: d.rope, partialRotaryFactor: d.rope / headDim };
}

/** MLA linears of one layer (AutoGPTQ groups 0–2); `bias`: attention_bias (q_a, kv_a, o). */
export function mlaModules(cfg: ModelConfig, h: number, bias: boolean): Record<string, LinearNode> {
  const d = mlaDims(cfg), H = cfg.numHeads;
  const q: Record<string, LinearNode> = d.qLora === null
    ? { q_proj: linear(0, h, H * d.qk) }
    : { q_a_proj: linear(0, h, d.qLora, bias), q_b_proj: linear(1, d.qLora, H * d.qk) };
  return { ...q, kv_a_proj_with_mqa: linear(0, h, d.kvLora + d.rope, bias), kv_b_proj: linear(1, d.kvLora, H * (d.nope + d.v)), o_proj: linear(2, H * d.v, h, bias) };
}

/** Attention scale: qk_head_dim^-0.5, × mscale(factor, mscale_all_dim)² for a non-default rope with mscale_all_dim. */
function mlaScale(cfg: ModelConfig): number {
  let s = mlaDims(cfg).qk ** -0.5;
  const r = cfg.ropeScaling;
  const all = r ? Number(r.raw.mscale_all_dim ?? 0) : 0;
  if (r && all && (r.factor ?? 1) > 1) { const m = 0.1 * all * Math.log(r.factor!) + 1; s *= m * m; }
  return s;
}

/**
 * Multi-head latent attention of x [B,S,hidden] (see the file comment; q_a / kv_a norms with eps 1e-6, their modules'
 * default); rotary rotate_half, or with `interleaved` DeepSeek-V2's complex form (channel pairs (2i, 2i+1)).
 */
export function mlaAttention(ctx: LayerContext, x: string, m: Record<string, LinearSpec>, o: { interleaved?: boolean } = {}): string {
  const normEps = 1e-6;
  const { g, cfg, w, prefix: p } = ctx;
  const d = mlaDims(cfg), H = cfg.numHeads, D = cfg.headDim;
  const a = `${p}self_attn.`;
  const lin = (name: string, t: string) => w.linear(g, t, m[name] ?? fail(`${cfg.path}: MLA layer has no ${name}`));
  const qFlat = d.qLora === null ? lin('q_proj', x) : lin('q_b_proj', rmsNormAt(g, w, `${a}q_a_layernorm`, lin('q_a_proj', x), d.qLora, normEps));
  const [qPass, qRot] = g.opN('Split', [splitHeads(g, qFlat, H, d.qk), g.constI64([d.nope, d.rope])], 2, { axis: -1 });
  const [latent, kRot] = g.opN('Split', [lin('kv_a_proj_with_mqa', x), g.constI64([d.kvLora, d.rope])], 2, { axis: -1 });
  const kv = splitHeads(g, lin('kv_b_proj', rmsNormAt(g, w, `${a}kv_a_layernorm`, latent!, d.kvLora, normEps)), H, d.nope + d.v);
  const [kNope, v] = g.opN('Split', [kv, g.constI64([d.nope, d.v])], 2, { axis: -1 });
  const rot = (t: string) => (o.interleaved ? applyRopeInterleaved : applyRope)(g, t, ctx.rope, d.rope, d.rope);
  const kr = rot(g.op('Unsqueeze', [kRot!, g.constI64([1])])); // [B,1,S,rope]
  const pad = (t: string, n: number) => (n === D ? t : g.op('Pad', [t, g.constI64([0, 0, 0, 0, 0, 0, 0, D - n])]));
  const q = pad(g.op('Concat', [qPass!, rot(qRot!)], { axis: -1 }), d.qk);
  const k = pad(g.op('Concat', [kNope!, g.op('Expand', [kr, g.constI64([1, H, 1, 1])])], { axis: -1 }), d.qk);
  const out = attention(ctx, q, k, pad(v!, d.v), H, H, D, mlaScale(cfg)); // [B,H,S,D]
  const heads = D === d.v ? out : g.op('Slice', [out, g.constI64([0]), g.constI64([d.v]), g.constI64([-1])]);
  return lin('o_proj', mergeHeads(g, heads, H, d.v));
}

export const minicpm3 = defineArchitecture({
  modelTypes: ['minicpm3'],
  // MiniCPM3Config defaults.
  config: { minicpm3: { hidden_act: 'silu', intermediate_size: 6400, rms_norm_eps: 1e-5, max_position_embeddings: 32768, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 } },
  configure: (cfg) => mlaConfigure(cfg),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (cfg, { h, i }) => ({
    self_attn: mlaModules(cfg, h, cfg.attentionBias),
    mlp: { gate_proj: linear(3, h, i, cfg.mlpBias), up_proj: linear(3, h, i, cfg.mlpBias), down_proj: linear(4, i, h, cfg.mlpBias) },
  }),
  // MiniCPM3ScaledWordEmbedding: × scale_emb in the weights' dtype.
  embedded: (g, cfg, _w, x) => g.op('Mul', [x, g.constF(configNumber(cfg, 'scale_emb', 12))]),
  // MiniCPM3ForCausalLM: lm_head(norm(h) / (hidden_size / dim_model_base)).
  head: (g, cfg, w, x) => {
    const n = rmsNormAt(g, w, 'model.norm', x, cfg.hiddenSize, cfg.rmsNormEps);
    const scaled = g.op('Div', [n, g.constF(cfg.hiddenSize / dimModelBase(cfg))]);
    return w.linear(g, scaled, { name: 'lm_head', inFeatures: cfg.hiddenSize, outFeatures: cfg.vocabSize, bias: false, tiedTo: 'model.embed_tokens.weight' });
  },

  check(cfg) {
    checkActivation(cfg);
    const d = mlaDims(cfg);
    if (d.rope % 2) fail(`${cfg.path}: qk_rope_head_dim (${d.rope}) must be even`);
    residualScale(cfg); dimModelBase(cfg);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const r = g.constF(residualScale(cfg));
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, g.op('Mul', [mlaAttention(ctx, n1, m.self_attn), r])]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, g.op('Mul', [gatedMlp(g, w, n2, m.mlp, cfg.hiddenAct), r])]);
  },
});

/** scale_depth / √num_hidden_layers (scale_depth null → √layers, i.e. 1). */
function residualScale(cfg: ModelConfig): number {
  return cfg.raw.scale_depth === null ? 1 : configNumber(cfg, 'scale_depth', 1.4) / Math.sqrt(cfg.numLayers);
}

/** dim_model_base (null → hidden_size). */
function dimModelBase(cfg: ModelConfig): number {
  const v = cfg.raw.dim_model_base === null ? cfg.hiddenSize : configNumber(cfg, 'dim_model_base', 256);
  if (!(v > 0)) fail(`${cfg.path}: field "dim_model_base" must be positive, got ${v}`);
  return v;
}
