/**
 * Tiny synthetic GPTBigCode, StarCoder2, InternLM, InternLM2, Baichuan and Cohere checkpoints in the real HF layout:
 * config.json with the field names the hub configs use (bigcode/starcoderbase-1b, bigcode/starcoder2-3b,
 * internlm/internlm-chat-7b, internlm/internlm2-chat-7b, baichuan-inc/Baichuan2-7B-Base / Baichuan-7B,
 * CohereForAI/c4ai-command-r-v01 / -plus), tensors named and shaped as in their state dicts (nn.Linear [out, in]),
 * deterministic random values. Defaults (hidden 64, 4 heads, intermediate 128) keep every linear packable at g32.
 */
import { f32Tensor } from '../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint, type Tensors } from './synth.ts';


interface Common { hidden?: number; layers?: number; heads?: number; inter?: number; vocab?: number; seed?: number }

// ------------------------------------------------------------------------------------------------ GPTBigCode

export interface BigCodeOpts extends Common { multiQuery?: boolean; positions?: number; act?: string; storeLmHead?: boolean }

export function bigcodeConfig(o: BigCodeOpts = {}): Record<string, any> {
  return sortKeys({
    activation_function: o.act ?? 'gelu_pytorch_tanh',
    architectures: ['GPTBigCodeForCausalLM'],
    attention_softmax_in_fp32: true,
    attn_pdrop: 0.1,
    bos_token_id: 0,
    embd_pdrop: 0.1,
    eos_token_id: 0,
    inference_runner: 0,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    max_batch_size: null,
    max_sequence_length: null,
    model_type: 'gpt_bigcode',
    multi_query: o.multiQuery ?? true,
    n_embd: o.hidden ?? 64,
    n_head: o.heads ?? 4,
    n_inner: o.inter ?? 128,
    n_layer: o.layers ?? 2,
    n_positions: o.positions ?? 64,
    pad_key_length: true,
    pre_allocate_kv_cache: false,
    resid_pdrop: 0.1,
    scale_attention_softmax_in_fp32: true,
    scale_attn_weights: true,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    torch_dtype: 'float32',
    transformers_version: '4.28.1',
    use_cache: true,
    validate_runner_input: true,
    vocab_size: o.vocab ?? 96,
  });
}

export function bigcodeTensors(o: BigCodeOpts = {}): Tensors {
  const c = bigcodeConfig(o);
  const H = c.n_embd, I = c.n_inner, V = c.vocab_size, d = H / c.n_head, kv = c.multi_query ? 1 : c.n_head;
  const rand = sampler(o.seed ?? 1);
  const t: Tensors = { 'transformer.wte.weight': rand([V, H], 1), 'transformer.wpe.weight': rand([c.n_positions, H], 0.3) };
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    addNorm(t, rand, `${p}ln_1`, H, true);
    addLinear(t, rand, `${p}attn.c_attn`, H + 2 * kv * d, H, true);
    addLinear(t, rand, `${p}attn.c_proj`, H, H, true);
    addNorm(t, rand, `${p}ln_2`, H, true);
    addLinear(t, rand, `${p}mlp.c_fc`, I, H, true);
    addLinear(t, rand, `${p}mlp.c_proj`, H, I, true);
  }
  addNorm(t, rand, 'transformer.ln_f', H, true);
  if (o.storeLmHead) t['lm_head.weight'] = t['transformer.wte.weight']!; // tied copy, as some exports store it
  return t;
}

/** GPTBigCode (defaults: n_embd 64, 4 heads, multi_query, n_inner 128, 2 layers, vocab 96, n_positions 64). */
export async function makeBigCodeCheckpoint(dir: string, o: BigCodeOpts = {}): Promise<void> {
  await writeCheckpoint(dir, bigcodeConfig(o), bigcodeTensors(o));
}

// ------------------------------------------------------------------------------------------------ StarCoder2

export interface Starcoder2Opts extends Common { kvHeads?: number; useBias?: boolean; slidingWindow?: number | null; ropeTheta?: number; tie?: boolean }

