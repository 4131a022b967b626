/**
 * Independent float64 reference forward for Baichuan-7B / Baichuan2-7B (remote-code modeling_baichuan.py).
 * TEST ORACLE ONLY. Positions 0..S−1.
 *
 *  - llama layer with self_attn.W_pack [3·hidden, hidden] (no bias) whose output is [q | k | v], each hidden wide;
 *    RMSNorm (rms_norm_eps), rotate_half rotary base 10000 over head_dim, scale head_dim^−0.5, o_proj, SwiGLU MLP.
 *  - logits = norm(h) · Wᵀ with W = lm_head.weight, rows L2-normalised (W_r / max(‖W_r‖, 1e-12)) for Baichuan2's
 *    NormHead (vocab 125696 or a `z_loss_weight` field), as is for Baichuan-7B.
 */
import { fail } from '../../src/errors.ts';
import { act, add, causalAttention, linear, logitsRows, positionsFromMask, rmsNorm, rotate, tensor, type Weights } from './ref-math.ts';

export interface BaichuanRefConfig {
  hidden: number; inter: number; layers: number; heads: number; headDim: number; vocab: number; eps: number; act: string; normHead: boolean;
}

export function baichuanRefConfig(c: any): BaichuanRefConfig {
  if (c?.model_type !== 'baichuan') fail(`baichuan reference: model_type ${JSON.stringify(c?.model_type)}`);
  return {
    hidden: c.hidden_size, inter: c.intermediate_size, layers: c.num_hidden_layers, heads: c.num_attention_heads,
    headDim: c.hidden_size / c.num_attention_heads, vocab: c.vocab_size, eps: c.rms_norm_eps ?? 1e-6, act: c.hidden_act ?? 'silu',
    normHead: c.vocab_size === 125696 || c.z_loss_weight !== undefined,
  };
}

const who = 'baichuan';

export function baichuanRefEmbed(c: BaichuanRefConfig, w: Weights, ids: number[]): Float64Array {
  const E = c.hidden, table = tensor(w, 'model.embed_tokens.weight', c.vocab * E, who);
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = table[id * E + i]!; });
  return x;
}

export function baichuanRefLayer(c: BaichuanRefConfig, w: Weights, layer: number, x: Float64Array, seq: number): Float64Array {
  const { hidden: E, heads: nh, headDim: d, inter: I } = c;
  const p = `model.layers.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, who);
  const lin = (v: Float64Array, name: string, inF: number, outF: number) => linear(v, seq, inF, outF, t(`${name}.weight`, inF * outF));
  const n1 = rmsNorm(x, seq, E, t('input_layernorm.weight', E), c.eps, 0);
  const pack = lin(n1, 'self_attn.W_pack', E, 3 * E);
  const q = new Float64Array(seq * E), k = new Float64Array(seq * E), v = new Float64Array(seq * E);
  for (let s = 0; s < seq; s++) for (let i = 0; i < E; i++) {
    q[s * E + i] = pack[s * 3 * E + i]!; k[s * E + i] = pack[s * 3 * E + E + i]!; v[s * E + i] = pack[s * 3 * E + 2 * E + i]!;
  }
  const pos = positionsFromMask(seq);
  rotate(q, seq, nh, d, pos, 10000);
  rotate(k, seq, nh, d, pos, 10000);
  const x2 = add(x, lin(causalAttention(q, k, v, seq, nh, nh, d, d ** -0.5), 'self_attn.o_proj', E, E));
  const n2 = rmsNorm(x2, seq, E, t('post_attention_layernorm.weight', E), c.eps, 0);
  const gate = lin(n2, 'mlp.gate_proj', E, I), up = lin(n2, 'mlp.up_proj', E, I);
  for (let i = 0; i < gate.length; i++) gate[i] = act(c.act, gate[i]!) * up[i]!;
  return add(x2, lin(gate, 'mlp.down_proj', I, E));
}

export function baichuanRefForward(c: BaichuanRefConfig, w: Weights, ids: number[]): Float64Array[] {
  const E = c.hidden, V = c.vocab, seq = ids.length;
  let h = baichuanRefEmbed(c, w, ids);
  for (let l = 0; l < c.layers; l++) h = baichuanRefLayer(c, w, l, h, seq);
  const n = rmsNorm(h, seq, E, tensor(w, 'model.norm.weight', E, who), c.eps, 0);
  const W = tensor(w, 'lm_head.weight', V * E, who);
  if (!c.normHead) return logitsRows(n, seq, E, V, W);
  const rows = logitsRows(n, seq, E, V, W); // x·W_rᵀ / ‖W_r‖ = x·(W_r / ‖W_r‖)ᵀ

  for (let o = 0; o < V; o++) {
    let ss = 0;
    for (let i = 0; i < E; i++) ss += W[o * E + i]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (const r of rows) r[o]! *= inv;
  }
  return rows;
}
