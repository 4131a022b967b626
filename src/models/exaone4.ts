/**
 * EXAONE 4.0 (transformers modeling_exaone4.py, Exaone4ForCausalLM; model_type "exaone4").
 *  - Llama linears (`self_attn.q_proj/k_proj/v_proj/o_proj`, SwiGLU `mlp.*`, no biases), GQA, scores · head_dim^-0.5;
 *  - q/k norms per head (`self_attn.q_norm` / `k_norm`, RMSNorm over head_dim, as Qwen3) before rotary;
 *  - post-norms only (as OLMo 2): h = x + post_attention_layernorm(attn(x)); out = h + post_feedforward_layernorm(mlp(h));
 *  - hybrid attention: layer_types (or, absent, layer i is "sliding_attention" unless (i+1) % sliding_window_pattern
 *    == 0): sliding layers attend to the last `sliding_window` positions with RoPE; with a sliding window set, the
 *    global ("full_attention") layers use NO positional encoding (NoPE); without one, every layer is global with RoPE.
 * The graphs' shared mask has no window here (slidingWindow null); a sliding layer narrows it itself (`windowMask`).
 */
import { fail } from '../errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ModelConfig } from '../io/model-config.ts';
import { gatedMlp, layerIndexOf, rmsNorm, rmsNormAt, selfAttention } from './blocks.ts';
import { checkActivation, defineArchitecture } from './define.ts';
import { llamaModules } from './llama.ts';
import type { LayerContext } from './types.ts';

/** sliding_window (null: none) and each layer's kind (true = sliding), as Exaone4Config.__post_init__ fills them in. */
export function exaone4Layers(cfg: ModelConfig): { window: number | null; sliding: boolean[] } {
  const sw = cfg.raw.sliding_window === undefined ? 4096 : cfg.raw.sliding_window;
  if (sw !== null && !(Number.isInteger(sw) && (sw as number) > 0)) fail(`${cfg.path}: field "sliding_window" must be a positive integer or null`);
  const given = cfg.raw.layer_types;
  if (Array.isArray(given)) {
    if (given.length !== cfg.numLayers || !given.every((t) => t === 'sliding_attention' || t === 'full_attention'))
      fail(`${cfg.path}: field "layer_types" must list "sliding_attention" / "full_attention" for each of the ${cfg.numLayers} layers`);
    return { window: sw as number | null, sliding: given.map((t) => t === 'sliding_attention') };
  }
  if (sw === null) return { window: null, sliding: Array(cfg.numLayers).fill(false) };
  const p = cfg.raw.sliding_window_pattern ?? 4;
  if (!Number.isInteger(p) || (p as number) <= 0) fail(`${cfg.path}: field "sliding_window_pattern" must be a positive integer (or give "layer_types"), got ${JSON.stringify(p)}`);
  return { window: sw as number, sliding: Array.from({ length: cfg.numLayers }, (_, i) => (i + 1) % (p as number) !== 0) };
}

const windowCache = new WeakMap<GraphBuilder, Map<string, string>>();
/**
 * The additive mask [B|1, 1, S, T] narrowed to a sliding window: of the keys a query sees, only its last `window` stay
 * visible. Visible keys hold consecutive positions up to the query's (padding and unused cache slots are hidden), so
 * this is position(key) > position(query) − window, as Transformers' sliding-window mask, for every graph's mask.
 */
export function windowMask(g: GraphBuilder, mask: string, window: number): string {
  const key = `${mask}:${window}`;
  const byGraph = windowCache.get(g) ?? windowCache.set(g, new Map()).get(g)!;
  const hit = byGraph.get(key);
  if (hit) return hit;
  const vis = g.op('Cast', [g.op('Equal', [mask, g.constF(0)])], { to: 1 });
  const fromRight = g.op('CumSum', [vis, g.constI64(3)], { reverse: 1 }); // visible keys at or after each key
  const out = g.op('Where', [g.op('LessOrEqual', [fromRight, g.constF(window)]), mask, g.constF(-3.4028234663852886e38)]);
  byGraph.set(key, out);
  return out;
}

export const exaone4 = defineArchitecture({
  modelTypes: ['exaone4'],
  // Exaone4Config defaults (configuration_exaone4.py, transformers 5.18).
  config: { exaone4: { hidden_act: 'silu', intermediate_size: 16384, num_key_value_heads: 32, rms_norm_eps: 1e-5, max_position_embeddings: 2048, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2 } },
  // The shared mask stays unwindowed; sliding layers narrow it (windowMask).
  configure: () => ({ slidingWindow: null }),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  // AutoGPTQ's llama groups: [k, v, q], [o], [up, gate], [down]; q_norm / k_norm stay fp.
  modules: (_cfg, d) => llamaModules(d),
  norm: ['model.norm', rmsNormAt],
  check(cfg) { checkActivation(cfg); exaone4Layers(cfg); },
  layerGraphVaries: (cfg) => new Set(exaone4Layers(cfg).sliding).size > 1,
  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { window, sliding } = exaone4Layers(cfg);
    const local = sliding[layerIndexOf(ctx)]!;
    const qkNorm = (t: string, which: 'q' | 'k') => rmsNorm(g, t, w.tensor(g, `${p}self_attn.${which}_norm.weight`, [cfg.headDim]), cfg.rmsNormEps);
    const c: LayerContext = local && window !== null ? { ...ctx, mask: windowMask(g, ctx.mask, window) } : ctx;
    const attn = selfAttention(c, x, m.self_attn, { qkNorm, rope: window === null || local ? 'half' : 'none' });
    if (c !== ctx) ctx.present = c.present;
    const h = cfg.hiddenSize, eps = cfg.rmsNormEps;
    const x2 = g.op('Add', [x, rmsNormAt(g, w, `${p}post_attention_layernorm`, attn, h, eps)]);
    return g.op('Add', [x2, rmsNormAt(g, w, `${p}post_feedforward_layernorm`, gatedMlp(g, w, x2, m.mlp, cfg.hiddenAct), h, eps)]);
  },
});
