/**
 * Phi-3 / Phi-3.5 / Phi-4(-mini) (transformers modeling_phi3.py, Phi3ForCausalLM; model_type "phi3").
 * Llama's layer (RMSNorm `input_layernorm` / `post_attention_layernorm`, `model.norm`, untied `lm_head` by default)
 * with two FUSED projections, quantized and saved fused under these names as GPTQModel (definitions/phi3.py
 * module_tree `qkv_proj:0, o_proj:1, gate_up_proj, down_proj`; AutoGPTQ Phi3GPTQForCausalLM inside_layer_modules
 * [[qkv_proj], [o_proj], [gate_up_proj], [down_proj]]) and vLLM (phi3.py = llama with packed qkv_proj/gate_up_proj)
 * read them:
 *  - `self_attn.qkv_proj` [heads·d + 2·kv·d, hidden] = rows [q; k; v] (Phi3Attention slices q, k, v in that order);
 *  - `mlp.gate_up_proj` [2·intermediate, hidden] = rows [gate; up] (chunk(2)): down(up · act(gate)).
 * Rotary (rotate_half) on the first int(head_dim·partial_rotary_factor) channels; `rope_scaling` longrope (legacy
 * "su" / "yarn" types mean longrope: Phi3Config.convert_rope_params_to_dict); sliding_window when set.
 */
import { fail } from '../errors.ts';
import { activation, attendHeads, rmsNormAt, splitHeads } from './blocks.ts';
import { checkActivation, defineArchitecture, linear } from './define.ts';

export const phi3 = defineArchitecture({
  modelTypes: ['phi3'],
  // Phi3Config defaults.
  config: { phi3: { hidden_act: 'silu', intermediate_size: 8192, rms_norm_eps: 1e-5, max_position_embeddings: 4096, original_max_position_embeddings: 4096, sliding_window: null, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 32000, pad_token_id: 32000 } },
  // Phi3Config.convert_rope_params_to_dict: rope_type "su" and "yarn" are Phi-3's names for longrope.
  configure: (cfg) => (cfg.ropeScaling && ['su', 'yarn'].includes(cfg.ropeScaling.type) ? { ropeScaling: { ...cfg.ropeScaling, type: 'longrope' } } : {}),
  layersBlockName: 'model.layers.',
  outsideLayerModules: ['model.embed_tokens', 'model.norm'],
  modules: (_, { h, i, q, kv }) => ({
    self_attn: { qkv_proj: linear(0, h, q + 2 * kv), o_proj: linear(1, q, h) },
    mlp: { gate_up_proj: linear(2, h, 2 * i), down_proj: linear(3, i, h) },
  }),
  norm: ['model.norm', rmsNormAt],

  check(cfg) {
    checkActivation(cfg);
    if (cfg.rotaryDim % 2 !== 0) fail(`${cfg.path}: rotary dims int(head_dim·partial_rotary_factor) = ${cfg.rotaryDim} must be even`);
  },

  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const n1 = rmsNormAt(g, w, `${p}input_layernorm`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const [q, k, v] = g.opN('Split', [w.linear(g, n1, m.self_attn.qkv_proj), g.constI64([nh * d, nkv * d, nkv * d])], 3, { axis: -1 });
    const attn = attendHeads(ctx, splitHeads(g, q!, nh, d), splitHeads(g, k!, nkv, d), splitHeads(g, v!, nkv, d), m.self_attn.o_proj,
      { heads: nh, kvHeads: nkv, headDim: d, rotaryDim: cfg.rotaryDim });
    const x2 = g.op('Add', [x, attn]);
    const n2 = rmsNormAt(g, w, `${p}post_attention_layernorm`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    const [gate, up] = g.opN('Split', [w.linear(g, n2, m.mlp.gate_up_proj), g.constI64([cfg.intermediateSize, cfg.intermediateSize])], 2, { axis: -1 });
    return g.op('Add', [x2, w.linear(g, g.op('Mul', [up!, activation(g, gate!, cfg.hiddenAct)]), m.mlp.down_proj)]);
  },
});
