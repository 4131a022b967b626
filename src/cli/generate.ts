import { modelDir, num, parse } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { generate } from '../runtime/generate.ts';
import { LOAD_FLAGS, loadHelp, loadOptions, noteDefaultAccuracy } from './load-flags.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq generate [model] [prompt] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
              [--repetition-penalty R] [--seed S] [--stop STR] [--accuracy-level 4|0] [--lm-head-bits 8|4]
  Streams a continuation. model defaults to the embedded stories260K; prompt defaults to "" (just <s>).
${loadHelp(4)}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' },
    'top-p': { type: 'string' }, 'repetition-penalty': { type: 'string' }, seed: { type: 'string' },
    stop: { type: 'string', multiple: true }, ...LOAD_FLAGS,
  });
  if (v.help) return console.log(HELP);
  const dir = await modelDir(p[0]);
  const prompt = p[1] ?? '';
  const lo = loadOptions(v, 4);
  const { model, tokenizer, gen } = await loadAnyModel(dir, lo);
  noteDefaultAccuracy(v, model, lo);
  if (!tokenizer) fail(`${dir} has no tokenizer.json: generate needs one`);
  const ids = tokenizer.encode(prompt);
  // The prompt as typed, then the continuation: decode(prompt ids + new ids) minus decode(prompt ids), streamed.
  process.stdout.write(prompt);
  const eos = gen.eosTokenId ?? model.cfg.eosTokenId ?? tokenizer.eosId;
  const r = await generate(model, [ids], {
    maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens', 128),
    temperature: num(v.temperature, 'temperature', 0), topK: num(v['top-k'], 'top-k', gen.topK),
    topP: num(v['top-p'], 'top-p', gen.topP), repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty', gen.repetitionPenalty),
    seed: num(v.seed, 'seed', 0), eosTokenIds: eos === null || eos === undefined ? [] : ([] as number[]).concat(eos),
    stopStrings: v.stop, tokenizer, onText: (_, text) => process.stdout.write(text),
  });
  process.stdout.write('\n');
  const n = r.tokens[0]!.length;
  process.stderr.write(`[${n} tokens, prefill ${(ids.length / (r.prefillMs / 1000)).toFixed(1)} tok/s, decode ${(n / (r.decodeMs / 1000)).toFixed(1)} tok/s, finish: ${r.finishReason[0]}]\n`);
  await model.release();
}
