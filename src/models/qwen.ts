/**
 * Qwen (v1) — remote code QWenLMHeadModel (Qwen/Qwen-7B modeling_qwen.py; model_type "qwen"; AutoGPTQ
 * QwenGPTQForCausalLM, GPTQModel QwenQModel).
 *  - `transformer.wte`; blocks `transformer.h.N.`: x2 = x + c_proj(attn(ln_1(x))), out = x2 + mlp(ln_2(x2)), RMSNorm
 *    (layer_norm_epsilon); `transformer.ln_f`, untied `lm_head`.
 *  - attention: fused `attn.c_attn` [3·hidden, hidden] = q | k | v, always biased; `attn.c_proj` biased iff !no_bias;
 *    rotary (rotate_half) on the first kv_channels·rotary_pct channels, base rotary_emb_base; scores / √head_dim.
 *  - MLP: c_proj(w1(x) · silu(w2(x))), w1/w2 of intermediate_size / 2 (note the halving), biased iff !no_bias.
 *  - use_dynamic_ntk: per forward, per row, alpha = max(2^⌈log2(len/seq_length) + 1⌉ − 1, 1) from the row's real
 *    length (QWenModel.get_ntk_alpha), rotary base · alpha^(d/(d−2)). Computed here from the row's real length in the
 *    call (keys already cached keep their rotation). Qwen's own code instead keeps the alphas of the prompt for every
 *    later cached step; a stateless graph cannot know the prompt length, so decoding that crosses seq_length with a
 *    prompt shorter than it differs (full forwards and prompts already past seq_length are exact within a power-of-two
 *    length bucket).
 *  - use_logn_attn: the query at sequence index j (left padding counts) is scaled by log_seq_length(j + 1) when
 *    j + 1 > seq_length.
 *  - Qwen rotates by sequence index, padding included, ignoring position_ids; rotary scores depend only on index
 *    differences, which equal position differences inside a left-padded row, so positions are used.
 * Quantized groups: [attn.c_attn], [attn.c_proj], [mlp.w1, mlp.w2], [mlp.c_proj]; c_attn saved under its own name.
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { activation, attendHeads, rmsNormAt, splitHeads } from './blocks.ts';
import { configBool, configInt, defineArchitecture, linear } from './define.ts';
import { applyRope, type Rope } from './rope.ts';
import type { LayerContext } from './types.ts';

function qwenOptions(cfg: ModelConfig) {
  return {
    noBias: configBool(cfg, 'no_bias', true),
    dynamicNtk: configBool(cfg, 'use_dynamic_ntk', true),
    lognAttn: configBool(cfg, 'use_logn_attn', true),
    /** QWenConfig has no default: config.json's seq_length (the training length). */
    seqLength: cfg.raw.seq_length === undefined || cfg.raw.seq_length === null ? null : configInt(cfg, 'seq_length', 1),
  };
}

const perGraph = new WeakMap<GraphBuilder, Map<string, { rope: Rope; logn: string | null }>>();

/**
 * Rotary tables [B|1,1,S,rd] and the logn query scale [1,1,S,1] of one call, from the layer's additive mask
 * [B|1,1,S,T]: the row's real length n_b = visible keys of its last query; the S queries are its last S real tokens
 * (positions n_b − S … n_b − 1) at sequence indices (leading masked keys) + position — T − S … T − 1 for a
 * left-padded row, the positions themselves in the slot graphs (whose unused buffer rows follow the cache).
 */
function qwenRotary(ctx: LayerContext): { rope: Rope; logn: string | null } {
  const { g, cfg, mask } = ctx;
  let byGraph = perGraph.get(g);
  if (!byGraph) perGraph.set(g, (byGraph = new Map()));
  const hit = byGraph.get(mask);
  if (hit) return hit;
  const o = qwenOptions(cfg), rd = cfg.rotaryDim, L = o.seqLength;
  const last = g.op('Slice', [mask, g.constI64([-1]), g.constI64([2 ** 62]), g.constI64([2])]); // [B|1,1,1,T]
  const vis = g.op('Cast', [g.op('Equal', [last, g.constF(0)])], { to: 1 });
  const n = g.op('ReduceSum', [vis, g.constI64([3])], { keepdims: 1 }); // real length [B|1,1,1,1]
  const S = g.op('Cast', [g.op('Shape', [mask], { start: 2, end: 3 })], { to: 1 });
  const s = g.op('Unsqueeze', [g.op('Range', [g.constF(0), g.op('Squeeze', [S]), g.constF(1)]), g.constI64([0, 1, 3])]); // [1,1,S,1]
  const pos = g.op('Add', [g.op('Sub', [n, S]), s]); // [B|1,1,S,1]
  // base' = base · alpha^(rd/(rd−2)), alpha = max(2^ceil(log2(n/L) + 1) − 1, 1); inv_i = base'^(−2i/rd)
  let logBase: string = g.constF(Math.log(cfg.ropeTheta));
  if (o.dynamicNtk && L !== null) {
    const c = g.op('Ceil', [g.op('Add', [g.op('Div', [g.op('Log', [g.op('Div', [n, g.constF(L)])]), g.constF(Math.LN2)]), g.constF(1)])]);
    const alpha = g.op('Max', [g.op('Sub', [g.op('Pow', [g.constF(2), c]), g.constF(1)]), g.constF(1)]);
    logBase = g.op('Add', [logBase, g.op('Mul', [g.op('Log', [alpha]), g.constF(rd / (rd - 2))])]);
  }
  const expo = g.constF(Array.from({ length: rd / 2 }, (_, i) => (-2 * i) / rd), [1, 1, 1, rd / 2]);
  const inv = g.op('Exp', [g.op('Mul', [logBase, expo])]); // [B|1,1,1,rd/2]
  const freqs = g.op('Mul', [pos, inv]); // [B|1,1,S,rd/2]
  const emb = g.op('Concat', [freqs, freqs], { axis: -1 });
  let logn: string | null = null;
  if (o.lognAttn && L !== null) {
    // sequence index + 1 = leading pads + position + 1 (slot graphs' unused buffer rows after the cache don't count)
    const lead = g.op('Cast', [g.op('ArgMax', [vis], { axis: 3, keepdims: 1 })], { to: 1 }); // [B|1,1,1,1]
    const j1 = g.op('Add', [g.op('Add', [lead, pos]), g.constF(1)]); // [B|1,1,S,1]
    logn = g.op('Where', [g.op('Greater', [j1, g.constF(L)]), g.op('Div', [g.op('Log', [j1]), g.constF(Math.log(L))]), g.constF(1)]);
  }
  const out = { rope: { cos: g.op('Cos', [emb]), sin: g.op('Sin', [emb]) }, logn };
  byGraph.set(mask, out);
  return out;
}

