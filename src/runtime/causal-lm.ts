/** A loaded causal LM: config + ORT session(s) over the whole-model graph (fp32 or quantized weights). */
import { createHash } from '../platform/crypto.ts';
import { existsSync } from '../platform/fs.ts';
import { join } from '../platform/path.ts';
import * as ort from '../platform/ort.ts';
import type { InferenceSession } from '../platform/ort.ts';
import { loadGenerationConfig, loadModelConfig, parseGenerationConfig, type GenerationConfig, type ModelConfig } from '../io/config.ts';
import { resolveModelDir, type HubOptions } from '../io/hub.ts';
import type { ProgressCallback } from '../progress.ts';
import { TextTokenizer, type ChatMessage } from '../io/tokenizer.ts';
import { DEFAULT_MODEL_DIR } from '../paths.ts';
import { checkStoredFinite, openModelCheckpoint, readFloatTensors } from './model-checkpoint.ts';
import { buildCausalLM, GqaUnsupportedError, kvNames, type ModelGraphOptions } from '../graph/model-graph.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { createSession, f32, type Device } from '../graph/session.ts';
import { archFor } from '../models/registry.ts';
import type { ArchDefinition, WeightSource } from '../models/types.ts';
import { fail, GptqError, option } from '../errors.ts';
import { firstNonFinite, transpose } from '../tensor.ts';
import { checkAccuracyLevel, type AccuracyLevel } from './quantized-weights.ts';
import type { QuantizedLoadInfo } from './gptq-checkpoint.ts';
import { checkLmHeadBits, lmHeadNote, type LmHeadBits } from './lm-head.ts';
import { openWeights, type OpenedWeights } from './open-weights.ts';
import { declaresQuantization } from '../formats/common.ts';
import { graphCacheKey, GraphCache, type GraphCacheOption } from './graph-cache.ts';
import { collectGarbage } from '../gc.ts';
import { logLine } from '../platform/os.ts';
import { adapterFingerprint, checkAdapterName, LORA_GATE, LoraWeights, readLoraAdapter, type LoraAdapter } from './lora.ts';
import { chatText, generateText, streamText, type ChatOptions, type ChatResult, type TextGenerationOptions, type TextGenerationResult } from './text.ts';

export type AttentionMode = 'auto' | 'buffer' | 'gqa' | 'plain' | 'slots';

export interface LoadOptions {
  device?: Device; threads?: number;
  /**
   * ORT intra-op threads busy-wait between kernels (ORT's own default). Default here: false — on the 2-core dev
   * machine with other processes running, decode was 1.5× faster without spinning (bench/decode.ts); on an idle
   * machine spinning saves a thread wake-up per parallel kernel.
   */
  spinning?: boolean;
  /**
   * GPTQ checkpoints: MatMulNBits `accuracy_level`. 0 (default) = fp32 activations, the exact math of the
   * dequantized model; 4 = int8-quantized activations (faster, small accuracy cost; also enables the fast
   * 8-bit kernel). Ignored for fp checkpoints.
   */
  accuracyLevel?: AccuracyLevel;
  /**
   * bitsandbytes 4-bit and AQLM checkpoints: dequantize their linears to fp32 weights at load instead of running them
   * on com.microsoft.MatMulBnb4 / the in-graph AQLM codebook gather (both rebuild the weight on every call: 4 or ~2
   * bits/weight resident, slower per token). Exact either way; fp32 costs 4 bytes/weight. Default false. Other
   * formats ignore it (AWQ runs on MatMulNBits; LLM.int8 is fp32 unless accuracyLevel 4).
   */
  dequantize?: boolean;
  /** Where load-time notices go (e.g. modules dequantized to fp32); default stderr. */
  onLog?: (msg: string) => void;
  /**
   * KV-cache attention. 'auto' (default): 'buffer' on the CPU EP when every layer can run on it, else 'plain'.
   * 'buffer': one graph (perplexity, prefill and decode) that reads the cache in place from buffers the runtime owns
   * (keys head-major, values transposed) and returns only the new keys/values (src/models/attention-buffer.ts; its cost
   * per step grows with the context only by the attention arithmetic). 'gqa': com.microsoft.GroupQueryAttention appending into a
   * preallocated buffer in place (CPU EP only; onnxruntime-node copies every bound buffer back after each run, so a
   * decode step costs more the larger the cache — kept for comparison). 'plain': the portable graph that grows the
   * cache with Concat (a full-sequence and a decode session). All compute the same function (tests compare them). 'slots': the KV-slot graph of continuous batching
   * (`SlotCache`, src/runtime/slots.ts; `gptq serve`): rows with their own cache lengths in one step, caches read from
   * buffers the runtime owns and the new keys/values written back by JS (any device; forwardStep, logits and nll work
   * too, computing the same function).
   */
  attention?: AttentionMode;
  /**
   * The output head (lm_head, or the tied embedding used as head) on MatMulNBits with weights round-to-nearest
   * quantized at load — 8: symmetric int8 per 32 inputs, always at accuracy_level 4 (ORT has no fast 8-bit kernel with
   * fp32 activations); 4: asymmetric int4 per 32 inputs, at the model's accuracy level; 0: the checkpoint's head as it
   * is (exact). Default: 8 for quantized checkpoints (GPTQ, AWQ, bitsandbytes, AQLM) run with int8 activations (accuracyLevel 4, the CLI's speed commands),
   * as ONNX Runtime GenAI's and llama.cpp's quantized models do — the head is the largest single matrix (vocab 32000 ×
   * hidden 2048 fp32 is 262 MB read per generated token); measured: perplexity within 0.1% (README "Inference
   * speed"), decode +28% on a 1B shape. Else 0: accuracy level 0 stays the exact dequantized math. Logged when on.
   */
  lmHeadBits?: LmHeadBits | 0;
  /**
   * Compiled-graph cache (src/runtime/graph-cache.ts): true (default for `load`) = ~/.cache/gptqjs/graphs (or
   * $GPTQJS_CACHE/graphs) for checkpoints of 32 MB or more; a directory path (every size); or false. Keyed by the
   * checkpoint's files (names, sizes, mtimes, safetensors headers), config, load options, gptqjs and ORT versions.
   */
  graphCache?: GraphCacheOption;
  /**
   * Build the full-sequence graph with the per-token NLL output (input `labels`, output `nll`; see `nll()`), so that
   * perplexity runs on the main session. Off by default for `load`: it adds a LogSoftmax over the returned logits to
   * every run (per decode step ~10 µs at vocab 512, ~0.1 ms at 152k on the 2-core dev machine). Without it, the first
   * `nll()` call builds a separate full-sequence NLL session (the checkpoint is read again on a graph-cache miss), a
   * second copy of the weights in ONNX Runtime while the model stays loaded. `gptq ppl` sets it.
   */
  nll?: boolean;
  /** Hub download settings when `load` is given a Hub id (revision, cache dir, offline, token; src/io/hub.ts). */
  hub?: HubOptions;
  /**
   * Progress of the Hub download when `load` is given a Hub id (events of stage 'download': file, bytes, total;
   * src/progress.ts). Same as `hub.onProgress`, which wins when both are given. Local directories report nothing.
   */
  onProgress?: ProgressCallback;
  /**
   * PEFT LoRA adapters to load with the model: name → adapter directory (adapter_config.json +
   * adapter_model.safetensors, as PEFT's save_pretrained writes them; rules of peft 0.21 in src/runtime/lora.ts). All
   * run UNMERGED in one graph beside the base linears (GPTQ MatMulNBits, fp Gemm, …) and are chosen per call
   * (`adapter` below, `generate(…, { adapter })`, `withAdapter(name)`) or per batch row (`runSlots`, `gptq serve`'s
   * "model:adapter" ids). Names: letters, digits, "_", "-", ".". Throws GptqError (one line naming the file and
   * field/tensor) for a missing file, an unsupported PEFT type or LoRA variant (DoRA, …), a target module the model
   * lacks, a shape mismatch.
   */
  adapters?: Record<string, string>;
  /** The adapter that calls use when they choose none (a name of `adapters`); default null = the base model. */
  adapter?: string | null;
}

