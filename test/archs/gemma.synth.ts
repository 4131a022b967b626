/**
 * Tiny synthetic Gemma checkpoints in the real HF layout (google/gemma-2b field names; GemmaForCausalLM state dict,
 * nn.Linear [out, in]), deterministic random values. Sizes keep every linear packable at group size 32.
 */
import { type Tensor } from '../../src/tensor.ts';
import { addLinear, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

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
