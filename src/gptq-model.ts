/**
 * The user-facing API, mirroring AutoGPTQ:
 *   const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize: 128 } });
 *   await m.quantize('c4', { nsamples: 128, seqlen: 2048, onProgress });
 *   await m.saveQuantized(out);
 */
import { loadModelConfig, seqlenFor, type ModelConfig } from './io/config.ts';
import type { Checkpoint } from './io/safetensors.ts';
import { openModelCheckpoint } from './runtime/model-checkpoint.ts';
import { TextTokenizer } from './io/tokenizer.ts';
import { calibrationData, calibrationSamples, datasetName, EMBEDDED_C4_DATASET, EMBEDDED_C4_NOTE, type CalibrationSet, type TokenizedExample, type LoadTextOptions } from './io/datasets.ts';
import { resolveModelDir, type HubOptions } from './io/hub.ts';
import { isGeneratedCard, modelCard, quantizerMeta, type CalibrationInfo, type PerplexityInfo } from './io/model-card.ts';
import { pushToHub, type PushOptions, type PushResult } from './io/push.ts';
import { archFor } from './models/registry.ts';
import type { ArchDefinition } from './models/types.ts';
import { resolveQuantizeConfig, toQuantizeConfigJson, type QuantizeConfig } from './quant/quantize-config.ts';
import { quantizeLayers, type ActivationDtype, type QuantizeLoopResult } from './quant/layer-loop.ts';
import type { ProgressCallback } from './progress.ts';
import { checkOutputDir, saveQuantizedCheckpoint, type SaveOptions } from './quant/save.ts';
import { WorkDir, hashCalibration, hashCheckpoint, runIdOf } from './quant/workdir.ts';
import { estimateMemory, fmtBytes } from './quant/memory.ts';
import { CausalLM, loadFloatWeights, type LoadOptions } from './runtime/causal-lm.ts';
import { InitializerWeights } from './graph/weights.ts';
import type { Device } from './graph/session.ts';
import { existsSync, promises as fsp } from './platform/fs.ts';
import { basename, join } from './platform/path.ts';
import { fail, option } from './errors.ts';
import { DEFAULT_MODEL_DIR } from './paths.ts';
import { loadQuantizedModel, type LoadedQuantizedModel } from './runtime/load.ts';
import type { AccuracyLevel } from './runtime/quantized-weights.ts';

export type CalibrationInput = 'c4' | 'wikitext2' | string | string[] | TokenizedExample[] | CalibrationSet;

export interface QuantizeCallOptions extends LoadTextOptions {
  nsamples?: number;
  seqlen?: number;
  seed?: number;
  method?: 'gptq' | 'rtn';
  /**
   * Progress (src/progress.ts): task 'quantize' events per module and layer (done/total: layers, elapsed, eta), and
   * task 'download' events when the calibration dataset is downloaded.
   */
  onProgress?: ProgressCallback;
  onLog?: (msg: string) => void;
  signal?: AbortSignal;
  batchTokens?: number;
  /** Evaluation only: fake-quantize modules AutoGPTQ cannot pack too (the result cannot be saved). */
  quantizeUnpackable?: boolean;
  /** Keep dequantized fp32 weights in memory (needed by fakeQuantModel()). */
  keepDequantized?: boolean;
  /**
   * Write each finished layer here; rerunning the same call resumes after the last finished layer. The folder is
   * locked for this process from the start of quantize() until removeWorkDir() or dispose(): a second process using it
   * fails at once naming this one; a folder holding other files is refused.
   */
  workDir?: string;
  /** Refuse up front (with the estimate) when the plan needs more resident memory than this many bytes. */
  maxMemory?: number;
  /** Storage of calibration activations between layers: 'float16' (default, half the memory) or 'float32'. */
  activationDtype?: ActivationDtype;
  /**
   * The folder saveQuantized() will write (with `overwrite` as it will be passed there): checked before any layer is
   * quantized, with this run's id once it is known (after the calibration data and the work dir are bound), so a
   * folder saveQuantized would refuse (a different run's checkpoint, user files, the source folder) fails at the start
   * instead of after hours. Throws GptqError, as saveQuantized would.
   */
  out?: string;
  overwrite?: boolean;
}

