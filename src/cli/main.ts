/** `gptq` command line. */
import { cliMessage, GptqError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { didYouMean } from './flags.ts';


/**
 * The commands: summary for `gptq --help`, and the module (loaded on use) exporting `run(argv)` and `HELP`.
 * To add a command, add one entry here.
 */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void>; HELP: string }> }> = {
  generate: { summary: 'stream a continuation of a prompt (greedy by default)', load: () => import('./generate.ts') },
  chat: { summary: 'interactive chat with streaming replies (reads stdin lines, so it can be piped)', load: () => import('./chat.ts') },
  quantize: { summary: 'GPTQ-quantize a Hugging Face checkpoint to an AutoGPTQ-format folder (resumable)', load: () => import('./quantize.ts') },
  ppl: { summary: 'perplexity on wikitext2 / c4 / a text file (GPTQ paper method)', load: () => import('./ppl.ts') },
  inspect: { summary: 'what a checkpoint holds (fp, GPTQ, AWQ, bitsandbytes, AQLM): architecture, parameters, bits per weight, quantization config', load: () => import('./inspect.ts') },
  convert: { summary: 'rewrite an AWQ checkpoint in the AutoGPTQ format, losslessly (--to gptq)', load: () => import('./convert.ts') },
  'export-onnx': { summary: 'write the inference graph (MatMulNBits, KV cache) as an onnxruntime-genai model folder', load: () => import('./export-onnx.ts') },
  push: { summary: 'upload a checkpoint folder to the Hugging Face Hub (model card generated when missing)', load: () => import('./push.ts') },
  eval: { summary: 'evaluation tasks: lm-eval multiple choice (ARC, HellaSwag, PIQA, Winogrande), AutoGPTQ LM / classification / summarization', load: () => import('./eval.ts') },
  compare: { summary: 'the same evaluation tasks on two models (fp vs quantized) side by side', load: () => import('./compare.ts') },
  serve: { summary: 'OpenAI-compatible HTTP server with continuous batching (chat/completions, streaming, /metrics)', load: () => import('./serve.ts') },
  bench: { summary: 'inference speed of one model: load s, prefill and decode tok/s, ms/token, peak RSS', load: () => import('./bench.ts') },
};

async function versionLine(): Promise<string> {
  let ort = '?';
  try { ort = (await import('onnxruntime-node')).env.versions?.common ?? '?'; } catch { /* not installed */ }
  return `gptqjs ${VERSION} (onnxruntime-node ${ort}, Node.js ${process.versions.node})`;
}

const usage = () => `gptq ${VERSION} — GPTQ quantization and inference for JavaScript (ONNX Runtime)

usage: npx gptq <command> [arguments] [flags]

commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(Math.max(10, ...Object.keys(COMMANDS).map((k) => k.length + 2)))}${c.summary}`).join('\n')}

global flags:
  -h, --help      this help; gptq <command> --help (or gptq help <command>) describes a command and all its flags
  -v, --version   print the version (gptqjs, onnxruntime-node, Node.js)

[model] (generate, chat, quantize, ppl, inspect, eval, serve, bench): a local model directory or a Hub id owner/name
(default: the embedded stories260K); compare takes two models, convert and push a local directory.
generate, ppl, quantize, inspect, bench, eval and compare take --json: one JSON object on stdout at the end (on failure
{"error": "…"}, exit status 1; 130 when quantize is interrupted with Ctrl-C), and on stderr only JSON lines (progress and notes). Set GPTQJS_DEBUG=1 for stack traces.`;

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h') return console.log(usage());
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') return console.log(await versionLine());
  if (cmd === 'help') {
    if (!rest[0]) return console.log(usage());
    const c = COMMANDS[rest[0]];
    if (!c) throw unknownCommand(rest[0]);
    return console.log((await c.load()).HELP);
  }
  const c = COMMANDS[cmd];
  if (!c) throw unknownCommand(cmd);
  await (await c.load()).run(rest);
}

function unknownCommand(cmd: string): GptqError {
  const names = Object.keys(COMMANDS);
  const s = didYouMean(cmd, names);
  if (cmd.startsWith('-')) return new GptqError(`unknown flag ${cmd} before the command; usage: gptq <command> [flags] (commands: ${names.join(', ')})`);
  return new GptqError(`unknown command "${cmd}"${s ? `; did you mean "${s}"?` : ''} (commands: ${names.join(', ')}; gptq --help)`);
}

const args = process.argv.slice(2);
main(args).catch((e: Error) => {
  const mine = e instanceof GptqError || e?.name === 'GptqError';
  const msg = cliMessage(mine ? e.message : (e?.message ?? String(e)).split('\n')[0]!);
  // --json: the error is reported once, as the one object on stdout ({"error": …}); stderr keeps only JSON lines.
  if (args.includes('--json')) {
    if (!mine && process.env.GPTQJS_DEBUG === '1') process.stderr.write(`${JSON.stringify({ event: 'note', message: String(e?.stack ?? e) })}\n`);
    process.stdout.write(`${JSON.stringify({ error: msg })}\n`);
  } else if (mine || process.env.GPTQJS_DEBUG !== '1') {
    process.stderr.write(`gptq: ${msg}\n`);
    if (!mine) process.stderr.write('(set GPTQJS_DEBUG=1 for the stack trace)\n');
  } else console.error(e);
  process.exitCode = mine ? ((e as GptqError).exitCode ?? 1) : 1;
});
