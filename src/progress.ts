/**
 * One progress-event type for every long-running gptqjs task: Hub downloads, GPTQ quantization and perplexity.
 * Every event carries `done` / `total` (in the task's own unit: bytes, layers, windows), `elapsed` seconds since the
 * task started and, once it can be estimated, `eta` seconds, so one progress bar serves all of them; the task-specific
 * fields say what is happening. Library calls take `onProgress: (e: ProgressEvent) => void` (resolveModelDir,
 * GPTQModel.quantize, perplexity, evaluate); the CLI draws them as a bar on a terminal, one line per step when piped, or
 * JSON lines with --json.
 */

export interface ProgressBase {
  /** Units finished so far (bytes, layers or windows: see `task`). */
  done: number;
  /** Units in the whole task. */
  total: number;
  /** Seconds since the task started. */
  elapsed: number;
  /** Estimated seconds left (undefined until one unit is finished). */
  eta?: number;
}

/** Bytes of a Hub download; done/total: bytes over all files of the download. */
export interface DownloadProgress extends ProgressBase {
  task: 'download';
  /** Repo id, e.g. "owner/name" or "dataset allenai/c4". */
  repo: string;
  /** Path of the file inside the repo. */
  file: string;
  /** Bytes of this file received so far, and its size (undefined when the server does not say). */
  fileBytes: number;
  fileSize?: number;
  /** 1-based index of this file and the number of files to download. */
  fileIndex: number;
  files: number;
  /** True on the last event of this file. */
  fileDone: boolean;
}

/** GPTQ quantization (GPTQModel.quantize); done/total: finished layers / decoder layers. */
export interface QuantizeProgress extends ProgressBase {
  task: 'quantize';
  /**
   * capture: calibration inputs of the first layer embedded (or resumed); hessian: a layer's Hessians accumulated;
   * module: one linear quantized; skip: a linear kept in full precision; layer-done: a decoder layer finished.
   */
  stage: 'capture' | 'hessian' | 'module' | 'layer-done' | 'skip';
  /** 0-based decoder layer and the number of layers. */
  layer: number;
  layers: number;
  /** Linear inside the layer, e.g. "self_attn.q_proj" (module, skip). */
  module?: string;
  /** GPTQ's quantization loss of the module (sum of squared output error, NaN for rtn). */
  loss?: number;
  /** Seconds this module took (module). */
  seconds?: number;
  message?: string;
}

/** Perplexity windows (perplexity()); done/total: windows. */
export interface PerplexityProgress extends ProgressBase {
  task: 'perplexity';
  /** exp(mean NLL) over the windows done so far. */
  ppl: number;
}

/** Evaluation tasks (evaluate()); done/total: requests of the stage (loglikelihood rows, generations, documents). */
export interface EvalProgress extends ProgressBase {
  task: 'eval';
  /** The evaluation task, e.g. "arc_easy". */
  evalTask: string;
  /** loglikelihood: scoring context/continuation pairs; generate: greedy generations (classification, summarization). */
  stage: 'loglikelihood' | 'generate';
}

export type ProgressEvent = DownloadProgress | QuantizeProgress | PerplexityProgress | EvalProgress;
export type ProgressCallback = (e: ProgressEvent) => void;

/** Seconds left by linear extrapolation of `elapsed` over `done` of `total` (undefined before the first unit). */
export function etaSeconds(elapsed: number, done: number, total: number): number | undefined {
  return done > 0 ? (elapsed / done) * Math.max(0, total - done) : undefined;
}
