import { modelDir, num, parse } from './args.ts';
import { LOAD_FLAGS, loadHelp, loadOptions } from './load-flags.ts';
import { benchModel, formatBenchTable } from '../eval/bench.ts';

export const HELP = `gptq bench [model] [--prompt-len 512] [--gen-len 128] [--batch 1] [--accuracy-level 4|0] [--lm-head-bits 8|4]
            [--json] [--label NAME]
  Inference speed of one model: load seconds (* = compiled graphs from the cache), prefill tok/s, decode tok/s
  (batch / median step time), ms/token, peak RSS (process maxRSS), checkpoint size. Random prompt tokens.
${loadHelp(4)}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    ...LOAD_FLAGS, 'prompt-len': { type: 'string' }, 'gen-len': { type: 'string' }, batch: { type: 'string' },
    json: { type: 'boolean' }, label: { type: 'string' }, seed: { type: 'string' },
  });
  if (v.help) return console.log(HELP);
  const dir = await modelDir(p[0]);
  const r = await benchModel(dir, {
    ...loadOptions(v, 4), promptLen: num(v['prompt-len'], 'prompt-len', 512), genLen: num(v['gen-len'], 'gen-len', 128),
    batch: num(v.batch, 'batch', 1), seed: num(v.seed, 'seed', 1), onProgress: (s) => process.stderr.write(`${s}\n`),
  });
  const row = { ...r, label: v.label };
  console.log(v.json ? JSON.stringify(row) : formatBenchTable([row]));
}
