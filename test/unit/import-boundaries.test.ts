/*
 * Import boundaries of src/ (issue 9): no import cycles, and no lower layer
 * importing a higher one (mime importing smtp, config importing admin...).
 *
 * A "unit" is a top-level folder of src/ (mime, rules...) or a top-level
 * file (service.ts). LAYERS below lists them lowest first; a file may import
 * its own unit, or a unit of its own layer or a lower one. A new folder
 * fails here until it is given a layer: placing it is a design decision.
 *
 * Which imports count:
 *  - layering: all of them, `import type` too. A type is a dependency of
 *    the design even when the compiler erases it.
 *  - file cycles: all of them too. rules/types.ts <-> rules/compile.ts was
 *    type-only on both sides and still meant neither could be read alone.
 *  - unit cycles: value imports only. Units in one layer may name each
 *    other's types (runtime.ts names the smtp pool, smtp handlers take the
 *    Runtime); that costs nothing at load time, and units in different
 *    layers are already kept one-way by the layering check.
 *
 * Why a line scan and not the compiler: typescript 7 (the native compiler)
 * has no JS preProcessFile/createSourceFile, only an "unstable" API. Every
 * import in src/ is a top-level statement on one line starting at column 0,
 * which the scan checks (an import it cannot read fails the test) rather
 * than assumes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { REPO_ROOT } from '../helpers/paths';

/** Lowest first. A name that does not exist (yet) is allowed for. */
const LAYERS: readonly (readonly string[])[] = [
  // Leaves: ambient types, the error catalogue, shared vocabularies, the names under state_dir.
  ['types', 'errors.ts', 'access-error.ts', 'actions.ts', 'state-layout.ts'],
  // Durable file writes, for every store under state_dir.
  ['storage'],
  // The typed config, and the check that state_dir is mailveil's.
  ['config'],
  // DNS with the validating resolver's AD bit, and the outbound TLS policy sources built on it.
  ['dns'],
  // tlsrpt: the RFC 8460 counters and report. With tls and mta-sts, so their
  // failure types can be named as its result types, and below everything
  // that delivers (which records into it). It imports only storage and the
  // layout.
  ['tls', 'mta-sts', 'tlsrpt'],
  ['detectors'],
  ['mime'],
  ['extract'],
  ['rules'],
  ['headers'],
  // Keyed pseudonyms.
  ['privacy'],
  ['observability'],
  ['redact'],
  ['audit'],
  ['quarantine'],
  ['gdpr'],
  ['pipeline'],
  // runtime.ts is what the SMTP handlers share: it names the smtp pool's type.
  ['smtp', 'runtime.ts'],
  ['operations'],
  ['admin'],
  ['service.ts'],
  ['cli'],
];

/**
 * Cycles known and being removed (none today). Each listed must still occur:
 * once it is gone the test fails, so the exception is removed with it.
 */
const PENDING_CYCLES: readonly { why: string; allows: (files: readonly string[]) => boolean }[] = [];

const SRC = join(REPO_ROOT, 'src');

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** src-relative, with forward slashes. */
function rel(file: string): string {
  return relative(SRC, file).split(sep).join('/');
}