export interface SaveQuantizedOptions extends SaveOptions {
  /**
   * After saving, push the directory to this Hub model repo ("owner/name"), or with these options (repo created if
   * missing; see src/io/push.ts). Token: env HF_TOKEN or the huggingface_hub token file.
   */
  pushToHub?: string | ({ repoId: string } & Omit<PushOptions, 'modelCard'>);
  /** Write README.md, the model card (default true). The output directory is gptqjs's: it is replaced as a whole. */
  modelCard?: boolean;
  /** Hub id of the base model, for the card's `base_model` and `meta.base_model` (default: the id fromPretrained downloaded). */
  baseModel?: string;
  /** A measured perplexity, shown on the card and recorded in quantize_config.json `meta.perplexity`. */
  perplexity?: PerplexityInfo;
}

export interface SavedQuantized {
  dir: string;
  /**
   * README.md: 'written' (the generated model card), 'kept' (the folder already held a README.md that gptqjs did not
   * write — a user's file is never replaced, so no card was written), 'off' (modelCard: false).
   */
  modelCard: 'written' | 'kept' | 'off';
  /** Set when `pushToHub` was given. */
  push?: PushResult;
}

export class GPTQModel {
  result?: QuantizeLoopResult;
  private work?: WorkDir;
  /** sha256 of the run key (source checkpoint, quantize config, calibration) when quantize() used a work dir. */
  private runId?: string;
  /** The calibration the last quantize() used (recorded in quantize_config.json meta and on the model card). */
  calibrationInfo?: CalibrationInfo;
  /** The Hub id the model was loaded from (fromPretrained with "owner/name"). */
  baseModel?: string;
  private constructor(readonly dir: string, readonly cfg: ModelConfig, readonly arch: ArchDefinition, readonly ck: Checkpoint,
    readonly quantizeConfig: QuantizeConfig, readonly tokenizer: TextTokenizer | undefined, readonly device: Device) {}

  /**
   * Open a full-precision model to quantize: a directory or a Hub id "owner/name" (downloaded into the cache,
   * src/io/hub.ts); undefined = the embedded stories260K (as CausalLM.load() and the CLI). Throws GptqError for
   * quantized models, unsupported architectures and malformed files.
   */
  static async fromPretrained(model: string = DEFAULT_MODEL_DIR, o: { quantizeConfig?: Partial<QuantizeConfig>; device?: Device; hub?: HubOptions } = {}): Promise<GPTQModel> {
    const dir = await resolveModelDir(model, o.hub);
    const cfg = await loadModelConfig(dir);
    if (cfg.quantizationConfig) fail(`${dir} is already quantized (config.json has quantization_config); load it with GPTQModel.fromQuantized`);
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const q = resolveQuantizeConfig(o.quantizeConfig ?? {});
    if (q.lmHead) fail('quantizeConfig.lmHead: quantizing lm_head is not supported yet');
    const tok = existsSync(join(dir, 'tokenizer.json')) ? await TextTokenizer.fromDir(dir) : undefined;
    const m = new GPTQModel(dir, cfg, arch, await openModelCheckpoint(dir, cfg, arch), q, tok, o.device ?? 'cpu');
    if (dir !== model) m.baseModel = model;
    return m;
  }

  /**
   * Load a GPTQ checkpoint (ours, AutoGPTQ, GPTQModel or transformers layouts) for inference on ORT's int-N
   * MatMulNBits kernels: the CausalLM, its tokenizer (when the directory has one), generation config and the
   * quantization settings/kernels. accuracyLevel 0 (default) = fp32 activations (the dequantized model's exact
   * math); 4 = int8 activations (faster, small accuracy cost).
   */
  static async fromQuantized(dir: string, o: { device?: Device; accuracyLevel?: AccuracyLevel; threads?: number; onLog?: (msg: string) => void } = {}): Promise<LoadedQuantizedModel> {
    return loadQuantizedModel(dir, o);
  }

  /** Turn any calibration input into token windows. */
  async calibration(data: CalibrationInput, o: QuantizeCallOptions = {}): Promise<CalibrationSet> {
    if (!Array.isArray(data) && typeof data === 'object') return data;
    const needTok = () => this.tokenizer ?? fail(`${this.dir} has no tokenizer.json: pass pre-tokenized {inputIds} examples`);
    const opts = { nsamples: o.nsamples ?? 128, seqlen: seqlenFor(o.seqlen, this.cfg), seed: o.seed ?? 0 };
    if (typeof data === 'string') return calibrationData(needTok(), data, { ...o, ...opts });
    if (data.length && typeof data[0] === 'string') return calibrationSamples(needTok(), data as string[], { ...opts, mode: 'examples' });
    return calibrationSamples((s) => needTok().encode(s), data as TokenizedExample[], opts);
  }

