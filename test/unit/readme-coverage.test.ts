/*
 * The README documents what the code defines (in the manner of fastify's
 * errors test, which fails when docs/Reference/Errors.md misses a code):
 * every error code with its reply, status and exit code, every unscannable
 * reason, and every mailveil_* metric. A failure names what to add.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CATALOGUE, type MvCode } from '../../src/errors';
import { Metrics } from '../../src/observability/metrics';
import { UNSCANNABLE_REASONS } from '../../src/pipeline/context';
import { REPO_ROOT } from '../helpers/paths';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

test('README: the "Error codes" table has a row per catalogue code, with its reply, status and exit code', () => {
  const rows = new Map<string, string[]>();
  for (const line of README.split('\n')) {
    const m = /^\| `(MV_[A-Z0-9_]+)` \|(.*)\|$/.exec(line);
    if (m) rows.set(m[1], m[2].split(/(?<!\\)\|/).map((c) => c.trim()));
  }
  const missing: string[] = [];
  for (const [code, e] of Object.entries(CATALOGUE) as [MvCode, (typeof CATALOGUE)[MvCode]][]) {
    const cells = rows.get(code);
    if (!cells) {
      missing.push(code);
      continue;
    }
    const smtp = 'smtp' in e ? `\`${e.smtp.code} ${e.smtp.enhanced} ${e.smtp.text}\`` : '';
    assert.equal(cells[0], smtp, `${code}: SMTP reply`);
    assert.equal(cells[1], String(e.http), `${code}: HTTP status`);
    assert.equal(cells[2], `${e.exit}${e.line ? '' : ' (stack)'}`, `${code}: exit code`);
  }
  assert.deepEqual(missing, [], 'codes the README does not list');
  const stale = [...rows.keys()].filter((c) => !Object.hasOwn(CATALOGUE, c));
  assert.deepEqual(stale, [], 'codes the README lists that the catalogue no longer has');
});

test('README: every unscannable reason is listed', () => {
  const missing = UNSCANNABLE_REASONS.filter((r) => !README.includes(`| \`${r}\` |`));
  assert.deepEqual(missing, [], 'reasons missing from the table under "Content that cannot be scanned"');
});

test('unscannable reasons: every reason the source gives is in UNSCANNABLE_REASONS', () => {
  const files = (function walk(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  })(join(REPO_ROOT, 'src'));
  // The ways a reason is given: problem = 'x', problem: 'x', problem('x'),
  // problem(state, 'x'), unscannable(part, 'x'), unscannable.push('x'),
  // metrics.unscannable.inc({ reason: 'x' }), and *_REASON = 'x'.
  const given = /problem(?: = |: |\((?:[^,()]+, )?)'(\w+)'|unscannable(?:\([^,()]+, |\.push\()'(\w+)'|unscannable\.inc\(\{ reason: '(\w+)'|_REASON = '(\w+)'/g;
  const unknown: string[] = [];
  let found = 0;
  for (const f of files) {
    for (const m of readFileSync(f, 'utf8').matchAll(given)) {
      const reason = m[1] ?? m[2] ?? m[3] ?? m[4];
      found++;
      if (!(UNSCANNABLE_REASONS as readonly string[]).includes(reason)) unknown.push(`${relative(REPO_ROOT, f)}: ${reason}`);
    }
  }
  assert.ok(found >= 10, `the scan finds the reasons the source gives (found ${found})`);
  assert.deepEqual(unknown, []);
});

test('README: every mailveil_* metric is in the Metrics table', async () => {
  const names = (await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('mailveil_'));
  assert.ok(names.length >= 10, `metrics found: ${names.length}`);
  const missing = names.filter((n) => !README.includes(`| \`${n}\` |`));
  assert.deepEqual(missing, [], 'metrics missing from "Metrics (/metrics on metrics)"');
});
