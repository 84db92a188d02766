/*
 * The order MX addresses are tried in (src/smtp/mx/attempts.ts): RFC 5321
 * 5.1 preference order, random within one preference, IPv6 and IPv4 both,
 * skipped hosts never, and a cap on the addresses one RCPT may wait for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attemptOrder, MAX_ADDRESSES } from '../../src/smtp/mx/attempts';
import type { MxTarget } from '../../src/tls/policy';

const host = (name: string, preference: number, ipv4: string[] = [], ipv6: string[] = [], skip = false): MxTarget => ({
  host: name,
  preference,
  ipv4,
  ipv6,
  addressSecure: false,
  dane: { state: 'insecure' },
  source: 'default',
  level: 'may',
  ...(skip ? { skip: { reply: '451', enhanced: '4.7.5', reason: 'test' } } : {}),
});

/** A seeded generator, so "random" orders are reproducible. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

test('attempts: lower preference first, whatever the record order', () => {
  const order = attemptOrder([host('b', 20, ['192.0.2.2']), host('a', 10, ['192.0.2.1'])], lcg(1));
  assert.deepEqual(order.map((a) => a.target.host), ['a', 'b']);
});

test('attempts: hosts of one preference come in random order (both orders seen over seeds)', () => {
  const seen = new Set<string>();
  for (let s = 1; s < 40; s++) seen.add(attemptOrder([host('a', 10, ['192.0.2.1']), host('b', 10, ['192.0.2.2'])], lcg(s)).map((a) => a.target.host).join());
  assert.deepEqual([...seen].sort(), ['a,b', 'b,a']);
});

test('attempts: every IPv4 and IPv6 address of a host is tried; a skipped host never is', () => {
  const order = attemptOrder([host('a', 10, ['192.0.2.1'], ['2001:db8::1']), host('x', 5, ['192.0.2.9'], [], true)], lcg(3));
  assert.deepEqual(order.map((a) => a.ip).sort(), ['192.0.2.1', '2001:db8::1']);
  assert.ok(!order.some((a) => a.target.host === 'x'));
});

test('attempts: at most MAX_ADDRESSES addresses in all', () => {
  const many = Array.from({ length: 8 }, (_, i) => host(`h${i}`, i, [`192.0.2.${i + 1}`, `198.51.100.${i + 1}`]));
  assert.equal(attemptOrder(many, lcg(5)).length, MAX_ADDRESSES);
});

test('attempts: no live host, no attempt', () => {
  assert.deepEqual(attemptOrder([host('a', 10, ['192.0.2.1'], [], true)]), []);
});
