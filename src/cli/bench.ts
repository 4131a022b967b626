import { MODEL_ARG, modelDir } from './args.ts';
import { loadFlags, loadOptions } from './load-flags.ts';
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { benchModel, formatBenchTable } from '../eval/speed.ts';

export const COMMAND = {
  name: 'bench',
  description: `Inference speed of one model: load seconds (* = compiled graphs from the cache), prefill tok/s, decode tok/s
(batch / median step time), ms/token, peak RSS (process maxRSS), checkpoint size. Random prompt tokens.`,
  positionals: [MODEL_ARG],
  flags: [
    { name: 'prompt-len', type: 'int', min: 1, metavar: 'N', defaultText: '512, at most max_position_embeddings − gen-len', help: 'prompt tokens (prefill)' },
    { name: 'gen-len', type: 'int', min: 2, metavar: 'N', defaultText: '128, at most max_position_embeddings / 4', help: 'generated tokens (decode)' },
    { name: 'batch', type: 'int', min: 1, metavar: 'N', default: 1, help: 'sequences decoded together' },
    { name: 'seed', type: 'int', min: 0, metavar: 'S', default: 1, help: 'seed of the random prompt tokens' },
    { name: 'label', type: 'string', metavar: 'NAME', help: 'label of the row (table and JSON)' },
    JSON_FLAG,
    ...loadFlags(4),
  ],
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  const out = createOutput({ json: v.json });
  const lo = loadOptions(v, out.note);
  const dir = await modelDir(p[0], { command: 'bench', onProgress: out.progress });
  const r = await benchModel(dir, {
    ...lo, promptLen: v['prompt-len'], genLen: v['gen-len'], batch: v.batch, seed: v.seed, onNote: out.note,
  });
  const row = { ...r, label: v.label };
  out.result(row, formatBenchTable([row]));
}
