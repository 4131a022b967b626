/**
 * Independent float64 reference forward for MiniCPM3 (MiniCPM3ForCausalLM: multi-head latent attention + μP scalings),
 * plain loops from transformers' modeling_minicpm3.py / configuration_minicpm3.py. TEST ORACLE ONLY.
 *
 *  - h = embed_tokens[id] · scale_emb
 *  - layer: h + scale_depth/√L · attn(rms(h)), then + scale_depth/√L · down(silu(gate(·)) · up(·)) of rms(·)
 *  - attention per head n (default rope only): q = q_b(rms_{1e-6}(q_a(x))) (or q_proj(x)) split [q_pass (nope) ; q_rot
 *    (rope)]; kv_a(x) = [c (kv_lora) ; k_rot (rope, one for all heads)]; kv_b(rms_{1e-6}(c)) split per head
 *    [k_nope ; v]; rotate_half rotary on q_rot and k_rot; score = ([q_pass;q_rot]·[k_nope;k_rot]) / √(nope + rope);
 *    causal + key mask; out = o_proj(softmax · v)
 *  - logits = (rms(h) / (hidden / dim_model_base)) · embed_tokensᵀ (tied) or lm_headᵀ
 * Keys and values are kept per head here (no latent cache), as the arithmetic of Transformers' expand_kv.
 */
import { fail } from '../../src/errors.ts';
import { act, add, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

export interface MlaRefConfig {
  hidden: number; inter: number; layers: number; heads: number; vocab: number; eps: number; theta: number; act: string;
  qLora: number | null; kvLora: number; nope: number; rope: number; v: number; bias: boolean;
  scaleEmb: number; residual: number; logitDiv: number;
}

export function mlaRefConfig(c: any): MlaRefConfig {
  if (c?.model_type !== 'minicpm3') fail(`mla reference: model_type ${JSON.stringify(c?.model_type)}`);
  const rp = c.rope_parameters ?? c.rope_scaling;
  if ((rp?.rope_type ?? rp?.type ?? 'default') !== 'default') fail('mla reference: default rope only');
  const L = c.num_hidden_layers;
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: L, heads: c.num_attention_heads, vocab: c.vocab_size,
    eps: c.rms_norm_eps ?? 1e-5, theta: rp?.rope_theta ?? c.rope_theta ?? 10000, act: c.hidden_act ?? 'silu',
    qLora: c.q_lora_rank === undefined ? 768 : c.q_lora_rank, kvLora: c.kv_lora_rank ?? 256, nope: c.qk_nope_head_dim ?? 64,
    rope: c.qk_rope_head_dim ?? 32, v: c.v_head_dim ?? c.hidden_size / c.num_attention_heads, bias: c.attention_bias ?? false,
    scaleEmb: c.scale_emb ?? 12, residual: (c.scale_depth === null ? Math.sqrt(L) : c.scale_depth ?? 1.4) / Math.sqrt(L),
    logitDiv: c.hidden_size / (c.dim_model_base ?? 256),
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
  rotate(qRot, seq, H, rope, pos, c.theta);
  rotate(kRot, seq, 1, rope, pos, c.theta);
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
  const gate = lin(n2, 'mlp.gate_proj', E, I), up = lin(n2, 'mlp.up_proj', E, I);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(h1, scaled(lin(gate, 'mlp.down_proj', I, E)));
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
