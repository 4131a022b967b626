/**
 * Independent float64 reference forward for GPTBigCode (GPTBigCodeForCausalLM: StarCoder 1 / SantaCoder), plain
 * loops from transformers' modeling_gpt_bigcode.py. TEST ORACLE ONLY. Positions 0..S−1.
 *
 *  - h = wte[id] + wpe[pos]; block: x + c_proj(attn(ln_1(x))), then + mlp(ln_2(·)); ln_f; logits = · wteᵀ
 *    (lm_head.weight when stored). nn.Linear weights [out, in], every linear biased.
 *  - c_attn output: multi_query → [q (n_embd) | k (head_dim) | v (head_dim)], all heads read the one kv head;
 *    else viewed [heads, 3·head_dim] with q, k, v consecutive per head.
 *  - scores · head_dim^−0.5 (scale_attn_weights, default true); mlp: c_proj(act(c_fc(x))), width n_inner ?? 4·n_embd.
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, layerNorm, linear, logitsRows, tensor, type Weights } from './ref-math.ts';

export interface BigCodeRefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  maxPos: number; eps: number; act: string; scale: number; multiQuery: boolean;
}

export function bigcodeRefConfig(c: any): BigCodeRefConfig {
  if (c?.model_type !== 'gpt_bigcode') fail(`gpt_bigcode reference: model_type ${JSON.stringify(c?.model_type)}`);
  const hidden = c.n_embd, heads = c.n_head, headDim = hidden / heads, multiQuery = c.multi_query ?? true;
  return {
    hidden, inter: c.n_inner ?? 4 * hidden, layers: c.n_layer, heads, kvHeads: multiQuery ? 1 : heads, headDim,
    vocab: c.vocab_size, maxPos: c.n_positions ?? 1024, eps: c.layer_norm_epsilon ?? 1e-5,
    act: c.activation_function ?? 'gelu_pytorch_tanh', scale: (c.scale_attn_weights ?? true) ? headDim ** -0.5 : 1, multiQuery,
  };
}

const who = 'gpt_bigcode';

export function bigcodeRefEmbed(c: BigCodeRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden;
  const wte = tensor(w, 'transformer.wte.weight', c.vocab * E, who), wpe = tensor(w, 'transformer.wpe.weight', c.maxPos * E, who);
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = wte[id * E + i]! + wpe[s * E + i]!; });
  return x;
}

export function bigcodeRefLayer(c: BigCodeRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const { hidden: E, heads: nh, kvHeads: kv, headDim: d, inter: I } = c;
  const p = `transformer.h.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, who);
  const lin = (v: Float64Array, name: string, inF: number, outF: number) => linear(v, seq, inF, outF, t(`${name}.weight`, inF * outF), t(`${name}.bias`, outF));
  const ln = (name: string, v: Float64Array) => layerNorm(v, seq, E, t(`${name}.weight`, E), t(`${name}.bias`, E), c.eps);
  const W = E + 2 * kv * d;
  const qkv = lin(ln('ln_1', x), 'attn.c_attn', E, W);
  const q = new Float64Array(seq * E), k = new Float64Array(seq * kv * d), v = new Float64Array(seq * kv * d);
  for (let s = 0; s < seq; s++) {
    const row = s * W;
    if (c.multiQuery) {
      for (let i = 0; i < E; i++) q[s * E + i] = qkv[row + i]!;
      for (let i = 0; i < d; i++) { k[s * d + i] = qkv[row + E + i]!; v[s * d + i] = qkv[row + E + d + i]!; }
    } else {
      for (let h = 0; h < nh; h++) for (let i = 0; i < d; i++) {
        q[s * E + h * d + i] = qkv[row + h * 3 * d + i]!;
        k[s * E + h * d + i] = qkv[row + h * 3 * d + d + i]!;
        v[s * E + h * d + i] = qkv[row + h * 3 * d + 2 * d + i]!;
      }
    }
  }
  const x2 = add(x, lin(causalAttention(q, k, v, seq, nh, kv, d, c.scale), 'attn.c_proj', E, E));
  const up = lin(ln('ln_2', x2), 'mlp.c_fc', E, I);
  for (let i = 0; i < up.length; i++) up[i] = act(c.act, up[i]!);
  return add(x2, lin(up, 'mlp.c_proj', I, E));
}

export function bigcodeRefForward(c: BigCodeRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = bigcodeRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = bigcodeRefLayer(c, w, l, h, seq);
  const n = layerNorm(h, seq, E, tensor(w, 'transformer.ln_f.weight', E, who), tensor(w, 'transformer.ln_f.bias', E, who), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'transformer.wte.weight', c.vocab * E, who));
}
