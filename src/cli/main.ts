/** `gptq` command line. */
import { GptqError } from '../errors.ts';

const COMMANDS: Record<string, () => Promise<{ run(argv: string[]): Promise<void>; HELP: string }>> = {
  bench: () => import('./bench.ts'),
  chat: () => import('./chat.ts'),
  generate: () => import('./generate.ts'),
  inspect: () => import('./inspect.ts'),
  ppl: () => import('./ppl.ts'),
  quantize: () => import('./quantize.ts'),
  serve: () => import('./serve.ts'),
};

const USAGE = `gptq — GPTQ quantization and inference for JavaScript (ONNX Runtime)

usage: gptq <command> [options]      (gptq <command> --help for details)
commands: ${Object.keys(COMMANDS).join(', ')}`;

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') return console.log(USAGE);
  const load = COMMANDS[cmd];
  if (!load) throw new GptqError(`unknown command "${cmd}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
  await (await load()).run(rest);
}

main(process.argv.slice(2)).catch((e: Error) => {
  if (e instanceof GptqError || process.env.GPTQJS_DEBUG !== '1') {
    process.stderr.write(`gptq: ${e instanceof GptqError ? e.message : (e.message ?? String(e)).split('\n')[0]}\n`);
    if (!(e instanceof GptqError)) process.stderr.write('(set GPTQJS_DEBUG=1 for the stack trace)\n');
  } else console.error(e);
  process.exitCode = 1;
});
