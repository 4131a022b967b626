import { MODEL_ARG, modelDir } from './args.ts';
import { loadAnyModel } from '../runtime/load.ts';
import { perplexity } from '../eval/perplexity.ts';
import { loadEvalText } from '../io/datasets.ts';
import { loadFlags, loadOptions } from './load-flags.ts';
import { commandHelp, JSON_FLAG, parseCommand, type CommandSpec } from './flags.ts';
import { createOutput } from './output.ts';
import { fail } from '../errors.ts';
import { seqlenFor } from '../io/config.ts';

export const COMMAND = {
  name: 'ppl',
  description: `Perplexity as in the GPTQ paper: whole text tokenized once, non-overlapping seqlen windows, exp(mean NLL).
wikitext2 = "\\n\\n".join(HF wikitext-2-raw-v1 test rows); c4 = " ".join(first 1100 validation documents), first
256·seqlen tokens (see README "Perplexity and datasets"). Without --dataset: wikitext2 if a copy is found (local, the
cache, or the Hub's parquet), else the embedded C4 sample (a note says so). FILE: wiki.*.raw (as wikitext2), plain
text (the whole text, CRLF ok), .jsonl/.json[.gz] documents (joined with blank lines), .parquet ("text" column).`,
  positionals: [MODEL_ARG],
  flags: [
    { name: 'dataset', type: 'string', metavar: 'NAME|FILE', defaultText: 'wikitext2, else the embedded C4 sample', help: 'wikitext2, c4 or a text file' },
    { name: 'dataset-path', type: 'string', metavar: 'DIR', help: 'file or folder holding the named dataset (else $GPTQJS_DATASETS, the cache, the embedded sample)' },
    { name: 'seqlen', type: 'int', min: 2, metavar: 'N', defaultText: 'min(2048, max_position_embeddings)', help: 'window length in tokens; at most the model\'s max_position_embeddings' },
    { name: 'max-windows', type: 'int', min: 1, metavar: 'N', defaultText: 'all', help: 'evaluate only the first N windows' },
    JSON_FLAG,
    ...loadFlags(0),
  ],
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  const out = createOutput({ json: v.json });
  const lo = loadOptions(v, out.note);
  const dir = await modelDir(p[0], { command: 'ppl', onProgress: out.progress });
  const ds = v.dataset;
  // nll: the main graph computes the per-token NLL (no second session, no logits back to JS)
  const { model, tokenizer } = await loadAnyModel(dir, { ...lo, nll: true });
  const seqlen = seqlenFor(v.seqlen, model.cfg);
  if (!tokenizer) fail(`${dir} has no tokenizer.json: ppl needs one to tokenize ${ds ?? 'the dataset'}`);
  const data = await loadEvalText(ds, { datasetPath: v['dataset-path'], onProgress: out.progress, onNote: (m) => out.note(`note: ${m}`) });
  let tokens = Int32Array.from(tokenizer.encode(data.text));
  if (data.maxTokens) tokens = tokens.slice(0, data.maxTokens(seqlen));
  const r = await perplexity(model, tokens, { seqlen, maxWindows: v['max-windows'], onProgress: out.progress });
  const dataset = data.kind === 'file' ? data.source : data.kind;
  out.result({ model: dir, dataset, datasetFile: data.source, seqlen, ...r },
    `ppl ${r.ppl.toFixed(4)}  (${data.kind === 'file' ? data.source : `${data.kind} ${data.source}`}, seqlen ${seqlen}, ${r.windows} windows, ${r.tokens} tokens, ${r.tokensPerSecond.toFixed(0)} tok/s, ${r.seconds.toFixed(1)} s)`);
  await model.dispose();
}