/**
 * KV cache of a running sequence batch, per layer. Plain form: [B, kvH, length, d]. Buffer form (`capacity` set):
 * [B, kvH, capacity, d] (GroupQueryAttention, slots), with `valuesTransposed` the values [B, kvH, d, capacity]
 * (attention 'buffer'; keys as before), the first `length` positions valid. Any model takes any form (converted when
 * needed). Steps append in place, so the cache forwardStep returns shares storage with the one passed in: an older
 * cache object still holds its first `length` positions (they are never rewritten; see truncateCache), but two
 * continuations of one cache overwrite each other's new positions — use `cloneCache` to branch.
 */
export interface KvCache { keys: Float32Array[]; values: Float32Array[]; length: number; batch: number; capacity?: number; valuesTransposed?: boolean }

/**
 * Read every float tensor of a checkpoint as fp32 (small/medium models; the quantizer streams instead), by the model's
 * loading rules (src/runtime/model-checkpoint.ts: aliases, tied embeddings). `model` defaults to the directory's
 * config.json and its architecture.
 */
export async function loadFloatWeights(dir: string, model?: { cfg: ModelConfig; arch: ArchDefinition }): Promise<Map<string, Float32Array>> {
  const ck = await openModelCheckpoint(dir, model?.cfg, model?.arch);
  try { return await readFloatTensors(ck); } finally { await ck.dispose(); }
}

/**
 * The graph set a model runs on: the KV cache read in place from buffers (values transposed), in-place GroupQueryAttention,
 * plain Concat KV, or KV slots (continuous batching).
 */
export type GraphKind = 'buffer' | 'gqa' | 'plain' | 'slots';
type Sessions = { kind: 'buffer' | 'gqa' | 'slots'; fast: InferenceSession } | { kind: 'plain'; full: InferenceSession; step: InferenceSession };

/** Graphs of each attention mode, in session order (the first one runs full sequences: logits(), nll()). */
const GRAPHS: Record<GraphKind, ModelGraphOptions[]> = {
  buffer: [{ kvCache: true, kvMode: 'buffer', logitsToKeepInput: true }],
  gqa: [{ kvCache: true, kvMode: 'gqa', logitsToKeepInput: true }],
  plain: [{ kvCache: false }, { kvCache: true, lastLogitsOnly: true }],
  slots: [{ kvCache: true, kvMode: 'slots', logitsToKeepInput: true }],
};
/** The graphs of a mode for a device (fused CPU kernels only on the CPU EP), with the NLL output on request. */
const graphsFor = (kind: GraphKind, device: Device, nll = false): ModelGraphOptions[] =>
  GRAPHS[kind].map((g, i) => ({ ...g, fusedOps: device === 'cpu', ...(nll && i === 0 ? { nllOutput: true, argmaxOutput: true } : {}) }));
/** Graph-cache key of one graph of a checkpoint: its name and a hash of its options. */
const graphKey = (base: string, name: string, g: ModelGraphOptions) =>
  `${base}-${name}-${createHash('sha256').update(JSON.stringify(g)).digest('hex').slice(0, 8)}`;

/**
 * Tokens per run of a long prompt on the buffer graph (prefill and full-sequence logits/NLL): the attention scores of a
 * run take heads × chunk × context floats, and chunks skip most of the masked upper triangle of a causal prompt.
 */
const PREFILL_CHUNK = 256;

/** LoadOptions.lmHeadBits default for quantized checkpoints (GPTQ, AWQ, bitsandbytes, AQLM) at accuracy level 4 (see there). */
const DEFAULT_QUANTIZED_HEAD_BITS = 8;

/** Default first capacity of a KV buffer beyond the positions needed right away (grows by doubling). */
const CAPACITY_SLACK = 256;

/**
 * Capacity of a grown KV buffer of attention 'buffer' for T positions: T and a sixteenth more (at least 64). Its
 * decode step reads the whole buffer (src/models/attention-buffer.ts), so the room beyond T is kept small: on average
 * ~3% more reads, against a copy of the cache every T/16 steps (one read and write of it, ~16 positions per step).
 */
const bufferCapacity = (T: number) => T + Math.max(64, Math.ceil(T / 16));

export class CausalLM {
  /** Set for GPTQ checkpoints: settings and the kernel each quantized module runs on. */
  quantization?: QuantizedLoadInfo;
  /** Set when the output head runs quantized (LoadOptions.lmHeadBits). */
  lmHead?: { bits: LmHeadBits; accuracyLevel: AccuracyLevel };
  /** Where the graphs came from (graph cache) and how long building + session creation took, in seconds. */
  loadInfo: { graphCache: 'hit' | 'miss' | 'off'; attention: GraphKind; seconds?: number } = { graphCache: 'off', attention: 'plain' };
  private readonly tensors = new WeakMap<Float32Array, ort.Tensor>();
  /** The main full-sequence graph has the `labels` input and `nll` output (LoadOptions.nll). */
  private nllInMain = false;
  /** Without it: the separate NLL session, created by the first nll() call. */
  private nllSession?: Promise<InferenceSession>;
  private makeNllSession?: () => Promise<InferenceSession>;
  /** The checkpoint directory (CausalLM.load), scanned to name the broken tensor when an output is NaN/Inf. */
  private sourceDir?: string;
  /** Builds the separate NLL session (before any adapter gating). */
  private makeRawNll?: () => Promise<InferenceSession>;
  /** Adapters: their names (gate columns), the ungated sessions, the views by adapter, this object's adapter. */
  private lora?: { names: readonly string[]; raw: Sessions; views: Map<string | null, CausalLM>; active: string | null };
  /** The separate NLL session, shared by the model and its adapter views. */
  private sharedNll: { raw?: Promise<InferenceSession> } = {};
  /** A withAdapter() view: shares the sessions, so dispose() leaves them to the loaded model. */
  private view = false;

  /** The tokenizer (tokenizer.json) of a model loaded from a directory that has one; text generation needs it. */
  tokenizer?: TextTokenizer;
  /** generation_config.json (Transformers' defaults when the file is absent): sampling defaults, eos/bos/pad ids. */
  generationConfig: GenerationConfig = parseGenerationConfig({});
  /** The directory the model was loaded from (a Hub id resolves to its cache folder); unset for in-memory weights. */
  source?: string;

  private constructor(readonly cfg: ModelConfig, readonly arch: ArchDefinition, private readonly s: Sessions) {
    this.loadInfo.attention = s.kind;
  }

  /**
   * 'buffer': cache read in place from buffers (values transposed); 'gqa': KV decode appends in place with
   * GroupQueryAttention; 'plain': Concat graphs; 'slots': KV-slot graph.
   */
  get attention(): GraphKind { return this.s.kind; }

