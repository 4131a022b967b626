/**
 * `gptq export-onnx MODEL OUT`: the inference graph gptqjs builds for a checkpoint (GPTQ modules on
 * com.microsoft.MatMulNBits, AWQ / bitsandbytes / AQLM on their kernels, fp modules as MatMul, KV cache in and out),
 * written as a folder that ONNX Runtime GenAI (onnxruntime-genai) loads: `og.Model(OUT)`.
 *
 * Layout (what onnxruntime-genai's model builder writes, src/python/py/models/builders/base.py make_genai_config /
 * save_processing, and what its runtime reads, src/config.cpp, src/models/kv_cache.cpp, position_inputs.cpp):
 *   model.onnx          the graph (ONNX IR 9, opset 21 + com.microsoft), weights as external data in
 *   model.onnx.data     one file, each tensor 64 KiB-aligned (src/graph/external-data.ts)
 *   genai_config.json   model.{type, vocab_size, context_length, bos/eos/pad_token_id, decoder{filename, head_size,
 *                       hidden_size, num_attention_heads, num_key_value_heads, num_hidden_layers, session_options,
 *                       inputs, outputs}} and search{… past_present_share_buffer …}
 *   tokenizer.json, tokenizer_config.json (model_max_length = context_length, as the builder sets it),
 *   special_tokens_map.json, added_tokens.json, chat_template.jinja, tokenizer.model — those the model has
 *
 * Graph inputs/outputs (genai's default names): input_ids int64 [batch_size, sequence_length], attention_mask int64
 * [batch_size, total_sequence_length], position_ids int64 [batch_size, sequence_length] (genai feeds it when the graph
 * has it: the mask's cumulative positions), past_key_values.%d.key/value float32 [batch_size, kv_heads,
 * past_sequence_length, head_size] → logits float32 [batch_size, sequence_length, vocab] (every position) and
 * present.%d.key/value float32 [batch_size, kv_heads, total_sequence_length, head_size].
 *
 * Attention, two graphs:
 *  - 'gqa' (default where every layer can run it): com.microsoft.GroupQueryAttention (src/models/attention-gqa.ts),
 *    what the model builder uses on CPU, with `past_present_share_buffer: true` as the builder writes for it: genai
 *    allocates each past as a [batch, kv_heads, max_length, head_size] buffer, binds the same buffer as present, and
 *    the op appends the new positions in place. The graph also runs with past_present_share_buffer false (past of P
 *    positions in, present of P + S out). Rotary and the additive mask (padding, sliding window, ALiBi) stay in our
 *    graph (the op's optional attention_bias input: needs an ONNX Runtime whose GroupQueryAttention has it; checked with
 *    onnxruntime-node 1.30). CPU execution provider (fused CPU kernels for RMSNorm and rotary); head_size a multiple of 8.
 *  - 'plain': attention from standard ONNX ops, the cache grown by Concat, `past_present_share_buffer: false`
 *    (genai feeds an empty past [batch, kv_heads, 0, head_size] first, then each present as the next past). Any
 *    execution provider that has MatMulNBits; every architecture gptqjs runs.
 * `type` is "decoder", onnxruntime-genai's generic decoder-only LLM (src/models/model_type.h): the specific types add
 * behaviour of the builder's own graphs (gpt2: a different cache layout; phi3: rotary-cache rewinds) that ours do not have.
 */
import { existsSync, promises as fs } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import { loadGenerationConfig, loadModelConfig, type GenerationConfig, type ModelConfig } from '../io/config.ts';
import { resolveModelDir, type HubOptions } from '../io/hub.ts';
import { realPath, writeDirAtomic, writeFileAtomic } from '../io/atomic.ts';
import { checkAccuracyLevel, type AccuracyLevel } from '../runtime/quantized-weights.ts';
import { openWeights } from '../runtime/open-weights.ts';
import { buildCausalLM, GqaUnsupportedError, type ModelGraphOptions } from '../graph/model-graph.ts';
import { writeModelWithExternalData } from '../graph/external-data.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import type { ValueInfo } from '../graph/onnx-proto.ts';
import { archFor } from '../models/registry.ts';
import type { WeightSource } from '../models/types.ts';
import { TextTokenizer } from '../io/tokenizer.ts';
import { checkLmHeadBits, isQuantizedModule, lmHeadNote, type LmHeadBits } from '../runtime/lm-head.ts';
import type { QuantizedLoadInfo } from '../runtime/gptq-checkpoint.ts';
import { logLine } from '../platform/os.ts';
import { fail } from '../errors.ts';

