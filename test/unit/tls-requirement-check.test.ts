/*
 * rules/tls-requirement-check.ts: a `require_tls: verified` rule with no
 * verified path in relay mode is warned about (HIT), and every way of having
 * a path, or no such rule, is not (MISS).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logTlsRequirementWarning, tlsRequirementWarning } from '../../src/rules/tls-requirement-check';

type Rule = { id: string; action: 'monitor' | 'tag' | 'redact' | 'quarantine' | 'reject' | 'tempfail'; require_tls?: 'verified' };
const set = (...rules: Rule[]) => ({ rules }) as unknown as Parameters<typeof tlsRequirementWarning>[0];
const cfg = (o: { mode?: 'relay' | 'mx'; level?: string; secure?: unknown; failure?: 'defer' | 'bounce' } = {}) =>
  ({
    delivery: { mode: o.mode ?? 'relay' },
    tls: { next_hop: { level: o.level ?? 'may' }, secure_next_hop: o.secure ?? null, escalation_failure: o.failure ?? 'defer' },
  }) as Parameters<typeof tlsRequirementWarning>[1];

const card: Rule = { id: 'card', action: 'redact', require_tls: 'verified' };

test('HIT: a require_tls rule, relay mode, level may, no secure_next_hop: one line naming the rule and the fix', () => {
  const w = tlsRequirementWarning(set(card, { id: 'ssn', action: 'redact' }), cfg());
  assert.ok(w);
  assert.match(w, /^rule card requires verified TLS \(require_tls: verified\)/);
  assert.match(w, /tls\.next_hop\.level is may/);
  assert.match(w, /deferred \(451 4\.7\.5\)/);
  assert.match(w, /Set tls\.secure_next_hop, or tls\.next_hop\.level to verify or secure/);
  assert.ok(!w.includes('ssn'), 'only the require_tls rules are named');
  assert.ok(!/\n/.test(w), 'one line');
});

test('HIT: several rules, levels none/encrypt, bounce: all named, the bounce reply said', () => {
  const two = set(card, { id: 'iban', action: 'quarantine', require_tls: 'verified' });
  for (const level of ['none', 'encrypt']) {
    const w = tlsRequirementWarning(two, cfg({ level, failure: 'bounce' }));
    assert.match(String(w), /^rules card, iban require verified TLS/);
    assert.match(String(w), new RegExp(`level is ${level}; every message they fire on will be bounced \\(550 5\\.7\\.10\\)`));
  }
});

test('MISS: secure_next_hop set, or next_hop at verify/secure: a path exists', () => {
  assert.equal(tlsRequirementWarning(set(card), cfg({ secure: { host: '127.0.0.1', port: 10027 } })), undefined);
  assert.equal(tlsRequirementWarning(set(card), cfg({ level: 'verify' })), undefined);
  assert.equal(tlsRequirementWarning(set(card), cfg({ level: 'secure' })), undefined);
});

test('MISS: no require_tls rule, only a monitor one (it never bites), or mx mode', () => {
  assert.equal(tlsRequirementWarning(set({ id: 'card', action: 'redact' }), cfg()), undefined);
  assert.equal(tlsRequirementWarning(set({ id: 'card', action: 'monitor', require_tls: 'verified' }), cfg()), undefined);
  assert.equal(tlsRequirementWarning(set(), cfg()), undefined);
  assert.equal(tlsRequirementWarning(set(card), cfg({ mode: 'mx' })), undefined);
});

test('logTlsRequirementWarning: one warn line with its event when there is a warning, none otherwise', () => {
  const lines: [object, string][] = [];
  const log = { warn: (o: object, m: string) => void lines.push([o, m]) };
  assert.ok(logTlsRequirementWarning(log, set(card), cfg()));
  assert.equal(logTlsRequirementWarning(log, set(card), cfg({ level: 'verify' })), undefined);
  assert.equal(lines.length, 1);
  assert.deepEqual(lines[0][0], { event: 'rules_tls_requirement', tls: 'verified-required' });
  assert.match(lines[0][1], /^rule card requires verified TLS/);
});