  /**
   * Build the graphs from a weight source: with attention 'auto' on CPU one GroupQueryAttention graph (full-sequence
   * logits, prefill and decode), else the plain full-sequence graph (ppl) and KV-cache step graph. LoadOptions.nll
   * defaults to true here: the weights are not kept for building a separate NLL graph later.
   */
  static async fromWeights(cfg: ModelConfig, w: () => WeightSource, o: LoadOptions = {}): Promise<CausalLM> {
    if (Object.keys(o.adapters ?? {}).length) fail('LoadOptions.adapters: adapters are read by CausalLM.load (a checkpoint directory), not fromWeights');
    const m = await CausalLM.fromGraphs(cfg, async (g) => buildCausalLM(archFor(cfg.modelType), cfg, w(), g), { ...o, nll: o.nll ?? true });
    if (!m.nllInMain) m.makeNllSession = async () => fail('nll: this model was built from in-memory weights with nll: false; build it with nll: true');
    return m;
  }

  /**
   * Sessions from a graph factory (`build(options)` may throw GqaUnsupportedError), through the graph cache when
   * given. Tries GroupQueryAttention first unless told otherwise. Every graph is built (and, with a cache, written
   * to disk with its weights as memory-mappable external data) before any session is created; then `release` drops
   * the caller's JS weights and the garbage is collected, so that JS copies and ORT's copies of the weights do not
   * add up in the peak memory.
   */
  private static async fromGraphs(cfg: ModelConfig, build: (g: ModelGraphOptions) => Promise<GraphBuilder>, o: LoadOptions,
    cache?: { store: GraphCache; key: string }, release?: () => void, adapters?: readonly string[]): Promise<CausalLM> {
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const mode = o.attention ?? 'auto';
    if (!['auto', 'buffer', 'gqa', 'plain', 'slots'].includes(mode)) fail(`attention must be auto, buffer, gqa, plain or slots, got ${JSON.stringify(mode)}`);
    const device = o.device ?? 'cpu';
    if (mode === 'gqa' && device !== 'cpu') fail(`attention "gqa" runs on the CPU execution provider only (device is ${device})`);
    const t0 = performance.now();
    let hit = true;
    /** A file path (cache) or bytes per graph of `kind`. */
    const graphsOf = async (kind: GraphKind): Promise<(string | Uint8Array)[]> => {
      const out: (string | Uint8Array)[] = [];
      for (const [i, g] of graphsFor(kind, device, !!o.nll).entries()) {
        const key = cache && graphKey(cache.key, `${kind}${i}`, g);
        const path = key && cache.store.lookup(key);
        if (path) { out.push(path); continue; }
        hit = false;
        if (key && kind !== 'plain' && cache.store.isUnsupported(key)) throw new GqaUnsupportedError('recorded in the graph cache');
        let b: GraphBuilder;
        try { b = await build(g); } catch (e) {
          if (key && e instanceof GqaUnsupportedError) await cache.store.markUnsupported(key, e.message);
          throw e;
        }
        const saved = key ? await cache.store.save(key, b) : undefined;
        out.push(saved ?? b.toBytes());
      }
      return out;
    };
    let kind: GraphKind | undefined, graphs: (string | Uint8Array)[] = [];
    if (mode === 'slots') {
      try { graphs = await graphsOf('slots'); kind = 'slots'; } catch (e) {
        if (e instanceof GqaUnsupportedError) fail(`attention "slots" (continuous batching): ${e.message}`);
        throw e;
      }
    } else if (mode === 'gqa' || mode === 'buffer' || (mode === 'auto' && device === 'cpu')) {
      const k = mode === 'gqa' ? 'gqa' : 'buffer';
      try { graphs = await graphsOf(k); kind = k; } catch (e) {
        if (mode !== 'auto' || !(e instanceof GqaUnsupportedError)) throw e;
        hit = true; // judged by the plain graphs below
      }
    }
    if (!kind) { graphs = await graphsOf('plain'); kind = 'plain'; }
    if (release) { release(); await collectGarbage(); }
    const sessions: InferenceSession[] = [];
    for (const g of graphs) sessions.push(await createSession(g, { ...o, spinning: o.spinning ?? false }));
    const s: Sessions = kind === 'plain' ? { kind, full: sessions[0]!, step: sessions[1]! } : { kind, fast: sessions[0]! };
    const lora = adapters?.length ? { names: adapters, raw: s, views: new Map<string | null, CausalLM>(), active: o.adapter ?? null } : undefined;
    const m = new CausalLM(cfg, arch, lora ? gatedSessions(s, lora.names, lora.active) : s);
    m.lora = lora;
    lora?.views.set(lora.active, m);
    m.loadInfo = { graphCache: cache ? (hit ? 'hit' : 'miss') : 'off', attention: s.kind, seconds: (performance.now() - t0) / 1000 };
    m.nllInMain = !!o.nll;
    if (!o.nll) {
      m.makeRawNll = async () => {
        // the main full-sequence graph plus the NLL output (the graph a load with `nll` runs, same cache entry)
        const g = graphsFor(s.kind, device, true)[0]!, key = cache && graphKey(cache.key, `${s.kind}0`, g);
        let graph: string | Uint8Array | undefined = key ? cache.store.lookup(key) : undefined;
        if (!graph) {
          const b = await build(g);
          graph = (key ? await cache.store.save(key, b) : undefined) ?? b.toBytes();
        }
        if (release) { release(); await collectGarbage(); }
        return createSession(graph, { ...o, spinning: o.spinning ?? false });
      };
      m.makeNllSession = m.nllFactory();
    }
    return m;
  }

  /** The separate NLL session of this model (adapters: the one shared raw session, gated with this view's adapter). */
  private nllFactory(): () => Promise<InferenceSession> {
    const make = this.makeRawNll!;
    if (!this.lora) return make;
    const l = this.lora, shared = this.sharedNll;
    return async () => gated(await (shared.raw ??= make().catch((e: unknown) => { shared.raw = undefined; throw e; })), l.names, l.active);
  }

  // ---- adapters (PEFT LoRA, src/runtime/lora.ts) ----

  /** Names of the LoRA adapters loaded with the model (LoadOptions.adapters), in gate order; [] without. */
  get adapters(): readonly string[] { return this.lora?.names ?? []; }

  /** The adapter this object's calls run with (null = the base model). */
  get adapter(): string | null { return this.lora?.active ?? null; }

  /**
   * The same model running with adapter `name` (null = the base model): a view that shares this model's sessions
   * (no copy of any weight; views are cached per name). Its dispose() does nothing — dispose the loaded model. Throws
   * GptqError for a name that was not loaded.
   */
  withAdapter(name: string | null): CausalLM {
    const l = this.lora;
    if (!l) {
      if (name === null) return this;
      fail(`adapter ${JSON.stringify(name)}: the model was loaded without adapters (${option('LoadOptions.adapters', '--adapter')})`);
    }
    if (name !== null && !l.names.includes(name)) fail(`adapter ${JSON.stringify(name)} is not loaded (loaded: ${l.names.join(', ')}; null = the base model)`);
    if (name === l.active) return this;
    const known = l.views.get(name);
    if (known) return known;
    const v = new CausalLM(this.cfg, this.arch, gatedSessions(l.raw, l.names, name));
    v.lora = { ...l, active: name };
    v.sharedNll = this.sharedNll;
    v.view = true;
    v.quantization = this.quantization; v.lmHead = this.lmHead; v.loadInfo = this.loadInfo; v.nllInMain = this.nllInMain;
    v.sourceDir = this.sourceDir; v.tokenizer = this.tokenizer; v.generationConfig = this.generationConfig; v.source = this.source;
    if (this.makeRawNll) { v.makeRawNll = this.makeRawNll; v.makeNllSession = v.nllFactory(); }
    l.views.set(name, v);
    return v;
  }

  /** `this`, or the view of `o.adapter` when a call names one. */
  private forCall(o: { adapter?: string | null }): CausalLM { return o.adapter === undefined ? this : this.withAdapter(o.adapter); }