/** Attention of the exported graph (see the file comment); 'auto' = 'gqa' when every layer can run it, else 'plain'. */
export type ExportAttention = 'auto' | 'gqa' | 'plain';

export interface ExportOnnxOptions {
  /** Default 'auto'. */
  attention?: ExportAttention;
  /**
   * MatMulNBits `accuracy_level` written into the graph: 0 (default) = fp32 activations, the exact dequantized math;
   * 4 = int8 activations (faster on CPU, small accuracy cost).
   */
  accuracyLevel?: AccuracyLevel;
  /**
   * The output head (lm_head, or the tied embedding used as head) round-to-nearest quantized onto MatMulNBits, as
   * `LoadOptions.lmHeadBits`: 8 = symmetric int8 per 32 inputs (always at accuracy_level 4), 4 = asymmetric int4 per 32
   * at `accuracyLevel`; 0 / absent (default) = the checkpoint's head as it is (fp32, exact). At vocab 32000 × hidden
   * 2048 the fp32 head is 262 MB of model.onnx.data; int8 ~70 MB, int4 ~37 MB.
   */
  lmHeadBits?: LmHeadBits | 0;
  /** genai_config.json model.context_length and search.max_length (the KV buffer genai allocates). Default: the model's max_position_embeddings. */
  contextLength?: number;
  /** Write into a non-empty OUT: replace the files this export writes, keep every other file. */
  overwrite?: boolean;
  /** Hub download settings when MODEL is a Hub id. */
  hub?: HubOptions;
  onLog?: (msg: string) => void;
}

export interface ExportOnnxResult {
  out: string;
  /** The files written, with their sizes in bytes. */
  files: { name: string; bytes: number }[];
  attention: 'gqa' | 'plain';
  /** genai_config.json search.past_present_share_buffer. */
  pastPresentShareBuffer: boolean;
  /** Quantized checkpoints: the scheme and the kernel of every quantized module. */
  quantization?: QuantizedLoadInfo;
  /** Set when the output head was written quantized (ExportOnnxOptions.lmHeadBits). */
  lmHeadBits?: LmHeadBits;
  contextLength: number;
  seconds: number;
}

/** The files an export writes (and, with overwrite, the only ones it replaces in an existing folder). */
const EXPORT_FILES = ['model.onnx', 'model.onnx.data', 'genai_config.json'] as const;
/** Tokenizer files copied when the model has them (the files `tokenizer.save_pretrained` writes, plus the SentencePiece model). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.jinja', 'tokenizer.model'] as const;

/** Graph dims renamed to the model builder's names (base.py input_shapes/output_shapes). */
function builderDims(v: ValueInfo, output: boolean): ValueInfo {
  const names: Record<string, string> = {
    batch: 'batch_size', seq: 'sequence_length', total: 'total_sequence_length', past: 'past_sequence_length',
    capacity: output ? 'total_sequence_length' : 'past_sequence_length',
  };
  return { ...v, shape: v.shape?.map((d) => (typeof d === 'string' ? (names[d] ?? d) : d)) };
}

/** The graph options of each exported attention. */
const GRAPH: Record<'gqa' | 'plain', ModelGraphOptions> = {
  gqa: { kvCache: true, kvMode: 'gqa', fusedOps: true },
  plain: { kvCache: true, kvMode: 'concat' },
};

const ids = (v: number | number[] | null | undefined): number[] => (v === null || v === undefined ? [] : ([] as number[]).concat(v));

/**
 * genai_config.json for the exported graph (onnxruntime-genai's config reference, docs/genai/reference/config.md, and
 * the keys its parser accepts, src/config.cpp; values as the model builder's make_genai_config picks them: token ids
 * and sampling settings from generation_config.json over config.json, pad = eos when unset, bos = 1 when unset).
 */
