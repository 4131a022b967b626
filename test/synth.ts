/** Synthetic HF-style checkpoints (config.json + model.safetensors) with deterministic random weights. */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import { f32Tensor, type Tensor } from '../src/tensor.ts';
import { randn } from './helpers.ts';

const json = (o: unknown) => JSON.stringify(o, null, 2) + '\n';

/** A config.json object with its keys sorted, as transformers writes them. */
export const sortKeys = (c: Record<string, any>): Record<string, any> =>
  Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : 1)));

export type Tensors = Record<string, Tensor>;

/** Sizes and seed most synthetic checkpoint writers take (test/archs/*.synth.ts). */
export interface SynthCommon { hidden?: number; layers?: number; heads?: number; inter?: number; vocab?: number; seed?: number }

/** Deterministic tensor sampler: the k-th call draws randn(numel, seed·1000003 + k, std) + mean. */
export function sampler(seed: number) {
  let k = 0;
  const base = seed * 1_000_003;
  return (shape: number[], std: number, mean = 0): Tensor => {
    const d = randn(shape.reduce((a, b) => a * b, 1), base + ++k, std);
    if (mean) for (let i = 0; i < d.length; i++) d[i]! += mean;
    return f32Tensor(shape, d);
  };
}
export type Rand = ReturnType<typeof sampler>;

/** nn.Linear weight [out, in], std 1/√in. */
export const linearWeight = (rand: Rand, outF: number, inF: number): Tensor => rand([outF, inF], 1 / Math.sqrt(inF));

/** `name.weight` = {@link linearWeight}, then (if `bias`) `name.bias` ~ N(0, 0.1²). */
export function addLinear(t: Tensors, rand: Rand, name: string, outF: number, inF: number, bias: boolean): void {
  t[`${name}.weight`] = linearWeight(rand, outF, inF);
  if (bias) t[`${name}.bias`] = rand([outF], 0.1);
}

/** Norm `name.weight` ~ 1 + N(0, 0.1²), then (if `bias`) `name.bias` ~ N(0, 0.1²). */
export function addNorm(t: Tensors, rand: Rand, name: string, n: number, bias: boolean): void {
  t[`${name}.weight`] = rand([n], 0.1, 1);
  if (bias) t[`${name}.bias`] = rand([n], 0.1);
}

/** Write config.json, generation_config.json and model.safetensors ({"format":"pt"}) into `dir` (created). */
export async function writeCheckpoint(dir: string, config: Record<string, any>, tensors: Record<string, Tensor>): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'config.json'), json(config));
  const gen: Record<string, unknown> = { _from_model_config: true };
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id']) if (config[k] !== undefined) gen[k] = config[k];
  gen.transformers_version = config.transformers_version ?? '4.53.3';
  await writeFileAtomic(join(dir, 'generation_config.json'), json(gen));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

export interface LlamaOpts {
  modelType?: 'llama' | 'mistral' | 'qwen2';
  hidden?: number; intermediate?: number; layers?: number; heads?: number; kvHeads?: number; vocab?: number;
  tie?: boolean; seed?: number; ropeTheta?: number; maxPos?: number; rmsNormEps?: number;
  /** mistral only: sliding_window (default null = full attention). */
  slidingWindow?: number | null;
}

/** Resolved sizes + the config.json object for a Llama-family model. */
export function llamaConfig(opts: LlamaOpts = {}): Record<string, any> {
  const mt = opts.modelType ?? 'llama';
  const hidden = opts.hidden ?? 64, heads = opts.heads ?? 4, kv = opts.kvHeads ?? 2;
  if (hidden % heads || heads % kv) throw new Error(`llamaConfig: hidden ${hidden} / heads ${heads} / kvHeads ${kv} do not divide`);
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[mt];
  const c: Record<string, any> = {
    architectures: [arch],
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: hidden,
    initializer_range: 0.02,
    intermediate_size: opts.intermediate ?? 128,
    max_position_embeddings: opts.maxPos ?? 512,
    model_type: mt,
    num_attention_heads: heads,
    num_hidden_layers: opts.layers ?? 2,
    num_key_value_heads: kv,
    rms_norm_eps: opts.rmsNormEps ?? 1e-6,
    rope_scaling: null,
    rope_theta: opts.ropeTheta ?? 10000.0,
    tie_word_embeddings: opts.tie ?? false,
    torch_dtype: 'float32',
    transformers_version: '4.53.3',
    use_cache: true,
    vocab_size: opts.vocab ?? 128,
  };
  if (mt === 'llama') Object.assign(c, { attention_bias: false, mlp_bias: false, head_dim: hidden / heads, pretraining_tp: 1 });
  if (mt === 'mistral') Object.assign(c, { head_dim: hidden / heads, sliding_window: opts.slidingWindow ?? null });
  if (mt === 'qwen2') Object.assign(c, { max_window_layers: c.num_hidden_layers, sliding_window: null, use_sliding_window: false });
  return sortKeys(c);
}

/** HF tensor names/shapes + deterministic weights for a Llama/Mistral/Qwen2 checkpoint. */
export function llamaTensors(opts: LlamaOpts = {}): Record<string, Tensor> {
  const c = llamaConfig(opts);
  const H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, hd = H / c.num_attention_heads;
  const kvd = c.num_key_value_heads * hd;
  const rand = sampler(opts.seed ?? 1);
  const lin = (out: number, inp: number) => linearWeight(rand, out, inp); // torch Linear [out, in]
  const t: Record<string, Tensor> = { 'model.embed_tokens.weight': rand([V, H], 1) };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    t[p + 'input_layernorm.weight'] = rand([H], 0.1, 1);
    t[p + 'self_attn.q_proj.weight'] = lin(H, H);
    t[p + 'self_attn.k_proj.weight'] = lin(kvd, H);
    t[p + 'self_attn.v_proj.weight'] = lin(kvd, H);
    t[p + 'self_attn.o_proj.weight'] = lin(H, H);
    if (c.model_type === 'qwen2') {
      t[p + 'self_attn.q_proj.bias'] = rand([H], 0.1);
      t[p + 'self_attn.k_proj.bias'] = rand([kvd], 0.1);
      t[p + 'self_attn.v_proj.bias'] = rand([kvd], 0.1);
    }
    t[p + 'post_attention_layernorm.weight'] = rand([H], 0.1, 1);
    t[p + 'mlp.gate_proj.weight'] = lin(I, H);
    t[p + 'mlp.up_proj.weight'] = lin(I, H);
    t[p + 'mlp.down_proj.weight'] = lin(H, I);
  }
  t['model.norm.weight'] = rand([H], 0.1, 1);
  if (!c.tie_word_embeddings) t['lm_head.weight'] = lin(V, H);
  return t;
}

/** Write a real HF-layout Llama/Mistral/Qwen2 checkpoint (defaults: hidden 64, inter 128, 2 layers, 4/2 heads, vocab 128). */
export async function makeLlamaCheckpoint(dir: string, opts: LlamaOpts = {}): Promise<void> {
  await writeCheckpoint(dir, llamaConfig(opts), llamaTensors(opts));
}
