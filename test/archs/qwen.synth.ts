/** Tiny synthetic Qwen (v1) checkpoints in the remote-code layout (QWenLMHeadModel state dict), deterministic values. */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface QwenOpts { hidden?: number; layers?: number; heads?: number; inter?: number; vocab?: number; seed?: number; seqLength?: number; noBias?: boolean }

export async function makeQwenCheckpoint(dir: string, o: QwenOpts = {}): Promise<void> {
  const E = o.hidden ?? 64, V = o.vocab ?? 96, L = o.layers ?? 2, H = o.heads ?? 4, I = o.inter ?? 128, b = o.noBias === false;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'transformer.wte.weight': rand([V, E], 1) };
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}.`;
    addNorm(t, rand, p + 'ln_1', E, false);
    addLinear(t, rand, p + 'attn.c_attn', 3 * E, E, true);
    addLinear(t, rand, p + 'attn.c_proj', E, E, b);
    addNorm(t, rand, p + 'ln_2', E, false);
    addLinear(t, rand, p + 'mlp.w1', I / 2, E, b);
    addLinear(t, rand, p + 'mlp.w2', I / 2, E, b);
    addLinear(t, rand, p + 'mlp.c_proj', E, I / 2, b);
  }
  addNorm(t, rand, 'transformer.ln_f', E, false);
  addLinear(t, rand, 'lm_head', V, E, false);
  await writeCheckpoint(dir, sortKeys({
    architectures: ['QWenLMHeadModel'], model_type: 'qwen', hidden_size: E, num_attention_heads: H, num_hidden_layers: L,
    kv_channels: E / H, intermediate_size: I, vocab_size: V, seq_length: o.seqLength ?? 2048, max_position_embeddings: 8192,
    layer_norm_epsilon: 1e-6, rotary_emb_base: 10000, rotary_pct: 1.0, use_dynamic_ntk: true, use_logn_attn: true,
    no_bias: !b, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  }), t);
}