  /**
   * Load an HF checkpoint directory: fp16/bf16/fp32, or GPTQ (AutoGPTQ / GPTQModel / transformers layouts) when it
   * holds `.qweight` tensors — those modules run on MatMulNBits, modules with a plain `.weight` stay fp32.
   * `model`: a directory, a Hub id "owner/name" (downloaded once into the cache, src/io/hub.ts; LoadOptions.hub), or
   * nothing for the embedded stories260K. The tokenizer (tokenizer.json) and generation_config.json come with it.
   * Compiled graphs are cached (LoadOptions.graphCache): a second load reads no weights in JS.
   * Throws GptqError for a missing directory, unknown Hub id, unsupported architecture or malformed files.
   */
  static async load(model?: string, o: LoadOptions = {}): Promise<CausalLM> {
    // 1. Resolve: the directory, its config and architecture, the options that change graphs, the graph-cache entry.
    const dir = await resolveModelDir(model ?? DEFAULT_MODEL_DIR, o.onProgress && !o.hub?.onProgress ? { ...o.hub, onProgress: o.onProgress } : o.hub);
    const cfg = await loadModelConfig(dir);
    const accuracyLevel = checkAccuracyLevel(o.accuracyLevel);
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const log = o.onLog ?? logLine;
    const store = await GraphCache.forCheckpoint(o.graphCache ?? true, dir);
    // The accuracy level changes only MatMulNBits nodes: GPTQ modules, or a 4-bit quantized head.
    const gptq = declaresQuantization(dir, cfg);
    const headAsked = o.lmHeadBits !== undefined;
    const lmHeadBits = checkLmHeadBits(headAsked ? o.lmHeadBits : gptq && accuracyLevel === 4 ? DEFAULT_QUANTIZED_HEAD_BITS : 0);
    const keyAcc = gptq || lmHeadBits === 4 ? accuracyLevel : 0;
    // Adapters are read (and checked against the model) on every load, cached graph or not: they are small.
    const adapters: LoraAdapter[] = [];
    for (const [name, path] of Object.entries(o.adapters ?? {})) {
      checkAdapterName(name, 'adapters');
      adapters.push(await readLoraAdapter(name, path, cfg, arch)); // a local directory (no Hub download for adapters)
    }
    if (o.adapter !== undefined && o.adapter !== null && !adapters.some((a) => a.name === o.adapter)) {
      fail(`adapter ${JSON.stringify(o.adapter)} is not among the adapters loaded (${adapters.map((a) => a.name).join(', ') || 'none'})`);
    }
    const key = store ? await graphCacheKey(dir, {
      accuracyLevel: keyAcc, lmHeadBits: lmHeadBits ?? 0, device: o.device ?? 'cpu', dequantize: gptq && !!o.dequantize,
      ...(adapters.length ? { adapters: await adapterFingerprint(adapters) } : {}),
    }) : '';
    const headAcc: AccuracyLevel = lmHeadBits === 8 ? 4 : accuracyLevel;
    // 2. Weights: the checkpoint is opened (once) only when some graph is not in the cache; its notices are logged by
    // the first open only (nll() may read the weights again later for its own graph).
    // What the first open found is kept as plain values when the weights are released (before the sessions are
    // created): holding the OpenedWeights would keep every tensor it read alive next to the sessions' own copies
    // (measured: +590 MB peak on a 1B-shape 4-layer load).
    let opened: Promise<OpenedWeights> | undefined, current: OpenedWeights | undefined;
    let first: { headUsed: boolean; quantization?: QuantizedLoadInfo; notes: string[] } | undefined;
    const weights = () => (opened ??= openWeights(dir, cfg, arch, {
      accuracyLevel, dequantize: o.dequantize, lmHead: lmHeadBits && { bits: lmHeadBits, accuracyLevel: headAcc, asked: headAsked },
      onLog: first || current ? undefined : log,
    }).then((w) => (current = w)));
    const release = () => { // the graphs are built: headUsed is settled
      if (current) first ??= { headUsed: current.headUsed(), quantization: current.quantization, notes: current.notes };
      opened = undefined; current = undefined;
    };
    // 3. Sessions: each graph from the cache, or built from the weights (dropped before the sessions are created).
    const build = async (g: ModelGraphOptions) => {
      const source = (await weights()).source();
      if (!adapters.length) return buildCausalLM(arch, cfg, source, g);
      const lw = new LoraWeights(source, adapters);
      const b = buildCausalLM(arch, cfg, lw, g);
      for (const a of adapters) for (const n of [...a.modules.keys(), ...a.replaced.keys()]) {
        if (!lw.used.has(n)) fail(`${join(a.dir, 'adapter_model.safetensors')}: module "${n}" is not a linear the ${cfg.modelType} graph computes (gptqjs cannot apply the adapter there)`);
      }
      return b;
    };
    const m = await CausalLM.fromGraphs(cfg, build, o, store ? { store, key } : undefined, release,
      adapters.map((a) => a.name));
    // 4. What loading found: from the weights read (then stored with the cache entry), or from the cache entry.
    if (first) {
      if (!first.headUsed && headAsked) log(`lm-head: the ${cfg.modelType} head is not the linear "${arch.lmHead}"; lmHeadBits had no effect`);
      if (first.quantization) m.quantization = first.quantization;
      if (store) await store.writeInfo(key, { quantization: first.quantization ?? null, logs: first.notes });
    } else if (store) {
      const info = await store.readInfo<{ quantization: QuantizedLoadInfo | null; logs: string[] }>(key);
      if (info?.quantization) m.quantization = info.quantization;
      for (const msg of info?.logs ?? []) log(msg);
    }
    if (lmHeadBits) {
      m.lmHead = { bits: lmHeadBits, accuracyLevel: headAcc };
      log(lmHeadNote(lmHeadBits, headAcc, !headAsked)); // once the model loaded (a refused checkpoint says only why)
    }
    // 5. The directory's own files besides the weights: generation config, tokenizer.
    m.sourceDir = dir;
    m.source = dir;
    m.generationConfig = await loadGenerationConfig(dir);
    if (existsSync(join(dir, 'tokenizer.json'))) m.tokenizer = await TextTokenizer.fromDir(dir);
    return m;
  }

  // ---- special token ids (Transformers: generation_config.json, else config.json, else the tokenizer) ----

  /** Ids that end generation (generation_config.json / config.json `eos_token_id`, else the tokenizer's eos_token). */
  get eosTokenIds(): number[] {
    const e = this.generationConfig.eosTokenId ?? this.cfg.eosTokenId ?? this.tokenizer?.eosId;
    return e === null || e === undefined ? [] : ([] as number[]).concat(e);
  }
  /** Id generation starts from when the prompt is empty. */
  get bosTokenId(): number | undefined { return this.generationConfig.bosTokenId ?? this.cfg.bosTokenId ?? this.tokenizer?.bosId; }
  /** Id left padding uses (masked out): pad_token_id, else the first eos id, else 0. */
  get padTokenId(): number { return this.generationConfig.padTokenId ?? this.cfg.padTokenId ?? this.tokenizer?.padId ?? this.eosTokenIds[0] ?? 0; }

  // ---- text level (src/runtime/text.ts); the id level is generate(model, ids) in src/runtime/generate.ts ----

