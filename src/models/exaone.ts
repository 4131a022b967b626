/**
 * EXAONE 3.0 / 3.5 (remote code: the model repo's modeling_exaone.py, ExaoneForCausalLM; model_type "exaone"). Llama
 * math under GPT-2-style names, as vLLM's ExaoneForCausalLM (vllm/model_executor/models/exaone.py) and LG's converter
 * to EXAONE 4 (lgai-exaone/transformers models/exaone4/convert_old_exaone_to_exaone4_compatible.py) read it:
 *  - `transformer.wte`, per layer `transformer.h.<i>.`: RMSNorm `ln_1` → attention `attn.attention.{q,k,v,out}_proj`
 *    (GQA, rotate-half RoPE over the whole head_dim, base rope_theta, rope_scaling as Llama; biases iff attention_bias
 *    or bias) → residual; RMSNorm `ln_2` → SwiGLU `mlp.c_fc_0` (gate), `mlp.c_fc_1` (up), `mlp.c_proj` (down) → residual;
 *  - `transformer.ln_f`, `lm_head` (tied to wte by default).
 * Config (ExaoneConfig, copied in vllm/transformers_utils/configs/exaone.py): num_layers, activation_function,
 * layer_norm_epsilon (1e-6); its `rotary_pct` (default 0.25) is not read by the model (rotary covers head_dim).
 * No reference run of the remote code was possible (its file is not in reach, test/fixtures/archs/README.md); the test
 * checks the layout against the llama fixture renamed as the converter maps it.
 */
import { rmsNormAt, gatedMlp, selfAttention } from './blocks.ts';
import { checkActivation, configBool, defineArchitecture, linear } from './define.ts';

export const exaone = defineArchitecture({
  modelTypes: ['exaone'],
  // ExaoneConfig defaults: layer_norm_epsilon 1e-6, tied, bos 0 / eos 2, kv heads = heads, intermediate 4·hidden.
  config: { exaone: { hidden_act: 'silu', rms_norm_eps: 1e-6, max_position_embeddings: 2048, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 2 } },
  // rotary_pct is a leftover of the config class: the attention rotates the whole head.
  configure: (cfg) => ({ partialRotaryFactor: 1, rotaryDim: cfg.headDim }),
  layersBlockName: 'transformer.h.',
  outsideLayerModules: ['transformer.wte', 'transformer.ln_f'],
  embedding: 'transformer.wte',
  // GPTQModel ExaoneGPTQ: [k, v, q], [out], [c_fc_0, c_fc_1], [c_proj].
  modules: (cfg, { h, i, q, kv }) => {
    const b = cfg.attentionBias || configBool(cfg, 'bias', false);
    return {
      attn: { attention: { k_proj: linear(0, h, kv, b), v_proj: linear(0, h, kv, b), q_proj: linear(0, h, q, b), out_proj: linear(1, q, h, b) } },
      mlp: { c_fc_0: linear(2, h, i, cfg.mlpBias), c_fc_1: linear(2, h, i, cfg.mlpBias), c_proj: linear(3, i, h, cfg.mlpBias) },
    };
  },
  norm: ['transformer.ln_f', rmsNormAt],
  check: (cfg) => checkActivation(cfg),
  layer(ctx, x, m) {
    const { g, cfg, w, prefix: p } = ctx;
    const a = m.attn.attention;
    const n1 = rmsNormAt(g, w, `${p}ln_1`, x, cfg.hiddenSize, cfg.rmsNormEps);
    const x2 = g.op('Add', [x, selfAttention(ctx, n1, { q_proj: a.q_proj, k_proj: a.k_proj, v_proj: a.v_proj, o_proj: a.out_proj })]);
    const n2 = rmsNormAt(g, w, `${p}ln_2`, x2, cfg.hiddenSize, cfg.rmsNormEps);
    return g.op('Add', [x2, gatedMlp(g, w, n2, { gate_proj: m.mlp.c_fc_0, up_proj: m.mlp.c_fc_1, down_proj: m.mlp.c_proj }, cfg.hiddenAct)]);
  },
});