export function starcoder2Config(o: Starcoder2Opts = {}): Record<string, any> {
  const c: Record<string, any> = {
    architectures: ['Starcoder2ForCausalLM'],
    attention_dropout: 0.1,
    bos_token_id: 0,
    embedding_dropout: 0.1,
    eos_token_id: 0,
    hidden_act: 'gelu_pytorch_tanh',
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.018042,
    intermediate_size: o.inter ?? 128,
    max_position_embeddings: 64,
    mlp_type: 'default',
    model_type: 'starcoder2',
    norm_epsilon: 1e-5,
    norm_type: 'layer_norm',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    num_key_value_heads: o.kvHeads ?? 2,
    residual_dropout: 0.1,
    rope_theta: o.ropeTheta ?? 999999.4420358813,
    sliding_window: o.slidingWindow === undefined ? 6 : o.slidingWindow,
    torch_dtype: 'float32',
    transformers_version: '4.37.0.dev0',
    use_bias: o.useBias ?? true,
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  };
  if (o.tie !== undefined) c.tie_word_embeddings = o.tie; // starcoder2-3b/7b/15b omit it (default true)
  return sortKeys(c);
}

export function starcoder2Tensors(o: Starcoder2Opts = {}): Tensors {
  const c = starcoder2Config(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = H / c.num_attention_heads, kv = c.num_key_value_heads, b = c.use_bias;
  const rand = sampler(o.seed ?? 1);
  const t: Tensors = { 'model.embed_tokens.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, rand, `${p}input_layernorm`, H, true);
    addLinear(t, rand, `${p}self_attn.q_proj`, H, H, b);
    addLinear(t, rand, `${p}self_attn.k_proj`, kv * d, H, b);
    addLinear(t, rand, `${p}self_attn.v_proj`, kv * d, H, b);
    addLinear(t, rand, `${p}self_attn.o_proj`, H, H, b);
    addNorm(t, rand, `${p}post_attention_layernorm`, H, true);
    addLinear(t, rand, `${p}mlp.c_fc`, I, H, b);
    addLinear(t, rand, `${p}mlp.c_proj`, H, I, b);
  }
  addNorm(t, rand, 'model.norm', H, true);
  if (c.tie_word_embeddings === false) addLinear(t, rand, 'lm_head', V, H, false);
  return t;
}

/** StarCoder2 (defaults: hidden 64, 4 heads / 2 kv, inter 128, sliding_window 6, use_bias, tied, vocab 96). */
export async function makeStarcoder2Checkpoint(dir: string, o: Starcoder2Opts = {}): Promise<void> {
  await writeCheckpoint(dir, starcoder2Config(o), starcoder2Tensors(o));
}

// ------------------------------------------------------------------------------------------------ InternLM / InternLM2

export interface InternOpts extends Common { v2?: boolean; kvHeads?: number; bias?: boolean; rotary?: { base: number; type: string } | null; ropeTheta?: number }

export function internConfig(o: InternOpts = {}): Record<string, any> {
  const common = {
    bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: o.hidden ?? 64, initializer_range: 0.02,
    intermediate_size: o.inter ?? 128, num_attention_heads: o.heads ?? 4, num_hidden_layers: o.layers ?? 2,
    tie_word_embeddings: false, torch_dtype: 'float16', transformers_version: '4.33.2', use_cache: true, vocab_size: o.vocab ?? 96,
  };
  if (!o.v2) {
    const c: Record<string, any> = {
      ...common, architectures: ['InternLMForCausalLM'],
      auto_map: { AutoConfig: 'configuration_internlm.InternLMConfig', AutoModel: 'modeling_internlm.InternLMForCausalLM', AutoModelForCausalLM: 'modeling_internlm.InternLMForCausalLM' },
      bias: o.bias ?? true, max_position_embeddings: 2048, model_type: 'internlm', pad_token_id: 0, rms_norm_eps: 1e-6,
      rotary: o.rotary === undefined ? { base: 10000, type: 'dynamic' } : o.rotary,
    };
    if (c.rotary === null) delete c.rotary;
    return sortKeys(c);
  }
  return sortKeys({
    ...common, architectures: ['InternLM2ForCausalLM'], attn_implementation: 'eager',
    auto_map: { AutoConfig: 'configuration_internlm2.InternLM2Config', AutoModel: 'modeling_internlm2.InternLM2ForCausalLM', AutoModelForCausalLM: 'modeling_internlm2.InternLM2ForCausalLM' },
    bias: o.bias ?? false, max_position_embeddings: 32768, model_type: 'internlm2', num_key_value_heads: o.kvHeads ?? 2,
    pad_token_id: 2, rms_norm_eps: 1e-5, rope_scaling: { factor: 2.0, type: 'dynamic' }, rope_theta: o.ropeTheta ?? 1000000,
  });
}

export function internTensors(o: InternOpts = {}): Tensors {
  const c = internConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, nh = c.num_attention_heads, d = H / nh, b = c.bias;
  const rand = sampler(o.seed ?? 1);
  const t: Tensors = {};
  if (!o.v2) {
    t['model.embed_tokens.weight'] = rand([V, H], 1);
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`;
      addNorm(t, rand, `${p}input_layernorm`, H, false);
      for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) addLinear(t, rand, `${p}self_attn.${n}`, H, H, b);
      addNorm(t, rand, `${p}post_attention_layernorm`, H, false);
      addLinear(t, rand, `${p}mlp.gate_proj`, I, H, false);
      addLinear(t, rand, `${p}mlp.up_proj`, I, H, false);
      addLinear(t, rand, `${p}mlp.down_proj`, H, I, false);
    }
    addNorm(t, rand, 'model.norm', H, false);
    addLinear(t, rand, 'lm_head', V, H, false);
    return t;
  }
  const kv = c.num_key_value_heads;
  t['model.tok_embeddings.weight'] = rand([V, H], 1);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, rand, `${p}attention_norm`, H, false);
    addLinear(t, rand, `${p}attention.wqkv`, (nh + 2 * kv) * d, H, b);
    addLinear(t, rand, `${p}attention.wo`, H, nh * d, b);
    addNorm(t, rand, `${p}ffn_norm`, H, false);
    addLinear(t, rand, `${p}feed_forward.w1`, I, H, false);
    addLinear(t, rand, `${p}feed_forward.w3`, I, H, false);
    addLinear(t, rand, `${p}feed_forward.w2`, H, I, false);
  }
  addNorm(t, rand, 'model.norm', H, false);
  addLinear(t, rand, 'output', V, H, false);
  return t;
}

/** InternLM (v2: InternLM2 with 2 kv heads, bias false, rope_theta 1e6) — hidden 64, 4 heads, inter 128, vocab 96. */
export async function makeInternCheckpoint(dir: string, o: InternOpts = {}): Promise<void> {
  await writeCheckpoint(dir, internConfig(o), internTensors(o));
}

// ------------------------------------------------------------------------------------------------ Baichuan

export interface BaichuanOpts extends Common { v2?: boolean; alibi13b?: boolean }

export function baichuanConfig(o: BaichuanOpts = {}): Record<string, any> {
  const v2 = o.v2 ?? true;
  const c: Record<string, any> = {
    architectures: [v2 || o.alibi13b ? 'BaichuanForCausalLM' : 'BaiChuanForCausalLM'],
    auto_map: v2 || o.alibi13b
      ? { AutoConfig: 'configuration_baichuan.BaichuanConfig', AutoModelForCausalLM: 'modeling_baichuan.BaichuanForCausalLM' }
      : { AutoConfig: 'configuration_baichuan.BaiChuanConfig', AutoModelForCausalLM: 'modeling_baichuan.BaiChuanForCausalLM' },
    bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: o.hidden ?? 64, initializer_range: 0.02,
    intermediate_size: o.inter ?? 128, max_position_embeddings: 4096, model_max_length: 4096, model_type: 'baichuan',
    num_attention_heads: o.heads ?? 4, num_hidden_layers: o.layers ?? 2, pad_token_id: 0, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.29.2', use_cache: true, vocab_size: o.vocab ?? 96,
  };
  if (v2) { c._from_model_config = true; c.z_loss_weight = 0; }
  if (o.alibi13b) delete c.max_position_embeddings;
  return sortKeys(c);
}

export function baichuanTensors(o: BaichuanOpts = {}): Tensors {
  const c = baichuanConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const rand = sampler(o.seed ?? 1);
  const t: Tensors = { 'model.embed_tokens.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, rand, `${p}input_layernorm`, H, false);
    addLinear(t, rand, `${p}self_attn.W_pack`, 3 * H, H, false);
    addLinear(t, rand, `${p}self_attn.o_proj`, H, H, false);
    addNorm(t, rand, `${p}post_attention_layernorm`, H, false);
    addLinear(t, rand, `${p}mlp.gate_proj`, I, H, false);
    addLinear(t, rand, `${p}mlp.up_proj`, I, H, false);
    addLinear(t, rand, `${p}mlp.down_proj`, H, I, false);
  }
  addNorm(t, rand, 'model.norm', H, false);
  // Un-normalised head rows with unequal norms so Baichuan2's NormHead visibly matters.
  const head = rand([V, H], 0.5).data as Float32Array;
  for (let r = 0; r < V; r++) for (let i = 0; i < H; i++) head[r * H + i]! *= 1 + (r % 5);
  t['lm_head.weight'] = f32Tensor([V, H], head);
  return t;
}

/** Baichuan2-7B style (NormHead; v2 false: Baichuan-7B, plain head) — hidden 64, 4 heads, inter 128, vocab 96. */
export async function makeBaichuanCheckpoint(dir: string, o: BaichuanOpts = {}): Promise<void> {
  await writeCheckpoint(dir, baichuanConfig(o), baichuanTensors(o));
}

// ------------------------------------------------------------------------------------------------ Cohere

export interface CohereOpts extends Common { kvHeads?: number; qkNorm?: boolean; attentionBias?: boolean; logitScale?: number; ropeTheta?: number; /** Untied: tie_word_embeddings false and a stored lm_head. */ storeLmHead?: boolean }

export function cohereConfig(o: CohereOpts = {}): Record<string, any> {
  return sortKeys({
    architectures: ['CohereForCausalLM'],
    attention_bias: o.attentionBias ?? false,
    attention_dropout: 0.0,
    bos_token_id: 5,
    eos_token_id: 255001,
    hidden_act: 'silu',
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    intermediate_size: o.inter ?? 128,
    layer_norm_eps: 1e-5,
    logit_scale: o.logitScale ?? 0.0625,
    max_position_embeddings: 8192,
    model_type: 'cohere',
    num_attention_heads: o.heads ?? 4,
    num_hidden_layers: o.layers ?? 2,
    num_key_value_heads: o.kvHeads ?? 4,
    pad_token_id: 0,
    rope_theta: o.ropeTheta ?? 8000000.0,
    torch_dtype: 'float16',
    transformers_version: '4.40.0.dev0',
    use_cache: true,
    use_qk_norm: o.qkNorm ?? false,
    vocab_size: o.vocab ?? 96,
    ...(o.storeLmHead ? { tie_word_embeddings: false } : {}),
  });
}

export function cohereTensors(o: CohereOpts = {}): Tensors {
  const c = cohereConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, nh = c.num_attention_heads, d = H / nh, kv = c.num_key_value_heads, b = c.attention_bias;
  const rand = sampler(o.seed ?? 1);
  const t: Tensors = { 'model.embed_tokens.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, rand, `${p}input_layernorm`, H, false);
    addLinear(t, rand, `${p}self_attn.q_proj`, nh * d, H, b);
    addLinear(t, rand, `${p}self_attn.k_proj`, kv * d, H, b);
    addLinear(t, rand, `${p}self_attn.v_proj`, kv * d, H, b);
    addLinear(t, rand, `${p}self_attn.o_proj`, H, nh * d, b);
    if (c.use_qk_norm) {
      t[`${p}self_attn.q_norm.weight`] = rand([nh, d], 0.1, 1);
      t[`${p}self_attn.k_norm.weight`] = rand([kv, d], 0.1, 1);
    }
    addLinear(t, rand, `${p}mlp.gate_proj`, I, H, false);
    addLinear(t, rand, `${p}mlp.up_proj`, I, H, false);
    addLinear(t, rand, `${p}mlp.down_proj`, H, I, false);
  }
  addNorm(t, rand, 'model.norm', H, false);
  if (o.storeLmHead) addLinear(t, rand, 'lm_head', V, H, false);
  return t;
}

/** Command-R style (defaults: hidden 64, 4 heads, no GQA, no qk norm, logit_scale 0.0625, tied, vocab 96). */
export async function makeCohereCheckpoint(dir: string, o: CohereOpts = {}): Promise<void> {
  await writeCheckpoint(dir, cohereConfig(o), cohereTensors(o));
}
