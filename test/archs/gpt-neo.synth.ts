/** Tiny synthetic GPT-Neo checkpoints in the HF layout (GPTNeoForCausalLM state dict), deterministic values. */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface GptNeoOpts { hidden?: number; layers?: number; heads?: number; inter?: number; vocab?: number; seed?: number; window?: number; types?: [string[], number][] }

export async function makeGptNeoCheckpoint(dir: string, o: GptNeoOpts = {}): Promise<void> {
  const E = o.hidden ?? 64, V = o.vocab ?? 96, L = o.layers ?? 2, I = o.inter ?? 128;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'transformer.wte.weight': rand([V, E], 1), 'transformer.wpe.weight': rand([64, E], 0.1) };
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}.`;
    addNorm(t, rand, p + 'ln_1', E, true);
    for (const x of ['q', 'k', 'v']) addLinear(t, rand, `${p}attn.attention.${x}_proj`, E, E, false);
    addLinear(t, rand, p + 'attn.attention.out_proj', E, E, true);
    addNorm(t, rand, p + 'ln_2', E, true);
    addLinear(t, rand, p + 'mlp.c_fc', I, E, true);
    addLinear(t, rand, p + 'mlp.c_proj', E, I, true);
  }
  addNorm(t, rand, 'transformer.ln_f', E, true);
  await writeCheckpoint(dir, sortKeys({
    architectures: ['GPTNeoForCausalLM'], model_type: 'gpt_neo', hidden_size: E, num_heads: o.heads ?? 4, num_layers: L, intermediate_size: I,
    vocab_size: V, max_position_embeddings: 64, window_size: o.window ?? 3, attention_types: o.types ?? [[['global', 'local'], L / 2]],
    activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  }), t);
}
