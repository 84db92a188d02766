/*
 * MTA-STS parsing (src/mta-sts/txt.ts, policy.ts) and the MX plan
 * (enforce.ts): every HIT has its MISS beside it, near misses included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStsTxt } from '../../src/mta-sts/txt';
import { mxMatches, parsePolicy, type PolicyParse } from '../../src/mta-sts/policy';
import { mxAllowed, planMx } from '../../src/mta-sts/enforce';
import type { StsPolicy } from '../../src/mta-sts/types';

test('TXT: one v=STSv1 record with an id (HIT)', () => {
  const hits: [string[], string][] = [
    [['v=STSv1; id=20160831085700Z;'], '20160831085700Z'],
    [['v=STSv1;id=abc'], 'abc'],
    [['v=STSv1; id=A1 ; ext.x-y=val'], 'A1'],
    [['v=STSv1;\tid=' + 'a'.repeat(32)], 'a'.repeat(32)],
    [['v=spf1 -all', 'v=STSv1; id=x1', 'something else'], 'x1'],
  ];
  for (const [records, id] of hits) assert.deepEqual(parseStsTxt(records), { kind: 'ok', id }, JSON.stringify(records));
});

test('TXT: no, several or invalid STSv1 records are none (MISS)', () => {
  const misses: [string[], string][] = [
    [[], 'no-record'],
    [['v=spf1 -all'], 'no-record'],
    [['v=STSv2; id=abc'], 'no-record'],
    [['V=STSv1; id=abc'], 'no-record'], // %s: case-sensitive
    [[' v=STSv1; id=abc'], 'no-record'], // must begin with it
    [['v=STSv1 id=abc'], 'no-record'], // "v=STSv1;" with its semicolon
    [['v=STSv1; id=abc', 'v=STSv1; id=def'], 'several-records'],
    [['v=STSv1; id=abc', 'v=STSv1; id=abc'], 'several-records'],
    [['v=STSv1;'], 'invalid'], // no id
    [['v=STSv1; ext=1'], 'invalid'],
    [['v=STSv1; id='], 'invalid'],
    [['v=STSv1; id=' + 'a'.repeat(33)], 'invalid'],
    [['v=STSv1; id=ab-c'], 'invalid'],
    [['v=STSv1; id=a; id=b'], 'invalid'],
    [['v=STSv1; id=a;;'], 'invalid'],
    [['v=STSv1; id=a; bad field'], 'invalid'],
    [['v=STSv1; id=a; x=has;semi'], 'invalid'],
  ];
  for (const [records, reason] of misses) assert.deepEqual(parseStsTxt(records), { kind: 'none', reason }, JSON.stringify(records));
});

const GOOD = 'version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n';

function ok(p: PolicyParse): StsPolicy {
  assert.equal(p.kind, 'ok', JSON.stringify(p));
  return (p as Extract<PolicyParse, { kind: 'ok' }>).policy;
}
function bad(p: PolicyParse, error: string): void {
  assert.equal(p.kind, 'invalid', JSON.stringify(p));
  assert.equal((p as Extract<PolicyParse, { kind: 'invalid' }>).error, error, JSON.stringify(p));
}

test('policy: the RFC 8461 example, LF and CRLF, extensions ignored (HIT)', () => {
  const want = { mode: 'enforce', mx: ['mail.example.com', '*.example.net', 'backupmx.example.com'], maxAge: 604800 };
  assert.deepEqual(ok(parsePolicy(GOOD)), want);
  assert.deepEqual(ok(parsePolicy(GOOD.replace(/\n/g, '\r\n'))), want);
  assert.deepEqual(ok(parsePolicy(GOOD.trimEnd())), want, 'no final newline');
  assert.deepEqual(ok(parsePolicy('max_age: 604800\nmx: MAIL.Example.com.\nfoo_bar: anything at all\nmx: *.example.net\nmode:enforce\t\nversion: STSv1\nmx: backupmx.example.com\nx: \n\n')), want, 'any order, odd case, unknown keys, blank lines');
  assert.deepEqual(ok(parsePolicy('version: STSv1\nmode: none\nmax_age: 0\n')), { mode: 'none', mx: [], maxAge: 0 }, 'mode none needs no mx');
  assert.deepEqual(ok(parsePolicy('version: STSv1\nmode: testing\nmx: a.example\nmax_age: 31557600\n')).maxAge, 31557600);
});

test('policy: each required field missing or wrong is invalid, with its kind (MISS)', () => {
  const without = (key: string) => GOOD.split('\n').filter((l) => !l.startsWith(key + ':')).join('\n');
  bad(parsePolicy(without('version')), 'version');
  bad(parsePolicy(without('mode')), 'mode');
  bad(parsePolicy(without('max_age')), 'max_age');
  bad(parsePolicy(without('mx')), 'mx');
  bad(parsePolicy(GOOD.replace('STSv1', 'STSv2')), 'version');
  bad(parsePolicy(GOOD.replace('STSv1', 'stsv1')), 'version');
  bad(parsePolicy(GOOD.replace('enforce', 'Enforce')), 'mode');
  bad(parsePolicy(GOOD.replace('enforce', 'reject')), 'mode');
  bad(parsePolicy(GOOD + 'mode: testing\n'), 'mode');
  bad(parsePolicy(GOOD + 'version: STSv1\n'), 'version');
  bad(parsePolicy(GOOD + 'max_age: 1\n'), 'max_age');
  for (const age of ['31557601', '-1', '1e5', '', '12345678901', '86400s', '0x10', '1 2']) bad(parsePolicy(GOOD.replace('604800', age)), 'max_age');
  for (const mx of ['*', '*.com', 'a.*.example.com', '**.example.com', 'mail..example.com', '-a.example.com', 'mail example.com', 'mail_1.example.com', 'a'.repeat(64) + '.com'])
    bad(parsePolicy(GOOD.replace('mail.example.com', mx)), 'mx');
  bad(parsePolicy('version: STSv1\nmode: testing\nmax_age: 10\n'), 'mx');
  bad(parsePolicy(GOOD + 'this line has no colon\n'), 'syntax');
  bad(parsePolicy(GOOD + ' mx: indented.example.com\n'), 'syntax');
  bad(parsePolicy('<html><body>Not found</body></html>'), 'syntax');
  bad(parsePolicy(''), 'version');
  bad(parsePolicy(GOOD + 'x: y\n'.repeat(1000)), 'too_long');
});

test('mxMatches: exact names and one-label wildcards, any case, trailing dots (HIT and MISS)', () => {
  const hits: [string, string][] = [
    ['mail.example.com', 'mail.example.com'],
    ['mail.example.com', 'MAIL.Example.COM.'],
    ['mail.example.com.', 'mail.example.com'],
    ['*.example.com', 'mx1.example.com'],
    ['*.EXAMPLE.com', 'Mx1.example.com.'],
  ];
  const misses: [string, string][] = [
    ['mail.example.com', 'mail.example.co'],
    ['mail.example.com', 'xmail.example.com'],
    ['mail.example.com', 'a.mail.example.com'],
    ['*.example.com', 'example.com'], // the wildcard needs a label
    ['*.example.com', 'a.b.example.com'], // and only one
    ['*.example.com', 'mx1.example.com.evil.test'],
    ['*.example.com', 'mx1.notexample.com'],
    ['*.example.com', '.example.com'],
    ['mx*.example.com', 'mx1.example.com'], // no partial wildcards
    ['*', 'example'],
    ['mail.example.com', ''],
  ];
  for (const [p, h] of hits) assert.equal(mxMatches(p, h), true, `${p} ~ ${h}`);
  for (const [p, h] of misses) assert.equal(mxMatches(p, h), false, `${p} !~ ${h}`);
});

test('planMx: enforce keeps matching hosts only; none left defers; testing reports; none and mode none restrict nothing', () => {
  const policy = (mode: StsPolicy['mode']): StsPolicy => ({ mode, mx: ['*.mx.example', 'backup.example'], maxAge: 86400 });
  const answer = (mode: StsPolicy['mode']) => ({ kind: 'policy' as const, policy: policy(mode), id: 'a', source: 'cache' as const, expiresAt: 0 });
  const hosts = ['evil.attacker.test', 'a.mx.example', 'backup.example', 'x.a.mx.example'];
  assert.deepEqual(planMx(answer('enforce'), hosts), { kind: 'enforce', hosts: ['a.mx.example', 'backup.example'], skipped: ['evil.attacker.test', 'x.a.mx.example'], tls: 'verify-mx-name' });
  const none = planMx(answer('enforce'), ['evil.attacker.test']);
  assert.equal(none.kind, 'defer');
  assert.equal(none.kind === 'defer' && none.failure?.type, 'validation-failure');
  const t = planMx(answer('testing'), hosts);
  assert.equal(t.kind, 'testing');
  assert.deepEqual(t.kind === 'testing' && [t.hosts, t.mismatched, t.failure?.type], [hosts, ['evil.attacker.test', 'x.a.mx.example'], 'validation-failure']);
  assert.deepEqual(planMx(answer('testing'), ['a.mx.example']), { kind: 'testing', hosts: ['a.mx.example'], mismatched: [] });
  assert.deepEqual(planMx(answer('none'), hosts), { kind: 'any', hosts });
  assert.deepEqual(planMx({ kind: 'none' }, hosts), { kind: 'any', hosts });
  assert.equal(planMx({ kind: 'defer', reason: 'cache-error', detail: 'x' }, hosts).kind, 'defer');
  assert.equal(mxAllowed(policy('enforce'), 'evil.attacker.test'), false);
  assert.equal(mxAllowed(policy('enforce'), 'B.mx.example.'), true);
  assert.equal(mxAllowed(policy('testing'), 'evil.attacker.test'), true);
});
