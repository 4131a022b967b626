/**
 * Tiny synthetic Mixtral checkpoints in the real HF layout: config.json with MixtralConfig's field names
 * (mistralai/Mixtral-8x7B-v0.1 field set: num_local_experts, num_experts_per_tok, router_aux_loss_coef,
 * output_router_logits, sliding_window null, rope_theta 1e6, …) and MixtralForCausalLM's state-dict names
 * (model.layers.i.block_sparse_moe.gate.weight [E, H], …experts.j.w1/w3 [I, H], …w2 [H, I]), deterministic values.
 * Defaults: hidden 64, intermediate 64, 4 heads / 2 kv heads, 4 experts, top-2, 2 layers, vocab 96.
 */
import { type Tensor } from '../../src/tensor.ts';
import { linearWeight, sampler, sortKeys, writeCheckpoint } from '../synth.ts';

export interface MixtralOpts {
  hidden?: number; inter?: number; layers?: number; heads?: number; kvHeads?: number; vocab?: number;
  experts?: number; topK?: number; seed?: number; tie?: boolean;
  /** Router std (default 1: a spread of routing decisions). */
  routerStd?: number;
  /** Make this expert unreachable: its router row is −50·e₀ and every embedding has +4 in channel 0. */
  deadExpert?: number;
}

export function mixtralConfig(o: MixtralOpts = {}): Record<string, any> {
  const c: Record<string, any> = {
    architectures: ['MixtralForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: null,
    hidden_act: 'silu',
    hidden_size: o.hidden ?? 64,
    initializer_range: 0.02,
    intermediate_size: o.inter ?? 64,
    max_position_embeddings: 4096,
    model_type: 'mixtral',
    num_attention_heads: o.heads ?? 4,
    num_experts_per_tok: o.topK ?? 2,
    num_hidden_layers: o.layers ?? 2,
    num_key_value_heads: o.kvHeads ?? 2,
    num_local_experts: o.experts ?? 4,
    output_router_logits: false,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 1000000.0,
    router_aux_loss_coef: 0.02,
    router_jitter_noise: 0.0,
    sliding_window: null,
    tie_word_embeddings: o.tie ?? false,
    torch_dtype: 'float32',
    transformers_version: '4.46.2',
    use_cache: true,
    vocab_size: o.vocab ?? 96,
  };
  return sortKeys(c);
}

export function mixtralTensors(o: MixtralOpts = {}): Record<string, Tensor> {
  const c = mixtralConfig(o);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, E = c.num_local_experts;
  const d = H / c.num_attention_heads, kvd = c.num_key_value_heads * d;
  const rand = sampler(o.seed ?? 1);
  const lin = (out: number, inp: number) => linearWeight(rand, out, inp);
  const emb = rand([V, H], 1);
  if (o.deadExpert !== undefined) for (let v = 0; v < V; v++) (emb.data as Float32Array)[v * H]! += 4;
  const t: Record<string, Tensor> = { 'model.embed_tokens.weight': emb };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    t[p + 'input_layernorm.weight'] = rand([H], 0.1, 1);
    t[p + 'self_attn.q_proj.weight'] = lin(H, H);
    t[p + 'self_attn.k_proj.weight'] = lin(kvd, H);
    t[p + 'self_attn.v_proj.weight'] = lin(kvd, H);
    t[p + 'self_attn.o_proj.weight'] = lin(H, H);
    t[p + 'post_attention_layernorm.weight'] = rand([H], 0.1, 1);
    const gate = rand([E, H], o.routerStd ?? 1);
    if (o.deadExpert !== undefined) {
      const g = gate.data as Float32Array;
      g.fill(0, o.deadExpert * H, (o.deadExpert + 1) * H);
      g[o.deadExpert * H] = -50;
    }
    t[p + 'block_sparse_moe.gate.weight'] = gate;
    for (let e = 0; e < E; e++) {
      const q = `${p}block_sparse_moe.experts.${e}.`;
      t[q + 'w1.weight'] = lin(I, H);
      t[q + 'w2.weight'] = lin(H, I);
      t[q + 'w3.weight'] = lin(I, H);
    }
  }
  t['model.norm.weight'] = rand([H], 0.1, 1);
  if (!c.tie_word_embeddings) t['lm_head.weight'] = lin(V, H);
  return t;
}

export async function makeMixtralCheckpoint(dir: string, o: MixtralOpts = {}): Promise<void> {
  await writeCheckpoint(dir, mixtralConfig(o), mixtralTensors(o));
}
