/**
 * Independent float64 reference forward for multi-head latent attention models: MiniCPM3 (MiniCPM3ForCausalLM, with
 * μP scalings) and DeepSeek-V2 (DeepseekV2ForCausalLM, with its MoE), plain loops from transformers'
 * modeling_minicpm3.py / modeling_deepseek_v2.py and their config classes. TEST ORACLE ONLY.
 *
 *  - h = embed_tokens[id] · scale_emb
 *  - layer: h + scale_depth/√L · attn(rms(h)), then + scale_depth/√L · down(silu(gate(·)) · up(·)) of rms(·)
 *  - attention per head n (default rope only): q = q_b(rms_{1e-6}(q_a(x))) (or q_proj(x)) split [q_pass (nope) ; q_rot
 *    (rope)]; kv_a(x) = [c (kv_lora) ; k_rot (rope, one for all heads)]; kv_b(rms_{1e-6}(c)) split per head
 *    [k_nope ; v]; rotate_half rotary on q_rot and k_rot; score = ([q_pass;q_rot]·[k_nope;k_rot]) / √(nope + rope);
 *    causal + key mask; out = o_proj(softmax · v)
 *  - logits = (rms(h) / (hidden / dim_model_base)) · embed_tokensᵀ (tied) or lm_headᵀ
 * DeepSeek-V2 instead: no μP scalings (scale_emb 1, residual 1, logits unscaled); rotary on the rope parts in the
 * complex form (channel pairs (2i, 2i+1) rotate by frequency i); layers ≥ first_k_dense_replace replace the MLP by
 * Σ_{e in top-k of softmax(gate·x)} routed_scaling_factor·p_e·expert_e(x) + shared_experts(x) (greedy top-k, no
 * renormalization), each expert/shared MLP down(silu(gate(x)) · up(x)).
 * Keys and values are kept per head here (no latent cache), as the arithmetic of Transformers' expand_kv.
 */
import { fail } from '../../src/errors.ts';
import { act, add, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

export interface MlaRefConfig {
  hidden: number; inter: number; layers: number; heads: number; vocab: number; eps: number; theta: number; act: string;
  qLora: number | null; kvLora: number; nope: number; rope: number; v: number; bias: boolean;
  scaleEmb: number; residual: number; logitDiv: number;
  /** DeepSeek-V2: interleaved rotary and its MoE (null: MiniCPM3, dense MLPs). */
  deepseek: { dense: number; experts: number; topK: number; moeInter: number; shared: number; scale: number } | null;
}

export function mlaRefConfig(c: any): MlaRefConfig {
  const ds = c?.model_type === 'deepseek_v2';
  if (!ds && c?.model_type !== 'minicpm3') fail(`mla reference: model_type ${JSON.stringify(c?.model_type)}`);
  if (ds && (c.topk_method ?? 'greedy') !== 'greedy') fail('mla reference: greedy top-k only');
  const rp = c.rope_parameters ?? c.rope_scaling;
  if ((rp?.rope_type ?? rp?.type ?? 'default') !== 'default') fail('mla reference: default rope only');
  const L = c.num_hidden_layers;
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: L, heads: c.num_attention_heads, vocab: c.vocab_size,
    eps: c.rms_norm_eps ?? 1e-5, theta: rp?.rope_theta ?? c.rope_theta ?? 10000, act: c.hidden_act ?? 'silu',
    qLora: c.q_lora_rank === undefined ? (ds ? 1536 : 768) : c.q_lora_rank, kvLora: c.kv_lora_rank ?? (ds ? 512 : 256),
    nope: c.qk_nope_head_dim ?? (ds ? 128 : 64), rope: c.qk_rope_head_dim ?? (ds ? 64 : 32),
    v: c.v_head_dim ?? (ds ? 128 : c.hidden_size / c.num_attention_heads), bias: c.attention_bias ?? false,
    scaleEmb: ds ? 1 : c.scale_emb ?? 12, residual: ds ? 1 : (c.scale_depth === null ? Math.sqrt(L) : c.scale_depth ?? 1.4) / Math.sqrt(L),
    logitDiv: ds ? 1 : c.hidden_size / (c.dim_model_base ?? 256),
    deepseek: ds ? { dense: c.first_k_dense_replace ?? 0, experts: c.n_routed_experts ?? 64, topK: c.num_experts_per_tok ?? 1,
      moeInter: c.moe_intermediate_size ?? 1407, shared: c.n_shared_experts ?? 2, scale: c.routed_scaling_factor ?? 1 } : null,
  };
}

