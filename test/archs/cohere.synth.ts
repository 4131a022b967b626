/**
 * Tiny synthetic Cohere checkpoints in the real HF layout (CohereForAI/c4ai-command-r-v01 / -plus field names;
 * CohereForCausalLM state dict, nn.Linear [out, in]), deterministic random values.
 */
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint, type Tensors, type SynthCommon } from '../synth.ts';

export interface CohereOpts extends SynthCommon { kvHeads?: number; qkNorm?: boolean; attentionBias?: boolean; logitScale?: number; ropeTheta?: number; /** Untied: tie_word_embeddings false and a stored lm_head. */ storeLmHead?: boolean }

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
