/** `gptq push DIR owner/name`: upload a model directory to the Hugging Face Hub (src/io/push.ts). */
import { parse } from './args.ts';
import { fail } from '../errors.ts';
import { pushToHub } from '../io/push.ts';

export const HELP = `gptq push DIR owner/name [--private] [--revision BRANCH] [--message TEXT] [--no-card]
  Uploads every file of DIR (dot files skipped) to the Hub model repo owner/name in one commit, creating the repo
  (and the branch) when missing. Large files go through LFS/Xet; files the Hub already has are not sent again, so
  rerunning an interrupted push only uploads what is missing.
  A DIR without README.md gets a generated model card (settings from quantize_config.json, calibration, tool) in
  the upload only; DIR itself is not changed. --no-card uploads no README.
  Token: env HF_TOKEN, else the huggingface_hub token file (HF_TOKEN_PATH, $HF_HOME/token, ~/.cache/huggingface/token).
  Hub URL: env HF_ENDPOINT (default https://huggingface.co).
    --private          create the repo private (an existing repo keeps its visibility)
    --revision BRANCH  commit to BRANCH (created from main when missing; default main)
    --message TEXT     commit title (default "Upload N files with gptqjs")`;

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p } = parse(argv, {
    private: { type: 'boolean' }, revision: { type: 'string' }, message: { type: 'string' }, 'no-card': { type: 'boolean' },
  });
  if (v.help) return console.log(HELP);
  if (p.length !== 2) fail(`push: expected DIR and owner/name, got ${p.length} argument${p.length === 1 ? '' : 's'} (gptq push --help)`);
  const r = await pushToHub(p[0]!, p[1]!, {
    private: v.private, revision: v.revision, commitMessage: v.message, modelCard: v['no-card'] ? false : undefined,
    onLog: (msg) => process.stderr.write(`${msg}\n`),
  });
  console.log(r.commitUrl);
}
