/**
 * Tiny synthetic OPT checkpoints in the real HF layout: config.json with OPTForCausalLM's field names, tensors named
 * and shaped as in its state dict (nn.Linear [out, in]), deterministic random values.
 */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, linearWeight, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface OptOpts {
  hidden?: number; layers?: number; heads?: number; ffn?: number; vocab?: number; maxPos?: number;
  /** word_embed_proj_dim (≠ hidden → project_in / project_out, like opt-350m) */
  projDim?: number;
  /** do_layer_norm_before (false: post-LN, like opt-350m) */
  layerNormBefore?: boolean;
  enableBias?: boolean;
  elementwiseAffine?: boolean;
  activation?: string;
  seed?: number;
  /** Store names without `model.` (checkpoints saved from OPTModel). */
  basePrefixless?: boolean;
  storeLmHead?: boolean;
}

/** config.json of an OPTForCausalLM (facebook/opt-* field set). */
export function optConfig(o: OptOpts = {}): Record<string, any> {
  const hidden = o.hidden ?? 32;
  return sortKeys({
    _name_or_path: 'facebook/opt-tiny',
    _remove_final_layer_norm: false,
    activation_dropout: 0.0,
    activation_function: o.activation ?? 'relu',
    architectures: ['OPTForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 2,
    do_layer_norm_before: o.layerNormBefore ?? true,
    dropout: 0.1,
    enable_bias: o.enableBias ?? true,
    eos_token_id: 2,
    ffn_dim: o.ffn ?? 4 * hidden,
    hidden_size: hidden,
    init_std: 0.02,
    layer_norm_elementwise_affine: o.elementwiseAffine ?? true,
    layerdrop: 0.0,
    max_position_embeddings: o.maxPos ?? 64,
    model_type: 'opt',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    pad_token_id: 1,
    prefix: '</s>',
    torch_dtype: 'float32',
    transformers_version: '4.21.0.dev0',
    use_cache: true,
    vocab_size: o.vocab ?? 96,
    word_embed_proj_dim: o.projDim ?? hidden,
  });
}

export function optTensors(o: OptOpts = {}): Record<string, Tensor> {
  const c = optConfig(o);
  const E = c.hidden_size, F = c.ffn_dim, V = c.vocab_size, P = c.word_embed_proj_dim;
  const rand = sampler(o.seed ?? 1);
  const lin = (outF: number, inF: number) => linearWeight(rand, outF, inF); // nn.Linear [out, in]
  const d = o.basePrefixless ? 'decoder.' : 'model.decoder.';
  const t: Record<string, Tensor> = {
    [`${d}embed_tokens.weight`]: rand([V, P], 1),
    [`${d}embed_positions.weight`]: rand([c.max_position_embeddings + 2, E], 0.5),
  };
  if (P !== E) {
    t[`${d}project_in.weight`] = lin(E, P);
    t[`${d}project_out.weight`] = lin(P, E);
  }
  const ln = (name: string) => { if (c.layer_norm_elementwise_affine) addNorm(t, rand, name, E, true); };
  const linear = (name: string, outF: number, inF: number) => addLinear(t, rand, name, outF, inF, c.enable_bias);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `${d}layers.${i}.`;
    linear(p + 'self_attn.k_proj', E, E);
    linear(p + 'self_attn.v_proj', E, E);
    linear(p + 'self_attn.q_proj', E, E);
    linear(p + 'self_attn.out_proj', E, E);
    ln(p + 'self_attn_layer_norm');
    linear(p + 'fc1', F, E);
    linear(p + 'fc2', E, F);
    ln(p + 'final_layer_norm');
  }
  if (c.do_layer_norm_before) ln(`${d}final_layer_norm`);
  if (o.storeLmHead) t['lm_head.weight'] = t[`${d}embed_tokens.weight`]!;
  return t;
}

/** Write an OPT checkpoint (defaults: hidden 32, ffn 128, 2 layers, 4 heads, vocab 96, 64 positions). */
export async function makeOptCheckpoint(dir: string, o: OptOpts = {}): Promise<void> {
  await writeCheckpoint(dir, optConfig(o), optTensors(o));
}
