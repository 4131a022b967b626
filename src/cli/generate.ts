import { MODEL_ARG, modelDir } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { generate } from '../runtime/generate.ts';
import { checkContext, loadFlags, loadOptions, noteDefaultAccuracy, samplingFlags, samplingOptions } from './load-flags.ts';
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { fail } from '../errors.ts';

export const COMMAND = {
  name: 'generate',
  description: 'Streams a continuation of the prompt to stdout (the prompt first), then one stats line on stderr.\n'
    + 'With --json nothing is streamed: one JSON object {text, prompt, tokens, finishReason, …} at the end.',
  positionals: [MODEL_ARG, { name: 'prompt', help: 'the text to continue (quote it); default "" (just the bos token). Also --prompt' }],
  flags: [
    { name: 'prompt', type: 'string', metavar: 'TEXT', help: 'the prompt (instead of the second argument; works without a model argument)' },
    ...samplingFlags(128),
    { name: 'stop', type: 'string', metavar: 'STR', multiple: true, group: 'sampling (Transformers\' semantics: repetition penalty → temperature → top-k → top-p)', help: 'stop when the text contains STR' },
    JSON_FLAG,
    ...loadFlags(4),
  ],
  epilog: 'examples:\n  npx gptq generate --prompt "Once upon a time"\n  npx gptq generate ./my-model-gptq "Once upon a time" --max-new-tokens 64 --temperature 0.8 --top-p 0.95',
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, given, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  if (p[1] !== undefined && v.prompt !== undefined) fail('generate: the prompt is given twice (second argument and --prompt); give one');
  const out = createOutput({ json: v.json });
  const lo = loadOptions(v, out.note);
  const dir = await modelDir(p[0], { command: 'generate', promptHint: `gptq generate --prompt ${JSON.stringify(p[0] ?? '')} (embedded model) or gptq generate MODEL ${JSON.stringify(p[0] ?? '')}`, onProgress: out.progress });
  const prompt = p[1] ?? v.prompt ?? '';
  const { model, tokenizer, gen } = await loadAnyModel(dir, lo);
  noteDefaultAccuracy(given, model, lo, out.note);
  if (!tokenizer) fail(`${dir} has no tokenizer.json: generate needs one`);
  const ids = tokenizer.encode(prompt);
  const sampling = samplingOptions(v, gen);
  checkContext(model, ids.length, sampling.maxNewTokens, out.note);
  // The prompt as typed, then the continuation: decode(prompt ids + new ids) minus decode(prompt ids), streamed.
  if (!v.json) process.stdout.write(prompt);
  const eos = gen.eosTokenId ?? model.cfg.eosTokenId ?? tokenizer.eosId;
  const r = await generate(model, [ids], {
    ...sampling, eosTokenIds: eos === null || eos === undefined ? [] : ([] as number[]).concat(eos),
    stopStrings: v.stop.length ? v.stop : undefined, tokenizer,
    onText: v.json ? undefined : (_, piece) => process.stdout.write(piece),
  });
  const text = r.text![0]!;
  if (!v.json) process.stdout.write('\n');
  const n = r.tokens[0]!.length;
  const stats = { promptTokens: ids.length, newTokens: n, prefillTokensPerSecond: ids.length / (r.prefillMs / 1000), decodeTokensPerSecond: n / (r.decodeMs / 1000), finishReason: r.finishReason[0]! };
  if (v.json) out.result({ model: dir, prompt, text, tokens: r.tokens[0], ...stats });
  else process.stderr.write(`[${n} tokens, prefill ${stats.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${stats.decodeTokensPerSecond.toFixed(1)} tok/s, finish: ${stats.finishReason}]\n`);
  await model.dispose();
}
