/**
 * Independent float64 reference forward for MPT (MptForCausalLM), plain loops from transformers' modeling_mpt.py.
 * TEST ORACLE ONLY.
 *
 *  - h = wte[id] (no positions)
 *  - block: a = LayerNorm_noBias(norm_1)(h); qkv = a·Wqkvᵀ clamped to ±clip_qkv; q, k, v = the three thirds;
 *    score(h, i, j) = softmax_scale·q_i·k_j + slope_h·pos_j (pos_j: key j's position from the mask's cumsum; HF adds
 *    slope_h·(j − (max_seq_len − 1)), the same up to a per-row constant for rows without holes);
 *    slopes (build_mpt_alibi_tensor): p = 2^⌈log2 n⌉, s_i = 1 / 2^((i+1)·alibi_bias_max/p), i < p; if p ≠ n:
 *    (s_1, s_3, …, s_0, s_2, …)[:n];
 *    h1 = h + out_proj(attn); h2 = h1 + down_proj(gelu_erf(up_proj(LayerNorm_noBias(norm_2)(h1))))
 *  - logits = LayerNorm_noBias(norm_f)(h) · wteᵀ (lm_head.weight when stored).
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, layerNorm, linear, logitsRows, tensor, type Weights } from './ref-math.ts';

export interface MptRefConfig { hidden: number; layers: number; heads: number; vocab: number; eps: number; clip: number | null; scale: number | null; biasMax: number }

export function mptRefConfig(c: any): MptRefConfig {
  if (c?.model_type !== 'mpt') fail(`mpt reference: model_type ${JSON.stringify(c?.model_type)}`);
  const a = c.attn_config ?? {};
  return {
    hidden: c.d_model ?? 2048, layers: c.n_layers ?? 24, heads: c.n_heads ?? 16, vocab: c.vocab_size ?? 50368,
    eps: c.layer_norm_epsilon ?? 1e-5, clip: a.clip_qkv ?? null, scale: a.softmax_scale ?? null, biasMax: a.alibi_bias_max ?? 8,
  };
}

/** build_mpt_alibi_tensor's slopes, written from the formula. */
export function refMptSlopes(n: number, biasMax: number): number[] {
  let p = 1;
  while (p < n) p *= 2;
  const s: number[] = [];
  for (let i = 1; i <= p; i++) s.push(1 / 2 ** (i * (biasMax / p)));
  if (p === n) return s;
  const odd: number[] = [], even: number[] = [];
  s.forEach((v, i) => (i % 2 ? odd : even).push(v));
  return [...odd, ...even].slice(0, n);
}

const zeros = (n: number) => new Float32Array(n);

export function mptRefEmbed(c: MptRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, we = tensor(w, 'transformer.wte.weight', c.vocab * E, 'mpt');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = we[id * E + i]!; });
  return x;
}

export function mptRefBlock(c: MptRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh;
  const p = `transformer.blocks.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'mpt');
  const a = layerNorm(h, seq, E, t('norm_1.weight', E), zeros(E), c.eps);
  const qkv = linear(a, seq, E, 3 * E, t('attn.Wqkv.weight', 3 * E * E));
  if (c.clip) for (let i = 0; i < qkv.length; i++) qkv[i] = Math.min(c.clip, Math.max(-c.clip, qkv[i]!));
  const q = new Float64Array(seq * E), k = new Float64Array(seq * E), v = new Float64Array(seq * E);
  for (let s = 0; s < seq; s++) for (let i = 0; i < E; i++) {
    q[s * E + i] = qkv[s * 3 * E + i]!; k[s * E + i] = qkv[s * 3 * E + E + i]!; v[s * E + i] = qkv[s * 3 * E + 2 * E + i]!;
  }
  const slopes = refMptSlopes(nh, c.biasMax);
  const pos: number[] = [];
  let cum = 0;
  for (let j = 0; j < seq; j++) { const m = mask ? mask[j]! : 1; cum += m; pos.push((cum - 1) * m); }
  const attn = causalAttention(q, k, v, seq, nh, nh, d, c.scale ?? 1 / Math.sqrt(d), mask, (hd, j) => slopes[hd]! * pos[j]!);
  const h1 = add(h, linear(attn, seq, E, E, t('attn.out_proj.weight', E * E)));
  const up = linear(layerNorm(h1, seq, E, t('norm_2.weight', E), zeros(E), c.eps), seq, E, 4 * E, t('ffn.up_proj.weight', 4 * E * E));
  for (let i = 0; i < up.length; i++) up[i] = act('gelu', up[i]!);
  return add(h1, linear(up, seq, 4 * E, E, t('ffn.down_proj.weight', 4 * E * E)));
}

export function mptRefForward(c: MptRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = mptRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = mptRefBlock(c, w, l, h, seq, mask);
  const n = layerNorm(h, seq, E, tensor(w, 'transformer.norm_f.weight', E, 'mpt'), zeros(E), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'transformer.wte.weight', c.vocab * E, 'mpt'));
}
