/* Rule files: merge in name order, and errors with file:line:col. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuleSet, RuleSetError, formatRuleError } from '../../src/rules/load';
import { REPO_ROOT } from '../helpers/paths';

function dirWith(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-rules-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(d, n), t);
  return d;
}

function errorsOf(dir: string): string[] {
  try {
    loadRuleSet(dir);
  } catch (e) {
    assert.ok(e instanceof RuleSetError);
    return e.errors.map((x) => formatRuleError({ ...x, file: x.file.split('/').pop()! }));
  }
  assert.fail('expected the rule set to be refused');
}

test('rules: the shipped rules.d loads and turns anonymisation on', () => {
  const set = loadRuleSet(join(REPO_ROOT, 'rules.d'));
  assert.equal(set.headers.received, 'pseudonymise');
  assert.ok(set.headers.remove.some((h) => /originating-ip/i.test(h)));
  assert.ok(set.headers.internal_networks.includes('10.0.0.0/8'));
});

test('rules: files merge in name order; received is taken from the last file that sets it', () => {
  const set = loadRuleSet(
    dirWith({
      '20-b.yaml': 'headers:\n  remove: [X-B]\n  received: strip-internal\n',
      '10-a.yaml': 'headers:\n  remove: [X-A]\n  received: keep\n  internal_networks: [10.0.0.0/8]\n',
      'README.txt': 'not a rule file',
    }),
  );
  assert.deepEqual(set.headers.remove, ['X-A', 'X-B']);
  assert.equal(set.headers.received, 'strip-internal');
  assert.equal(set.files.length, 2);
});

test('rules: every error carries file:line:col', () => {
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'headers:\n  recieved: keep\n' })), ["a.yaml:2:3: unknown key 'recieved'"]);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'headers:\n  received: scramble\n' })), [
    'a.yaml:2:13: received must be one of: keep, pseudonymise, strip-internal',
  ]);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'headers:\n  internal_networks: [10.0.0.0/8, 300.1.1.1/8]\n' })), [
    'a.yaml:2:35: 1 is not an address or CIDR',
  ]);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: x\n    detector: us_ssn\n    action: shred\n' })), [
    'a.yaml:4:13: action must be one of: monitor, tag, redact, quarantine, reject, tempfail',
  ]);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: x\n    action: tag\n' })), ['a.yaml:2:5: a rule needs exactly one of detector or pattern']);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'headers: [\n' })).length, 1);
  assert.match(errorsOf(dirWith({ 'a.yaml': 'headers: [\n' }))[0], /^a\.yaml:\d+:\d+: /);
  const dup = errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: x\n    detector: us_ssn\n    action: tag\n', 'b.yaml': 'rules:\n  - id: x\n    detector: iban\n    action: tag\n' }));
  assert.equal(dup.length, 1);
  assert.match(dup[0], /^b\.yaml:2:9: duplicate rule id 'x' \(first defined at .*a\.yaml:2\)$/);
});

test('rules: patterns compile on RE2 only; unknown detectors and validators are load errors at their line', () => {
  const errs = errorsOf(
    dirWith({
      'a.yaml': [
        'rules:',
        '  - id: lookbehind',
        "    pattern: '(?<=ID )\\d+'",
        '    action: tag',
        '  - id: backref',
        "    pattern: '(a)\\1'",
        '    action: tag',
        '  - id: nosuch',
        '    detector: no_such_detector',
        '    action: tag',
        '  - id: badvalidator',
        "    pattern: '\\d{8}'",
        '    validator: crc99',
        '    action: tag',
        '  - id: empty',
        "    pattern: 'x*'",
        '    action: tag',
        '',
      ].join('\n'),
    }),
  );
  assert.equal(errs.length, 5, errs.join('\n'));
  assert.match(errs[0], /^a\.yaml:3:14: pattern is not valid RE2: /);
  assert.match(errs[1], /^a\.yaml:6:14: pattern is not valid RE2: /);
  assert.match(errs[2], /^a\.yaml:9:15: unknown detector 'no_such_detector' \(known: /);
  assert.match(errs[3], /^a\.yaml:13:16: unknown validator 'crc99' \(known: .*luhn/);
  assert.match(errs[4], /^a\.yaml:16:14: pattern matches the empty string$/);
});

test('rules: a custom pattern with a validator and keywords loads and compiles', () => {
  const set = loadRuleSet(dirWith({ 'a.yaml': "rules:\n  - id: staff-card\n    pattern: '\\b\\d{16}\\b'\n    validator: luhn\n    keywords: [staff card]\n    within: 50\n    action: tag\n" }));
  assert.equal(set.compiled.rules.length, 1);
  assert.equal(set.compiled.rules[0].keywordsRequired, true);
  assert.equal(set.compiled.rules[0].within, 50);
});
