/** `gptq push DIR owner/name`: upload a model directory to the Hugging Face Hub (src/io/push.ts). */
import { commandHelp, parseCommand, type CommandSpec } from './flags.ts';
import { fail } from '../errors.ts';
import { pushToHub } from '../io/push.ts';

export const COMMAND = {
  name: 'push',
  description: `Uploads every file of DIR (dot files skipped) to the Hub model repo owner/name in one commit, creating the repo
(and the branch) when missing. Large files go through LFS/Xet; files the Hub already has are not sent again, so
rerunning an interrupted push only uploads what is missing.
A DIR without README.md gets a generated model card (settings from quantize_config.json, calibration, tool) in the
upload only; DIR itself is not changed.
Token: env HF_TOKEN, else the huggingface_hub token file (HF_TOKEN_PATH, $HF_HOME/token, ~/.cache/huggingface/token).
Hub URL: env HF_ENDPOINT (default https://huggingface.co).`,
  positionals: [
    { name: 'DIR', help: 'the model directory to upload', required: true },
    { name: 'owner/name', help: 'the Hub model repo', required: true },
  ],
  flags: [
    { name: 'private', type: 'boolean', help: 'create the repo private (an existing repo keeps its visibility)' },
    { name: 'revision', type: 'string', metavar: 'BRANCH', defaultText: 'main', help: 'commit to BRANCH (created from main when missing)' },
    { name: 'message', type: 'string', metavar: 'TEXT', defaultText: '"Upload N files with gptqjs"', help: 'commit title' },
    { name: 'no-card', type: 'boolean', help: 'upload no generated README (model card)' },
  ],
} as const satisfies CommandSpec;

export const HELP = commandHelp(COMMAND);

export async function run(argv: string[]): Promise<void> {
  const { values: v, positionals: p, help } = parseCommand(COMMAND, argv);
  if (help) return console.log(HELP);
  if (p.length !== 2) fail(`push: expected DIR and owner/name, got ${p.length} argument${p.length === 1 ? '' : 's'} (gptq push --help)`);
  const r = await pushToHub(p[0]!, p[1]!, {
    private: v.private, revision: v.revision, commitMessage: v.message, modelCard: v['no-card'] ? false : undefined,
    onLog: (msg) => process.stderr.write(`${msg}\n`),
  });
  console.log(r.commitUrl);
}
