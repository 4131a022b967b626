/**
 * The import picture of src/: no module imports itself through others (a circle makes load order matter and hides
 * which module owns what). Value imports must form no circle at all; with type-only imports counted, the only circle
 * allowed is the one listed in TYPE_CIRCLES (each with the reason it is tolerated). Reads the sources as text: static
 * `import … from`, `export … from` and `import('…')` of relative paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers.ts';

/** Circles through type-only imports that are known, as sorted member lists. */
const TYPE_CIRCLES: Record<string, string> = {
  // CausalLM's text methods call text.ts/generate.ts, which take a CausalLM (type-only); owned by the
  // tokenizer/generate work (h-textmerge) at the time of issue 11.
  'src/runtime/causal-lm.ts src/runtime/generate.ts src/runtime/text.ts': 'text/generate functions typed on the CausalLM class',
};

interface Edge { to: string; typeOnly: boolean }

function importGraph(): Map<string, Edge[]> {
  const files: string[] = [];
  const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); if (e.isDirectory()) walk(p); else if (e.name.endsWith('.ts')) files.push(p); } };
  walk(join(ROOT, 'src'));
  const known = new Set(files), g = new Map<string, Edge[]>();
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const f of files) {
    const edges: Edge[] = [];
    for (const m of readFileSync(f, 'utf8').matchAll(re)) {
      const spec = m[4] ?? m[5]!, to = resolve(dirname(f), spec);
      // `import type {…}`, or every named specifier marked `type`
      const names = m[3]?.match(/^\{([^}]*)\}$/s)?.[1]?.split(',').map((s) => s.trim()).filter(Boolean);
      const typeOnly = !!m[2] || (!!names?.length && names.every((n) => n.startsWith('type ')));
      if (known.has(to)) edges.push({ to, typeOnly });
    }
    g.set(f, edges);
  }
  return g;
}

/** Strongly connected components with more than one member (Tarjan), as sorted root-relative paths. */
function circles(g: Map<string, Edge[]>, withTypes: boolean): string[] {
  let n = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>(), out: string[] = [];
  const visit = (v: string) => {
    index.set(v, n); low.set(v, n++); stack.push(v); on.add(v);
    for (const e of g.get(v)!) {
      if (e.typeOnly && !withTypes) continue;
      if (!index.has(e.to)) { visit(e.to); low.set(v, Math.min(low.get(v)!, low.get(e.to)!)); } else if (on.has(e.to)) low.set(v, Math.min(low.get(v)!, index.get(e.to)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      for (let w = ''; w !== v;) { w = stack.pop()!; on.delete(w); c.push(relative(ROOT, w)); }
      if (c.length > 1) out.push(c.sort().join(' '));
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out.sort();
}

test('src/ has no import circle (value imports: none; with type-only imports: only the listed ones)', () => {
  const g = importGraph();
  assert.ok(g.size > 50 && [...g.values()].some((e) => e.length), 'the import graph was read');
  assert.deepEqual(circles(g, false), [], 'value-import circles');
  const typed = circles(g, true).filter((c) => !(c in TYPE_CIRCLES));
  assert.deepEqual(typed, [], 'circles through type-only imports (new ones: break them, e.g. move the shared type)');
});

test('the circle finder sees a circle (through a type import) and tells value from type edges', () => {
  const a = join(ROOT, 'src/a.ts'), b = join(ROOT, 'src/b.ts'), c = join(ROOT, 'src/c.ts');
  const g = new Map<string, Edge[]>([[a, [{ to: b, typeOnly: false }]], [b, [{ to: c, typeOnly: false }]], [c, [{ to: a, typeOnly: true }]]]);
  assert.deepEqual(circles(g, true), ['src/a.ts src/b.ts src/c.ts']);
  assert.deepEqual(circles(g, false), []);
});