export const qwen = defineArchitecture({
  modelTypes: ['qwen'],
  // QWenConfig: vocab 151936, layer_norm_epsilon 1e-6, max_position_embeddings 8192, kv_channels 128, rotary_pct 1,
  // rotary_emb_base 10000, intermediate_size 22016, no_bias, untied.
  config: { qwen: { hidden_act: 'silu', intermediate_size: 22016, rms_norm_eps: 1e-6, max_position_embeddings: 8192, tie_word_embeddings: false } },
  // seq_length (the training length) is no alias of max_position_embeddings for QWenConfig.
  configure: (cfg, f) => ({ maxPositionEmbeddings: typeof cfg.raw.max_position_embeddings === 'number' ? f.int('max_position_embeddings') : 8192 }),
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.ln_f'],
  modules: (cfg, { h, i }) => {
    const b = !qwenOptions(cfg).noBias;
    return {
      attn: { c_attn: linear(0, h, 3 * h, true), c_proj: linear(1, h, h, b) },
      mlp: { w1: linear(2, h, i / 2, b), w2: linear(2, h, i / 2, b), c_proj: linear(3, i / 2, h, b) },
    };
  },
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', rmsNormAt],

  check(cfg) {
    const o = qwenOptions(cfg);
    const kvc = cfg.raw.kv_channels ?? 128;
    if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize || kvc !== cfg.headDim || cfg.numKvHeads !== cfg.numHeads)
      fail(`${cfg.path}: qwen needs kv_channels (${JSON.stringify(kvc)}) = hidden_size / num_attention_heads (${cfg.hiddenSize / cfg.numHeads})`);
    if (cfg.intermediateSize % 2 !== 0) fail(`${cfg.path}: qwen's intermediate_size (${cfg.intermediateSize}) must be even (each MLP branch is half of it)`);
    if (cfg.rotaryDim % 2 !== 0 || cfg.rotaryDim < 4) fail(`${cfg.path}: qwen rotary dims kv_channels·rotary_pct (${cfg.rotaryDim}) must be even and ≥ 4`);
    if ((o.dynamicNtk || o.lognAttn) && o.seqLength === null)
      fail(`${cfg.path}: qwen with use_dynamic_ntk / use_logn_attn needs field "seq_length" (the remote code reads it)`);
    if (configBool(cfg, 'use_cache_quantization', false)) fail(`${cfg.path}: qwen with use_cache_quantization is not supported`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { hiddenSize: h, numHeads: nh, headDim: d } = cfg;
    const qkv = w.linear(g, rmsNormAt(g, w, `${p}ln_1`, x, h, cfg.rmsNormEps), m.attn.c_attn);
    const [q, k, v] = g.opN('Split', [qkv, g.constI64([h, h, h])], 3, { axis: -1 }).map((t) => splitHeads(g, t, nh, d));
    const { rope, logn } = qwenRotary(ctx);
    let qr = applyRope(g, q!, rope, d, cfg.rotaryDim);
    if (logn) qr = g.op('Mul', [qr, logn]);
    const attn = attendHeads(ctx, qr, applyRope(g, k!, rope, d, cfg.rotaryDim), v!, m.attn.c_proj, { heads: nh, kvHeads: nh, headDim: d, rope: 'none' });
    const x2 = g.op('Add', [x, attn]);
    const n2 = rmsNormAt(g, w, `${p}ln_2`, x2, h, cfg.rmsNormEps);
    const ff = g.op('Mul', [w.linear(g, n2, m.mlp.w1), activation(g, w.linear(g, n2, m.mlp.w2), 'silu')]);
    return g.op('Add', [x2, w.linear(g, ff, m.mlp.c_proj)]);
  },
});
