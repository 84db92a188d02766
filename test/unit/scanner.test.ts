/*
 * PartScanner (src/rules/scanner.ts) against the simplest scanner there is:
 * one exec loop per rule over the whole decoded text, each match validated
 * and checked for keywords around it, after the same look-alike folding. The real one cuts the text into
 * windows, runs the Set per slice, runs a rule only over the slices the Set
 * flagged, and marks dense runs in one native replace; none of that may
 * change what is found. Seeded texts with planted values (dense and sparse,
 * with keywords near and far, multi-byte characters, past several window
 * edges) are fed whole and in random pieces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadRuleSet } from '../../src/rules/load';
import { PartScanner, type Match } from '../../src/rules/scanner';
import type { CompiledRule, CompiledRules } from '../../src/rules/compile';
import { foldForDetection } from '../../src/detectors/fold';
import { REPO_ROOT } from '../helpers/paths';
import { xorshift32 } from '../helpers/prng';

const compiled: CompiledRules = loadRuleSet(join(REPO_ROOT, 'rules.d')).compiled;

const VALUES = [
  '123-45-6789', 'SSN 078-05-1121', '4111 1111 1111 1111', '5555555555554444', 'DE89 3704 0044 0532 0130 00',
  'jane.doe@example.com', 'AB 12 34 56 C', '192.0.2.44', 'Steuer-ID 12 345 679 998', '+44 20 7946 0958',
  'AKIAIOSFODNN7EXAMPLE', '2001:db8::1', 'social security 123456789',
];
const FILLER = ['the', 'invoice', 'number', '42', '2026-11-22', 'über', '€', '12345', 'total:', '—', 'ok', '\r\n', '987654', 'café'];

function text(seed: number, size: number): string {
  const next = xorshift32(seed);
  let out = '';
  while (out.length < size) {
    // Bursts of values trigger the dense (bulk) path; long stretches of filler leave slices clean.
    const burst = next() % 25 === 0 ? 20 + (next() % 40) : 0;
    for (let i = 0; i < burst; i++) out += VALUES[next() % VALUES.length] + (next() % 2 ? ' ' : ', ');
    const words = next() % 800;
    for (let i = 0; i < words; i++) out += FILLER[next() % FILLER.length] + ' ';
    out += VALUES[next() % VALUES.length] + ' ';
  }
  return out;
}

function reference(rules: readonly CompiledRule[], s: string): string[] {
  // The scanner folds look-alike characters first (src/detectors/fold.ts); offsets are in the folded text.
  const buf = Buffer.from(foldForDetection(s), 'utf8');
  const out: string[] = [];
  for (const rule of rules) {
    const re = rule.re;
    re.lastIndex = 0;
    for (let m = re.exec(buf) as (Buffer[] & { index: number }) | null; m; m = re.exec(buf) as (Buffer[] & { index: number }) | null) {
      const whole = m[0];
      const value = m[rule.group] ?? whole;
      const start = m.index + (rule.group ? whole.indexOf(value) : 0);
      const end = start + value.length;
      const v = value.toString('utf8');
      if (!rule.validate(v)) continue;
      if (rule.keywordsRequired || rule.requiresKeyword(v)) {
        const near = buf.subarray(Math.max(0, start - rule.within), Math.min(buf.length, end + rule.within));
        if (!rule.keywords?.test(near)) continue;
      }
      out.push(`${rule.def.id}@${start}-${end}`);
    }
  }
  return out.sort();
}

function scanned(s: string, pieces: (n: number) => number): string[] {
  const out: string[] = [];
  const scanner = new PartScanner(compiled, 'body', (m: Match) => out.push(`${m.rule.def.id}@${m.start}-${m.end}`));
  for (let at = 0; at < s.length; ) {
    const n = Math.max(1, pieces(s.length - at));
    scanner.push(s.slice(at, at + n));
    at += n;
  }
  scanner.end();
  return out.sort();
}

const bodyRules = compiled.rules.filter((r) => r.scope.has('body'));

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`seed ${seed}: windows, slices and dense runs find exactly what one exec loop per rule finds`, () => {
    const s = text(seed, seed % 2 ? 700_000 : 90_000);
    const want = reference(bodyRules, s);
    assert.ok(want.length > 50, `the text should hold many values (${want.length})`);
    assert.deepEqual(scanned(s, (left) => left), want, 'whole');
    const next = xorshift32(seed * 7919);
    assert.deepEqual(scanned(s, () => 1 + (next() % 70_000)), want, 'random pieces');
  });
}

test('a dense run in the middle of a long clean part: every value is found once', () => {
  const clean = 'nothing to see here, just words and 42 numbers. '.repeat(6000);
  const dense = Array.from({ length: 300 }, () => 'jane.doe@example.com 123-45-6789').join(' ; ');
  const s = clean + dense + ' ' + clean;
  const got = scanned(s, (left) => Math.min(left, 4096));
  assert.deepEqual(got, reference(bodyRules, s));
  assert.equal(got.filter((g) => g.startsWith('us-ssn@')).length, 300);
});

test('thousands of matches that need a keyword: none counts where no keyword is near, the ones near a keyword do', () => {
  // Bare 9-digit SSNs count only near a keyword: after 16 look-ups a window is checked once for any keyword at all.
  const rows = (n: number) => Array.from({ length: n }, (_, i) => `row ${i}: 123-45-6789 and 234567891 done`).join('\r\n');
  const s = rows(3000) + '\r\nSSN list follows\r\n' + rows(20) + '\r\n' + 'x'.repeat(700_000) + rows(3000);
  const got = scanned(s, (left) => Math.min(left, 65_536));
  assert.deepEqual(got, reference(bodyRules, s));
  const bare = got.filter((g) => g.startsWith('us-ssn@')).length - 6020;
  assert.ok(bare > 0 && bare < 40, `only the bare numbers near "SSN" count (${bare})`);
});

test('a dense run that the bulk path gives back to exec (a match straddling where exec stands) loses nothing', () => {
  // The 9th SSN exec would meet straddles the bulk replace's start: exec must carry on from where it stood.
  // The padding puts the run in the second slice, where exec's view no longer starts at the window's 0.
  const s = 'x '.repeat(10_000) + 'ref 111-11-1111 '.repeat(7) + 'id 123456789-123-45-6789 then 234-56-7890 and 345-67-8901 end';
  const got = scanned(s, (left) => left);
  assert.deepEqual(got, reference(bodyRules, s));
  assert.equal(got.filter((g) => g.startsWith('us-ssn@')).length, 10);
});

test('a long value of multi-byte characters is found whole wherever it falls against a slice edge', () => {
  // 257 characters of Cyrillic, 507 bytes of UTF-8: slices are cut in bytes, so a rule's reach must be counted in bytes too.
  const address = 'д'.repeat(64) + '@' + ['ж'.repeat(63), 'ж'.repeat(63), 'ж'.repeat(60), 'com'].join('.');
  for (let at = 16384 - 600; at <= 16384 + 8; at += 61) {
    const s = 'a'.repeat(at) + ' ' + address + ' end';
    const got = scanned(s, (left) => left).filter((g) => g.startsWith('contact-data@'));
    assert.deepEqual(got, reference(bodyRules, s).filter((g) => g.startsWith('contact-data@')), `at ${at}`);
    assert.equal(got.length, 1, `at ${at}`);
  }
});