export function mlaRefLayer(c: MlaRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const { hidden: E, heads: H, nope, rope, v: dv, kvLora: r, inter: I } = c;
  const qk = nope + rope;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'mla');
  const lin = (x: Float64Array, name: string, inF: number, outF: number, bias = false) =>
    linear(x, seq, inF, outF, t(`${name}.weight`, inF * outF), bias ? t(`${name}.bias`, outF) : undefined);
  const n1 = rmsNorm(h, seq, E, t('input_layernorm.weight', E), c.eps, 0);
  const q = c.qLora === null ? lin(n1, 'self_attn.q_proj', E, H * qk)
    : lin(rmsNorm(lin(n1, 'self_attn.q_a_proj', E, c.qLora, c.bias), seq, c.qLora, t('self_attn.q_a_layernorm.weight', c.qLora), 1e-6, 0), 'self_attn.q_b_proj', c.qLora, H * qk);
  const ckv = lin(n1, 'self_attn.kv_a_proj_with_mqa', E, r + rope, c.bias);
  const latent = new Float64Array(seq * r), kRot = new Float64Array(seq * rope);
  for (let s = 0; s < seq; s++) {
    for (let i = 0; i < r; i++) latent[s * r + i] = ckv[s * (r + rope) + i]!;
    for (let i = 0; i < rope; i++) kRot[s * rope + i] = ckv[s * (r + rope) + r + i]!;
  }
  const kv = lin(rmsNorm(latent, seq, r, t('self_attn.kv_a_layernorm.weight', r), 1e-6, 0), 'self_attn.kv_b_proj', r, H * (nope + dv));
  // rotary on the rope parts: gather q_rot [seq, H·rope], rotate, scatter back
  const pos = positionsFromMask(seq, mask);
  const qRot = new Float64Array(seq * H * rope);
  for (let s = 0; s < seq; s++) for (let n = 0; n < H; n++) for (let i = 0; i < rope; i++) qRot[(s * H + n) * rope + i] = q[(s * H + n) * qk + nope + i]!;
  const rot = c.deepseek ? rotatePairs : rotate;
  rot(qRot, seq, H, rope, pos, c.theta);
  rot(kRot, seq, 1, rope, pos, c.theta);
  const attn = new Float64Array(seq * H * dv), sc = new Float64Array(seq), scale = qk ** -0.5;
  for (let n = 0; n < H; n++) {
    const key = (j: number, i: number) => (i < nope ? kv[(j * H + n) * (nope + dv) + i]! : kRot[j * rope + i - nope]!);
    const query = (s: number, i: number) => (i < nope ? q[(s * H + n) * qk + i]! : qRot[(s * H + n) * rope + i - nope]!);
    for (let s = 0; s < seq; s++) {
      const vis = (j: number) => j <= s && (!mask || mask[j] === 1);
      let max = -Infinity;
      for (let j = 0; j <= s; j++) {
        if (!vis(j)) continue;
        let dot = 0;
        for (let i = 0; i < qk; i++) dot += query(s, i) * key(j, i);
        sc[j] = dot * scale; max = Math.max(max, sc[j]!);
      }
      let sum = 0;
      for (let j = 0; j <= s; j++) if (vis(j)) { sc[j] = Math.exp(sc[j]! - max); sum += sc[j]!; }
      if (sum === 0) continue;
      for (let e = 0; e < dv; e++) {
        let acc = 0;
        for (let j = 0; j <= s; j++) if (vis(j)) acc += (sc[j]! / sum) * kv[(j * H + n) * (nope + dv) + nope + e]!;
        attn[(s * H + n) * dv + e] = acc;
      }
    }
  }
  const scaled = (x: Float64Array) => x.map((y) => y * c.residual);
  const h1 = add(h, scaled(lin(attn, 'self_attn.o_proj', H * dv, E, c.bias)));
  const n2 = rmsNorm(h1, seq, E, t('post_attention_layernorm.weight', E), c.eps, 0);
  const mlp = (x: Float64Array, rows: number, name: string, inter: number) => {
    const gate = linear(x, rows, E, inter, t(`${name}.gate_proj.weight`, inter * E)), up = linear(x, rows, E, inter, t(`${name}.up_proj.weight`, inter * E));
    for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
    return linear(gate, rows, inter, E, t(`${name}.down_proj.weight`, inter * E));
  };
  const ds = c.deepseek;
  if (!ds || layer < ds.dense) return add(h1, scaled(mlp(n2, seq, 'mlp', I)));
  // MoE: per token, greedy top-k of the softmax over experts, weights × routed_scaling_factor; plus the shared expert
  const logits = linear(n2, seq, E, ds.experts, t('mlp.gate.weight', ds.experts * E));
  const y = mlp(n2, seq, 'mlp.shared_experts', ds.moeInter * ds.shared);
  for (let s = 0; s < seq; s++) {
    const row = Array.from(logits.subarray(s * ds.experts, (s + 1) * ds.experts));
    const mx = Math.max(...row), ex = row.map((v) => Math.exp(v - mx)), z = ex.reduce((a, b) => a + b, 0);
    const order = ex.map((v, e) => [v / z, e] as const).sort((a, b) => b[0] - a[0]).slice(0, ds.topK);
    const xs = n2.subarray(s * E, (s + 1) * E);
    for (const [pe, e] of order) {
      const out = mlp(Float64Array.from(xs), 1, `mlp.experts.${e}`, ds.moeInter);
      for (let i = 0; i < E; i++) y[s * E + i] = y[s * E + i]! + pe * ds.scale * out[i]!;
    }
  }
  return add(h1, y);
}

/** DeepSeek's complex rotary in place on [seq, heads·d]: channel pairs (2i, 2i+1) rotate by theta^(−2i/d)·position. */
function rotatePairs(x: Float64Array, seq: number, heads: number, d: number, positions: number[], theta: number): void {
  for (let s = 0; s < seq; s++) for (let h = 0; h < heads; h++) for (let i = 0; i < d / 2; i++) {
    const o = (s * heads + h) * d + 2 * i, ang = positions[s]! * theta ** ((-2 * i) / d);
    const a = x[o]!, b = x[o + 1]!, cs = Math.cos(ang), sn = Math.sin(ang);
    x[o] = a * cs - b * sn; x[o + 1] = b * cs + a * sn;
  }
}

export function mlaRefEmbed(c: MlaRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'mla');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]! * c.scaleEmb; });
  return x;
}

export function mlaRefForward(c: MlaRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = mlaRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = mlaRefLayer(c, w, l, h, seq, mask);
  const n = rmsNorm(h, seq, E, tensor(w, 'model.norm.weight', E, 'mla'), c.eps, 0).map((x) => x / c.logitDiv);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'model.embed_tokens.weight', c.vocab * E, 'mla'));
}
