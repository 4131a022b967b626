import { existsSync } from 'node:fs';
import { MODEL_ARG, modelDir } from './args.ts';
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { GPTQModel } from '../gptq-model.ts';
import { checkDeviceAvailable, DEVICES, type Device } from '../graph/session.ts';
import { checkOutputDir } from '../quant/save.ts';
import { realPath } from '../io/atomic.ts';
import { ARITHMETICS, BITS, DEFAULT_QUANTIZE_CONFIG, MSE_WEIGHTINGS, SCALE_ROUNDINGS, type Arithmetic, type Bits, type MseWeighting, type ScaleRounding } from '../quant/quantize-config.ts';
import { fail, GptqError } from '../errors.ts';
import { seqlenFor } from '../io/config.ts';

const Q = 'quantization (AutoGPTQ BaseQuantizeConfig)', C = 'calibration', O = 'output', R = 'resources';

export const COMMAND = {
  name: 'quantize',
  description: `GPTQ-quantizes a Hugging Face checkpoint and writes an AutoGPTQ-format model to --out DIR (atomically).
Finished layers are written to the work dir (default DIR.partial), locked by this run; after a crash, kill or Ctrl-C,
rerunning the same command resumes after the last finished layer. A second run with the same work dir stops at once,
naming the running one; the lock of a killed run is taken over.
Output folder: a new or empty DIR is written; DIR equal to the model folder is always refused; a non-empty DIR is
refused unless it holds only this same run's earlier output, or --overwrite is given, which replaces the checkpoint
files in it (config.json, quantize_config.json, model*.safetensors + index, tokenizer and generation files) and keeps
every other file. The work dir is deleted after a successful save (only its own files).
Calibration activations are kept in fp16 between layers (half the memory; the layer math runs in fp32).`,
  positionals: [MODEL_ARG],
  flags: [
    { name: 'out', short: 'o', type: 'string', metavar: 'DIR', group: O, help: 'output folder (required)' },
    { name: 'overwrite', type: 'boolean', group: O, help: 'write into a non-empty DIR: replace its checkpoint files, keep all other files' },
    { name: 'max-shard-size', type: 'size', metavar: 'SIZE', default: 5e9, defaultText: '5GB', group: O, help: 'largest safetensors shard (transformers\' rule: GB = 1e9, GiB = 2^30)' },
    { name: 'work-dir', type: 'string', metavar: 'DIR', defaultText: 'DIR.partial', group: O, help: 'where finished layers are kept for resuming (must be new, or a gptqjs work dir)' },
    JSON_FLAG,
    { name: 'bits', type: 'int', oneOf: BITS, default: 4, group: Q, help: 'bits per weight' },
    { name: 'group-size', type: 'int', min: 1, also: [-1], metavar: 'N', default: DEFAULT_QUANTIZE_CONFIG.groupSize, note: '-1 = one group per output channel', group: Q,
      help: 'input columns sharing one scale/zero; at most the smallest in_features of the model\'s linears' },
    { name: 'desc-act', type: 'boolean', group: Q, help: 'act-order: quantize columns by decreasing Hessian diagonal' },
    { name: 'static-groups', type: 'boolean', group: Q, help: 'with --desc-act: groups fixed before reordering (needs --group-size > 0)' },
    { name: 'asym', type: 'boolean', group: Q, help: 'asymmetric quantization (a zero point per group); default symmetric' },
    { name: 'damp', type: 'number', gt: 0, lt: 1, metavar: 'F', default: 0.01, group: Q, help: 'Hessian dampening: fraction of the mean diagonal added (damp_percent)' },
    { name: 'no-true-sequential', type: 'boolean', group: Q, help: 'quantize all linears of a layer from the same inputs (default: in sequence)' },
    { name: 'act-group-aware', type: 'boolean', group: Q,
      help: "group-aware act-order (GPTQModel act_group_aware): columns by diag(H) within and between groups, in-order g_idx kept (needs --group-size > 0; not with --desc-act)" },
    { name: 'mse', type: 'boolean', group: Q, help: 'search the clipping range per group (GPTQModel mse)' },
    { name: 'mse-weighting', type: 'string', oneOf: MSE_WEIGHTINGS, default: DEFAULT_QUANTIZE_CONFIG.mseWeighting, group: Q,
      help: "with --mse: the error searched, AutoGPTQ's uniform |q−w|^2.4 or GPTQ's diag(H)-weighted (q−w)²" },
    { name: 'arithmetic', type: 'string', oneOf: ARITHMETICS, metavar: 'A', default: DEFAULT_QUANTIZE_CONFIG.arithmetic, group: Q,
      help: "rounding arithmetic: float64 (codes on the fp16 scales saved) or float32 (AutoGPTQ's torch arithmetic, bit for bit)" },
    { name: 'scale-rounding', type: 'string', oneOf: SCALE_ROUNDINGS, default: DEFAULT_QUANTIZE_CONFIG.scaleRounding, group: Q,
      help: 'fp16 scale saved: nearest, or down (a symmetric group\'s negative extreme then always uses the extra level, as AutoGPTQ)' },
    { name: 'method', type: 'string', oneOf: ['gptq', 'rtn'], default: 'gptq', group: Q, help: 'gptq, or round-to-nearest (no calibration math)' },
    { name: 'dataset', type: 'string', metavar: 'NAME|FILE', default: 'c4', group: C, help: 'c4, wikitext2 or a text file (.txt, .jsonl with "text", .json list)' },
    { name: 'dataset-path', type: 'string', metavar: 'DIR', group: C, help: 'file or folder holding the named dataset' },
    { name: 'nsamples', type: 'int', min: 1, metavar: 'N', default: 128, group: C, help: 'calibration samples' },
    { name: 'seqlen', type: 'int', min: 2, metavar: 'N', defaultText: 'min(2048, max_position_embeddings)', group: C, help: 'tokens per sample; at most the model\'s max_position_embeddings' },
    { name: 'seed', type: 'int', min: 0, metavar: 'S', default: 0, group: C, help: 'seed of the sample selection' },
    { name: 'device', type: 'string', oneOf: DEVICES, default: 'cpu', group: R, help: 'ONNX Runtime execution provider' },
    { name: 'max-memory', type: 'size', metavar: 'SIZE', group: R, help: 'refuse up front when the estimated peak memory is larger' },
    { name: 'batch-tokens', type: 'int', min: 1, metavar: 'N', default: 4096, group: R, help: 'tokens per ONNX Runtime run through a layer' },
    { name: 'activation-dtype', type: 'string', oneOf: ['fp16', 'fp32'], aliases: { float16: 'fp16', float32: 'fp32' }, default: 'fp16', group: R,
      help: 'storage of calibration activations between layers' },
  ],
  epilog: 'example:\n  npx gptq quantize --out /tmp/stories-q4 --group-size 32 --seqlen 256',
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, given, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  if (!v.out) fail('quantize: --out DIR is required (the folder the quantized model is written to)');
  const out = v.out.replace(/(.)\/+$/, '$1');
  const ui = createOutput({ json: v.json });
  const device = v.device as Device;
  checkDeviceAvailable(device);
  const dir = await modelDir(p[0], { command: 'quantize', onProgress: ui.progress });
  const workDir = v['work-dir'] ?? `${out}.partial`;
  for (const [what, path] of [['the output folder --out', out], ['the model folder', dir]] as const)
    if (realPath(workDir) === realPath(path)) fail(`--work-dir ${workDir} is ${what}; the work dir must be a folder of its own (it is deleted when done)`);
  const m = await GPTQModel.fromPretrained(dir, {
    device,
    quantizeConfig: {
      bits: v.bits as Bits, groupSize: given.has('group-size') ? v['group-size'] : undefined, descAct: v['desc-act'], staticGroups: v['static-groups'], sym: !v.asym,
      dampPercent: v.damp, trueSequential: !v['no-true-sequential'], actGroupAware: v['act-group-aware'], mse: v.mse, mseWeighting: v['mse-weighting'] as MseWeighting, arithmetic: v.arithmetic as Arithmetic, scaleRounding: v['scale-rounding'] as ScaleRounding,
    },
  });
  try {
    const q = m.quantizeConfig;
    // Model-dependent limits of the flags, before any work.
    const seqlen = seqlenFor(v.seqlen, m.cfg);
    // Refuse a bad --out now, not after hours of quantizing (saveQuantized checks again, with the run id).
    const plan = await checkOutputDir(out, { source: dir, overwrite: v.overwrite, config: q });
    if (plan === 'overwrite') ui.note(`note: ${out} is not empty; --overwrite: its checkpoint files will be replaced, other files kept`);
    ui.note(`quantizing ${dir} (${m.cfg.modelType}, ${m.cfg.numLayers} layers) → ${out}: ${q.bits}-bit, group ${q.groupSize}, desc_act ${q.descAct}, sym ${q.sym}${q.mse ? ', mse' : ''}${q.arithmetic === 'float32' ? ', float32 arithmetic (AutoGPTQ)' : ''}, ${v.method}`);
    const ac = new AbortController();
    const onSig = () => { ui.note('interrupt: stopping after the current module (Ctrl-C again to kill)'); ac.abort(); process.off('SIGINT', onSig); };
    process.on('SIGINT', onSig);
    const t0 = performance.now();
    const res = await m.quantize(v.dataset, {
      nsamples: v.nsamples, seqlen, seed: v.seed, datasetPath: v['dataset-path'], method: v.method as 'gptq' | 'rtn', signal: ac.signal, workDir, out, overwrite: v.overwrite,
      maxMemory: v['max-memory'], batchTokens: v['batch-tokens'], activationDtype: v['activation-dtype'] === 'fp32' ? 'float32' : 'float16',
      onLog: ui.note, onNote: (m) => ui.note(`note: ${m}`), onProgress: ui.progress,
    }).catch((e: unknown) => {
      if (!ac.signal.aborted) throw e;
      throw new GptqError(existsSync(workDir) ? `interrupted; the finished layers are kept in ${workDir}: run the same command again to resume` : 'interrupted before the first layer finished', 130);
    }).finally(() => process.off('SIGINT', onSig));
    if (res.skipped.length) ui.note(`note: ${res.skipped.length} module(s) kept in full precision (${skippedSummary(res.skipped)}); recorded in quantization_config (modules_in_block_to_quantize, dynamic)`);
    const saved = await m.saveQuantized(out, { maxShardSize: v['max-shard-size'], overwrite: v.overwrite });
    if (saved.modelCard === 'kept') ui.note(`note: ${out}/README.md is not a gptqjs model card: kept as it is (no model card written)`);
    await m.removeWorkDir();
    const seconds = (performance.now() - t0) / 1000;
    ui.result({ out, model: dir, quantized: res.quantized.size, kept: res.skipped.length, skipped: res.skipped, seconds, quantizeConfig: q },
      `wrote ${out}: ${res.quantized.size} quantized modules, ${res.skipped.length} kept, ${seconds.toFixed(1)} s`);
  } finally {
    ui.stop();
    await m.dispose();
  }
}

/** Kept modules grouped by their reason: "mlp.up_proj, mlp.gate_proj: out_features 172 is …; mlp.down_proj: in_features 172 is …". */
export function skippedSummary(skipped: readonly { name: string; reason: string }[]): string {
  const byReason = new Map<string, Set<string>>();
  for (const s of skipped) {
    let names = byReason.get(s.reason);
    if (!names) byReason.set(s.reason, names = new Set());
    names.add(s.name.replace(/^.*?\.\d+\./, '')); // model.layers.3.mlp.up_proj → mlp.up_proj
  }
  return [...byReason].map(([reason, names]) => `${[...names].join(', ')}: ${reason}`).join('; ');
}
