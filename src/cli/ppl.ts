import { modelDir, num, parse, progress } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { perplexity } from '../eval/perplexity.ts';
import { datasetName, evalTokens, loadText } from '../io/datasets.ts';
import { LOAD_FLAGS, loadHelp, loadOptions } from './load-flags.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq ppl [model] [--dataset wikitext2|c4|FILE] [--seqlen N] [--max-windows N] [--dataset-path DIR]
         [--accuracy-level 0|4] [--lm-head-bits 8|4]
  Perplexity as in the GPTQ paper: whole text tokenized once, non-overlapping seqlen windows, exp(mean NLL).
  FILE: plain text (CRLF ok), .jsonl with a "text" field, or a .json list.
${loadHelp(0)}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    dataset: { type: 'string' }, seqlen: { type: 'string' }, 'max-windows': { type: 'string' },
    'dataset-path': { type: 'string' }, ...LOAD_FLAGS,
  });
  if (v.help) return console.log(HELP);
  const dir = await modelDir(p[0]);
  const ds = v.dataset ?? 'wikitext2';
  const seqlen = num(v.seqlen, 'seqlen', 2048);
  // nll: the main graph computes the per-token NLL (no second session, no logits back to JS)
  const { model, tokenizer } = await loadAnyModel(dir, { ...loadOptions(v), nll: true });
  if (!tokenizer) fail(`${dir} has no tokenizer.json: ppl needs one to tokenize ${ds}`);
  const texts = await loadText(ds, { datasetPath: v['dataset-path'] });
  let tokens = evalTokens(tokenizer, texts, datasetName(ds) ?? 'text');
  if (datasetName(ds) === 'c4') tokens = tokens.slice(0, 256 * seqlen);
  const r = await perplexity(model, tokens, {
    seqlen, maxWindows: num(v['max-windows'], 'max-windows'),
    onProgress: (i, n, ppl) => progress(`ppl window ${i}/${n}: running ppl ${ppl.toFixed(4)}`, i === n),
  });
  console.log(`ppl ${r.ppl.toFixed(4)}  (${ds}, seqlen ${seqlen}, ${r.windows} windows, ${r.tokens} tokens, ${r.tokensPerSecond.toFixed(0)} tok/s, ${r.seconds.toFixed(1)} s)`);
  await model.dispose();
}
