/** `gptq convert DIR --to gptq --out OUT`: an AWQ checkpoint rewritten losslessly in the AutoGPTQ format (src/formats/convert.ts). */
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { convertAwqToGptq } from '../formats/convert.ts';
import { fail } from '../errors.ts';

export const COMMAND = {
  name: 'convert',
  description: `Rewrites an AWQ checkpoint (AutoAWQ gemm or gemv, 4-bit) as an AutoGPTQ-format checkpoint in --out DIR,
losslessly: every code, zero point and scale is carried over (both formats compute W = (q − z)·s over in-order groups),
every other tensor copied. Zero points of 0, which AutoGPTQ's v1 qzeros (zero − 1) cannot hold, make --format auto write
GPTQModel's gptq_v2 instead (read by GPTQModel and Transformers; not by AutoGPTQ). The written checkpoint is read back and
compared with the source before the command reports success. Output folder rules as for quantize (a new or empty DIR;
the source folder is always refused; --overwrite replaces checkpoint files only).`,
  positionals: [{ name: 'model dir', help: 'a local AWQ checkpoint directory', required: true }],
  flags: [
    { name: 'to', type: 'string', oneOf: ['gptq'], help: 'target format (required): gptq' },
    { name: 'out', short: 'o', type: 'string', metavar: 'DIR', help: 'output folder (required)' },
    { name: 'format', type: 'string', oneOf: ['auto', 'gptq', 'gptq_v2'], default: 'auto', help: 'zero-point layout: gptq (AutoGPTQ v1, zero − 1), gptq_v2 (zero), auto = gptq unless a zero point is 0' },
    { name: 'overwrite', type: 'boolean', help: 'write into a non-empty DIR: replace its checkpoint files, keep all other files' },
    { name: 'max-shard-size', type: 'size', metavar: 'SIZE', default: 5e9, defaultText: '5GB', help: 'largest safetensors shard' },
    JSON_FLAG,
  ],
  epilog: 'example:\n  npx gptq convert ./llama-awq --to gptq --out ./llama-gptq',
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  if (!v.to) fail('convert: --to is required (gptq)');
  if (!v.out) fail('convert: --out DIR is required');
  const ui = createOutput({ json: v.json });
  const r = await convertAwqToGptq(p[0]!, v.out, { format: v.format as 'auto' | 'gptq' | 'gptq_v2', overwrite: v.overwrite, maxShardSize: v['max-shard-size'], onLog: (m) => ui.note(m) });
  ui.result(r, `wrote ${r.out}: ${r.modules} AWQ linears as GPTQ 4-bit (${r.format}), verified identical codes/zeros/scales${r.keptFp.length ? `; ${r.keptFp.length} linears kept in fp as in the source` : ''} (${r.seconds.toFixed(1)} s)`);
}
