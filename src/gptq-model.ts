/**
 * The user-facing API, mirroring AutoGPTQ:
 *   const m = await GPTQModel.fromPretrained(dir, { quantizeConfig: { bits: 4, groupSize: 128 } });
 *   await m.quantize('c4', { nsamples: 128, seqlen: 2048, onProgress });
 *   await m.saveQuantized(out);
 */
import { loadModelConfig, type ModelConfig } from './io/config.ts';
import { Checkpoint } from './io/safetensors.ts';
import { TextTokenizer } from './io/tokenizer.ts';
import { calibrationData, calibrationSamples, type CalibrationSet, type TokenizedExample, type LoadTextOptions } from './io/datasets.ts';
import { archFor } from './models/registry.ts';
import type { ArchDefinition } from './models/types.ts';
import { resolveQuantizeConfig, type QuantizeConfig } from './quant/config.ts';
import { quantizeLayers, type ActivationDtype, type QuantizeEvent, type QuantizeLoopResult } from './quant/quantize-model.ts';
import { saveQuantizedCheckpoint, type SaveOptions } from './quant/save.ts';
import { WorkDir, hashCalibration, hashCheckpoint } from './quant/workdir.ts';
import { estimateMemory, fmtBytes } from './quant/memory.ts';
import { CausalLM, loadFloatWeights, type LoadOptions } from './runtime/causal-lm.ts';
import { InitializerWeights } from './graph/weights.ts';
import type { Device } from './graph/session.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from './errors.ts';
import { loadQuantizedModel, type LoadedQuantizedModel } from './runtime/load.ts';
import type { AccuracyLevel } from './runtime/quantized-weights.ts';

export type CalibrationInput = 'c4' | 'wikitext2' | string | string[] | TokenizedExample[] | CalibrationSet;

export interface QuantizeCallOptions extends LoadTextOptions {
  nsamples?: number;
  seqlen?: number;
  seed?: number;
  method?: 'gptq' | 'rtn';
  onProgress?: (e: QuantizeEvent) => void;
  onLog?: (msg: string) => void;
  signal?: AbortSignal;
  batchTokens?: number;
  /** Evaluation only: fake-quantize modules AutoGPTQ cannot pack too (the result cannot be saved). */
  quantizeUnpackable?: boolean;
  /** Keep dequantized fp32 weights in memory (needed by fakeQuantModel()). */
  keepDequantized?: boolean;
  /** Write each finished layer here; rerunning the same call resumes after the last finished layer. */
  workDir?: string;
  /** Refuse up front (with the estimate) when the plan needs more resident memory than this many bytes. */
  maxMemory?: number;
  /** Storage of calibration activations between layers: 'float16' (default, half the memory) or 'float32'. */
  activationDtype?: ActivationDtype;
}

export class GPTQModel {
  result?: QuantizeLoopResult;
  private constructor(readonly dir: string, readonly cfg: ModelConfig, readonly arch: ArchDefinition, readonly ck: Checkpoint,
    readonly quantizeConfig: QuantizeConfig, readonly tokenizer: TextTokenizer | undefined, readonly device: Device) {}

  static async fromPretrained(dir: string, o: { quantizeConfig?: Partial<QuantizeConfig>; device?: Device } = {}): Promise<GPTQModel> {
    const cfg = await loadModelConfig(dir);
    if (cfg.quantizationConfig) fail(`${dir} is already quantized (config.json has quantization_config); load it with GPTQModel.fromQuantized`);
    const arch = archFor(cfg.modelType);
    arch.check?.(cfg);
    const q = resolveQuantizeConfig(o.quantizeConfig ?? {});
    if (q.lmHead) fail('quantizeConfig.lmHead: quantizing lm_head is not supported yet');
    const tok = existsSync(join(dir, 'tokenizer.json')) ? await TextTokenizer.fromDir(dir) : undefined;
    return new GPTQModel(dir, cfg, arch, await Checkpoint.open(dir), q, tok, o.device ?? 'cpu');
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
    const opts = { nsamples: o.nsamples ?? 128, seqlen: o.seqlen ?? 2048, seed: o.seed ?? 0 };
    if (typeof data === 'string') return calibrationData(needTok(), data, { ...o, ...opts });
    if (data.length && typeof data[0] === 'string') return calibrationSamples(needTok(), data as string[], { ...opts, mode: 'examples' });
    return calibrationSamples((s) => needTok().encode(s), data as TokenizedExample[], opts);
  }

  async quantize(data: CalibrationInput = 'c4', o: QuantizeCallOptions = {}): Promise<QuantizeLoopResult> {
    const calib = await this.calibration(data, o);
    if (o.maxMemory) {
      const tokens = calib.inputIds.reduce((a, r) => a + r.length, 0);
      const e = estimateMemory(this.arch, this.cfg, this.quantizeConfig, tokens, Math.max(...calib.inputIds.map((r) => r.length)), o.batchTokens, o.activationDtype);
      if (e.total > o.maxMemory)
        fail(`quantize: estimated peak memory ${fmtBytes(e.total)} exceeds --max-memory ${fmtBytes(o.maxMemory)} (layer weights ${fmtBytes(e.layerWeights)}, activations ${fmtBytes(e.activations)} for ${tokens} tokens, Hessians ${fmtBytes(e.hessians)}, GPTQ buffers ${fmtBytes(e.gptq)}, ORT workspace ${fmtBytes(e.workspace)}, embeddings ${fmtBytes(e.outside)}); use fewer samples/shorter seqlen or a smaller --batch-tokens`);
    }
    const workDir = o.workDir ? await WorkDir.open(o.workDir, {
      source: await hashCheckpoint(this.dir, this.ck.files),
      config: JSON.stringify({ ...this.quantizeConfig, method: o.method ?? 'gptq', batchTokens: o.batchTokens ?? 4096, quantizeUnpackable: !!o.quantizeUnpackable, activationDtype: o.activationDtype ?? 'float16' }),
      calibration: hashCalibration(calib.inputIds),
    }) : undefined;
    this.result = await quantizeLayers(this.arch, this.cfg, this.ck, this.quantizeConfig, calib, {
      method: o.method, device: this.device, onEvent: o.onProgress, onLog: o.onLog, signal: o.signal, batchTokens: o.batchTokens,
      quantizeUnpackable: o.quantizeUnpackable, keepDequantized: o.keepDequantized || o.quantizeUnpackable, workDir, activationDtype: o.activationDtype,
    });
    return this.result;
  }

  async saveQuantized(out: string, o: SaveOptions = {}): Promise<void> {
    if (!this.result) fail('saveQuantized: call quantize() first');
    if (this.result.evaluationOnly) fail('saveQuantized: this result fake-quantized unpackable modules (quantizeUnpackable) and cannot be saved; quantize again without it');
    await saveQuantizedCheckpoint(out, this, this.quantizeConfig, this.result, o);
  }

  /** The model with quantized-dequantized weights in fp32 (for evaluating quantization error). */
  async fakeQuantModel(o: LoadOptions = {}): Promise<CausalLM> {
    if (!this.result) fail('fakeQuantModel: call quantize() first');
    if (!this.result.dequantized.size) fail('fakeQuantModel: quantize with { keepDequantized: true } first');
    const w = await loadFloatWeights(this.dir);
    for (const [n, t] of this.result.dequantized) w.set(n, t);
    return CausalLM.fromWeights(this.cfg, () => new InitializerWeights((n) => w.get(n)), o);
  }

  async close(): Promise<void> { await this.ck.close(); }
}
