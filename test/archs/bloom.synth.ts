/**
 * Tiny synthetic BLOOM checkpoints in the real HF layout (bigscience/bloom-560m field names; BloomForCausalLM state
 * dict, nn.Linear [out, in]), deterministic random values. Sizes keep every linear packable at group size 32.
 */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface BloomOpts {
  hidden?: number; layers?: number; heads?: number; vocab?: number; seed?: number;
  postLnResidual?: boolean;
  /** bigscience/bloom-560m style: `n_embed` instead of hidden_size, tensors without `transformer.` (saved from BloomModel). */
  legacy?: boolean;
  storeLmHead?: boolean;
}

export function bloomConfig(o: BloomOpts = {}): Record<string, any> {
  const c: Record<string, any> = {
    apply_residual_connection_post_layernorm: o.postLnResidual ?? false,
    architectures: ['BloomForCausalLM'],
    attention_dropout: 0.0,
    attention_softmax_in_fp32: true,
    bias_dropout_fusion: true,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_dropout: 0.0,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    masked_softmax_fusion: true,
    model_type: 'bloom',
    n_head: o.heads ?? 4,
    n_inner: null,
    n_layer: o.layers ?? 2,
    offset_alibi: 100,
    pad_token_id: 3,
    pretraining_tp: 1,
    skip_bias_add: true,
    skip_bias_add_qkv: false,
    slow_but_exact: false,
    torch_dtype: 'float32',
    transformers_version: o.legacy ? '4.21.0.dev0' : '4.46.2',
    unk_token_id: 0,
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  };
  if (o.legacy) c.n_embed = o.hidden ?? 64;
  else c.hidden_size = o.hidden ?? 64;
  return sortKeys(c);
}

export function bloomTensors(o: BloomOpts = {}): Record<string, Tensor> {
  const E = o.hidden ?? 64, V = o.vocab ?? 96, L = o.layers ?? 2;
  const rand = sampler(o.seed ?? 1);
  const pre = o.legacy ? '' : 'transformer.';
  const t: Record<string, Tensor> = { [`${pre}word_embeddings.weight`]: rand([V, E], 1) };
  addNorm(t, rand, `${pre}word_embeddings_layernorm`, E, true);
  for (let i = 0; i < L; i++) {
    const p = `${pre}h.${i}.`;
    addNorm(t, rand, p + 'input_layernorm', E, true);
    addLinear(t, rand, p + 'self_attention.query_key_value', 3 * E, E, true);
    addLinear(t, rand, p + 'self_attention.dense', E, E, true);
    addNorm(t, rand, p + 'post_attention_layernorm', E, true);
    addLinear(t, rand, p + 'mlp.dense_h_to_4h', 4 * E, E, true);
    addLinear(t, rand, p + 'mlp.dense_4h_to_h', E, 4 * E, true);
  }
  addNorm(t, rand, `${pre}ln_f`, E, true);
  if (o.storeLmHead) t['lm_head.weight'] = t[`${pre}word_embeddings.weight`]!;
  return t;
}

/** Write a BLOOM checkpoint (defaults: hidden 64, 2 layers, 4 heads, vocab 96). */
export async function makeBloomCheckpoint(dir: string, o: BloomOpts = {}): Promise<void> {
  await writeCheckpoint(dir, bloomConfig(o), bloomTensors(o));
}