  /**
   * Generate text for a prompt (or one batch of prompts, left-padded → one result each): `{ text, finishReason,
   * promptTokens, completionTokens, tokenIds }`. Greedy unless sampling is asked for (temperature > 0) or the model's
   * generation_config.json sets do_sample. Needs a tokenizer. Throws GptqError for bad options, `signal.reason` when
   * aborted (unless stopOnAbortSignal).
   */
  generate(prompt: string, o?: TextGenerationOptions): Promise<TextGenerationResult>;
  generate(prompts: string[], o?: TextGenerationOptions): Promise<TextGenerationResult[]>;
  generate(input: string | string[], o: TextGenerationOptions = {}): Promise<TextGenerationResult | TextGenerationResult[]> {
    return Promise.resolve().then(() => generateText(this.forCall(o), input, o));
  }

  /**
   * Stream the generated text of a prompt, or of chat messages (rendered with the chat template), piece by piece:
   * `for await (const piece of lm.stream('Once upon a time'))`. Pieces are exact UTF-8 (StreamDecoder) and never
   * part of a stop string; the generator's return value is the full result. Breaking out of the loop stops generation.
   */
  stream(input: string | ChatMessage[], o: ChatOptions = {}): AsyncGenerator<string, TextGenerationResult, void> {
    return streamText(this.forCall(o), input, o);
  }

  /**
   * Reply to a conversation using the tokenizer's chat template (with the generation prompt):
   * `{ message: { role: 'assistant', content }, text, finishReason, … }`. Throws GptqError when the model has no
   * chat template.
   */
  chat(messages: ChatMessage[], o: ChatOptions = {}): Promise<ChatResult> {
    return Promise.resolve().then(() => chatText(this.forCall(o), messages, o));
  }

  /**
   * Tokens one row can hold (positions 0 … positionLimit − 1): max_position_embeddings for models with a learned
   * position table (ArchDefinition.learnedPositions: GPT-2, GPTBigCode, GPT-Neo, OPT), else Infinity (rotary and
   * ALiBi models run past max_position_embeddings, as in Transformers, untrained there).
   */
  get positionLimit(): number { return this.arch.learnedPositions ? this.cfg.maxPositionEmbeddings : Infinity; }

  /** What positionLimit is, for error messages: "gpt2 has a learned position table of 1024 rows (config.json …)". */
  get positionTable(): string {
    return `${this.cfg.modelType} has a learned position table of ${this.positionLimit} rows (config.json max_position_embeddings of ${this.cfg.path})`;
  }

  /** One line instead of ONNX Runtime's Gather error when a row would need a position past the learned table. */
  private checkPositions(tokens: number, what: string): void {
    const max = this.positionLimit;
    if (tokens > max) fail(`${what}: a row of ${tokens} tokens needs positions up to ${tokens - 1}; ${this.positionTable}: at most ${max} tokens per row, prompt and cache included`);
  }

  /** Logits for every position of each row: ids [B,S] → Float32Array [B,S,V]. Throws GptqError when S is past positionLimit. */
  async logits(ids: number[][]): Promise<Float32Array> {
    return (await this.runFull(ids, ['logits'])).logits!.data as Float32Array;
  }

  /**
   * Next-token negative log-likelihood of each row, computed in the graph (fp32 log-softmax of the logits; the
   * [B,S,V] logits never leave ONNX Runtime): ids [B,S] → Float32Array [B,S−1], entry [b,s] = −log p(ids[b][s+1] |
   * ids[b][0..s]). Perplexity = exp(mean). Runs on the main session when loaded with LoadOptions.nll, else on a
   * separate full-sequence NLL session built by the first call (graph cache as for the main graphs).
   */
  async nll(ids: number[][]): Promise<Float32Array> {
    return (await this.runNll(ids, ['nll'])).nll!.data as Float32Array;
  }

  /**
   * `nll(ids)` plus the greedy token at each scored position: argmax [B,S−1] (Int32Array), entry [b,s] = argmax over
   * the vocabulary of the logits after ids[b][0..s] (first index on ties, as torch.argmax). Both come out of the graph;
   * the logits stay in ONNX Runtime. Loglikelihood scoring (src/eval/loglikelihood.ts) uses it for lm-eval's is_greedy.
   */
  async nllArgmax(ids: number[][]): Promise<{ nll: Float32Array; argmax: Int32Array }> {
    const r = await this.runNll(ids, ['nll', 'argmax']);
    return { nll: r.nll!.data as Float32Array, argmax: Int32Array.from(r.argmax!.data as BigInt64Array, (x) => Number(x)) };
  }

  /** Checks ids, then runs the full-sequence graph with the NLL output (main session or the separate NLL session). */
  private async runNll(ids: number[][], fetch: string[]): Promise<Record<string, ort.Tensor>> {
    const S = ids[0]?.length ?? 0, V = this.cfg.vocabSize;
    if (S < 2) fail(`nll: rows need at least 2 tokens, got ${S}`);
    ids.forEach((r, b) => r.forEach((t, s) => { if (s > 0 && !(Number.isInteger(t) && t >= 0 && t < V)) fail(`nll: token ${t} (row ${b}, position ${s}) outside the vocabulary [0, ${V})`); }));
    if (this.nllInMain) return this.runFull(ids, fetch);
    return this.runFull(ids, fetch, await (this.nllSession ??= this.makeNllSession!().catch((e: unknown) => { this.nllSession = undefined; throw e; })));
  }

