/* The static `tls_policy:` map in rule files, and `require_tls` refused at load. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuleSet, RuleSetError, formatRuleError } from '../../src/rules/load';
import { staticPolicy, matchNames } from '../../src/tls/levels';

function dirWith(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-tlsmap-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(d, n), t);
  return d;
}

function errorsOf(dir: string, local?: string): string[] {
  try {
    loadRuleSet(dir, local);
  } catch (e) {
    assert.ok(e instanceof RuleSetError);
    return e.errors.map((x) => formatRuleError({ ...x, file: x.file.split('/').pop()! }));
  }
  assert.fail('expected the rule set to be refused');
}

const MAP = ['tls_policy:', '  example.com: secure', '  .partner.example: { level: verify, match: [mx1.partner.example] }', '  Upper.Example.: dane-only', ''].join('\n');

test('tls_policy: levels and { level, match } load, keys normalised, each with file and line', () => {
  const set = loadRuleSet(dirWith({ '50-tls.yaml': MAP }));
  const m = set.tlsPolicy!;
  assert.deepEqual([...m.keys()], ['example.com', '.partner.example', 'upper.example']);
  assert.equal(m.get('example.com')!.level, 'secure');
  assert.deepEqual(m.get('.partner.example')!.match, ['mx1.partner.example']);
  assert.equal(m.get('.partner.example')!.source!.line, 3);
  assert.equal(m.get('upper.example')!.source!.layer, 'shipped');
});

test('tls_policy lookup: exact first, then the nearest .parent; .domain never matches the domain itself', () => {
  const set = loadRuleSet(dirWith({ 'a.yaml': 'tls_policy:\n  .example.com: verify\n  .b.example.com: encrypt\n  x.b.example.com: none\n' }));
  const p = (d: string) => staticPolicy(set.tlsPolicy, d)?.level;
  assert.equal(p('example.com'), undefined);
  assert.equal(p('a.example.com'), 'verify');
  assert.equal(p('b.example.com'), 'verify');
  assert.equal(p('c.b.example.com'), 'encrypt');
  assert.equal(p('X.B.Example.COM.'), 'none');
  assert.equal(p('other.test'), undefined);
  assert.equal(staticPolicy(undefined, 'a.example.com'), undefined);
});

test('tls_policy: a local entry replaces the shipped entry of its key; a key twice in one layer is an error', () => {
  const shipped = dirWith({ '10.yaml': 'tls_policy:\n  example.com: may\n  keep.example: encrypt\n' });
  const local = dirWith({ '10.yaml': 'tls_policy:\n  EXAMPLE.com: dane-only\n' });
  const set = loadRuleSet(shipped, local);
  const e = staticPolicy(set.tlsPolicy, 'example.com')!;
  assert.equal(e.level, 'dane-only');
  assert.equal(e.source!.layer, 'local');
  assert.match(e.source!.replaces!, /10\.yaml:2$/);
  assert.equal(staticPolicy(set.tlsPolicy, 'keep.example')!.level, 'encrypt');
  const errs = errorsOf(dirWith({ '10.yaml': 'tls_policy:\n  a.example: may\n', '20.yaml': 'x: 1\n'.replace('x: 1\n', 'tls_policy:\n  A.example: none\n') }));
  assert.equal(errs.length, 1);
  assert.match(errs[0], /^20\.yaml:2:3: duplicate tls_policy entry 'a\.example' \(first written at .*10\.yaml:2\)$/);
});

test('tls_policy: bad keys, levels and match names are errors at their file:line:col', () => {
  const errs = errorsOf(
    dirWith({
      'bad.yaml': [
        'tls_policy:',
        '  "bad domain": may', // 2
        '  ok.example: maybe', // 3
        '  v.example: { level: strict }', // 4
        '  m.example: { level: verify, match: ["not a name"] }', // 5
        '  n.example: { level: may, match: [x.example] }', // 6
        '  o.example: { match: [x.example] }', // 7
        '',
      ].join('\n'),
    }),
  );
  const want = [
    /^bad\.yaml:2:3: tls_policy key 'bad domain' is not a domain or \.domain$/,
    /^bad\.yaml:3:15: tls_policy entry 'ok\.example' must be a level \(none, may, encrypt, dane, dane-only, verify, secure\) or \{ level: LEVEL, match: \[names\] \}$/,
    /^bad\.yaml:4:\d+: tls_policy 'v\.example': level must be one of: none, may, encrypt, dane, dane-only, verify, secure$/,
    /^bad\.yaml:5:\d+: tls_policy 'm\.example': match must be a list of certificate names/,
  ];
  for (const re of want) assert.ok(errs.some((e) => re.test(e)), `${re} in\n${errs.join('\n')}`);
  assert.ok(errs.some((e) => /^bad\.yaml:7:/.test(e)), errs.join('\n'));
  // match at a level that does not use it: a load-time error (only once the schema passes)
  const e2 = errorsOf(dirWith({ 'm.yaml': 'tls_policy:\n  n.example: { level: may, match: [x.example] }\n' }));
  assert.deepEqual(e2, ["m.yaml:2:3: tls_policy 'n.example': match is only used at levels dane, dane-only, verify and secure, not may"]);
});

test('require_tls: verified loads (relay-mode escalation); any other value is refused', () => {
  const set = loadRuleSet(dirWith({ 'r.yaml': 'rules:\n  - id: card\n    detector: credit_card\n    action: redact\n    require_tls: verified\n' }));
  assert.equal(set.rules[0].require_tls, 'verified');
  const other = errorsOf(dirWith({ 'r.yaml': 'rules:\n  - id: card\n    detector: credit_card\n    action: redact\n    require_tls: always\n' }));
  assert.match(other[0], /^r\.yaml:5:18: require_tls must be one of: verified$/);
});

test('matchNames: keywords expand per MX host and domain; defaults are hostname (verify) and nexthop, dot-nexthop (secure)', () => {
  assert.deepEqual(matchNames('verify', undefined, 'MX1.Example.com.', 'example.com'), ['mx1.example.com']);
  assert.deepEqual(matchNames('secure', undefined, 'mx1.example.net', 'Example.com'), ['example.com', '.example.com']);
  assert.deepEqual(matchNames('verify', ['hostname', 'nexthop', 'mx.other.example'], 'mx1.example.net', 'example.com'), ['mx1.example.net', 'example.com', 'mx.other.example']);
});
