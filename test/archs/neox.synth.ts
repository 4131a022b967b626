/**
 * Tiny synthetic GPT-NeoX, GPT-J and Phi checkpoints in the real HF layout: config.json with the field names
 * transformers writes for GPTNeoXForCausalLM (Pythia), GPTJForCausalLM (gpt-j-6b) and PhiForCausalLM (phi-2),
 * tensors named and shaped as in their state dicts (nn.Linear weights [out, in]), deterministic random values.
 * Defaults (hidden 64, 4 heads, intermediate 128) keep every linear packable at group size 32.
 */
import { f32Tensor, type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, linearWeight, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface NeoxOpts {
  hidden?: number; layers?: number; heads?: number; inter?: number; vocab?: number; maxPos?: number;
  rotaryPct?: number; rotaryBase?: number; parallelResidual?: boolean; attentionBias?: boolean; act?: string;
  tie?: boolean; seed?: number;
  /** Also store the non-persistent buffers old Pythia checkpoints carry (attention.masked_bias, rotary_emb.inv_freq). */
  legacyBuffers?: boolean;
}

/** config.json of a GPTNeoXForCausalLM (EleutherAI/pythia-* field set). */
export function neoxConfig(o: NeoxOpts = {}): Record<string, any> {
  const c: Record<string, any> = {
    architectures: ['GPTNeoXForCausalLM'],
    attention_bias: o.attentionBias ?? true,
    attention_dropout: 0.0,
    bos_token_id: 0,
    classifier_dropout: 0.1,
    eos_token_id: 0,
    hidden_act: o.act ?? 'gelu',
    hidden_dropout: 0.0,
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    intermediate_size: o.inter ?? 128,
    layer_norm_eps: 1e-5,
    max_position_embeddings: o.maxPos ?? 64,
    model_type: 'gpt_neox',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    rope_scaling: null,
    rotary_emb_base: o.rotaryBase ?? 10000,
    rotary_pct: o.rotaryPct ?? 0.25,
    tie_word_embeddings: o.tie ?? false,
    torch_dtype: 'float32',
    transformers_version: '4.46.2',
    use_cache: true,
    use_parallel_residual: o.parallelResidual ?? true,
    vocab_size: o.vocab ?? 96,
  };
  return sortKeys(c);
}

export function neoxTensors(o: NeoxOpts = {}): Record<string, Tensor> {
  const c = neoxConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = H / c.num_attention_heads;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'gpt_neox.embed_in.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `gpt_neox.layers.${i}.`;
    addNorm(t, rand, `${p}input_layernorm`, H, true);
    addNorm(t, rand, `${p}post_attention_layernorm`, H, true);
    addLinear(t, rand, `${p}attention.query_key_value`, 3 * H, H, c.attention_bias);
    addLinear(t, rand, `${p}attention.dense`, H, H, c.attention_bias);
    addLinear(t, rand, `${p}mlp.dense_h_to_4h`, I, H, true);
    addLinear(t, rand, `${p}mlp.dense_4h_to_h`, H, I, true);
    if (o.legacyBuffers) {
      const r = Math.floor(d * c.rotary_pct);
      t[`${p}attention.masked_bias`] = f32Tensor([], Float32Array.of(-1e9));
      t[`${p}attention.rotary_emb.inv_freq`] = f32Tensor([r / 2], Float32Array.from({ length: r / 2 }, (_, j) => 1 / c.rotary_emb_base ** ((2 * j) / r)));
    }
  }
  addNorm(t, rand, 'gpt_neox.final_layer_norm', H, true);
  if (!c.tie_word_embeddings) t['embed_out.weight'] = linearWeight(rand, V, H);
  return t;
}

/** Write a GPT-NeoX checkpoint (defaults: hidden 64, 4 heads, inter 128, 2 layers, vocab 96, rotary_pct 0.25, parallel). */
export async function makeNeoxCheckpoint(dir: string, o: NeoxOpts = {}): Promise<void> {
  await writeCheckpoint(dir, neoxConfig(o), neoxTensors(o));
}

export interface GptjOpts {
  hidden?: number; layers?: number; heads?: number; inner?: number | null; vocab?: number; positions?: number;
  /** rotary_dim (default 8 of head_dim 16); undefined key → omitted from config.json when `omitRotaryDim`. */
  rotaryDim?: number | null; omitRotaryDim?: boolean;
  act?: string; seed?: number;
}