  /**
   * The full-sequence forward of ids [B,S] on the main session (or `nllSession`, the same graph with the NLL output),
   * fetching `fetch`: the logits [B,S,V], or the NLL [B,S−1] and argmax [B,S−1] (labels = ids shifted by one).
   */
  private async runFull(ids: number[][], fetch: string[], nllSession?: InferenceSession): Promise<Record<string, ort.Tensor>> {
    const B = ids.length, S = ids[0]!.length;
    this.checkPositions(S, fetch.includes('logits') ? 'logits' : 'nll');
    const input_ids = i64From(ids, B, S);
    const labels: Record<string, ort.Tensor> = !(nllSession || this.nllInMain) ? {}
      : { labels: fetch.includes('nll') ? i64From(ids.map((r) => r.slice(1)), B, S - 1) : noLabels(B) };
    if (this.s.kind === 'plain') return this.finiteOutputs(await (nllSession ?? this.s.full).run({ input_ids, ...labels }, fetch));
    const { numLayers, numKvHeads: kvH, headDim: d } = this.cfg;
    const pos = new BigInt64Array(B * S), mask = new BigInt64Array(B * S).fill(1n);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) pos[b * S + s] = BigInt(s);
    // (bufferRun checks each run's outputs are finite)
    if (this.s.kind === 'buffer') return this.bufferFull(nllSession ?? this.s.fast, input_ids.data as BigInt64Array, pos, mask, B, S, fetch, labels.labels);
    const feeds: Record<string, ort.Tensor> = {
      input_ids, position_ids: new ort.Tensor('int64', pos, [B, S]), attention_mask: new ort.Tensor('int64', mask, [B, S]),
      num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(S)), []), ...labels,
    };
    // the KV-slot graph attends over the first S buffer positions (its new keys are scattered into them): one zero
    // buffer, read by every layer
    const empty = this.s.kind === 'slots' ? f32(new Float32Array(B * kvH * S * d), [B, kvH, S, d]) : f32(new Float32Array(0), [B, kvH, 0, d]);
    for (let i = 0; i < numLayers; i++) { const n = kvNames(i); feeds[n.pastKey] = empty; feeds[n.pastValue] = empty; }
    return this.finiteOutputs(await (nllSession ?? this.s.fast).run(feeds, fetch));
  }

  /**
   * An empty cache for `batch` rows. `capacity` (attention 'gqa' and 'slots'): preallocate room for that many positions
   * (e.g. prompt + max new tokens), so that no step has to grow the buffers. Attention 'buffer' does not use it: its
   * decode step reads the whole buffer, so room that is not yet needed would cost reads on every step; its steps grow
   * the buffers themselves, by a sixteenth of the length.
   */
  emptyCache(batch: number, capacity?: number): KvCache {
    const z = () => Array.from({ length: this.cfg.numLayers }, () => new Float32Array(0));
    const empty: KvCache = { keys: z(), values: z(), length: 0, batch };
    if ((this.s.kind === 'gqa' || this.s.kind === 'slots') && capacity && capacity > 0) return this.relayout(empty, { capacity });
    return empty;
  }

  /**
   * The first `length` positions of `cache` (reuse a shared prefix, e.g. the previous turns of a chat). A buffer-form
   * cache is rewound without copying (storage shared with `cache`).
   */
  truncateCache(cache: KvCache, length: number): KvCache {
    if (!(Number.isInteger(length) && length >= 0 && length <= cache.length)) fail(`truncateCache: length ${length} outside [0, ${cache.length}]`);
    if (cache.capacity !== undefined) return { ...cache, length };
    return this.relayout({ ...cache, capacity: cache.length }, {}, length);
  }

  /** A copy of `cache` that later steps on either do not affect. */
  cloneCache(cache: KvCache): KvCache {
    return { ...cache, keys: cache.keys.map((a) => a.slice()), values: cache.values.map((a) => a.slice()) };
  }

  /**
   * One cached step: ids [B,S] appended after `cache` (left-padded rows use attentionMask 0 and positions from
   * the mask's cumulative sum). Returns last-position logits [B,V] and the grown cache.
   */
  async forwardStep(ids: number[][], cache: KvCache, attentionMask?: number[][]): Promise<{ logits: Float32Array; cache: KvCache }> {
    const B = ids.length, S = ids[0]!.length, P = cache.length, T = P + S;
    if (cache.batch !== B) fail(`forwardStep: cache has batch ${cache.batch}, ids have ${B} rows`);
    const mask = attentionMask ?? Array.from({ length: B }, () => new Array<number>(T).fill(1));
    if (mask.length !== B || mask.some((r) => r.length !== T)) fail(`forwardStep: attention mask must be ${B} rows of ${T} (cached ${P} + new ${S})`);
    if (this.s.kind === 'gqa' && B > 1 && S > 1 && P > 0) {
      // GroupQueryAttention takes several new tokens after a non-empty cache only for batch 1: feed them one by one
      // (the same function; only the last position's logits are returned).
      let r: { logits: Float32Array; cache: KvCache } = { logits: new Float32Array(0), cache };
      for (let s = 0; s < S; s++) r = await this.forwardStep(ids.map((row) => [row[s]!]), r.cache, mask.map((row) => row.slice(0, P + s + 1)));
      return r;
    }
    const pos = new BigInt64Array(B * S), am = new BigInt64Array(B * T);
    let longest = 0; // the most attended tokens of a row: its last position + 1
    for (let b = 0; b < B; b++) {
      const row = mask[b]!;
      let c = 0;
      for (let j = 0; j < T; j++) {
        const m = row[j] ? 1 : 0;
        c += m;
        am[b * T + j] = m ? 1n : 0n;
        if (j >= P) pos[b * S + j - P] = BigInt(Math.max(c - 1, 0));
      }
      longest = Math.max(longest, c);
    }
    this.checkPositions(longest, 'forwardStep');
    const feeds: Record<string, ort.Tensor> = {
      input_ids: i64From(ids, B, S), position_ids: new ort.Tensor('int64', pos, [B, S]), attention_mask: new ort.Tensor('int64', am, [B, T]),
    };
    const { numLayers, numKvHeads: kvH, headDim: d } = this.cfg;
    if (this.s.kind === 'plain') {
      const c = cache.capacity === undefined ? cache : this.relayout(cache, {});
      for (let i = 0; i < numLayers; i++) {
        const n = kvNames(i);
        feeds[n.pastKey] = f32(c.keys[i]!, [B, kvH, P, d]);
        feeds[n.pastValue] = f32(c.values[i]!, [B, kvH, P, d]);
      }
      const r = await this.s.step.run(feeds);
      const next: KvCache = { keys: [], values: [], length: T, batch: B };
      for (let i = 0; i < numLayers; i++) {
        const n = kvNames(i);
        next.keys.push(r[n.presentKey]!.data as Float32Array);
        next.values.push(r[n.presentValue]!.data as Float32Array);
      }
      return { logits: await this.finite(r.logits!.data as Float32Array, 'logits'), cache: next };
    }
    let c = cache;
    const valuesTransposed = this.s.kind === 'buffer';
    // (buffer: also a buffer more than twice the size T needs, e.g. a long cache truncated to a short prefix, since
    // each decode step reads all of it)
    if (c.capacity === undefined || c.capacity < T || !!c.valuesTransposed !== valuesTransposed || (valuesTransposed && c.capacity > 2 * bufferCapacity(T))) {
      c = this.relayout(c, { capacity: valuesTransposed ? bufferCapacity(T) : Math.max(T + CAPACITY_SLACK, (c.capacity ?? 0) * 2), valuesTransposed });
    }
    if (this.s.kind === 'buffer') {
      // long prompts run in chunks (the scores of a run are heads × chunk × context floats)
      const input = feeds.input_ids!.data as BigInt64Array;
      let logits: Float32Array = new Float32Array(0);
      for (let s0 = 0; s0 < S; s0 += PREFILL_CHUNK) {
        const s1 = Math.min(S, s0 + PREFILL_CHUNK);
        const r = await this.bufferRun(this.s.fast, c, P + s0, cols(input, B, S, s0, s1), cols(pos, B, S, s0, s1), cols(am, B, T, 0, P + s1), 1, this.nllInMain ? { labels: noLabels(B) } : {}, ['logits']);
        logits = r.logits!.data as Float32Array;
      }
      return { logits, cache: { ...c, length: T } }; // finite: bufferRun checks each run's
    }
    if (this.s.kind === 'slots') {
      // every row's new positions go to P..T−1 (left padding stays in the buffer, as in the other graphs); the graph
      // attends over the whole buffer rows, so the mask is padded to the capacity with zeros
      const cap = c.capacity!, view = (a: Float32Array) => this.bufferTensor(a, [B, kvH, cap, d]);
      const wide = new BigInt64Array(B * cap);
      for (let b = 0; b < B; b++) wide.set(am.subarray(b * T, (b + 1) * T), b * cap);
      const r = await this.runSlots(feeds.input_ids!, feeds.position_ids!, new ort.Tensor('int64', wide, [B, cap]), c.keys.map(view), c.values.map(view));
      for (let i = 0; i < numLayers; i++) {
        for (const [src, dst] of [[r.keys[i]!, c.keys[i]!], [r.values[i]!, c.values[i]!]] as const) {
          for (let bh = 0; bh < B * kvH; bh++) dst.set(src.subarray(bh * S * d, (bh + 1) * S * d), (bh * cap + P) * d);
        }
      }
      return { logits: r.logits, cache: { ...c, length: T } };
    }
    // GroupQueryAttention: past and present are the same buffer (ORT appends in place).
    feeds.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(1n), []);
    if (this.nllInMain) feeds.labels = noLabels(B);
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    for (let i = 0; i < numLayers; i++) {
      const n = kvNames(i);
      const k = this.bufferTensor(c.keys[i]!, [B, kvH, c.capacity!, d]), v = this.bufferTensor(c.values[i]!, [B, kvH, c.capacity!, d]);
      feeds[n.pastKey] = k; feeds[n.pastValue] = v;
      fetches[n.presentKey] = k; fetches[n.presentValue] = v;
    }
    const r = await this.s.fast.run(feeds, fetches as unknown as InferenceSession.FetchesType);
    return { logits: await this.finite(r.logits!.data as Float32Array, 'logits'), cache: { ...c, length: T } };
  }

  /**
   * `a` (logits or NLL) when every value is finite; else one error naming the cause: the checkpoint is scanned for a
   * tensor holding NaN/Inf (weights are checked when a graph is built, but a cached graph holds its own copy of them,
   * built by another gptqjs or damaged since), else the activations overflowed. Cost: one multiply-add per value (~V
   * per decode step).
   */
  /** finite() on the float outputs of a run (logits, nll); the run's outputs unchanged. */
  private async finiteOutputs(r: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    for (const what of ['logits', 'nll'] as const) if (r[what]) await this.finite(r[what].data as Float32Array, what);
    return r;
  }

  private async finite(a: Float32Array, what: 'logits' | 'nll'): Promise<Float32Array> {
    const i = firstNonFinite(a);
    if (i < 0) return a;
    const first = `the model's ${what} hold ${a[i]} (value ${i} of ${a.length})`;
    if (!this.sourceDir) fail(`${first}: the weights given to CausalLM.fromWeights hold NaN/Inf, or the activations overflowed float32`);
    try { await checkStoredFinite(this.sourceDir); } catch (e) {
      if (e instanceof GptqError) fail(`${e.message.replace(/ \(the model's output would be NaN\/garbage\)$/, '')}: ${first}`);
      throw e;
    }
    const cached = this.loadInfo.graphCache === 'hit' ? '; the graph came from the graph cache: if that entry is damaged, load with graphCache: false (GPTQJS_GRAPH_CACHE=0)' : '';
    fail(`${first} although no tensor of ${this.sourceDir} holds NaN/Inf: the activations overflowed float32 (weights too large for this model's math)${cached}`);
  }

  /**
   * runFull on the buffer graph, in chunks of PREFILL_CHUNK positions over a temporary cache: each chunk returns its
   * logits (and NLL/argmax of its positions whose label is known), assembled into [B,S,V] / [B,S−1] as one run would.
   */
  private async bufferFull(session: InferenceSession, ids: BigInt64Array, pos: BigInt64Array, mask: BigInt64Array, B: number, S: number,
    fetch: string[], labels?: ort.Tensor): Promise<Record<string, ort.Tensor>> {
    const c = this.relayout(this.emptyCache(B), { capacity: S, valuesTransposed: true }), V = this.cfg.vocabSize;
    const L = labels?.dims[1] ?? 0, lab = labels?.data as BigInt64Array | undefined;
    const parts: Record<string, ort.Tensor>[] = [];
    for (let s0 = 0; s0 < S; s0 += PREFILL_CHUNK) {
      const s1 = Math.min(S, s0 + PREFILL_CHUNK), l1 = Math.max(s0, Math.min(s1, L));
      const extra: Record<string, ort.Tensor> = lab ? { labels: new ort.Tensor('int64', cols(lab, B, L, s0, l1), [B, l1 - s0]) } : {};
      parts.push(await this.bufferRun(session, c, s0, cols(ids, B, S, s0, s1), cols(pos, B, S, s0, s1), cols(mask, B, S, 0, s1), s1 - s0, extra, fetch));
    }
    if (parts.length === 1) return parts[0]!;
    const out: Record<string, ort.Tensor> = {};
    for (const name of fetch) {
      // per row, the chunks' [n_i, width] blocks one after another
      const blocks = parts.map((r) => r[name]!), width = name === 'logits' ? V : 1;
      const n = blocks.reduce((a, t) => a + t.dims[1]!, 0);
      const join = <A extends Float32Array | BigInt64Array>(data: A): A => {
        let at = 0;
        for (const t of blocks) {
          const m = t.dims[1]!, src = t.data as A;
          for (let b = 0; b < B; b++) (data as Float32Array).set(src.subarray(b * m * width, (b + 1) * m * width) as Float32Array, (b * n + at) * width);
          at += m;
        }
        return data;
      };
      const dims = name === 'logits' ? [B, n, V] : [B, n];
      out[name] = blocks[0]!.type === 'int64' ? new ort.Tensor('int64', join(new BigInt64Array(B * n)), dims) : new ort.Tensor('float32', join(new Float32Array(B * n * width)), dims);
    }
    return out;
  }

  /**
   * One run of the buffer graph (attention 'buffer') after the first P positions of the cache `c` (values transposed,
   * capacity ≥ P + S): ids and positions [B,S], attention mask [B,P+S], `keep` logits per row; the new keys/values are
   * written into `c` at P..P+S−1. The whole buffers are fed as they are (no copy). `extra`: `labels` when the graph has
   * them. Throws (`finite`) when the run's logits or NLL are not all finite, after setting the keys and values it
   * wrote back to zero: the decode step scores the positions beyond P too and masks them out, then multiplies their
   * values by zero probabilities, and an earlier cache object that shares these buffers may go on from P (NaN + mask
   * and 0 · NaN would be NaN).
   */
  private async bufferRun(session: InferenceSession, c: KvCache, P: number, ids: BigInt64Array, pos: BigInt64Array, am: BigInt64Array,
    keep: number, extra: Record<string, ort.Tensor>, fetch: string[]): Promise<Record<string, ort.Tensor>> {
    const { numLayers, numKvHeads: kvH, headDim: d } = this.cfg;
    const B = c.batch, S = ids.length / B, rows = B * kvH, cap = c.capacity!;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, S]), position_ids: new ort.Tensor('int64', pos, [B, S]),
      attention_mask: new ort.Tensor('int64', am, [B, P + S]), num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), []),
      ...extra,
    };
    const names: string[] = [...fetch];
    for (let i = 0; i < numLayers; i++) {
      const n = kvNames(i);
      feeds[n.pastKey] = this.bufferTensor(c.keys[i]!, [B, kvH, cap, d]);
      feeds[n.pastValue] = this.bufferTensor(c.values[i]!, [B, kvH, d, cap]);
      names.push(n.presentKey, n.presentValue);
    }
    const r = await session.run(feeds, names);
    for (let i = 0; i < numLayers; i++) {
      const n = kvNames(i);
      const k = r[n.presentKey]!.data as Float32Array, v = r[n.presentValue]!.data as Float32Array, keys = c.keys[i]!, values = c.values[i]!;
      // keys [rows, S, d] → [rows, cap, d] at P; values [rows, S, d] → transposed [rows, d, cap] at P
      for (let row = 0; row < rows; row++) {
        keys.set(k.subarray(row * S * d, (row + 1) * S * d), (row * cap + P) * d);
        transpose(v.subarray(row * S * d), S, d, values.subarray(row * d * cap + P), { dstStride: cap });
      }
    }
    if ((['logits', 'nll'] as const).some((name) => r[name] && firstNonFinite(r[name].data as Float32Array) >= 0)) {
      for (const keys of c.keys) for (let row = 0; row < rows; row++) keys.fill(0, (row * cap + P) * d, (row * cap + P + S) * d);
      for (const values of c.values) for (let j = 0, o = P; j < rows * d; j++, o += cap) values.fill(0, o, o + S);
      await this.finiteOutputs(r); // throws
    }
    return r;
  }

  /**
   * One run of the KV-slot graph (attention 'slots'; used by `SlotCache` and `forwardStep`): ids and positions [B,S],
   * attention mask [B,T] (each row's S new tokens are its last S mask ones), caches [B,kvH,T,d] per layer (read in
   * place, all T positions; src/models/attention-slots.ts). Returns
   * the last position's logits [B,V] and each layer's new keys/values [B,kvH,S,d] — the caller writes them into its
   * buffers. `adapters`: the adapter of each row (null = base; models loaded with adapters), else this object's adapter
   * for every row. Throws unless the model was loaded with attention 'slots'.
   */
  async runSlots(ids: ort.Tensor, positions: ort.Tensor, mask: ort.Tensor, keys: ort.Tensor[], values: ort.Tensor[],
    adapters?: readonly (string | null)[]): Promise<{ logits: Float32Array; keys: Float32Array[]; values: Float32Array[] }> {
    if (this.s.kind !== 'slots') fail(`runSlots: the model was loaded with attention "${this.s.kind}", not "slots"`);
    const B = ids.dims[0]!;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: ids, position_ids: positions, attention_mask: mask, num_logits_to_keep: new ort.Tensor('int64', BigInt64Array.of(1n), []),
    };
    if (adapters) {
      if (adapters.length !== B) fail(`runSlots: ${adapters.length} row adapters for ${B} rows`);
      for (const a of adapters) if (a !== null) this.withAdapter(a); // checks the name
      if (this.lora) feeds[LORA_GATE] = gateTensor(this.lora.names, adapters);
    }
    if (this.nllInMain) feeds.labels = noLabels(B);
    for (let i = 0; i < this.cfg.numLayers; i++) { const n = kvNames(i); feeds[n.pastKey] = keys[i]!; feeds[n.pastValue] = values[i]!; }
    const r = await this.s.fast.run(feeds);
    const out = { logits: r.logits!.data as Float32Array, keys: [] as Float32Array[], values: [] as Float32Array[] };
    for (let i = 0; i < this.cfg.numLayers; i++) {
      const n = kvNames(i);
      out.keys.push(r[n.presentKey]!.data as Float32Array);
      out.values.push(r[n.presentValue]!.data as Float32Array);
    }
    return out;
  }

  /** One ort.Tensor per KV buffer, reused by every step (the same memory is bound as input and output). */
  private bufferTensor(buf: Float32Array, dims: number[]): ort.Tensor {
    let t = this.tensors.get(buf);
    if (!t) { t = new ort.Tensor('float32', buf, dims); this.tensors.set(buf, t); }
    return t;
  }

  /**
   * A copy of the first `P` (default: all valid) positions of `cache`, any form, in the form `to`: plain
   * [B,kvH,P,d] (no capacity), buffer [B,kvH,capacity,d], or buffer with values transposed [B,kvH,d,capacity].
   */
  private relayout(cache: KvCache, to: { capacity?: number; valuesTransposed?: boolean }, P = cache.length): KvCache {
    const { numKvHeads: kvH, headDim: d } = this.cfg;
    const B = cache.batch, rows = B * kvH, from = cache.capacity ?? cache.length, cap = to.capacity ?? P;
    // keys, and values in the same form: (row r, position p) at (r·len + p)·d
    const move = (src: Float32Array) => {
      const dst = new Float32Array(rows * cap * d);
      for (let r = 0; r < rows; r++) dst.set(src.subarray(r * from * d, (r * from + P) * d), r * cap * d);
      return dst;
    };
    // values: element e of (row r, position p) at (r·len + p)·d + e, or transposed at (r·d + e)·len + p
    const moveValues = (src: Float32Array) => {
      if (!cache.valuesTransposed && !to.valuesTransposed) return move(src);
      const dst = new Float32Array(rows * cap * d);
      if (cache.valuesTransposed && to.valuesTransposed) {
        for (let j = 0; j < rows * d; j++) dst.set(src.subarray(j * from, j * from + P), j * cap);
        return dst;
      }
      for (let r = 0; r < rows; r++) { // a row's d·len values start at r·len·d in either form
        const s = src.subarray(r * from * d), t = dst.subarray(r * cap * d);
        if (cache.valuesTransposed) transpose(s, d, P, t, { stride: from }); // [d, from] → [P, d]
        else transpose(s, P, d, t, { dstStride: cap }); // [P, d] → [d, cap]
      }
      return dst;
    };
    return {
      keys: cache.keys.map(move), values: cache.values.map(moveValues), length: P, batch: B,
      ...(to.capacity === undefined ? {} : { capacity: cap }), ...(to.valuesTransposed ? { valuesTransposed: true } : {}),
    };
  }

  private disposed = false;
  /**
   * Release the ONNX Runtime sessions (idempotent); the model cannot run afterwards. Also
   * `await using lm = await CausalLM.load(dir)`.
   */
  async dispose(): Promise<void> {
    if (this.disposed || this.view) return;
    this.disposed = true;
    if (this.s.kind === 'plain') { await this.s.full.release(); await this.s.step.release(); } else await this.s.fast.release();
    const nll = this.lora ? this.sharedNll.raw : this.nllSession;
    this.nllSession = undefined; this.sharedNll.raw = undefined;
    this.makeNllSession = async () => fail('nll: the model was disposed');
    if (nll) await (await nll.catch(() => undefined))?.release();
  }
  async [Symbol.asyncDispose](): Promise<void> { await this.dispose(); }
}

