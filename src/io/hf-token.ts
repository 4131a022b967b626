/**
 * The Hugging Face access token, found where huggingface_hub looks (huggingface_hub/utils/_auth.py get_token,
 * constants.py): env HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token file — HF_TOKEN_PATH, default
 * $HF_HOME/token, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface (what `hf auth login`
 * writes). Line breaks and surrounding spaces are removed; an empty value counts as none.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const clean = (t: string | undefined): string | undefined => t?.replace(/[\r\n]/g, '').trim() || undefined;

/** Where the token file is looked for. */
export function hfTokenPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_TOKEN_PATH) return env.HF_TOKEN_PATH;
  const home = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
  return join(home, 'token');
}

/** The token and where it came from, or undefined when there is none. */
export function findHfToken(env: NodeJS.ProcessEnv = process.env): { token: string; source: string } | undefined {
  for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const t = clean(env[k]);
    if (t) return { token: t, source: `env ${k}` };
  }
  const path = hfTokenPath(env);
  let text: string | undefined;
  try { text = readFileSync(path, 'utf8'); } catch { return undefined; }
  const t = clean(text);
  return t ? { token: t, source: path } : undefined;
}
