/**
 * Independent float64 reference forward for Mixtral (MixtralForCausalLM).
 *
 * TEST ORACLE ONLY: plain loops from the math of transformers' modeling_mixtral.py, sharing no code with the ONNX
 * graphs. Attention is the llama reference's (RMSNorm, rotate_half rotary, GQA, causal); the MLP is
 * MixtralSparseMoeBlock evaluated SPARSELY, as HF does:
 *   router_logits = gate(x) (nn.Linear [E, H], no bias); p = softmax(router_logits) (fp32 in HF, f64 here);
 *   top-k of p (k = num_experts_per_tok; ties → lower expert index, as torch.topk in practice), renormalized to sum 1;
 *   each selected expert e runs only on its routed tokens: w2_e(silu(w1_e(x)) · w3_e(x)), scaled by its weight;
 *   outputs summed per token (index_add_).
 * `routing` records which tokens each expert saw per layer, so tests can build the per-expert Hessians from it.
 */
import { fail } from '../../src/errors.ts';
import { causalAttention, linear, rmsNorm, rotate, add, logitsRows, tensor, type Weights } from './ref-math.ts';

export interface MixtralRefConfig {
  hidden: number; inter: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number;
  eps: number; theta: number; experts: number; topK: number; tie: boolean;
}

export function mixtralRefConfig(c: any): MixtralRefConfig {
  if (c.model_type !== 'mixtral') fail(`mixtral reference: model_type ${c.model_type}`);
  if ((c.hidden_act ?? 'silu') !== 'silu') fail('mixtral reference: silu only');
  if (c.sliding_window != null) fail('mixtral reference: sliding_window not implemented');
  const heads = c.num_attention_heads;
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads, kvHeads: c.num_key_value_heads ?? heads,
    headDim: c.head_dim ?? c.hidden_size / heads, vocab: c.vocab_size, eps: c.rms_norm_eps ?? 1e-5, theta: c.rope_theta ?? 1e6,
    experts: c.num_local_experts ?? 8, topK: c.num_experts_per_tok ?? 2, tie: c.tie_word_embeddings === true,
  };
}

/** Per layer, per expert: the token rows (0..seq−1) routed to it. */
export type Routing = number[][][];

const W = (w: Weights, n: string, size: number) => tensor(w, n, size, 'mixtral');

/** The sparse MoE block on normed hidden x [seq, H]; pushes routed token rows per expert into `routed`. */
export function mixtralRefMoe(c: MixtralRefConfig, w: Weights, layer: number, x: Float64Array, seq: number, routed?: number[][]): Float64Array {
  const { hidden: H, inter: I, experts: E, topK: K } = c;
  const p = `model.layers.${layer}.block_sparse_moe.`;
  const logits = linear(x, seq, H, E, W(w, `${p}gate.weight`, E * H));
  const out = new Float64Array(seq * H);
  const byExpert: { t: number; wt: number }[][] = Array.from({ length: E }, () => []);
  for (let t = 0; t < seq; t++) {
    let max = -Infinity;
    for (let e = 0; e < E; e++) max = Math.max(max, logits[t * E + e]!);
    const pr = Array.from({ length: E }, (_, e) => Math.exp(logits[t * E + e]! - max));
    const z = pr.reduce((a, b) => a + b, 0);
    const order = pr.map((v, e) => ({ v: v / z, e })).sort((a, b) => b.v - a.v || a.e - b.e).slice(0, K);
    const s = order.reduce((a, o) => a + o.v, 0);
    for (const o of order) byExpert[o.e]!.push({ t, wt: o.v / s });
  }
  for (let e = 0; e < E; e++) {
    const rows = byExpert[e]!;
    routed?.push(rows.map((r) => r.t));
    if (!rows.length) continue;
    const xe = new Float64Array(rows.length * H);
    rows.forEach((r, i) => xe.set(x.subarray(r.t * H, (r.t + 1) * H), i * H));
    const q = `${p}experts.${e}.`;
    const g1 = linear(xe, rows.length, H, I, W(w, `${q}w1.weight`, I * H));
    const u3 = linear(xe, rows.length, H, I, W(w, `${q}w3.weight`, I * H));
    for (let i = 0; i < g1.length; i++) g1[i] = (g1[i]! / (1 + Math.exp(-g1[i]!))) * u3[i]!;
    const y = linear(g1, rows.length, I, H, W(w, `${q}w2.weight`, H * I));
    rows.forEach((r, i) => { for (let j = 0; j < H; j++) out[r.t * H + j]! += r.wt * y[i * H + j]!; });
  }
  return out;
}

/** Post-attention-norm input of the MoE block and the layer output, positions 0..seq−1. */
export function mixtralRefLayerParts(c: MixtralRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, routed?: number[][]): { moeIn: Float64Array; out: Float64Array } {
  const { hidden: H, heads: nh, kvHeads: nkv, headDim: d } = c;
  const p = `model.layers.${layer}.`;
  const n1 = rmsNorm(h, seq, H, W(w, `${p}input_layernorm.weight`, H), c.eps, 0);
  const q = linear(n1, seq, H, nh * d, W(w, `${p}self_attn.q_proj.weight`, nh * d * H));
  const k = linear(n1, seq, H, nkv * d, W(w, `${p}self_attn.k_proj.weight`, nkv * d * H));
  const v = linear(n1, seq, H, nkv * d, W(w, `${p}self_attn.v_proj.weight`, nkv * d * H));
  const pos = Array.from({ length: seq }, (_, i) => i);
  rotate(q, seq, nh, d, pos, c.theta);
  rotate(k, seq, nkv, d, pos, c.theta);
  const a = causalAttention(q, k, v, seq, nh, nkv, d, 1 / Math.sqrt(d));
  const h1 = add(h, linear(a, seq, nh * d, H, W(w, `${p}self_attn.o_proj.weight`, H * nh * d)));
  const moeIn = rmsNorm(h1, seq, H, W(w, `${p}post_attention_layernorm.weight`, H), c.eps, 0);
  return { moeIn, out: add(h1, mixtralRefMoe(c, w, layer, moeIn, seq, routed)) };
}

export function mixtralRefLayer(c: MixtralRefConfig, w: Weights, layer: number, h: Float64Array, seq: number): Float64Array {
  return mixtralRefLayerParts(c, w, layer, h, seq).out;
}

export function mixtralRefEmbed(c: MixtralRefConfig, w: Weights, ids: number[]): Float64Array {
  const emb = W(w, 'model.embed_tokens.weight', c.vocab * c.hidden);
  const out = new Float64Array(ids.length * c.hidden);
  ids.forEach((id, s) => { for (let i = 0; i < c.hidden; i++) out[s * c.hidden + i] = emb[id * c.hidden + i]!; });
  return out;
}

/** Logits per position; `routing` (when given) receives each layer's per-expert routed token rows. */
export function mixtralRefForward(c: MixtralRefConfig, w: Weights, ids: number[], routing?: Routing): Float64Array[] {
  let h = mixtralRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) {
    const routed: number[][] = [];
    h = mixtralRefLayerParts(c, w, l, h, ids.length, routed).out;
    routing?.push(routed);
  }
  const n = rmsNorm(h, ids.length, c.hidden, W(w, 'model.norm.weight', c.hidden), c.eps, 0);
  return logitsRows(n, ids.length, c.hidden, c.vocab, W(w, c.tie ? 'model.embed_tokens.weight' : 'lm_head.weight', c.vocab * c.hidden));
}
