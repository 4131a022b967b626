/**
 * Tiny synthetic MPT checkpoints in the HF layout (MptForCausalLM state dict, mosaicml/mpt-7b config field names),
 * deterministic random values.
 */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface MptOpts { hidden?: number; layers?: number; heads?: number; vocab?: number; seed?: number; clip?: number | null; scale?: number | null; biasMax?: number }

export function mptConfig(o: MptOpts = {}): Record<string, any> {
  return sortKeys({
    architectures: ['MptForCausalLM'], model_type: 'mpt', d_model: o.hidden ?? 64, n_heads: o.heads ?? 4, n_layers: o.layers ?? 2,
    max_seq_len: 128, vocab_size: o.vocab ?? 96, expansion_ratio: 4, no_bias: true, layer_norm_epsilon: 1e-5, learned_pos_emb: true,
    norm_type: 'low_precision_layernorm', logit_scale: null, tie_word_embeddings: true, use_cache: false,
    attn_config: { alibi: true, alibi_bias_max: o.biasMax ?? 8, attn_type: 'multihead_attention', clip_qkv: o.clip ?? null, qk_ln: false, softmax_scale: o.scale ?? null, prefix_lm: false },
  });
}

export async function makeMptCheckpoint(dir: string, o: MptOpts = {}): Promise<void> {
  const E = o.hidden ?? 64, V = o.vocab ?? 96, L = o.layers ?? 2;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'transformer.wte.weight': rand([V, E], 1) };
  for (let i = 0; i < L; i++) {
    const p = `transformer.blocks.${i}.`;
    addNorm(t, rand, p + 'norm_1', E, false);
    addLinear(t, rand, p + 'attn.Wqkv', 3 * E, E, false);
    addLinear(t, rand, p + 'attn.out_proj', E, E, false);
    addNorm(t, rand, p + 'norm_2', E, false);
    addLinear(t, rand, p + 'ffn.up_proj', 4 * E, E, false);
    addLinear(t, rand, p + 'ffn.down_proj', E, 4 * E, false);
  }
  addNorm(t, rand, 'transformer.norm_f', E, false);
  await writeCheckpoint(dir, mptConfig(o), t);
}
