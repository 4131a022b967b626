import { modelDir, fmtSeconds, num, parse, progress } from './args.ts';
import { GPTQModel } from '../gptq-model.ts';
import { parseDevice } from '../graph/session.ts';
import type { Bits } from '../quant/config.ts';
import { fail } from '../errors.ts';
import { rm } from 'node:fs/promises';
import { parseSize } from '../io/safetensors.ts';

export const HELP = `gptq quantize [model] --out DIR [--bits 4] [--group-size 128] [--desc-act] [--static-groups] [--asym]
              [--damp 0.01] [--no-true-sequential] [--mse] [--dataset c4|wikitext2|FILE] [--dataset-path DIR]
              [--nsamples 128] [--seqlen 2048] [--seed 0] [--method gptq|rtn] [--max-shard-size 5GB] [--device cpu]
              [--work-dir DIR] [--max-memory 8GB] [--batch-tokens 4096] [--activation-dtype fp16|fp32]
  GPTQ-quantizes a Hugging Face checkpoint and writes an AutoGPTQ-format model to DIR (atomically).
  model defaults to the embedded stories260K. Finished layers are written to the work dir (default DIR.partial);
  after a crash or Ctrl-C, rerunning the same command resumes after the last finished layer.
  Calibration activations are kept in fp16 between layers (half the memory; the layer math runs in fp32);
  --activation-dtype fp32 keeps them in fp32.`;

const rss = () => `${(process.memoryUsage.rss() / 1e9).toFixed(2)} GB`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    out: { type: 'string', short: 'o' }, bits: { type: 'string' }, 'group-size': { type: 'string' },
    'desc-act': { type: 'boolean' }, 'static-groups': { type: 'boolean' }, asym: { type: 'boolean' },
    damp: { type: 'string' }, 'no-true-sequential': { type: 'boolean' }, mse: { type: 'boolean' },
    dataset: { type: 'string' }, 'dataset-path': { type: 'string' }, nsamples: { type: 'string' },
    seqlen: { type: 'string' }, seed: { type: 'string' }, method: { type: 'string' },
    'max-shard-size': { type: 'string' }, device: { type: 'string' }, 'work-dir': { type: 'string' },
    'max-memory': { type: 'string' }, 'batch-tokens': { type: 'string' }, 'activation-dtype': { type: 'string' },
  });
  if (v.help) return console.log(HELP);
  if (!v.out) fail('quantize: --out DIR is required');
  const method = (v.method ?? 'gptq') as 'gptq' | 'rtn';
  const actDtype = ({ fp16: 'float16', float16: 'float16', fp32: 'float32', float32: 'float32' } as const)[(v['activation-dtype'] ?? 'fp16') as 'fp16'];
  if (!actDtype) fail(`--activation-dtype: "${v['activation-dtype']}" (use fp16 or fp32)`);
  if (method !== 'gptq' && method !== 'rtn') fail(`--method: "${v.method}" (use gptq or rtn)`);
  const dir = await modelDir(p[0]);
  const m = await GPTQModel.fromPretrained(dir, {
    device: parseDevice(v.device),
    quantizeConfig: {
      bits: num(v.bits, 'bits', 4) as Bits, groupSize: num(v['group-size'], 'group-size', 128), descAct: !!v['desc-act'],
      staticGroups: !!v['static-groups'], sym: !v.asym, dampPercent: num(v.damp, 'damp', 0.01),
      trueSequential: !v['no-true-sequential'], mse: !!v.mse,
    },
  });
  const q = m.quantizeConfig;
  console.error(`quantizing ${dir} (${m.cfg.modelType}, ${m.cfg.numLayers} layers) → ${v.out}: ${q.bits}-bit, group ${q.groupSize}, desc_act ${q.descAct}, sym ${q.sym}, ${method}`);
  const workDir = v['work-dir'] ?? `${v.out.replace(/\/+$/, '')}.partial`;
  const ac = new AbortController();
  const onSig = () => { console.error('\ninterrupt: stopping after the current module (Ctrl-C again to kill)'); ac.abort(); process.off('SIGINT', onSig); };
  process.on('SIGINT', onSig);
  const t0 = performance.now();
  const res = await m.quantize(v.dataset ?? 'c4', {
    nsamples: num(v.nsamples, 'nsamples', 128), seqlen: num(v.seqlen, 'seqlen', 2048), seed: num(v.seed, 'seed', 0),
    datasetPath: v['dataset-path'], method, signal: ac.signal, workDir,
    maxMemory: v['max-memory'] ? parseSize(v['max-memory']) : undefined, batchTokens: num(v['batch-tokens'], 'batch-tokens'), activationDtype: actDtype,
    onLog: (s) => progress(s, true),
    onProgress: (e) => {
      const L = `layer ${e.layer + 1}/${e.layers}`;
      if (e.stage === 'capture') progress(`calibration: ${e.message}`, true);
      else if (e.stage === 'module') progress(`${L} ${e.module!.padEnd(18)} loss ${Number.isNaN(e.loss) ? '   -   ' : e.loss!.toExponential(3)}  ${e.seconds!.toFixed(2)}s  rss ${rss()}`, true);
      else if (e.stage === 'skip') progress(`${L} ${e.module!.padEnd(18)} kept in full precision: ${e.message}`, true);
      else if (e.stage === 'layer-done') progress(`${L} done, elapsed ${fmtSeconds(e.seconds!)}, ETA ${fmtSeconds(e.eta!)}, rss ${rss()}`, true);
    },
  });
  process.off('SIGINT', onSig);
  const skippedNames = [...new Set(res.skipped.map((s) => s.name.replace(/^.*?\.\d+\./, '')))];
  if (skippedNames.length) console.error(`note: ${res.skipped.length} module(s) kept in full precision (${skippedNames.join(', ')}): ${res.skipped[0]!.reason}; recorded in quantization_config (modules_in_block_to_quantize, dynamic)`);
  await m.saveQuantized(v.out, { maxShardSize: v['max-shard-size'] });
  await m.dispose();
  await rm(workDir, { recursive: true, force: true });
  console.log(`wrote ${v.out}: ${res.quantized.size} quantized modules, ${res.skipped.length} kept, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
