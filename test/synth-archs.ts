/**
 * Tiny synthetic GPT-2 and OPT checkpoints in the real HF layout: config.json with the field names
 * transformers writes for GPT2LMHeadModel / OPTForCausalLM, tensors named and shaped as in their state dicts
 * (GPT-2 Conv1D weights [in, out], OPT nn.Linear weights [out, in]), deterministic random values.
 */
import { f32Tensor, type Tensor } from '../src/tensor.ts';
import { addLinear, addNorm, linearWeight, sampler, sortKeys, writeCheckpoint } from './synth.ts';

// ------------------------------------------------------------------------------------------------ GPT-2

export interface Gpt2Opts {
  hidden?: number; layers?: number; heads?: number; vocab?: number; positions?: number;
  /** n_inner (null → 4·n_embd) */
  inner?: number | null;
  activation?: string;
  scaleAttnWeights?: boolean;
  scaleByInverseLayerIdx?: boolean;
  seed?: number;
  /** Store names without `transformer.` and with the `attn.bias` causal buffers (like openai-community/gpt2). */
  basePrefixless?: boolean;
  /** Also store `lm_head.weight` (a copy of wte, as some GPT2LMHeadModel saves do). */
  storeLmHead?: boolean;
}

/** config.json of a GPT2LMHeadModel (transformers 4.x field set). */
export function gpt2Config(o: Gpt2Opts = {}): Record<string, any> {
  return sortKeys({
    activation_function: o.activation ?? 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0.1,
    bos_token_id: 50256 % (o.vocab ?? 96),
    embd_pdrop: 0.1,
    eos_token_id: 50256 % (o.vocab ?? 96),
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gpt2',
    n_ctx: o.positions ?? 64,
    n_embd: o.hidden ?? 32,
    n_head: o.heads ?? 4,
    n_inner: o.inner ?? null,
    n_layer: o.layers ?? 2,
    n_positions: o.positions ?? 64,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0.1,
    scale_attn_by_inverse_layer_idx: o.scaleByInverseLayerIdx ?? false,
    scale_attn_weights: o.scaleAttnWeights ?? true,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    torch_dtype: 'float32',
    transformers_version: '4.46.2',
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  });
}

export function gpt2Tensors(o: Gpt2Opts = {}): Record<string, Tensor> {
  const c = gpt2Config(o);
  const E = c.n_embd, I = c.n_inner ?? 4 * E, V = c.vocab_size, P = c.n_positions;
  const rand = sampler(o.seed ?? 1);
  const conv = (inF: number, outF: number) => rand([inF, outF], 1 / Math.sqrt(inF)); // Conv1D [in, out]
  const pre = o.basePrefixless ? '' : 'transformer.';
  const t: Record<string, Tensor> = {
    [`${pre}wte.weight`]: rand([V, E], 1),
    [`${pre}wpe.weight`]: rand([P, E], 0.5),
  };
  for (let i = 0; i < c.n_layer; i++) {
    const p = `${pre}h.${i}.`;
    addNorm(t, rand, p + 'ln_1', E, true);
    t[p + 'attn.c_attn.weight'] = conv(E, 3 * E);
    t[p + 'attn.c_attn.bias'] = rand([3 * E], 0.1);
    t[p + 'attn.c_proj.weight'] = conv(E, E);
    t[p + 'attn.c_proj.bias'] = rand([E], 0.1);
    addNorm(t, rand, p + 'ln_2', E, true);
    t[p + 'mlp.c_fc.weight'] = conv(E, I);
    t[p + 'mlp.c_fc.bias'] = rand([I], 0.1);
    t[p + 'mlp.c_proj.weight'] = conv(I, E);
    t[p + 'mlp.c_proj.bias'] = rand([E], 0.1);
    if (o.basePrefixless) {
      const tril = new Float32Array(P * P);
      for (let r = 0; r < P; r++) for (let k = 0; k <= r; k++) tril[r * P + k] = 1;
      t[p + 'attn.bias'] = f32Tensor([1, 1, P, P], tril);
    }
  }
  addNorm(t, rand, `${pre}ln_f`, E, true);
  if (o.storeLmHead) t['lm_head.weight'] = t[`${pre}wte.weight`]!;
  return t;
}

/** Write a GPT-2 checkpoint (defaults: n_embd 32, 2 layers, 4 heads, vocab 96, n_positions 64). */
export async function makeGpt2Checkpoint(dir: string, o: Gpt2Opts = {}): Promise<void> {
  await writeCheckpoint(dir, gpt2Config(o), gpt2Tensors(o));
}

// ------------------------------------------------------------------------------------------------ OPT

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
