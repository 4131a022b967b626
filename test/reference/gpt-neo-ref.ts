/**
 * Independent float64 reference forward for GPT-Neo (GPTNeoForCausalLM, transformers modeling_gpt_neo.py).
 * TEST ORACLE ONLY.
 *
 *  - h = wte[id] + wpe[position] (positions from the mask's cumsum as HF generate makes them)
 *  - block: a = ln_1(h); q, k, v = a·W{q,k,v}ᵀ (no bias); score = q·k (NO 1/√d); key j visible to query i iff j ≤ i,
 *    mask[j] = 1 and, in a "local" layer, pos_i − pos_j < window_size; h1 = h + out_proj(attn) (biased);
 *    h2 = h1 + c_proj(act(c_fc(ln_2(h1)))) (nn.Linear, biased)
 *  - layer kinds: attention_types [[kinds, n], …] expanded (default [[["global","local"], 12]])
 *  - logits = ln_f(h) · wteᵀ (lm_head.weight when stored).
 */
import { act, add, layerNorm, linear, logitsRows, positionsFromMask, tensor, type Weights } from './ref-math.ts';

export interface GptNeoRefConfig { hidden: number; layers: number; heads: number; vocab: number; inter: number; eps: number; act: string; window: number; kinds: string[]; maxPos: number }

export function gptNeoRefConfig(c: any): GptNeoRefConfig {
  const kinds: string[] = [];
  for (const [ks, n] of c.attention_types ?? [[['global', 'local'], 12]]) for (let i = 0; i < n; i++) kinds.push(...ks);
  return {
    hidden: c.hidden_size, layers: c.num_layers, heads: c.num_heads, vocab: c.vocab_size, inter: c.intermediate_size ?? 4 * c.hidden_size,
    eps: c.layer_norm_epsilon ?? 1e-5, act: c.activation_function ?? 'gelu_new', window: c.window_size ?? 256, kinds, maxPos: c.max_position_embeddings ?? 2048,
  };
}

export function gptNeoRefEmbed(c: GptNeoRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array {
  const E = c.hidden, pos = positionsFromMask(ids.length, mask);
  const wte = tensor(w, 'transformer.wte.weight', c.vocab * E, 'gpt_neo'), wpe = tensor(w, 'transformer.wpe.weight', c.maxPos * E, 'gpt_neo');
  const x = new Float64Array(ids.length * E);
  ids.forEach((id, s) => { for (let i = 0; i < E; i++) x[s * E + i] = wte[id * E + i]! + wpe[pos[s]! * E + i]!; });
  return x;
}

export function gptNeoRefBlock(c: GptNeoRefConfig, w: Weights, layer: number, h: Float64Array, seq: number, mask?: number[]): Float64Array {
  const E = c.hidden, nh = c.heads, d = E / nh, pos = positionsFromMask(seq, mask);
  const p = `transformer.h.${layer}.`;
  const t = (n: string, size: number) => tensor(w, p + n, size, 'gpt_neo');
  const a = layerNorm(h, seq, E, t('ln_1.weight', E), t('ln_1.bias', E), c.eps);
  const [q, k, v] = ['q', 'k', 'v'].map((x) => linear(a, seq, E, E, t(`attn.attention.${x}_proj.weight`, E * E)));
  const local = c.kinds[layer] === 'local';
  const attn = new Float64Array(seq * E);
  for (let hd = 0; hd < nh; hd++) for (let i = 0; i < seq; i++) {
    const vis = (j: number) => j <= i && (!mask || mask[j] === 1) && (!local || pos[i]! - pos[j]! < c.window);
    const sc = new Float64Array(seq);
    let max = -Infinity;
    for (let j = 0; j <= i; j++) if (vis(j)) {
      let dot = 0;
      for (let e = 0; e < d; e++) dot += q![i * E + hd * d + e]! * k![j * E + hd * d + e]!;
      sc[j] = dot; max = Math.max(max, dot);
    }
    let sum = 0;
    for (let j = 0; j <= i; j++) if (vis(j)) { sc[j] = Math.exp(sc[j]! - max); sum += sc[j]!; }
    if (sum === 0) continue;
    for (let e = 0; e < d; e++) {
      let acc = 0;
      for (let j = 0; j <= i; j++) if (vis(j)) acc += (sc[j]! / sum) * v![j * E + hd * d + e]!;
      attn[i * E + hd * d + e] = acc;
    }
  }
  const h1 = add(h, linear(attn, seq, E, E, t('attn.attention.out_proj.weight', E * E), t('attn.attention.out_proj.bias', E)));
  const up = linear(layerNorm(h1, seq, E, t('ln_2.weight', E), t('ln_2.bias', E), c.eps), seq, E, c.inter, t('mlp.c_fc.weight', c.inter * E), t('mlp.c_fc.bias', c.inter));
  for (let i = 0; i < up.length; i++) up[i] = act(c.act, up[i]!);
  return add(h1, linear(up, seq, c.inter, E, t('mlp.c_proj.weight', E * c.inter), t('mlp.c_proj.bias', E)));
}

export function gptNeoRefForward(c: GptNeoRefConfig, w: Weights, ids: number[], mask?: number[]): Float64Array[] {
  const E = c.hidden, seq = ids.length;
  let h = gptNeoRefEmbed(c, w, ids, mask);
  for (let l = 0; l < c.layers; l++) h = gptNeoRefBlock(c, w, l, h, seq, mask);
  const n = layerNorm(h, seq, E, tensor(w, 'transformer.ln_f.weight', E, 'gpt_neo'), tensor(w, 'transformer.ln_f.bias', E, 'gpt_neo'), c.eps);
  return logitsRows(n, seq, E, c.vocab, w('lm_head.weight') ?? tensor(w, 'transformer.wte.weight', c.vocab * E, 'gpt_neo'));
}
