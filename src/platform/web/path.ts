/**
 * Browser side of src/platform/path.ts: POSIX path functions over the virtual folders of ./vfs.ts (absolute paths
 * start with "/"; relative ones resolve against "/"). Same results as node:path's posix functions for these inputs.
 */

function normalizeParts(parts: string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (!p || p === '.') continue;
    if (p === '..') out.pop(); else out.push(p);
  }
  return out;
}

/** Absolute, normalized path of `segments` (resolved right to left until one is absolute, then against "/"). */
export function resolve(...segments: string[]): string {
  let joined = '';
  for (let i = segments.length - 1; i >= 0 && !joined.startsWith('/'); i--) if (segments[i]) joined = joined ? `${segments[i]}/${joined}` : segments[i]!;
  return '/' + normalizeParts(joined.split('/')).join('/');
}

/** `segments` joined with "/" and normalized ("." and ".." resolved; an absolute first segment stays absolute). */
export function join(...segments: string[]): string {
  const joined = segments.filter((s) => s !== '').join('/');
  if (!joined) return '.';
  const abs = joined.startsWith('/'), trailing = joined.endsWith('/');
  const parts: string[] = [];
  for (const p of joined.split('/')) {
    if (!p || p === '.') continue;
    if (p === '..') { if (parts.length && parts.at(-1) !== '..') parts.pop(); else if (!abs) parts.push('..'); } else parts.push(p);
  }
  const s = (abs ? '/' : '') + parts.join('/');
  return (s || (abs ? '/' : '.')) + (trailing && parts.length ? '/' : '');
}

export function basename(p: string, ext?: string): string {
  const b = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

export function dirname(p: string): string {
  const s = p.replace(/\/+$/, '');
  if (!s) return p ? '/' : '.';
  const i = s.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : s.slice(0, i);
}

export function extname(p: string): string {
  const b = basename(p), i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}

export function isAbsolute(p: string): boolean { return p.startsWith('/'); }

/** The path from `from` to `to` (both resolved against "/"). */
export function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter(Boolean), b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill('..'), ...b.slice(i)].join('/');
}