function genaiConfig(cfg: ModelConfig, gen: GenerationConfig, o: { contextLength: number; shareBuffer: boolean; tokenizer?: TextTokenizer; where: string }): Record<string, unknown> {
  const eos = ids(gen.eosTokenId ?? cfg.eosTokenId ?? o.tokenizer?.eosId);
  if (!eos.length) fail(`${o.where}: no eos_token_id in generation_config.json, config.json or the tokenizer; onnxruntime-genai needs model.eos_token_id`);
  const bos = gen.bosTokenId ?? cfg.bosTokenId ?? o.tokenizer?.bosId ?? 1;
  const pad = gen.padTokenId ?? cfg.padTokenId ?? eos[0]!;
  return {
    model: {
      bos_token_id: bos,
      context_length: o.contextLength,
      decoder: {
        session_options: { log_id: 'onnxruntime-genai', provider_options: [] },
        filename: 'model.onnx',
        head_size: cfg.headDim,
        hidden_size: cfg.hiddenSize,
        inputs: {
          input_ids: 'input_ids', attention_mask: 'attention_mask', position_ids: 'position_ids',
          past_key_names: 'past_key_values.%d.key', past_value_names: 'past_key_values.%d.value',
        },
        outputs: { logits: 'logits', present_key_names: 'present.%d.key', present_value_names: 'present.%d.value' },
        num_attention_heads: cfg.numHeads,
        num_hidden_layers: cfg.numLayers,
        num_key_value_heads: cfg.numKvHeads,
      },
      eos_token_id: eos.length === 1 ? eos[0] : eos,
      pad_token_id: pad,
      type: 'decoder',
      vocab_size: cfg.vocabSize,
    },
    search: {
      diversity_penalty: 0.0,
      do_sample: gen.doSample,
      early_stopping: true,
      length_penalty: 1.0,
      max_length: o.contextLength,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: o.shareBuffer,
      repetition_penalty: gen.repetitionPenalty,
      temperature: gen.temperature,
      top_k: gen.topK,
      top_p: gen.topP,
    },
  };
}

/**
 * Export `model` (a directory or Hub id: fp, GPTQ, AWQ, bitsandbytes or AQLM) to the folder `out` for
 * onnxruntime-genai (layout and graph conventions in the file comment). The folder is built in a staging folder and
 * installed only when complete; `out` must be missing or empty unless `overwrite` (which replaces only the files an
 * export writes); `out` equal to the model folder is refused. Throws GptqError: unknown model folder or Hub id,
 * unsupported architecture, attention 'gqa' on a model whose layers cannot run GroupQueryAttention (naming why), a
 * non-empty `out`, no eos token id, a bad contextLength or lmHeadBits.
 */