  async quantize(data: CalibrationInput = 'c4', o: QuantizeCallOptions = {}): Promise<QuantizeLoopResult> {
    // The work dir is locked first, so that a second run with the same work dir fails at once.
    const created = !!o.workDir && !existsSync(o.workDir);
    if (o.workDir && this.work?.dir !== o.workDir) { this.work?.release(); this.work = await WorkDir.acquire(o.workDir, { onLog: o.onLog }); }
    try {
      return await this.quantizeLocked(data, o);
    } catch (e) {
      // A work dir this call created and that holds nothing yet (refused before the first layer) is not left behind.
      if (created && this.work && (await this.work.layersDone()) === 0) await this.removeWorkDir();
      throw e;
    }
  }

  private async quantizeLocked(data: CalibrationInput, o: QuantizeCallOptions): Promise<QuantizeLoopResult> {
    // A group size larger than a linear's input features (the default 128 or a chosen one, the same rule): one group
    // of the whole row there, as AutoGPTQ's GPTQ.fasterquant does (find_params on W[:, 0:groupsize], g_idx all 0),
    // recorded as the group size asked for; said once.
    const g = this.quantizeConfig.groupSize;
    const narrow = g > 0 && this.arch.layerLinears(this.cfg).find((l) => g > l.inFeatures);
    if (narrow) o.onLog?.(`group size ${g} is larger than the ${narrow.inFeatures} input features of ${narrow.rel}: one group per row there (as AutoGPTQ does, recorded as group_size ${g}); ${option('quantizeConfig.groupSize', '--group-size')} ≤ ${narrow.inFeatures} or -1 sets it`);
    // the dataset's notes (e.g. c4 → the embedded sample) reach the caller, and the source actually used is recorded
    let embedded = false;
    const calib = await this.calibration(data, { ...o, onNote: (m) => { embedded ||= m.startsWith(EMBEDDED_C4_NOTE); (o.onNote ?? o.onLog)?.(m); } });
    const lens = calib.inputIds.map((r) => r.length);
    this.calibrationInfo = {
      dataset: embedded ? EMBEDDED_C4_DATASET : typeof data === 'string' ? (datasetName(data) ?? basename(data)) : Array.isArray(data) ? `${data.length} ${typeof data[0] === 'string' ? 'texts' : 'tokenized examples'}` : 'a custom calibration set',
      nsamples: lens.length, seqlen: Math.max(0, ...lens), tokens: lens.reduce((a, b) => a + b, 0),
    };
    if (o.maxMemory) {
      const tokens = calib.inputIds.reduce((a, r) => a + r.length, 0);
      const e = estimateMemory(this.arch, this.cfg, this.quantizeConfig, tokens, Math.max(...calib.inputIds.map((r) => r.length)), o.batchTokens, o.activationDtype);
      if (e.total > o.maxMemory)
        fail(`quantize: estimated peak memory ${fmtBytes(e.total)} exceeds ${option('maxMemory', '--max-memory')} ${fmtBytes(o.maxMemory)} (layer weights ${fmtBytes(e.layerWeights)}, activations ${fmtBytes(e.activations)} for ${tokens} tokens, Hessians ${fmtBytes(e.hessians)}, GPTQ buffers ${fmtBytes(e.gptq)}, ORT workspace ${fmtBytes(e.workspace)}, embeddings ${fmtBytes(e.outside)}); use fewer samples/shorter seqlen or a smaller ${option('batchTokens', '--batch-tokens')}`);
    }
    if (this.work) {
      await this.work.bind({
        source: await hashCheckpoint(this.dir, this.ck.files),
        config: JSON.stringify({ ...this.quantizeConfig, method: o.method ?? 'gptq', batchTokens: o.batchTokens ?? 4096, quantizeUnpackable: !!o.quantizeUnpackable, activationDtype: o.activationDtype ?? 'float16' }),
        calibration: hashCalibration(calib.inputIds),
      });
      this.runId = runIdOf(this.work.runKey);
    }
    // saveQuantized's own check of `out`, now that the run id is known (it fails there with the same message)
    if (o.out !== undefined) await checkOutputDir(o.out, { source: this.dir, overwrite: o.overwrite, runId: this.runId ?? '' });
    this.result = await quantizeLayers(this.arch, this.cfg, this.ck, this.quantizeConfig, calib, {
      method: o.method, device: this.device, onEvent: o.onProgress, onLog: o.onLog, signal: o.signal, batchTokens: o.batchTokens,
      quantizeUnpackable: o.quantizeUnpackable, keepDequantized: o.keepDequantized || o.quantizeUnpackable, workDir: this.work, activationDtype: o.activationDtype,
    });
    return this.result;
  }

