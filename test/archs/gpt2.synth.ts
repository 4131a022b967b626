/**
 * Tiny synthetic GPT-2 and GPTBigCode checkpoints in the real HF layout: config.json with the field names transformers
 * writes for GPT2LMHeadModel / the hub configs of bigcode/starcoderbase-1b, tensors named and shaped as in their state
 * dicts (GPT-2 Conv1D weights [in, out]; GPTBigCode nn.Linear [out, in]), deterministic random values.
 */
import { f32Tensor, type Tensor } from '../../src/tensor.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint, type Tensors, type SynthCommon } from '../synth.ts';

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

export interface BigCodeOpts extends SynthCommon { multiQuery?: boolean; positions?: number; act?: string; storeLmHead?: boolean }

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