export async function exportOnnx(model: string, out: string, o: ExportOnnxOptions = {}): Promise<ExportOnnxResult> {
  const t0 = performance.now();
  const log = o.onLog ?? logLine;
  const mode = o.attention ?? 'auto';
  if (!['auto', 'gqa', 'plain'].includes(mode)) fail(`export-onnx: attention must be auto, gqa or plain, got ${JSON.stringify(mode)}`);
  const accuracyLevel = checkAccuracyLevel(o.accuracyLevel);
  const lmHeadBits = checkLmHeadBits(o.lmHeadBits);
  if (existsSync(out) && !(await fs.stat(out)).isDirectory()) fail(`export-onnx: ${out} exists and is not a directory`);
  const dir = await resolveModelDir(model, o.hub);
  if (realPath(dir) === realPath(out)) fail(`export-onnx: the output folder ${out} is the model folder; choose another OUT`);
  const cfg = await loadModelConfig(dir);
  const arch = archFor(cfg.modelType);
  arch.check?.(cfg);
  const contextLength = o.contextLength ?? cfg.maxPositionEmbeddings;
  if (!Number.isInteger(contextLength) || contextLength <= 0) fail(`export-onnx: context length must be a positive integer, got ${contextLength}${o.contextLength === undefined ? ` (max_position_embeddings in ${cfg.path}; pass --context-length)` : ''}`);
  // refuse a non-empty OUT before any weight is read
  const entries = existsSync(out) ? await fs.readdir(out) : [];
  if (entries.length && !o.overwrite) fail(`export-onnx: ${out} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); choose a new folder or pass --overwrite (replaces only ${EXPORT_FILES.join(', ')} and the tokenizer files)`);

  const gen = await loadGenerationConfig(dir);
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await TextTokenizer.fromDir(dir) : undefined;
  const genai = (shareBuffer: boolean) => genaiConfig(cfg, gen, { contextLength, shareBuffer, tokenizer, where: dir });
  genai(false); // fails now (before the weights are read) when the token ids are missing
  // the weights as CausalLM.load reads them (one open; GPTQ, AWQ/bnb/AQLM or fp; the head quantized when asked)
  const w = await openWeights(dir, cfg, arch, {
    accuracyLevel, onLog: log,
    ...(lmHeadBits ? { lmHead: { bits: lmHeadBits, accuracyLevel: lmHeadBits === 8 ? 4 as const : accuracyLevel, asked: true } } : {}),
  });
  const source = (): WeightSource => w.source();
  const headQuantized = !!lmHeadBits && !isQuantizedModule(w.quantization, arch.lmHead);
  if (lmHeadBits && headQuantized) log(lmHeadNote(lmHeadBits, lmHeadBits === 8 ? 4 : accuracyLevel));

  let attention: 'gqa' | 'plain' = mode === 'plain' ? 'plain' : 'gqa';
  let g: GraphBuilder;
  try { g = buildCausalLM(arch, cfg, source(), GRAPH[attention]); } catch (e) {
    if (!(e instanceof GqaUnsupportedError)) throw e;
    if (mode === 'gqa') fail(`export-onnx: attention gqa: ${e.message}; use --attention plain (or auto)`);
    log(`export-onnx: ${e.message}, so the graph uses plain attention (Concat KV cache, past_present_share_buffer false)`);
    attention = 'plain';
    g = buildCausalLM(arch, cfg, source(), GRAPH.plain);
  }
  if (lmHeadBits && !w.headUsed()) log(`export-onnx: the ${cfg.modelType} head is not the linear "${arch.lmHead}"; lmHeadBits had no effect`);
  g.inputs.splice(0, g.inputs.length, ...g.inputs.map((v) => builderDims(v, false)));
  g.outputs.splice(0, g.outputs.length, ...g.outputs.map((v) => builderDims(v, true)));
  const shareBuffer = attention === 'gqa';

  const copied = TOKENIZER_FILES.filter((f) => existsSync(join(dir, f)));
  const owned = new Set<string>([...EXPORT_FILES, ...TOKENIZER_FILES]);
  await writeDirAtomic(out, async (tmp) => {
    await writeModelWithExternalData(g, join(tmp, 'model.onnx'));
    await writeFileAtomic(join(tmp, 'genai_config.json'), `${JSON.stringify(genai(shareBuffer), null, 4)}\n`);
    for (const f of copied) {
      if (f === 'tokenizer_config.json') {
        // as the builder's save_processing: model_max_length = context_length (HF often stores 1e30 for "no limit")
        const tc = JSON.parse(await fs.readFile(join(dir, f), 'utf8')) as Record<string, unknown>;
        tc.model_max_length = contextLength;
        await writeFileAtomic(join(tmp, f), `${JSON.stringify(tc, null, 2)}\n`);
      } else await fs.copyFile(join(dir, f), join(tmp, f));
    }
  }, { overwrite: o.overwrite, owns: (n) => owned.has(n) });
  const files: { name: string; bytes: number }[] = [];
  for (const name of [...EXPORT_FILES, ...copied]) files.push({ name, bytes: (await fs.stat(join(out, name))).size });
  return { out, files, attention, pastPresentShareBuffer: shareBuffer, quantization: w.quantization, lmHeadBits: headQuantized && w.headUsed() ? lmHeadBits : undefined, contextLength, seconds: (performance.now() - t0) / 1000 };
}
