/**
 * Tiny synthetic BLOOM, Falcon and Gemma checkpoints in the real HF layout: config.json with the field names the
 * hub configs use (bigscience/bloom-560m, tiiuae/falcon-7b / falcon-40b / falcon-11B, google/gemma-2b), tensors
 * named and shaped as in BloomForCausalLM / FalconForCausalLM / GemmaForCausalLM state dicts (nn.Linear
 * [out, in]), deterministic random values. Sizes keep every linear packable at group size 32.
 */
import { type Tensor } from '../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint } from './synth.ts';

// ------------------------------------------------------------------------------------------------ BLOOM

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

// ------------------------------------------------------------------------------------------------ Falcon

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

// ------------------------------------------------------------------------------------------------ Gemma

export interface GemmaOpts {
  hidden?: number; intermediate?: number; layers?: number; heads?: number; kvHeads?: number; headDim?: number;
  vocab?: number; seed?: number;
  /** config.json hidden_act (google/gemma-2b: "gelu") and hidden_activation (null = absent). */
  hiddenAct?: string; hiddenActivation?: string | null;
  attentionBias?: boolean; storeLmHead?: boolean; ropeTheta?: number;
}

/** GemmaConfig as saved for google/gemma-2b (head_dim 256 ≠ hidden/heads, one kv head). */
export function gemmaConfig(o: GemmaOpts = {}): Record<string, any> {
  const c: Record<string, any> = {
    architectures: ['GemmaForCausalLM'],
    attention_bias: o.attentionBias ?? false,
    attention_dropout: 0.0,
    bos_token_id: 2,
    eos_token_id: 1,
    head_dim: o.headDim ?? 32,
    hidden_act: o.hiddenAct ?? 'gelu',
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    intermediate_size: o.intermediate ?? 128,
    max_position_embeddings: 8192,
    model_type: 'gemma',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    num_key_value_heads: o.kvHeads ?? 1,
    pad_token_id: 0,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: o.ropeTheta ?? 10000.0,
    torch_dtype: 'float32',
    transformers_version: '4.38.0.dev0',
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  };
  const ha = o.hiddenActivation === undefined ? 'gelu_pytorch_tanh' : o.hiddenActivation;
  if (ha !== null) c.hidden_activation = ha;
  return sortKeys(c);
}

export function gemmaTensors(o: GemmaOpts = {}): Record<string, Tensor> {
  const c = gemmaConfig(o);
  const E = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = c.head_dim;
  const q = c.num_attention_heads * d, kvd = c.num_key_value_heads * d;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'model.embed_tokens.weight': rand([V, E], 0.2) };
  const linear = (name: string, outF: number, inF: number, bias: boolean) => addLinear(t, rand, name, outF, inF, bias);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    t[p + 'input_layernorm.weight'] = rand([E], 0.1); // GemmaRMSNorm weights are centred on 0 (scale 1 + w)
    linear(p + 'self_attn.q_proj', q, E, c.attention_bias);
    linear(p + 'self_attn.k_proj', kvd, E, c.attention_bias);
    linear(p + 'self_attn.v_proj', kvd, E, c.attention_bias);
    linear(p + 'self_attn.o_proj', E, q, c.attention_bias);
    t[p + 'post_attention_layernorm.weight'] = rand([E], 0.1);
    linear(p + 'mlp.gate_proj', I, E, false);
    linear(p + 'mlp.up_proj', I, E, false);
    linear(p + 'mlp.down_proj', E, I, false);
  }
  t['model.norm.weight'] = rand([E], 0.1);
  if (o.storeLmHead) t['lm_head.weight'] = t['model.embed_tokens.weight']!;
  return t;
}

/** Write a Gemma checkpoint (defaults: hidden 64, head_dim 32, 4 heads / 1 kv head, inter 128, 2 layers, vocab 96). */
export async function makeGemmaCheckpoint(dir: string, o: GemmaOpts = {}): Promise<void> {
  await writeCheckpoint(dir, gemmaConfig(o), gemmaTensors(o));
}
