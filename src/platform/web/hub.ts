/**
 * Browser side of src/io/hub.ts. A model "directory" is a virtual folder (./vfs.ts): one already mounted is used as
 * is; a URL is mounted (mountUrl); a Hub id "owner/name" is mounted from <hubUrl>/<id>/resolve/<revision>/, its
 * files downloaded once into the Cache API (the browser's download cache). Datasets are not downloaded in the
 * browser (calibration text comes as strings).
 */
import type * as nodeHub from '../../io/hub.ts';
import type { HubOptions } from '../../io/hub.ts';
import { fail } from '../../errors.ts';
import { lookup, mountUrl } from './vfs.ts';

export type { HubOptions };

export const envOffline = (): boolean => false;
export const defaultCacheDir = (): string => '/';
export const isHubId = (s: string): boolean => /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s) && !s.includes('..');

export function describeHubError(e: unknown, _s: { hubUrl: string; accessToken?: string }): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

export function networkCause(_e: unknown, _hubUrl: string, _o: { upload?: boolean } = {}): string | undefined {
  return undefined;
}

export function modelCacheDir(id: string, _opts: HubOptions = {}): string {
  return fail(`model ${id}: the browser keeps Hub downloads in the Cache API ("gptqjs-models"), not in a folder`);
}

export async function downloadToFile(url: string): Promise<number> {
  return fail(`${url}: downloading to a file is not available in the browser; mount the folder with mountUrl`);
}

/** A mounted folder as is; a URL or a Hub id mounted (see above). Throws GptqError otherwise. */
export async function resolveModelDir(idOrPath: string, opts: HubOptions = {}): Promise<string> {
  const n = lookup(idOrPath);
  if (n?.kind === 'dir') return idOrPath;
  if (n) fail(`${idOrPath} is a file; expected a model folder`);
  const headers = opts.accessToken ? { Authorization: `Bearer ${opts.accessToken}` } : undefined;
  if (/^https?:\/\//.test(idOrPath)) return mountUrl(idOrPath, { fetch: opts.fetch, headers });
  if (!isHubId(idOrPath)) fail(`model folder ${idOrPath} is not mounted (mountUrl / mountFiles) and is not a URL or a Hub id owner/name`);
  const hub = (opts.hubUrl ?? 'https://huggingface.co').replace(/\/+$/, '');
  return mountUrl(`${hub}/${idOrPath}/resolve/${encodeURIComponent(opts.revision ?? 'main')}/`, { fetch: opts.fetch, headers, at: `/${idOrPath}` });
}

export async function resolveDataset(name: string, _opts: HubOptions = {}): Promise<string> {
  return fail(`dataset ${name}: datasets are not downloaded in the browser; pass the calibration texts as strings`);
}

export async function resolveDatasetFiles(repo: string, _select: (path: string) => boolean, what: string, _opts: HubOptions = {}): Promise<string[]> {
  return fail(`dataset ${repo} (${what}): Hub datasets are not downloaded in the browser; pass the rows or texts directly`);
}

/** Compile-time check that this module offers what src/io/hub.ts exports. */
({ envOffline, defaultCacheDir, isHubId, describeHubError, networkCause, modelCacheDir, downloadToFile, resolveModelDir, resolveDataset, resolveDatasetFiles }) satisfies Omit<typeof nodeHub, never>;