/** config.json of a GPTJForCausalLM (EleutherAI/gpt-j-6b field set). */
export function gptjConfig(o: GptjOpts = {}): Record<string, any> {
  const vocab = o.vocab ?? 96;
  const c: Record<string, any> = {
    activation_function: o.act ?? 'gelu_new',
    architectures: ['GPTJForCausalLM'],
    attn_pdrop: 0.0,
    bos_token_id: 50256 % vocab,
    embd_pdrop: 0.0,
    eos_token_id: 50256 % vocab,
    gradient_checkpointing: false,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gptj',
    n_embd: o.hidden ?? 64,
    n_head: o.heads ?? 4,
    n_inner: o.inner ?? null,
    n_layer: o.layers ?? 2,
    n_positions: o.positions ?? 64,
    resid_pdrop: 0.0,
    rotary: true,
    rotary_dim: o.rotaryDim === undefined ? 8 : o.rotaryDim,
    scale_attn_weights: true,
    tie_word_embeddings: false,
    tokenizer_class: 'GPT2Tokenizer',
    torch_dtype: 'float32',
    transformers_version: '4.46.2',
    use_cache: true,
    vocab_size: vocab,
  };
  if (o.omitRotaryDim) delete c.rotary_dim;
  return sortKeys(c);
}

export function gptjTensors(o: GptjOpts = {}): Record<string, Tensor> {
  const c = gptjConfig(o);
  const H = c.n_embd, I = c.n_inner ?? 4 * H, V = c.vocab_size;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'transformer.wte.weight': rand([V, H], 1) };
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    addNorm(t, rand, `${p}ln_1`, H, true);
    for (const n of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) addLinear(t, rand, `${p}attn.${n}`, H, H, false);
    addLinear(t, rand, `${p}mlp.fc_in`, I, H, true);
    addLinear(t, rand, `${p}mlp.fc_out`, H, I, true);
  }
  addNorm(t, rand, 'transformer.ln_f', H, true);
  addLinear(t, rand, 'lm_head', V, H, true);
  return t;
}

/** Write a GPT-J checkpoint (defaults: n_embd 64, 4 heads, rotary_dim 8, n_inner null → 256, 2 layers, vocab 96). */
export async function makeGptjCheckpoint(dir: string, o: GptjOpts = {}): Promise<void> {
  await writeCheckpoint(dir, gptjConfig(o), gptjTensors(o));
}

export interface PhiOpts {
  hidden?: number; layers?: number; heads?: number; kvHeads?: number | null; inter?: number; vocab?: number; maxPos?: number;
  partialRotaryFactor?: number; ropeTheta?: number; qkLayernorm?: boolean; act?: string; seed?: number;
}

/** config.json of a PhiForCausalLM (microsoft/phi-2 field set). */
export function phiConfig(o: PhiOpts = {}): Record<string, any> {
  const vocab = o.vocab ?? 96;
  return sortKeys({
    architectures: ['PhiForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 50256 % vocab,
    embd_pdrop: 0.0,
    eos_token_id: 50256 % vocab,
    hidden_act: o.act ?? 'gelu_new',
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    intermediate_size: o.inter ?? 128,
    layer_norm_eps: 1e-5,
    max_position_embeddings: o.maxPos ?? 64,
    model_type: 'phi',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    num_key_value_heads: o.kvHeads ?? null,
    partial_rotary_factor: o.partialRotaryFactor ?? 0.5,
    qk_layernorm: o.qkLayernorm ?? false,
    resid_pdrop: 0.1,
    rope_scaling: null,
    rope_theta: o.ropeTheta ?? 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    transformers_version: '4.46.2',
    use_cache: true,
    vocab_size: vocab,
  });
}

export function phiTensors(o: PhiOpts = {}): Record<string, Tensor> {
  const c = phiConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, nh = c.num_attention_heads;
  const d = H / nh, nkv = c.num_key_value_heads ?? nh;
  const rand = sampler(o.seed ?? 1);
  const t: Record<string, Tensor> = { 'model.embed_tokens.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, rand, `${p}input_layernorm`, H, true);
    addLinear(t, rand, `${p}self_attn.q_proj`, nh * d, H, true);
    addLinear(t, rand, `${p}self_attn.k_proj`, nkv * d, H, true);
    addLinear(t, rand, `${p}self_attn.v_proj`, nkv * d, H, true);
    addLinear(t, rand, `${p}self_attn.dense`, H, nh * d, true);
    if (c.qk_layernorm) {
      addNorm(t, rand, `${p}self_attn.q_layernorm`, d, true);
      addNorm(t, rand, `${p}self_attn.k_layernorm`, d, true);
    }
    addLinear(t, rand, `${p}mlp.fc1`, I, H, true);
    addLinear(t, rand, `${p}mlp.fc2`, H, I, true);
  }
  addNorm(t, rand, 'model.final_layernorm', H, true);
  addLinear(t, rand, 'lm_head', V, H, true);
  return t;
}

/** Write a Phi checkpoint (defaults: hidden 64, 4 heads, inter 128, 2 layers, vocab 96, partial_rotary_factor 0.5). */
export async function makePhiCheckpoint(dir: string, o: PhiOpts = {}): Promise<void> {
  await writeCheckpoint(dir, phiConfig(o), phiTensors(o));
}
