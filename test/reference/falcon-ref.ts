/**
 * Independent float64 reference forward for Falcon (FalconForCausalLM, rotary models), plain loops from
 * transformers' modeling_falcon.py. TEST ORACLE ONLY.
 *
 *  - h = word_embeddings[id]
 *  - fused qkv = query_key_value(a), FalconAttention._split_heads:
 *      new_decoder_architecture: view [seq, kv, heads/kv + 2, d]: q = [..., :-2], k = [..., -2], v = [..., -1]
 *        (query head g·(heads/kv) + r uses kv group g);
 *      multi_query: view [seq, heads + 2, d]: q = first heads, k = heads, v = heads + 1 (shared by all heads);
 *      else: view [seq, heads, 3, d].
 *  - rotary rotate_half on q, k (inv_freq theta^(−2i/d), positions from the mask); scores/sqrt(d); causal softmax.
 *  - layer: new arch: a = ln_attn(h), m = ln_mlp(h) (num_ln_in_parallel_attn 2) or a = m = input_layernorm(h);
 *    h + attn + mlp(m). parallel_attn: a = m = input_layernorm(h); h + attn + mlp(a).
 *    sequential: h1 = h + attn(input_layernorm(h)); h1 + mlp(post_attention_layernorm(h1)).
 *  - mlp = dense_4h_to_h(act(dense_h_to_4h)), act = config.activation (gelu = erf GeLU); biases iff config.bias.
 *  - logits = ln_f(h) · lm_headᵀ (lm_head.weight, else word_embeddings).
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, layerNorm, linear, logitsRows, positionsFromMask, rotate, tensor, type Weights } from './ref-math.ts';

export interface FalconRefConfig {
  hidden: number; layers: number; heads: number; kvHeads: number; vocab: number; eps: number; ffn: number;
  newArch: boolean; multiQuery: boolean; parallel: boolean; numLn: number; bias: boolean; act: string; theta: number;
}

export function falconRefConfig(c: any): FalconRefConfig {
  if (c?.model_type !== 'falcon') fail(`falcon reference: model_type ${JSON.stringify(c?.model_type)}`);
  if (c.alibi) fail('falcon reference: alibi not implemented');
  const hidden = c.hidden_size ?? c.n_embed ?? 4544, heads = c.num_attention_heads ?? c.n_head ?? 71;
  const newArch = c.new_decoder_architecture ?? false, multiQuery = c.multi_query ?? true;
  return {
    hidden, heads, newArch, multiQuery,
    layers: c.num_hidden_layers ?? c.n_layer ?? 32,
    kvHeads: newArch ? c.num_kv_heads ?? heads : multiQuery ? 1 : heads,
    vocab: c.vocab_size ?? 65024,
    eps: c.layer_norm_epsilon ?? 1e-5,
    ffn: c.ffn_hidden_size ?? 4 * hidden,
    parallel: c.parallel_attn ?? true,
    numLn: newArch ? c.num_ln_in_parallel_attn ?? 2 : 1,
    bias: c.bias ?? false,
    act: c.activation ?? 'gelu',
    theta: c.rope_theta ?? 10000,
  };
}

export function falconRefBlock(c: FalconRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const E = c.hidden, nh = c.heads, kv = c.kvHeads, d = E / nh;
  const p = `transformer.h.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'falcon');
  const lin = (x: Float64Array, name: string, inF: number, outF: number) =>
    linear(x, seq, inF, outF, t(`${name}.weight`, inF * outF), c.bias ? t(`${name}.bias`, outF) : undefined);
  const ln = (x: Float64Array, name: string) => layerNorm(x, seq, E, t(`${name}.weight`, E), t(`${name}.bias`, E), c.eps);

  const two = c.newArch && c.numLn === 2;
  const a = ln(h, two ? 'ln_attn' : 'input_layernorm');
  const qkvOut = c.newArch ? (2 * kv + nh) * d : c.multiQuery ? E + 2 * d : 3 * E;
  const qkv = lin(a, 'self_attention.query_key_value', E, qkvOut);
  const q = new Float64Array(seq * nh * d), k = new Float64Array(seq * kv * d), v = new Float64Array(seq * kv * d);
  for (let s = 0; s < seq; s++) {
    const row = s * qkvOut;
    for (let i = 0; i < d; i++) {
      if (c.newArch) {
        const per = nh / kv + 2;
        for (let gi = 0; gi < kv; gi++) {
          for (let r = 0; r < per - 2; r++) q[(s * nh + gi * (per - 2) + r) * d + i] = qkv[row + (gi * per + r) * d + i]!;
          k[(s * kv + gi) * d + i] = qkv[row + (gi * per + per - 2) * d + i]!;
          v[(s * kv + gi) * d + i] = qkv[row + (gi * per + per - 1) * d + i]!;
        }
      } else if (c.multiQuery) {
        for (let hd = 0; hd < nh; hd++) q[(s * nh + hd) * d + i] = qkv[row + hd * d + i]!;
        k[s * d + i] = qkv[row + nh * d + i]!;
        v[s * d + i] = qkv[row + (nh + 1) * d + i]!;
      } else {
        for (let hd = 0; hd < nh; hd++) {
          q[(s * nh + hd) * d + i] = qkv[row + (hd * 3) * d + i]!;
          k[(s * nh + hd) * d + i] = qkv[row + (hd * 3 + 1) * d + i]!;
          v[(s * nh + hd) * d + i] = qkv[row + (hd * 3 + 2) * d + i]!;
        }
      }
    }
  }
  const pos = positionsFromMask(seq, mask);
  rotate(q, seq, nh, d, pos, c.theta);
  rotate(k, seq, kv, d, pos, c.theta);
  const attn = lin(causalAttention(q, k, v, seq, nh, kv, d, 1 / Math.sqrt(d), mask), 'self_attention.dense', E, E);
  const mlp = (m: Float64Array) => {
    const up = lin(m, 'mlp.dense_h_to_4h', E, c.ffn);
    for (let i = 0; i < up.length; i++) up[i] = act(c.act, up[i]!);
    return lin(up, 'mlp.dense_4h_to_h', c.ffn, E);
  };
  if (c.newArch || c.parallel) return add(h, add(attn, mlp(two ? ln(h, 'ln_mlp') : a)));
  const h1 = add(h, attn);
  return add(h1, mlp(ln(h1, 'post_attention_layernorm')));
}

export function falconRefEmbed(c: FalconRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden;
  const we = tensor(w, 'transformer.word_embeddings.weight', c.vocab * E, 'falcon');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = we[id * E + i]!; });
  return x;
}

export function falconRefForward(c: FalconRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = falconRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = falconRefBlock(c, w, l, h, seq, mask);
  const n = layerNorm(h, seq, E, tensor(w, 'transformer.ln_f.weight', E, 'falcon'), tensor(w, 'transformer.ln_f.bias', E, 'falcon'), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'transformer.word_embeddings.weight', c.vocab * E, 'falcon'));
}
