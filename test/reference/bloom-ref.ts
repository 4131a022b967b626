/**
 * Independent float64 reference forward for BLOOM (BloomForCausalLM), plain loops from transformers'
 * modeling_bloom.py. TEST ORACLE ONLY.
 *
 *  - h = word_embeddings_layernorm(word_embeddings[id])
 *  - block: ln1 = input_layernorm(h); qkv = query_key_value(ln1) viewed [seq, heads, 3, d] (q, k, v per head);
 *    score(h, i, j) = q_i·k_j / sqrt(d) + slope_h · pos_j for visible j (j ≤ i, mask[j] = 1), with
 *    pos_j = (cumsum(mask) − 1)·mask (build_alibi_tensor) and slopes from the ALiBi paper's get_slopes:
 *      power of two n: start = 2^(−8/n), slopes = start, start², …, startⁿ;
 *      else: get_slopes(p) + get_slopes(2p)[0::2][: n − p] with p the largest power of two below n;
 *    h1 = (ln1 if apply_residual_connection_post_layernorm else h) + dense(attn);
 *    ln2 = post_attention_layernorm(h1); h2 = (ln2 if post-LN residual else h1) + dense_4h_to_h(gelu(dense_h_to_4h(ln2)))
 *    with bloom_gelu = x·0.5·(1 + tanh(0.79788456·x·(1 + 0.044715·x²))).
 *  - logits = ln_f(h) · lm_headᵀ (lm_head.weight, else word_embeddings).
 */
import { fail } from '../../src/errors.ts';
import { add, causalAttention, layerNorm, linear, logitsRows, tensor, type Weights } from './ref-math.ts';

export interface BloomRefConfig { hidden: number; layers: number; heads: number; vocab: number; eps: number; postLnResidual: boolean }

/** BloomConfig field names (n_embed / hidden_size, n_layer, n_head) and defaults. */
export function bloomRefConfig(c: any): BloomRefConfig {
  if (c?.model_type !== 'bloom') fail(`bloom reference: model_type ${JSON.stringify(c?.model_type)}`);
  return {
    hidden: c.n_embed ?? c.hidden_size ?? 64,
    layers: c.n_layer ?? c.num_hidden_layers ?? 2,
    heads: c.n_head ?? c.num_attention_heads ?? 8,
    vocab: c.vocab_size ?? 250880,
    eps: c.layer_norm_epsilon ?? 1e-5,
    postLnResidual: c.apply_residual_connection_post_layernorm ?? false,
  };
}

/** The ALiBi paper's get_slopes. */
export function refAlibiSlopes(n: number): number[] {
  const pow2 = (m: number) => {
    const start = 2 ** -(2 ** -(Math.log2(m) - 3));
    return Array.from({ length: m }, (_, i) => start * start ** i);
  };
  if (Number.isInteger(Math.log2(n))) return pow2(n);
  const p = 2 ** Math.floor(Math.log2(n));
  return [...pow2(p), ...refAlibiSlopes(2 * p).filter((_, i) => i % 2 === 0).slice(0, n - p)];
}

const bloomGelu = (x: number) => x * 0.5 * (1 + Math.tanh(0.79788456 * x * (1 + 0.044715 * x * x)));

export function bloomRefEmbed(c: BloomRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden;
  const we = tensor(w, 'transformer.word_embeddings.weight', c.vocab * E, 'bloom');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = we[id * E + i]!; });
  const p = 'transformer.word_embeddings_layernorm.';
  return layerNorm(x, ids.length, E, tensor(w, p + 'weight', E, 'bloom'), tensor(w, p + 'bias', E, 'bloom'), c.eps);
}

export function bloomRefBlock(c: BloomRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh;
  const p = `transformer.h.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'bloom');
  const ln1 = layerNorm(h, seq, E, t('input_layernorm.weight', E), t('input_layernorm.bias', E), c.eps);
  const qkv = linear(ln1, seq, E, 3 * E, t('self_attention.query_key_value.weight', 3 * E * E), t('self_attention.query_key_value.bias', 3 * E));
  const q = new Float64Array(seq * E), k = new Float64Array(seq * E), v = new Float64Array(seq * E);
  for (let s = 0; s < seq; s++) for (let hd = 0; hd < nh; hd++) for (let i = 0; i < d; i++) {
    const base = s * 3 * E + hd * 3 * d;
    q[s * E + hd * d + i] = qkv[base + i]!;
    k[s * E + hd * d + i] = qkv[base + d + i]!;
    v[s * E + hd * d + i] = qkv[base + 2 * d + i]!;
  }
  const slopes = refAlibiSlopes(nh);
  const pos: number[] = [];
  let cum = 0;
  for (let j = 0; j < seq; j++) { const m = mask ? mask[j]! : 1; cum += m; pos.push((cum - 1) * m); }
  const attn = causalAttention(q, k, v, seq, nh, nh, d, 1 / Math.sqrt(d), mask, (hd, j) => slopes[hd]! * pos[j]!);
  const h1 = add(c.postLnResidual ? ln1 : h, linear(attn, seq, E, E, t('self_attention.dense.weight', E * E), t('self_attention.dense.bias', E)));
  const ln2 = layerNorm(h1, seq, E, t('post_attention_layernorm.weight', E), t('post_attention_layernorm.bias', E), c.eps);
  const up = linear(ln2, seq, E, 4 * E, t('mlp.dense_h_to_4h.weight', 4 * E * E), t('mlp.dense_h_to_4h.bias', 4 * E));
  for (let i = 0; i < up.length; i++) up[i] = bloomGelu(up[i]!);
  return add(c.postLnResidual ? ln2 : h1, linear(up, seq, 4 * E, E, t('mlp.dense_4h_to_h.weight', 4 * E * E), t('mlp.dense_4h_to_h.bias', E)));
}

/** Logits [seq][vocab]; `mask` is a 2-D attention mask row (1 = token, 0 = padding). */
export function bloomRefForward(c: BloomRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = bloomRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = bloomRefBlock(c, w, l, h, seq, mask);
  const n = layerNorm(h, seq, E, tensor(w, 'transformer.ln_f.weight', E, 'bloom'), tensor(w, 'transformer.ln_f.bias', E, 'bloom'), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'transformer.word_embeddings.weight', c.vocab * E, 'bloom'));
}
