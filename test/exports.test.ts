/**
 * Every type that appears in the public API is exported from the package entry (src/index.ts), so that a consumer
 * can name it (`import type { LoadOptions } from 'gptqjs'`). Checked on the declarations the build emits: the .d.ts
 * of tsconfig.build.json are generated in memory (inferred types written out, private members dropped), then every
 * exported declaration is walked — signatures, properties, heritage, type arguments, transitively through the types
 * it reaches — and each interface / type alias / class / enum declared in gptqjs must be reachable from the entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers.ts';

/** The build's .d.ts files, in memory: absolute path → text. */
function emitDeclarations(): Map<string, string> {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.build.json'), {}, {
    ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); },
  })!;
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, emitDeclarationOnly: true, sourceMap: false, inlineSources: false } });
  const out = new Map<string, string>();
  const r = program.emit(undefined, (name, text) => { if (name.endsWith('.d.ts')) out.set(resolve(name), text); }, undefined, true);
  const errors = [...r.diagnostics, ...program.getSemanticDiagnostics()];
  if (errors.length) throw new Error(ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' }));
  return out;
}

/** Types declared in gptqjs that public declarations reach but the entry does not export: name → where used. */
function unexportedPublicTypes(): { missing: Map<string, string>; exportedCount: number } {
  const dts = emitDeclarations();
  const entry = join(ROOT, 'dist', 'index.d.ts');
  assert.ok(dts.has(entry), 'no dist/index.d.ts emitted');
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, skipLibCheck: true, noEmit: true, types: ['node'], target: ts.ScriptTarget.ES2022 };
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => dts.has(resolve(f)) || fileExists.call(host, f);
  host.readFile = (f) => dts.get(resolve(f)) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) => {
    const text = dts.get(resolve(f));
    return text !== undefined ? ts.createSourceFile(f, text, lang) : getSourceFile.call(host, f, lang, ...rest);
  };
  const program = ts.createProgram({ rootNames: [entry], options, host });
  const checker = program.getTypeChecker();
  const ours = (d: ts.Declaration) => dts.has(resolve(d.getSourceFile().fileName));
  const real = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);

  // exported: the entry's exports, and the members of namespaces it re-exports (`export * as blocks`)
  const exported = new Set<ts.Symbol>();
  const addExports = (mod: ts.Symbol) => {
    for (const e of checker.getExportsOfModule(mod)) {
      const s = real(e);
      if (exported.has(s)) continue;
      exported.add(s);
      if (s.flags & ts.SymbolFlags.ValueModule) addExports(s);
    }
  };
  addExports(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!);

  const isTypeDecl = (d: ts.Declaration) => ts.isInterfaceDeclaration(d) || ts.isTypeAliasDeclaration(d) || ts.isClassDeclaration(d) || ts.isEnumDeclaration(d);
  const hidden = (n: ts.Node) => ts.canHaveModifiers(n) && !!ts.getModifiers(n)?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword)
    || ((ts.isPropertyDeclaration(n) || ts.isMethodDeclaration(n)) && ts.isPrivateIdentifier(n.name));
  const missing = new Map<string, string>();
  const visited = new Set<ts.Symbol>();
  const visitSymbol = (s: ts.Symbol, from: string) => {
    if (visited.has(s)) return;
    visited.add(s);
    for (const d of s.declarations ?? []) {
      if (!ours(d)) continue;
      if (isTypeDecl(d) && !exported.has(s)) missing.set(s.name, from);
      walk(d, s.name);
    }
  };
  const walk = (n: ts.Node, owner: string) => {
    if (hidden(n)) return;
    if (ts.isTypeReferenceNode(n) || ts.isExpressionWithTypeArguments(n) || ts.isImportTypeNode(n)) {
      const t = checker.getTypeAtLocation(n);
      const s = t.aliasSymbol ?? t.getSymbol();
      // a reference to an alias keeps the alias symbol; the referenced name may also resolve directly
      const named = ts.isTypeReferenceNode(n) ? checker.getSymbolAtLocation(ts.isQualifiedName(n.typeName) ? n.typeName.right : n.typeName) : undefined;
      for (const sym of [s, named && real(named)]) if (sym && !(sym.flags & ts.SymbolFlags.TypeParameter)) visitSymbol(sym, owner);
    }
    ts.forEachChild(n, (c) => walk(c, owner));
  };
  for (const s of exported) for (const d of s.declarations ?? []) if (ours(d)) { visited.add(s); walk(d, s.name); }
  return { missing, exportedCount: exported.size };
}

test('every gptqjs type reachable from the public API is exported from the package entry', () => {
  const { missing, exportedCount } = unexportedPublicTypes();
  assert.ok(exportedCount > 40, `only ${exportedCount} exports found`);
  assert.deepEqual([...missing].map(([n, from]) => `${n} (used by ${from})`).sort(), []);
});
