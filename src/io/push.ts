/**
 * Upload a model directory to the Hugging Face Hub (Transformers' `push_to_hub`, huggingface_hub's `upload_folder`)
 * through @huggingface/hub: create the repo (an existing one is reused), create the branch when a revision other
 * than main is asked for, then one commit with every file of the directory.
 *
 * What @huggingface/hub 2.x does in that commit (node_modules/@huggingface/hub/src/lib/commit.ts): POST
 * /api/models/{repo}/preupload/{rev} with each file's size and first 512 bytes; the Hub answers which files go
 * through LFS. Those are hashed (sha256, streamed from disk) and announced in one POST {repo}.git/info/lfs/objects/batch;
 * objects the Hub already has come back without an upload action and are not sent again — so a push interrupted
 * after some large files went up resumes with the rest, and re-pushing unchanged weights uploads nothing. The others
 * are uploaded with Xet when the Hub offers it (chunk-level deduplication), else with a plain PUT or, when the Hub
 * sends part URLs, as a multipart upload. Finally POST /api/models/{repo}/commit/{rev} (NDJSON: header, small files
 * inline in base64, LFS files by oid and size).
 */
import { promises as fs } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { commitIter, createBranch, createRepo, HubApiError, type CommitOperation } from '@huggingface/hub';
import { fail } from '../errors.ts';
import { findHfToken, hfTokenPath } from './hf-token.ts';
import { isHubId, networkCause } from './hub.ts';
import { CARD_PLACEHOLDER, modelCardForDir } from './model-card.ts';

export interface PushOptions {
  /** Create the repo private (default: the account's default, usually public). An existing repo keeps its visibility. */
  private?: boolean;
  /** Branch to commit to (created from main when missing). Default "main". */
  revision?: string;
  /** Commit title. Default "Upload <n> files with gptqjs". */
  commitMessage?: string;
  commitDescription?: string;
  /** Default: env HF_TOKEN, else the huggingface_hub token file (src/io/hf-token.ts). */
  accessToken?: string;
  /** Default env HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /**
   * README.md when the directory has none (it is uploaded, never written to the directory). Default: the model card
   * generated from the directory's quantize_config.json and config.json (src/io/model-card.ts); `false`: none. A
   * README.md that is exactly the card saveQuantized generated (unedited) is uploaded with this repo's id filled in.
   */
  modelCard?: string | false;
  /** One line per step (repo, files, phases, each finished file). */
  onLog?: (msg: string) => void;
  signal?: AbortSignal;
  /** Injectable fetch (proxies, tests). */
  fetch?: typeof fetch;
}

export interface PushResult {
  repoId: string;
  /** Commit id and URL on the Hub. */
  commitOid: string;
  commitUrl: string;
  /** Paths committed (relative, "/"-separated), README.md included when generated. */
  files: string[];
  /** True when the uploaded README.md was generated for the upload (none in the directory, or an unedited generated one). */
  generatedCard: boolean;
}

/** Files of `dir`, recursively, as "/"-separated relative paths; dot files and folders (.git, .cache) are skipped. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort();
}

/** README.md of `dir` is byte for byte the card gptqjs generates for it without a repo id (never edited). */
async function uneditedCard(dir: string): Promise<boolean> {
  const text = await fs.readFile(join(dir, 'README.md'), 'utf8');
  if (!text.includes(CARD_PLACEHOLDER)) return false;
  try { return text === await modelCardForDir(dir); } catch { return false; }
}

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

/** Push every file of `dir` to the model repo `repoId` ("owner/name") in one commit. Throws GptqError. */
export async function pushToHub(dir: string, repoId: string, o: PushOptions = {}): Promise<PushResult> {
  if (!isHubId(repoId)) fail(`push: "${repoId}" is not a Hub repo id (owner/name)`);
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) fail(`push: ${dir} is not a directory`);
  const found = o.accessToken ? { token: o.accessToken, source: 'the accessToken option' } : findHfToken();
  if (!found) fail(`push: no Hugging Face token: set HF_TOKEN or log in with \`hf auth login\` (token file ${hfTokenPath()})`);
  if (!found.token.startsWith('hf_')) fail(`push: the token from ${found.source} does not look like a Hugging Face token (hf_…)`);
  const accessToken = found.token;
  const hubUrl = (o.hubUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const revision = o.revision ?? 'main';
  const log = o.onLog ?? (() => {});
  const repo = { type: 'model' as const, name: repoId };
  const where = `${hubUrl}/${repoId}`;
  const why = (e: unknown) => networkCause(e, hubUrl, { upload: true }) ?? oneLine(e); // the network cause, as downloads say it

  const files = await listFiles(dir);
  if (!files.length) fail(`push: ${dir} has no files`);
  let card: string | undefined;
  if (o.modelCard !== false) {
    if (!files.includes('README.md')) card = o.modelCard ?? await modelCardForDir(dir, { repoId });
    else if (o.modelCard === undefined && await uneditedCard(dir)) card = await modelCardForDir(dir, { repoId });
  }

  try {
    const r = await createRepo({ repo, accessToken, hubUrl, fetch: o.fetch, ...(o.private !== undefined && { visibility: o.private ? 'private' : 'public' }) });
    log(`created ${r.repoUrl ?? where}${o.private ? ' (private)' : ''}`);
  } catch (e) {
    if (!(e instanceof HubApiError && e.statusCode === 409)) fail(`push: cannot create ${where}: ${why(e)}`);
    log(`${where} exists; committing to it`);
  }
  if (revision !== 'main') {
    try {
      await createBranch({ repo, branch: revision, accessToken, hubUrl, fetch: o.fetch });
      log(`created branch ${revision}`);
    } catch (e) {
      if (!(e instanceof HubApiError && e.statusCode === 409)) fail(`push: cannot create branch ${revision} of ${where}: ${why(e)}`);
    }
  }

  const onDisk = card === undefined ? files : files.filter((f) => f !== 'README.md');
  const operations: CommitOperation[] = onDisk.map((f) => ({ operation: 'addOrUpdate', path: f, content: pathToFileURL(join(dir, f)) }));
  if (card !== undefined) operations.push({ operation: 'addOrUpdate', path: 'README.md', content: new Blob([card]) });
  const paths = [...onDisk, ...(card !== undefined ? ['README.md'] : [])].sort();
  log(`uploading ${paths.length} files from ${dir}${card !== undefined ? ` (README.md: model card generated for ${repoId})` : ''}`);
  const title = o.commitMessage ?? `Upload ${paths.length} files with gptqjs`;
  try {
    const it = commitIter({ repo, operations, title, description: o.commitDescription, branch: revision, accessToken, hubUrl, fetch: o.fetch, abortSignal: o.signal });
    const finished = new Set<string>();
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const c = r.value;
        if (!c) fail(`push: ${where}: the Hub returned no commit`);
        log(`committed ${c.commit.oid.slice(0, 12)} to ${repoId}@${revision}: ${c.commit.url}`);
        return { repoId, commitOid: c.commit.oid, commitUrl: c.commit.url, files: paths, generatedCard: card !== undefined };
      }
      const ev = r.value;
      if (ev.event === 'phase') log(ev.phase);
      else if (ev.state === 'error') fail(`push: uploading ${ev.path} failed`);
      else if (ev.state === 'uploading' && ev.progress >= 1 && !finished.has(ev.path)) { finished.add(ev.path); log(`uploaded ${ev.path}`); }
    }
  } catch (e) {
    if ((e as Error).name === 'GptqError' || (e as Error).name === 'AbortError') throw e;
    fail(`push: ${where}@${revision}: ${why(e)}`);
  }
}
