/* Rule files: merge in name order, and errors with file:line:col. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

// ---- the local layer (local_rules_dir) ----------------------------------------

const SHIPPED_PAIR = {
  '10-a.yaml': 'headers:\n  remove: [X-A]\nrules:\n  - id: card\n    detector: credit_card\n    action: redact\n  - id: ssn\n    detector: us_ssn\n    action: tag\n',
  '20-b.yaml': 'rules:\n  - id: iban\n    detector: iban\n    action: tag\n',
};

function errorsOfLayers(shipped: string, local: string): string[] {
  try {
    loadRuleSet(shipped, local);
  } catch (e) {
    assert.ok(e instanceof RuleSetError);
    return e.errors.map((x) => formatRuleError({ ...x, file: x.file.split('/').pop()! }));
  }
  assert.fail('expected the rule set to be refused');
}

test('local rules: files of rules_dir in name order, then local_rules_dir in name order; each rule records its layer and file', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  const local = dirWith({
    '90-z.yaml': 'rules:\n  - id: z-local\n    pattern: "ZZZ-[0-9]{4}"\n    action: tag\n',
    '05-first.yaml': 'headers:\n  remove: [X-Local]\n  received: strip-internal\nrules:\n  - id: a-local\n    pattern: "AAA-[0-9]{4}"\n    action: monitor\n',
  });
  const set = loadRuleSet(shipped, local);
  assert.deepEqual(set.files.map((f) => f.split('/').pop()), ['10-a.yaml', '20-b.yaml', '05-first.yaml', '90-z.yaml']);
  assert.deepEqual(set.rules.map((r) => r.id), ['card', 'ssn', 'iban', 'a-local', 'z-local']);
  assert.deepEqual(set.rules.map((r) => r.source.layer), ['shipped', 'shipped', 'shipped', 'local', 'local']);
  assert.equal(set.rules[3].source.file, join(local, '05-first.yaml'));
  assert.equal(set.rules[3].source.line, 5);
  assert.deepEqual(set.layers?.shipped.files.length, 2);
  assert.deepEqual(set.layers?.local, { dir: local, files: [join(local, '05-first.yaml'), join(local, '90-z.yaml')] });
  // headers merge across layers as across files: lists add up, received from the last file.
  assert.deepEqual(set.headers.remove, ['X-A', 'X-Local']);
  assert.equal(set.headers.received, 'strip-internal');
  assert.equal(set.compiled.rules.length, 5);
});

test('local rules: a local rule with a shipped id replaces it whole, in its place', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  const local = dirWith({ 'l.yaml': 'rules:\n  - id: ssn\n    detector: us_ssn\n    keywords: [ssn]\n    action: quarantine\n' });
  const set = loadRuleSet(shipped, local);
  assert.deepEqual(set.rules.map((r) => r.id), ['card', 'ssn', 'iban']);
  const ssn = set.rules[1];
  assert.equal(ssn.action, 'quarantine');
  assert.deepEqual(ssn.keywords, ['ssn']);
  assert.equal(ssn.source.layer, 'local');
  assert.equal(ssn.source.file, join(local, 'l.yaml'));
  assert.equal(ssn.source.replaces, `${join(shipped, '10-a.yaml')}:7`);
  // The compiled set follows: the scanner sees the local rule, once.
  assert.deepEqual(set.compiled.rules.map((c) => [c.def.id, c.def.action]), [['card', 'redact'], ['ssn', 'quarantine'], ['iban', 'tag']]);
  assert.equal(set.compiled.rules[1].keywordsRequired, true);
});

test('local rules: enabled: false switches a rule off; id + enabled: false alone is a valid local rule', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  const local = dirWith({ 'l.yaml': 'rules:\n  - id: iban\n    enabled: false\n  - id: card\n    detector: credit_card\n    action: quarantine\n    enabled: false\n' });
  const set = loadRuleSet(shipped, local);
  assert.deepEqual(set.rules.map((r) => r.id), ['ssn']);
  assert.deepEqual(set.compiled.rules.map((c) => c.def.id), ['ssn']);
  assert.deepEqual(
    set.disabled?.map((d) => [d.id, d.source.layer, d.source.line]),
    [['card', 'local', 4], ['iban', 'local', 2]],
  );
  // A rule can ship switched off, too (a whole rule, prepared but not live).
  const off = loadRuleSet(dirWith({ 'a.yaml': 'rules:\n  - id: later\n    detector: iban\n    action: tag\n    enabled: false\n' }));
  assert.deepEqual(off.rules, []);
  assert.deepEqual(off.disabled?.map((d) => d.id), ['later']);
});

test('local rules: a duplicate id within one layer is still an error; across layers it is an override', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  const local = dirWith({
    'a.yaml': 'rules:\n  - id: ssn\n    detector: us_ssn\n    action: quarantine\n',
    'b.yaml': 'rules:\n  - id: ssn\n    enabled: false\n',
  });
  const errs = errorsOfLayers(shipped, local);
  assert.equal(errs.length, 1, errs.join('\n'));
  assert.match(errs[0], /^b\.yaml:2:9: duplicate rule id 'ssn' \(first defined at .*a\.yaml:2\)$/);
  const dupShipped = errorsOfLayers(dirWith({ ...SHIPPED_PAIR, '30-c.yaml': 'rules:\n  - id: card\n    detector: iban\n    action: tag\n' }), dirWith({}));
  assert.equal(dupShipped.length, 1);
  assert.match(dupShipped[0], /^30-c\.yaml:2:9: duplicate rule id 'card' \(first defined at .*10-a\.yaml:4\)$/);
});

test('local rules: switching off an id nobody ships is an error (a typo must not pass quietly); so is a partial override', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  assert.deepEqual(errorsOfLayers(shipped, dirWith({ 'l.yaml': 'rules:\n  - id: ibna\n    enabled: false\n' })), ["l.yaml:2:9: no shipped rule has id 'ibna' to switch off"]);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: x\n    enabled: false\n' })), [
    "a.yaml:2:9: rule 'x' has only enabled: false; to switch off a shipped rule, put this in local_rules_dir",
  ]);
  const partial = errorsOfLayers(shipped, dirWith({ 'l.yaml': 'rules:\n  - id: ssn\n    action: quarantine\n' }));
  assert.equal(partial.length, 1);
  assert.match(partial[0], /^l\.yaml:2:5: a rule needs exactly one of detector or pattern \(a local rule replaces the shipped rule of its id whole/);
  // enabled: true still needs the whole rule.
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: x\n    enabled: true\n    detector: iban\n' })), ["a.yaml:2:5: missing required key 'action'"]);
});

test('local rules: a missing local dir means no local rules; an unreadable one, or a file, is an error without a position', () => {
  const shipped = dirWith(SHIPPED_PAIR);
  const set = loadRuleSet(shipped, join(shipped, 'no-such-local.d'));
  assert.deepEqual(set.rules.map((r) => r.id), ['card', 'ssn', 'iban']);
  assert.deepEqual(set.layers?.local.files, []);
  const file = join(dirWith({ 'f': 'x' }), 'f');
  assert.deepEqual(errorsOfLayers(shipped, file), ['f: cannot read local rules directory: ENOTDIR']);
  assert.deepEqual(errorsOfLayers(shipped, shipped), [`${shipped.split('/').pop()}: local_rules_dir must not be rules_dir: the local layer overrides the shipped one`]);
  if (process.getuid?.() !== 0) {
    const locked = dirWith({ 'l.yaml': 'rules: []\n' });
    chmodSync(locked, 0o000);
    try {
      assert.deepEqual(errorsOfLayers(shipped, locked), [`${locked.split('/').pop()}: cannot read local rules directory: EACCES`]);
    } finally {
      chmodSync(locked, 0o700);
    }
  }
});

test('rules: messages: a directory error has no :1:1: position; a bad id names [a-z0-9-]+', () => {
  const missing = join(dirWith({}), 'missing');
  assert.deepEqual(errorsOf(missing), ['missing: cannot read rules directory: ENOENT']);
  assert.deepEqual(errorsOf(dirWith({ 'a.yaml': 'rules:\n  - id: Staff_ID\n    detector: iban\n    action: tag\n' })), [
    'a.yaml:2:9: id must match [a-z0-9-]+ (lower-case letters, digits and hyphens)',
  ]);
  assert.equal(formatRuleError({ file: '/r', message: 'm' }), '/r: m');
  assert.equal(formatRuleError({ file: '/r/a.yaml', line: 3, col: 5, message: 'm' }), '/r/a.yaml:3:5: m');
});

test('rules: the shipped 30-national-ids.yaml points at local_rules_dir, not at "a later file"', () => {
  const text = readFileSync(join(REPO_ROOT, 'rules.d', '30-national-ids.yaml'), 'utf8');
  assert.doesNotMatch(text, /later file/);
  assert.match(text, /local_rules_dir/);
  // ... and the advice works: an override with a shipped id loads.
  const set = loadRuleSet(join(REPO_ROOT, 'rules.d'), dirWith({ '30-national-ids.yaml': 'rules:\n  - id: fr-nir\n    detector: fr_nir\n    action: redact\n    replacement: "[NIR]"\n  - id: pl-pesel\n    enabled: false\n' }));
  assert.equal(set.rules.find((r) => r.id === 'fr-nir')?.action, 'redact');
  assert.equal(set.rules.find((r) => r.id === 'pl-pesel'), undefined);
});