/** Columns [from, to) of a row-major [B, width] int64 matrix (the matrix itself when that is all of it). */
function cols(a: BigInt64Array, B: number, width: number, from: number, to: number): BigInt64Array {
  if (from === 0 && to === width) return a;
  const out = new BigInt64Array(B * (to - from));
  for (let b = 0; b < B; b++) out.set(a.subarray(b * width + from, b * width + to), b * (to - from));
  return out;
}

/** `labels` [B,0]: no NLL wanted (main graph built with nllOutput). */
const noLabels = (B: number) => new ort.Tensor('int64', new BigInt64Array(0), [B, 0]);

function i64From(ids: number[][], B: number, S: number): ort.Tensor {
  const a = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++) {
    const row = ids[b]!;
    if (row.length !== S) fail(`input ids: row ${b} has ${row.length} tokens, row 0 has ${S} (pad the rows to one length)`);
    for (let s = 0; s < S; s++) a[b * S + s] = BigInt(row[s]!);
  }
  return new ort.Tensor('int64', a, [B, S]);
}

/** lora_gate [B, adapters]: 1 where row b runs adapter j. */
function gateTensor(names: readonly string[], rows: readonly (string | null)[]): ort.Tensor {
  const A = names.length, g = new Float32Array(rows.length * A);
  rows.forEach((a, b) => { const j = a === null ? -1 : names.indexOf(a); if (j >= 0) g[b * A + j] = 1; });
  return new ort.Tensor('float32', g, [rows.length, A]);
}

/** `s` feeding lora_gate (every row: `active`) unless a run feeds its own. */
function gated(s: InferenceSession, names: readonly string[], active: string | null): InferenceSession {
  const run = (feeds: Record<string, ort.Tensor>, ...rest: unknown[]) =>
    (s.run as (...a: unknown[]) => unknown)(feeds[LORA_GATE] ? feeds : { ...feeds, [LORA_GATE]: gateTensor(names, new Array<string | null>(feeds.input_ids!.dims[0]!).fill(active)) }, ...rest);
  return new Proxy(s, { get: (t, k) => (k === 'run' ? run : ((v) => (typeof v === 'function' ? v.bind(t) : v))(Reflect.get(t, k))) });
}

function gatedSessions(s: Sessions, names: readonly string[], active: string | null): Sessions {
  return s.kind === 'plain' ? { kind: s.kind, full: gated(s.full, names, active), step: gated(s.step, names, active) } : { kind: s.kind, fast: gated(s.fast, names, active) };
}
