/**
 * Tiny synthetic checkpoints of the llama-layout architectures beyond llama/mistral/qwen2 (whose writer is
 * test/synth.ts): StarCoder2, InternLM, InternLM2, Baichuan (7B), in the real HF layout — config.json with the field
 * names the hub configs use (bigcode/starcoder2-3b, internlm/internlm-chat-7b, internlm/internlm2-chat-7b,
 * baichuan-inc/Baichuan2-7B-Base / Baichuan-7B), tensors as in their state dicts (nn.Linear [out, in]), deterministic
 * random values. Defaults (hidden 64, 4 heads, intermediate 128) keep every linear packable at g32.
 */
import { f32Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint, type Tensors, type SynthCommon } from '../synth.ts';

export interface Starcoder2Opts extends SynthCommon { kvHeads?: number; useBias?: boolean; slidingWindow?: number | null; ropeTheta?: number; tie?: boolean }

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

export interface InternOpts extends SynthCommon { v2?: boolean; kvHeads?: number; bias?: boolean; rotary?: { base: number; type: string } | null; ropeTheta?: number }

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

export interface BaichuanOpts extends SynthCommon { v2?: boolean; alibi13b?: boolean }

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
