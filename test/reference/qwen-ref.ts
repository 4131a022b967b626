/**
 * Independent float64 reference forward for Qwen (v1) (remote code QWenLMHeadModel, Qwen/Qwen-7B modeling_qwen.py),
 * full forward of one unpadded row. TEST ORACLE ONLY.
 *
 *  - h = wte[id]; block: a = RMSNorm(ln_1)(h); [q | k | v] = a·c_attnᵀ + b; rotary rotate_half over the whole head
 *    with base' = rotary_emb_base · α^(d/(d−2)), α = max(2^⌈log2(n/seq_length) + 1⌉ − 1, 1) for n tokens when
 *    use_dynamic_ntk (QWenModel.get_ntk_alpha; 1 otherwise); query j scaled by log(j+1)/log(seq_length) when
 *    j + 1 > seq_length and use_logn_attn; scores / √d, causal softmax;
 *    h1 = h + c_proj(attn); m = RMSNorm(ln_2)(h1); h2 = h1 + mlp.c_proj(w1(m) · silu(w2(m))) (w1/w2: intermediate/2)
 *  - logits = RMSNorm(ln_f)(h) · lm_headᵀ.
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, linear, logitsRows, rmsNorm, tensor, type Weights } from './ref-math.ts';

export interface QwenRefConfig {
  hidden: number; layers: number; heads: number; vocab: number; inter: number; eps: number; base: number;
  seqLength: number; ntk: boolean; logn: boolean; noBias: boolean;
}

export function qwenRefConfig(c: any): QwenRefConfig {
  if (c?.model_type !== 'qwen') fail(`qwen reference: model_type ${JSON.stringify(c?.model_type)}`);
  if ((c.rotary_pct ?? 1) !== 1) fail('qwen reference: rotary_pct 1 only');
  return {
    hidden: c.hidden_size, layers: c.num_hidden_layers, heads: c.num_attention_heads, vocab: c.vocab_size, inter: c.intermediate_size,
    eps: c.layer_norm_epsilon ?? 1e-6, base: c.rotary_emb_base ?? 10000, seqLength: c.seq_length,
    ntk: c.use_dynamic_ntk ?? true, logn: c.use_logn_attn ?? true, noBias: c.no_bias ?? true,
  };
}

export function qwenRefEmbed(c: QwenRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, we = tensor(w, 'transformer.wte.weight', c.vocab * E, 'qwen');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = we[id * E + i]!; });
  return x;
}

/** One block over `seq` tokens at positions 0…seq−1 (n = seq for the NTK alpha). */
export function qwenRefBlock(c: QwenRefConfig, w: Weights, layer: number, h: Float64Array, seq: number): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh, I = c.inter / 2;
  const p = `transformer.h.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'qwen');
  const opt = (n: string, size: number) => (c.noBias ? undefined : t(n, size));
  const a = rmsNorm(h, seq, E, t('ln_1.weight', E), c.eps, 0);
  const qkv = linear(a, seq, E, 3 * E, t('attn.c_attn.weight', 3 * E * E), t('attn.c_attn.bias', 3 * E));
  const q = new Float64Array(seq * E), k = new Float64Array(seq * E), v = new Float64Array(seq * E);
  for (let s = 0; s < seq; s++) for (let i = 0; i < E; i++) {
    q[s * E + i] = qkv[s * 3 * E + i]!; k[s * E + i] = qkv[s * 3 * E + E + i]!; v[s * E + i] = qkv[s * 3 * E + 2 * E + i]!;
  }
  const alpha = c.ntk ? Math.max(2 ** Math.ceil(Math.log2(seq / c.seqLength) + 1) - 1, 1) : 1;
  const base = c.base * alpha ** (d / (d - 2));
  for (const x of [q, k]) for (let s = 0; s < seq; s++) for (let hd = 0; hd < nh; hd++) {
    const o = s * E + hd * d;
    for (let i = 0; i < d / 2; i++) {
      const ang = s * base ** ((-2 * i) / d), cs = Math.cos(ang), sn = Math.sin(ang);
      const x1 = x[o + i]!, x2 = x[o + d / 2 + i]!;
      x[o + i] = x1 * cs - x2 * sn; x[o + d / 2 + i] = x2 * cs + x1 * sn;
    }
  }
  if (c.logn) for (let s = 0; s < seq; s++) {
    const f = s + 1 > c.seqLength ? Math.log(s + 1) / Math.log(c.seqLength) : 1;
    for (let i = 0; i < E; i++) q[s * E + i]! *= f;
  }
  const attn = causalAttention(q, k, v, seq, nh, nh, d, 1 / Math.sqrt(d));
  const h1 = add(h, linear(attn, seq, E, E, t('attn.c_proj.weight', E * E), opt('attn.c_proj.bias', E)));
  const m = rmsNorm(h1, seq, E, t('ln_2.weight', E), c.eps, 0);
  const a1 = linear(m, seq, E, I, t('mlp.w1.weight', I * E), opt('mlp.w1.bias', I));
  const a2 = linear(m, seq, E, I, t('mlp.w2.weight', I * E), opt('mlp.w2.bias', I));
  for (let i = 0; i < a1.length; i++) a1[i] = a1[i]! * act('silu', a2[i]!);
  return add(h1, linear(a1, seq, I, E, t('mlp.c_proj.weight', E * I), opt('mlp.c_proj.bias', E)));
}

export function qwenRefForward(c: QwenRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = qwenRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = qwenRefBlock(c, w, l, h, seq);
  const n = rmsNorm(h, seq, E, tensor(w, 'transformer.ln_f.weight', E, 'qwen'), c.eps, 0);
  return logitsRows(n, seq, E, c.vocab, tensor(w, 'lm_head.weight', c.vocab * E, 'qwen'));
}
