/**
 * MoE decode speed: routed dispatch (each expert runs only on the rows routed to it, src/models/qwen3-moe.ts
 * routedMoe) vs computing every expert on every row (setMoeDispatch('all'), the Mixtral graph's way), on a SYNTHETIC
 * qwen3_moe checkpoint (random weights; Qwen3-30B-A3B's expert count and top-k at a smaller width):
 * 128 experts, top-8, hidden 256, moe_intermediate 128, 8 heads / 4 kv heads (head_dim 32), 4 layers, vocab 2048.
 *
 *   npm run bench:moe [-- --dir /tmp/gptqjs-moe-bench --prompt 32 --gen 32 --repeat 3 --bits 0|4]
 *
 * Both modes loaded (CausalLM.load, no graph cache), then `repeat` interleaved rounds of: a prompt of `prompt` ids
 * (prefill), then `gen` single-token forwardStep calls (batch 1); prints prefill and decode tok/s (best round of each)
 * and checks both modes give the same logits. `--bits 4` first RTN-quantizes the checkpoint (4-bit, group 128) and runs it with MatMulNBits.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GPTQModel } from '../src/gptq-model.ts';
import { setMoeDispatch } from '../src/models/qwen3-moe.ts';
import { CausalLM } from '../src/runtime/causal-lm.ts';
import { addLinear, addNorm, sampler, sortKeys, writeCheckpoint, type Tensors } from '../test/synth.ts';

const { values: a } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/gptqjs-moe-bench' },
    prompt: { type: 'string', default: '32' },
    gen: { type: 'string', default: '32' },
    repeat: { type: 'string', default: '3' },
    bits: { type: 'string', default: '0' },
  },
});
const H = 256, HEADS = 8, KV = 4, D = 32, E = 128, K = 8, MI = 128, L = 4, V = 2048;
const base = resolve(a.dir!), fp = join(base, 'fp32'), q4 = join(base, 'q4');

async function writeModel(dir: string): Promise<void> {
  const r = sampler(7), t: Tensors = {};
  t['model.embed_tokens.weight'] = r([V, H], 1);
  addNorm(t, r, 'model.norm', H, false);
  addLinear(t, r, 'lm_head', V, H, false);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    addNorm(t, r, `${p}input_layernorm`, H, false);
    addNorm(t, r, `${p}post_attention_layernorm`, H, false);
    addNorm(t, r, `${p}self_attn.q_norm`, D, false);
    addNorm(t, r, `${p}self_attn.k_norm`, D, false);
    addLinear(t, r, `${p}self_attn.q_proj`, HEADS * D, H, false);
    addLinear(t, r, `${p}self_attn.k_proj`, KV * D, H, false);
    addLinear(t, r, `${p}self_attn.v_proj`, KV * D, H, false);
    addLinear(t, r, `${p}self_attn.o_proj`, H, HEADS * D, false);
    addLinear(t, r, `${p}mlp.gate`, E, H, false);
    for (let e = 0; e < E; e++) {
      addLinear(t, r, `${p}mlp.experts.${e}.gate_proj`, MI, H, false);
      addLinear(t, r, `${p}mlp.experts.${e}.up_proj`, MI, H, false);
      addLinear(t, r, `${p}mlp.experts.${e}.down_proj`, H, MI, false);
    }
  }
  await writeCheckpoint(dir, sortKeys({
    architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', hidden_size: H, num_attention_heads: HEADS, num_key_value_heads: KV,
    head_dim: D, num_hidden_layers: L, vocab_size: V, intermediate_size: 512, moe_intermediate_size: MI, num_experts: E,
    num_experts_per_tok: K, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [], hidden_act: 'silu',
    max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: false, use_sliding_window: false,
  }), t);
}

if (!existsSync(join(fp, 'model.safetensors'))) { console.log(`writing ${fp}`); await writeModel(fp); }
if (a.bits === '4' && !existsSync(join(q4, 'model.safetensors'))) {
  console.log(`RTN 4-bit g128 → ${q4}`);
  const m = await GPTQModel.fromPretrained(fp, { quantizeConfig: { bits: 4, groupSize: 128 } });
  await m.quantize([{ inputIds: [1, 2, 3, 4] }], { method: 'rtn' });
  await m.saveQuantized(q4);
  await m.dispose();
}
const dir = a.bits === '4' ? q4 : fp;
const P = Number(a.prompt), G = Number(a.gen), R = Number(a.repeat);
const ids = Array.from({ length: P + G }, (_, i) => (i * 7919 + 13) % V);

/** Load the model with MoE dispatch `mode` (graphs are built at load, so the mode sticks to this instance). */
async function load(mode: 'routed' | 'all') {
  setMoeDispatch(mode);
  try {
    const t0 = performance.now();
    const m = await CausalLM.load(dir, { graphCache: false, onLog: () => {} });
    return { mode, m, load: (performance.now() - t0) / 1000, prefill: 0, decode: 0, logits: [] as Float32Array[] };
  } finally { setMoeDispatch('routed'); }
}

/** One timed prefill + decode round; keeps the best rates. */
async function round(r: Awaited<ReturnType<typeof load>>): Promise<void> {
  const logits: Float32Array[] = [];
  const t1 = performance.now();
  let s = await r.m.forwardStep([ids.slice(0, P)], r.m.emptyCache(1));
  const t2 = performance.now();
  logits.push(s.logits);
  for (let t = P; t < P + G; t++) { s = await r.m.forwardStep([[ids[t]!]], s.cache); logits.push(s.logits); }
  const t3 = performance.now();
  r.prefill = Math.max(r.prefill, P / ((t2 - t1) / 1000));
  r.decode = Math.max(r.decode, G / ((t3 - t2) / 1000));
  r.logits = logits;
}

// Both models loaded, rounds interleaved (routed, all, routed, …) so that the machine's other load hits both alike.
const routed = await load('routed');
const all = await load('all');
for (let k = 0; k < R; k++) { await round(routed); await round(all); }
await routed.m.dispose(); await all.m.dispose();
let d = 0;
routed.logits.forEach((l, k) => l.forEach((v, i) => { d = Math.max(d, Math.abs(v - all.logits[k]![i]!)); }));
console.log(`qwen3_moe synthetic (${E} experts, top-${K}, hidden ${H}, moe_inter ${MI}, ${L} layers, ${a.bits === '4' ? '4-bit RTN g128' : 'fp32'}), prompt ${P}, ${G} decode steps, batch 1, best of ${R} interleaved rounds:`);
for (const r of [routed, all]) console.log(`  ${r.mode.padEnd(6)}  load ${r.load.toFixed(1)} s   prefill ${r.prefill.toFixed(1)} tok/s   decode ${r.decode.toFixed(1)} tok/s`);
console.log(`  decode speed-up routed / all: ${(routed.decode / all.decode).toFixed(2)}×; max |Δlogit| routed vs all ${d.toExponential(2)}`);