const STATIC = /^(?:import|export)\s(?:(type)\s+)?(?:[^'";]*?\sfrom\s+)?'([^']+)';?\s*(?:\/\/.*)?$/;
const DYNAMIC = /(?:\bimport|\brequire)\s*\(\s*'([^']+)'\s*\)/g;

function resolveSpec(from: string, spec: string): string | undefined {
  const base = join(dirname(from), spec.replace(/\.js$/, ''));
  return [base + '.ts', base + '.d.ts', join(base, 'index.ts')].find((f) => existsSync(f));
}

/** Local imports of one file; throws on an import line it cannot read. */
function importsOf(file: string): Edge[] {
  const edges: Edge[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return;
    const to = resolveSpec(file, spec);
    if (!to) throw new Error(`${rel(file)}: cannot resolve '${spec}'`);
    edges.push({ from: rel(file), to: rel(to), typeOnly });
  };
  const text = readFileSync(file, 'utf8');
  for (const line of text.split('\n')) {
    const isImport = /^import[\s{'*]/.test(line) || /^export\s(?:type\s+)?(?:\*|\{)[^;]*\sfrom\s/.test(line);
    if (!isImport) continue;
    const m = STATIC.exec(line.trimEnd());
    if (!m) throw new Error(`${rel(file)}: import this test cannot read (one line, single quotes): ${line}`);
    add(m[2], m[1] === 'type');
  }
  for (const m of text.matchAll(DYNAMIC)) add(m[1], false);
  return edges;
}

function unitOf(file: string): string {
  return file.split('/')[0];
}

function layerOf(unit: string): number {
  return LAYERS.findIndex((l) => l.includes(unit));
}

/** Strongly connected components with more than one node (or a self-loop), Tarjan's algorithm. */
function cycles(nodes: readonly string[], next: (n: string) => readonly string[]): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next(v).includes(v)) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!index.has(n)) visit(n);
  return out;
}

/** One concrete cycle through the component, for the failure message: a -> b -> a. */
function cyclePath(scc: readonly string[], next: (n: string) => readonly string[]): string {
  const inScc = new Set(scc);
  const start = scc[0];
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of next(v)) {
      if (!inScc.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) path.unshift(u);
        path.unshift(start);
        return path.join(' -> ');
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return scc.join(', ');
}

const edges = sourceFiles(SRC).flatMap(importsOf);
const files = [...new Set(sourceFiles(SRC).map(rel))];

/** Adjacency over files, or over units (where a unit's imports of itself are not edges). */
function graph(pick: (e: Edge) => boolean, byUnit: boolean): (n: string) => string[] {
  const adj = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!pick(e)) continue;
    const a = byUnit ? unitOf(e.from) : e.from;
    const b = byUnit ? unitOf(e.to) : e.to;
    if (byUnit && a === b) continue;
    if (!adj.has(a)) adj.set(a, new Set());
    adj.get(a)!.add(b);
  }
  return (n) => [...(adj.get(n) ?? [])];
}

test('the scan finds the imports (a broken scan would pass everything)', () => {
  assert.ok(files.length > 100, `only ${files.length} files under src/`);
  assert.ok(edges.length > 300, `only ${edges.length} local imports found`);
  assert.ok(edges.some((e) => e.from === 'service.ts' && e.to.startsWith('smtp/')));
  assert.ok(edges.some((e) => e.typeOnly));
});

test('every unit of src/ has a layer', () => {
  const missing = [...new Set(files.map(unitOf))].filter((u) => layerOf(u) < 0);
  assert.deepEqual(missing, [], `give these a place in LAYERS (test/unit/import-boundaries.test.ts): ${missing.join(', ')}`);
});

test('no file imports a unit of a higher layer', () => {
  const bad = edges
    .filter((e) => layerOf(unitOf(e.to)) > layerOf(unitOf(e.from)))
    .map((e) => `${e.from} imports ${e.to}${e.typeOnly ? ' (type)' : ''}: ${unitOf(e.from)} is below ${unitOf(e.to)}`);
  assert.deepEqual(bad, []);
});

test('no import cycle among files', () => {
  const next = graph(() => true, false);
  const found = cycles(files, next);
  const unexpected = found.filter((c) => !PENDING_CYCLES.some((p) => p.allows(c))).map((c) => cyclePath(c, next));
  assert.deepEqual(unexpected, []);
  const stale = PENDING_CYCLES.filter((p) => !found.some((c) => p.allows(c))).map((p) => p.why);
  assert.deepEqual(stale, [], 'these cycles are gone: remove their PENDING_CYCLES entry');
});

test('no value-import cycle among units (folders)', () => {
  const next = graph((e) => !e.typeOnly, true);
  const found = cycles([...new Set(files.map(unitOf))], next);
  assert.deepEqual(found.map((c) => `${cyclePath(c, next)} (all of: ${c.join(", ")})`), []);
});