  /**
   * Write the AutoGPTQ-format checkpoint to `out`: packed safetensors, config.json with quantization_config,
   * quantize_config.json (with `meta`: gptqjs as quantizer, the run id, calibration, perplexity — GPTQModel's field),
   * tokenizer/generation files, and README.md (the model card, src/io/model-card.ts). With `pushToHub`, then uploads
   * the directory (src/io/push.ts). Never silently destroys a folder: `out` may be missing, empty, or this run's own
   * earlier output; a non-empty folder otherwise needs `overwrite: true`, which replaces only the checkpoint files
   * (config.json, quantize_config.json, model*.safetensors and index, tokenizer/generation files, README.md) and keeps
   * every other file. `out` equal to the source model folder is always refused. Throws GptqError.
   */
  async saveQuantized(out: string, o: SaveQuantizedOptions = {}): Promise<SavedQuantized> {
    if (!this.result) fail('saveQuantized: call quantize() first');
    if (this.result.evaluationOnly) fail('saveQuantized: this result fake-quantized unpackable modules (quantizeUnpackable) and cannot be saved; quantize again without it');
    const push = typeof o.pushToHub === 'string' ? { repoId: o.pushToHub } : o.pushToHub;
    const meta = { ...quantizerMeta(this.quantizeConfig, { calibration: this.calibrationInfo, perplexity: o.perplexity, baseModel: o.baseModel ?? this.baseModel }), ...(this.runId ? { gptqjs_run: this.runId } : {}) };
    const files: Record<string, string> = {};
    // the card from what is written (so `gptq push` can tell an unedited card and fill in the repo id); a README.md
    // in `out` that gptqjs did not generate is the user's and stays (even with overwrite)
    const card = o.modelCard === false ? 'off' : isGeneratedCard(await fsp.readFile(join(out, 'README.md'), 'utf8').catch(() => undefined)) ? 'written' : 'kept';
    if (card === 'written') {
      const quantizeConfig = { ...toQuantizeConfigJson(this.quantizeConfig), model_file_base_name: 'model', meta };
      files['README.md'] = modelCard({ quantizeConfig, config: this.cfg.raw, repoId: push?.repoId });
    }
    await saveQuantizedCheckpoint(out, this, this.quantizeConfig, this.result, { ...o, runId: this.runId }, { meta, files });
    if (!push) return { dir: out, modelCard: card };
    const { repoId, ...po } = push;
    return { dir: out, modelCard: card, push: await pushToHub(out, repoId, { ...po, modelCard: false }) };
  }

  /** Delete the work dir's files (after a successful save) and release its lock; other files in it are kept. */
  async removeWorkDir(): Promise<void> { await this.work?.remove(); this.work = undefined; }

  /** The model with quantized-dequantized weights in fp32 (for evaluating quantization error). */
  async fakeQuantModel(o: LoadOptions = {}): Promise<CausalLM> {
    if (!this.result) fail('fakeQuantModel: call quantize() first');
    if (!this.result.dequantized.size) fail('fakeQuantModel: quantize with { keepDequantized: true } first');
    const w = await loadFloatWeights(this.dir, this);
    for (const [n, t] of this.result.dequantized) w.set(n, t);
    return CausalLM.fromWeights(this.cfg, () => new InitializerWeights((n) => w.get(n)), o);
  }

  /** Release the work dir's lock (its files stay for a later resume) and close the source checkpoint (idempotent). Also `await using m = await GPTQModel.fromPretrained(dir)`. */
  async dispose(): Promise<void> { this.work?.release(); this.work = undefined; await this.ck.dispose(); }
  async [Symbol.asyncDispose](): Promise<void> { await this.dispose(); }
}
