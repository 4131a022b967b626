/** Browser side of src/io/push.ts: uploading to the Hub needs Node (download the zip and push it from a machine). */
import type * as nodePush from '../../io/push.ts';
import type { PushOptions, PushResult } from '../../io/push.ts';
import { fail } from '../../errors.ts';

export type { PushOptions, PushResult };

export async function pushToHub(dir: string, repoId: string, _o: PushOptions = {}): Promise<PushResult> {
  return fail(`push ${dir} to ${repoId}: pushing to the Hub is not available in the browser build of gptqjs; download the checkpoint and run \`npx gptq push\``);
}

({ pushToHub }) satisfies typeof nodePush;
