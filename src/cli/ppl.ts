import { modelDir, num, parse, progress } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { perplexity } from '../eval/perplexity.ts';
import { loadEvalText } from '../io/datasets.ts';
import { LOAD_FLAGS, loadHelp, loadOptions } from './load-flags.ts';
import { fail } from '../errors.ts';

export const HELP = `gptq ppl [model] [--dataset wikitext2|c4|FILE] [--seqlen N (default min(2048, context))] [--max-windows N] [--dataset-path DIR]
         [--accuracy-level 0|4] [--lm-head-bits 8|4]
  Perplexity as in the GPTQ paper: whole text tokenized once, non-overlapping seqlen windows, exp(mean NLL).
  wikitext2 = "\n\n".join(HF wikitext-2-raw-v1 test rows); c4 = " ".join(first 1100 validation documents), first
  256·seqlen tokens (see README "Perplexity and datasets"). Without --dataset: wikitext2 if a local copy is found,
  else the embedded C4 sample (a note says so). FILE: wiki.*.raw (as wikitext2), plain text (the whole text, CRLF
  ok), .jsonl/.json[.gz] documents (joined with blank lines).
${loadHelp(0)}`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    dataset: { type: 'string' }, seqlen: { type: 'string' }, 'max-windows': { type: 'string' },
    'dataset-path': { type: 'string' }, ...LOAD_FLAGS,
  });
  if (v.help) return console.log(HELP);
  const dir = await modelDir(p[0]);
  const ds = v.dataset;
  // nll: the main graph computes the per-token NLL (no second session, no logits back to JS)
  const { model, tokenizer } = await loadAnyModel(dir, { ...loadOptions(v), nll: true });
  // default: 2048 as gptq's llama.py, capped at the model's context like its opt.py (model.config.max_position_embeddings)
  const seqlen = num(v.seqlen, 'seqlen', Math.min(2048, model.cfg.maxPositionEmbeddings || 2048));
  if (!tokenizer) fail(`${dir} has no tokenizer.json: ppl needs one to tokenize ${ds ?? 'the dataset'}`);
  const data = await loadEvalText(ds, { datasetPath: v['dataset-path'], onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  let tokens = Int32Array.from(tokenizer.encode(data.text));
  if (data.maxTokens) tokens = tokens.slice(0, data.maxTokens(seqlen));
  const r = await perplexity(model, tokens, {
    seqlen, maxWindows: num(v['max-windows'], 'max-windows'),
    onProgress: (i, n, ppl) => progress(`ppl window ${i}/${n}: running ppl ${ppl.toFixed(4)}`, i === n),
  });
  console.log(`ppl ${r.ppl.toFixed(4)}  (${data.kind === 'file' ? data.source : `${data.kind} ${data.source}`}, seqlen ${seqlen}, ${r.windows} windows, ${r.tokens} tokens, ${r.tokensPerSecond.toFixed(0)} tok/s, ${r.seconds.toFixed(1)} s)`);
  await model.release();
}
