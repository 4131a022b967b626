/**
 * GPT-Neo (transformers models/gpt_neo/modeling_gpt_neo.py, GPTNeoForCausalLM; EleutherAI gpt-neo-125M/1.3B/2.7B).
 *  - `transformer.wte` + learned positions `transformer.wpe`; pre-LayerNorm blocks: x2 = x + attn(ln_1(x)),
 *    out = x2 + c_proj(act(c_fc(ln_2(x2)))) (nn.Linear, biased, width intermediate_size, default 4·hidden).
 *  - attention: `attn.attention.{q,k,v}_proj` without bias, `out_proj` with bias; NO 1/√head_dim scaling.
 *  - per layer "global" (causal) or "local" attention: config.attention_layers = attention_types expanded
 *    ([[["global","local"], n]] → global, local, … ; GPTNeoConfig.expand_attention_types_params). A local layer's
 *    query at index s sees keys t with s − window_size < t ≤ s (torch.tril(bias, −window_size) removed); for
 *    left-padded rows index differences equal position differences, so the window is applied on positions here
 *    (`localMask`), which also holds for the runtime's slot graphs.
 *  - `transformer.ln_f`, lm_head tied to wte.
 * Quantized as GPTQModel's GptNeoQModel: groups [q_proj, k_proj, v_proj], [out_proj], [c_fc], [c_proj].
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { layerIndexOf, layerNormAt, mlp, selfAttention } from './blocks.ts';
import { checkActivation, configInt, defineArchitecture, embedWithPositions, linear } from './define.ts';

/** Attention kind of every layer (GPTNeoConfig: attention_types, default [[["global", "local"], 12]]). */
export function gptNeoAttentionLayers(cfg: ModelConfig): ('global' | 'local')[] {
  const types = cfg.raw.attention_types ?? [[['global', 'local'], 12]];
  const bad = () => fail(`${cfg.path}: field "attention_types" must be a list of [[kinds…], count] with kinds "global"/"local"`);
  if (!Array.isArray(types)) bad();
  const out: ('global' | 'local')[] = [];
  for (const item of types as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2 || !Array.isArray(item[0]) || !Number.isInteger(item[1]) || item[1] < 0) bad();
    const [kinds, n] = item as [unknown[], number];
    if (!kinds.every((k) => k === 'global' || k === 'local')) bad();
    for (let i = 0; i < n; i++) out.push(...(kinds as ('global' | 'local')[]));
  }
  if (out.length !== cfg.numLayers) fail(`${cfg.path}: attention_types expand to ${out.length} layers, num_layers is ${cfg.numLayers}`);
  return out;
}

const localMasks = new WeakMap<GraphBuilder, Map<string, string>>();

/**
 * `mask` [B|1,1,S,T] (additive, causal) further restricted to keys whose position is within `window` of the query's:
 * key positions from the last query row (it sees every real key of the row: cumsum − 1), the S queries are the row's
 * last S real keys. Built once per graph, mask and window.
 */
function localMask(g: GraphBuilder, mask: string, window: number): string {
  const key = `${mask}:${window}`;
  let byGraph = localMasks.get(g);
  if (!byGraph) localMasks.set(g, (byGraph = new Map()));
  const hit = byGraph.get(key);
  if (hit) return hit;
  const last = g.op('Slice', [mask, g.constI64([-1]), g.constI64([2 ** 62]), g.constI64([2])]); // [B|1,1,1,T]
  const vis = g.op('Cast', [g.op('Equal', [last, g.constF(0)])], { to: 7 });
  const kpos = g.op('Sub', [g.op('CumSum', [vis, g.constI64(-1)]), g.constI64(1)]); // real keys: their position
  const S = g.op('Shape', [mask], { start: 2, end: 3 });
  const first = g.op('Sub', [g.op('ReduceMax', [kpos, g.constI64([3])], { keepdims: 1 }), g.op('Sub', [S, g.constI64([1])])]); // [B|1,1,1,1]
  const qpos = g.op('Add', [first, g.op('Unsqueeze', [g.op('Range', [g.constI64(0), g.op('Squeeze', [S]), g.constI64(1)]), g.constI64([1])])]); // [B|1,1,S,1]
  const out = g.op('Where', [g.op('Greater', [kpos, g.op('Sub', [qpos, g.constI64(window)])]), mask, g.constF(-3.4028234663852886e38)]);
  byGraph.set(key, out);
  return out;
}

export const gptNeo = defineArchitecture({
  modelTypes: ['gpt_neo'],
  // GPTNeoConfig: max_position_embeddings 2048, intermediate_size null (4·hidden), window_size 256, gelu_new, tied.
  config: { gpt_neo: { hidden_act: 'gelu_new', rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 50256, eos_token_id: 50256 } },
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.wpe', 'transformer.ln_f'],
  modules: (_, { h, i }) => ({
    attn: { attention: { q_proj: linear(0, h, h), k_proj: linear(0, h, h), v_proj: linear(0, h, h), out_proj: linear(1, h, h, true) } },
    mlp: { c_fc: linear(2, h, i, true), c_proj: linear(3, i, h, true) },
  }),
  embedding: 'transformer.wte',
  norm: ['transformer.ln_f', layerNormAt],

  layerGraphVaries: (cfg) => new Set(gptNeoAttentionLayers(cfg)).size > 1,
  check(cfg) {
    if (cfg.hiddenSize % cfg.numHeads !== 0 || cfg.headDim * cfg.numHeads !== cfg.hiddenSize || cfg.numKvHeads !== cfg.numHeads)
      fail(`${cfg.path}: gpt_neo needs head_dim = hidden_size (${cfg.hiddenSize}) / num_heads (${cfg.numHeads})`);
    gptNeoAttentionLayers(cfg);
    configInt(cfg, 'window_size', 256);
    checkActivation(cfg, cfg.hiddenAct, 'activation_function');
  },

  learnedPositions: true,
  embed: (g, cfg, w, ids, positions) => embedWithPositions(g, cfg, w, ids, positions, 'transformer.wte', 'transformer.wpe'),

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const ln = (name: string, v: string) => layerNormAt(g, w, `${p}${name}`, v, cfg.hiddenSize, cfg.rmsNormEps);
    const local = gptNeoAttentionLayers(cfg)[layerIndexOf(ctx)] === 'local';
    const actx = local ? { ...ctx, mask: localMask(g, ctx.mask, configInt(cfg, 'window_size', 256)) } : ctx;
    const a = m.attn.attention;
    const attn = selfAttention(actx, ln('ln_1', x), { q_proj: a.q_proj, k_proj: a.k_proj, v_proj: a.v_proj, o_proj: a.out_proj }, { rope: 'none', scale: 1 });
    if (actx.present) ctx.present = actx.present;
    const x2 = g.op('Add', [x, attn]);
    return g.op('Add', [x2, mlp(g, w, ln('ln_2', x2), m.mlp.c_fc, m.mlp.c_proj, cfg.hiddenAct)]);
  },
});
