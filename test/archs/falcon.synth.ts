/**
 * Tiny synthetic Falcon checkpoints in the real HF layout (tiiuae/falcon-7b / falcon-40b / falcon-11B field names;
 * FalconForCausalLM state dict, nn.Linear [out, in]), deterministic random values. Sizes keep every linear packable at
 * group size 32.
 */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface FalconOpts {
  hidden?: number; layers?: number; heads?: number; vocab?: number; seed?: number;
  newArch?: boolean; kvHeads?: number; multiQuery?: boolean; parallelAttn?: boolean; bias?: boolean;
  numLnInParallelAttn?: number; ffn?: number; activation?: string; ropeTheta?: number; maxPos?: number;
}

/** FalconConfig as saved for tiiuae/falcon-7b (multi-query) / falcon-40b (new_decoder_architecture) / falcon-11B. */
export function falconConfig(o: FalconOpts = {}): Record<string, any> {
  const c: Record<string, any> = {
    alibi: false,
    apply_residual_connection_post_layernorm: false,
    architectures: ['FalconForCausalLM'],
    attention_dropout: 0.0,
    bias: o.bias ?? false,
    bos_token_id: 11,
    eos_token_id: 11,
    hidden_dropout: 0.0,
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'falcon',
    multi_query: o.multiQuery ?? true,
    new_decoder_architecture: o.newArch ?? false,
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    parallel_attn: o.parallelAttn ?? true,
    torch_dtype: 'float32',
    transformers_version: '4.27.4',
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  };
  if (o.newArch) c.num_kv_heads = o.kvHeads ?? 2;
  if (o.numLnInParallelAttn !== undefined) c.num_ln_in_parallel_attn = o.numLnInParallelAttn;
  if (o.ffn !== undefined) c.ffn_hidden_size = o.ffn;
  if (o.activation !== undefined) c.activation = o.activation;
  if (o.ropeTheta !== undefined) c.rope_theta = o.ropeTheta;
  if (o.maxPos !== undefined) c.max_position_embeddings = o.maxPos;
  return sortKeys(c);
}

export function falconTensors(o: FalconOpts = {}): Record<string, Tensor> {
  const c = falconConfig(o);
  const E = c.hidden_size, nh = c.num_attention_heads, d = E / nh, V = c.vocab_size, F = c.ffn_hidden_size ?? 4 * E;
  const newArch = c.new_decoder_architecture, kv = newArch ? c.num_kv_heads : c.multi_query ? 1 : nh;
  const qkvOut = newArch ? (2 * kv + nh) * d : c.multi_query ? E + 2 * d : 3 * E;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'transformer.word_embeddings.weight': rand([V, E], 1) };
  const ln = (name: string) => addNorm(t, rand, name, E, true);
  const linear = (name: string, outF: number, inF: number) => addLinear(t, rand, name, outF, inF, c.bias);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `transformer.h.${i}.`;
    if (newArch && (c.num_ln_in_parallel_attn ?? 2) === 2) { ln(p + 'ln_attn'); ln(p + 'ln_mlp'); } else ln(p + 'input_layernorm');
    if (!newArch && !c.parallel_attn) ln(p + 'post_attention_layernorm');
    linear(p + 'self_attention.query_key_value', qkvOut, E);
    linear(p + 'self_attention.dense', E, E);
    linear(p + 'mlp.dense_h_to_4h', F, E);
    linear(p + 'mlp.dense_4h_to_h', E, F);
  }
  ln('transformer.ln_f');
  return t;
}

export async function makeFalconCheckpoint(dir: string, o: FalconOpts = {}): Promise<void> {
  await writeCheckpoint(dir, falconConfig(o), falconTensors(o));
}
