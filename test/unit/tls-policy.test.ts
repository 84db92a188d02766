/* resolveDomainPolicy: every source and branch, with fake lookups (no network). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { resolveDomainPolicy, type PolicyDeps, type PolicyLookups } from '../../src/tls/policy';
import type { AddressResult, MxResult, TlsaResult } from '../../src/dns/lookups';
import type { StsAnswer } from '../../src/mta-sts/resolve';
import type { StaticTlsEntry } from '../../src/tls/levels';

const USABLE = { usage: 3, selector: 1, matchingType: 1, data: createHash('sha256').update('k').digest() };
const UNUSABLE = { usage: 1, selector: 1, matchingType: 1, data: createHash('sha256').update('k').digest() };

interface World {
  mx: Record<string, MxResult>;
  addr?: Record<string, AddressResult>;
  tlsa?: Record<string, TlsaResult>;
}

function fakes(w: World): PolicyLookups & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    mx: async (d) => w.mx[d] ?? { kind: 'nxdomain', secure: true },
    addresses: async (h) => w.addr?.[h] ?? { kind: 'addresses', ipv4: ['192.0.2.1'], ipv6: [], secure: true },
    tlsa: async (h) => {
      asked.push(h);
      return w.tlsa?.[h] ?? { kind: 'none-secure' };
    },
  };
}

const mxOf = (secure: boolean, ...hosts: string[]): MxResult => ({ kind: 'mx', secure, hosts: hosts.map((exchange, i) => ({ exchange, preference: 10 * (i + 1) })) });
const deps = (lookups: PolicyLookups, o: Partial<PolicyDeps> = {}): PolicyDeps => ({ lookups, dane: true, defaultLevel: 'may', maxMx: 5, ...o });
const stsOf = (mode: 'enforce' | 'testing' | 'none', mx: string[]): { policyFor: () => Promise<StsAnswer> } => ({
  policyFor: async () => ({ kind: 'policy', policy: { mode, mx, maxAge: 86400 }, id: '1', source: 'cache', expiresAt: Date.now() + 1e6 }),
});
const entry = (e: Omit<StaticTlsEntry, 'key'>): (() => StaticTlsEntry) => () => ({ key: 'x', ...e });

test('dane: secure MX, secure address, usable TLSA -> source dane, level dane, match names = MX host and domain', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [USABLE] } } });
  const p = await resolveDomainPolicy('A.test.', deps(l));
  assert.equal(p.source, 'dane');
  assert.equal(p.level, 'dane');
  assert.deepEqual(p.mx[0].match, ['mx1.a.test', 'a.test']);
  assert.equal(p.mx[0].dane.state, 'usable');
  assert.deepEqual(p.outcome, { kind: 'deliver' });
});

test('dane: a secure TLSA RRset with no usable record behaves as encrypt', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [UNUSABLE] } } });
  const p = await resolveDomainPolicy('a.test', deps(l));
  assert.equal(p.source, 'dane');
  assert.equal(p.level, 'encrypt');
  assert.equal(p.mx[0].dane.state, 'no-usable');
});

test('dane: bogus or SERVFAIL TLSA defers that host 4.7.5; the domain defers when no host is left', async () => {
  for (const tlsa of [{ kind: 'bogus' }, { kind: 'temp', reason: 'timeout', detail: 't' }] as TlsaResult[]) {
    const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': tlsa } });
    const p = await resolveDomainPolicy('a.test', deps(l));
    assert.equal(p.mx[0].skip?.enhanced, '4.7.5');
    assert.equal(p.mx[0].skip?.type, 'tlsa-invalid');
    assert.equal(p.outcome.kind, 'defer');
    assert.equal((p.outcome as { enhanced: string }).enhanced, '4.7.5');
    assert.equal(p.source, 'dane');
  }
});

test('dane: insecure TLSA, or proven absent, means no DANE: default level', async () => {
  for (const tlsa of [{ kind: 'insecure' }, { kind: 'none-secure' }] as TlsaResult[]) {
    const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': tlsa } });
    const p = await resolveDomainPolicy('a.test', deps(l, { defaultLevel: 'encrypt' }));
    assert.equal(p.source, 'default');
    assert.equal(p.level, 'encrypt');
  }
});

test('dane: TLSA is not asked when the MX RRset or the host address answer is insecure, nor when tls.dane is off', async () => {
  const tl = { 'mx1.a.test': { kind: 'secure', records: [USABLE] } } as Record<string, TlsaResult>;
  let l = fakes({ mx: { 'a.test': mxOf(false, 'mx1.a.test') }, tlsa: tl });
  let p = await resolveDomainPolicy('a.test', deps(l));
  assert.deepEqual(l.asked, []);
  assert.deepEqual(p.mx[0].dane, { state: 'not-looked-up', why: 'mx-insecure' });
  assert.equal(p.source, 'default');
  l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, addr: { 'mx1.a.test': { kind: 'addresses', ipv4: ['192.0.2.1'], ipv6: [], secure: false } }, tlsa: tl });
  p = await resolveDomainPolicy('a.test', deps(l));
  assert.deepEqual(l.asked, []);
  assert.deepEqual(p.mx[0].dane, { state: 'not-looked-up', why: 'address-insecure' });
  l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: tl });
  p = await resolveDomainPolicy('a.test', deps(l, { dane: false }));
  assert.deepEqual(l.asked, []);
  assert.equal(p.level, 'may');
});

test('dane: TLSA is per MX host; a host without DANE falls to MTA-STS or the default, and the domain source is the strongest', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test', 'mx2.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [USABLE] }, 'mx2.a.test': { kind: 'insecure' } } });
  let p = await resolveDomainPolicy('a.test', deps(l));
  assert.deepEqual(p.mx.map((t) => [t.host, t.source, t.level]), [['mx1.a.test', 'dane', 'dane'], ['mx2.a.test', 'default', 'may']]);
  assert.equal(p.source, 'dane');
  // MTA-STS enforce never overrides DANE: mx1 stays dane, mx2 gets verify with its own name.
  p = await resolveDomainPolicy('a.test', deps(l, { sts: stsOf('enforce', ['*.a.test']) }));
  assert.deepEqual(p.mx.map((t) => [t.source, t.level]), [['dane', 'dane'], ['mta-sts', 'verify']]);
  assert.deepEqual(p.mx[1].match, ['mx2.a.test']);
});

test('mta-sts enforce: only matching MX hosts, at verify; none matching defers 4.7.5', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(false, 'mx1.a.test', 'evil.example') } });
  let p = await resolveDomainPolicy('a.test', deps(l, { sts: stsOf('enforce', ['mx1.a.test']) }));
  assert.equal(p.source, 'mta-sts');
  assert.equal(p.level, 'verify');
  assert.equal(p.mx[0].skip, undefined);
  assert.equal(p.mx[1].skip?.type, 'validation-failure');
  assert.equal(p.outcome.kind, 'deliver');
  p = await resolveDomainPolicy('a.test', deps(l, { sts: stsOf('enforce', ['other.test']) }));
  assert.deepEqual(p.outcome, { kind: 'defer', reply: '451', enhanced: '4.7.5', reason: 'mta-sts enforce: mx1.a.test does not match the policy\'s mx patterns' });
});

test('mta-sts testing decides nothing (default level) but reports the mismatch; mode none and no policy likewise; a cache error defers', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(false, 'mx1.a.test') } });
  let p = await resolveDomainPolicy('a.test', deps(l, { sts: stsOf('testing', ['other.test']), defaultLevel: 'encrypt' }));
  assert.equal(p.source, 'default');
  assert.equal(p.level, 'encrypt');
  assert.equal(p.mx[0].stsMatch, false);
  assert.equal(p.sts?.kind, 'policy');
  p = await resolveDomainPolicy('a.test', deps(l, { sts: stsOf('none', []) }));
  assert.equal(p.source, 'default');
  p = await resolveDomainPolicy('a.test', deps(l, { sts: { policyFor: async () => ({ kind: 'none' }) } }));
  assert.equal(p.level, 'may');
  p = await resolveDomainPolicy('a.test', deps(l, { sts: { policyFor: async () => ({ kind: 'defer', reason: 'cache-error', detail: 'bad file' }) } }));
  assert.equal(p.outcome.kind, 'defer');
  assert.equal(p.mx[0].skip?.type, 'sts-policy-fetch-error');
});

test('static: the entry wins over DANE and MTA-STS (neither is asked at levels that do not use them)', async () => {
  let asked = false;
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [USABLE] } } });
  const sts = { policyFor: async (): Promise<StsAnswer> => ((asked = true), { kind: 'none' }) };
  let p = await resolveDomainPolicy('a.test', deps(l, { sts, staticPolicy: entry({ level: 'may' }) }));
  assert.equal(p.source, 'static');
  assert.equal(p.level, 'may');
  assert.deepEqual(l.asked, []);
  assert.equal(asked, false);
  p = await resolveDomainPolicy('a.test', deps(l, { staticPolicy: entry({ level: 'secure' }) }));
  assert.deepEqual(p.mx[0].match, ['a.test', '.a.test']);
  p = await resolveDomainPolicy('a.test', deps(l, { staticPolicy: entry({ level: 'verify', match: ['mx.other.test'] }) }));
  assert.deepEqual(p.match, ['mx.other.test']);
});

test('static dane / dane-only use the DANE data; dane without TLSA is may, dane-only without TLSA defers (dane-required)', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [USABLE] } } });
  let p = await resolveDomainPolicy('a.test', deps(l, { dane: false, staticPolicy: entry({ level: 'dane-only' }) }));
  assert.deepEqual([p.source, p.level, p.mx[0].dane.state], ['static', 'dane-only', 'usable']);
  const n = fakes({ mx: { 'a.test': mxOf(false, 'mx1.a.test') } });
  p = await resolveDomainPolicy('a.test', deps(n, { staticPolicy: entry({ level: 'dane' }) }));
  assert.deepEqual([p.source, p.level], ['static', 'may']);
  p = await resolveDomainPolicy('a.test', deps(n, { staticPolicy: entry({ level: 'dane-only' }) }));
  assert.equal(p.mx[0].skip?.type, 'dane-required');
  assert.equal((p.outcome as { enhanced: string }).enhanced, '4.7.5');
});

test('default_level dane-only with tls.dane off still asks TLSA', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(true, 'mx1.a.test') }, tlsa: { 'mx1.a.test': { kind: 'secure', records: [USABLE] } } });
  const p = await resolveDomainPolicy('a.test', deps(l, { dane: false, defaultLevel: 'dane-only' }));
  assert.deepEqual(l.asked, ['mx1.a.test']);
  assert.equal(p.level, 'dane-only');
  assert.equal(p.outcome.kind, 'deliver');
});

test('domain outcomes: null MX 556 5.1.10; NXDOMAIN and nodata 550 5.4.4; MX temp 451 4.4.3; no address 4.4.3', async () => {
  const l = fakes({
    mx: {
      'null.test': { kind: 'null-mx', secure: true },
      'nodata.test': { kind: 'nodata', secure: true },
      'temp.test': { kind: 'temp', reason: 'servfail', detail: 'x' },
      'noaddr.test': mxOf(true, 'mx1.noaddr.test'),
      'self.test': { kind: 'implicit', secure: true },
    },
    addr: { 'mx1.noaddr.test': { kind: 'nxdomain', secure: true } },
  });
  const o = async (d: string) => (await resolveDomainPolicy(d, deps(l))).outcome;
  assert.deepEqual(await o('null.test'), { kind: 'bounce', reply: '556', enhanced: '5.1.10', reason: 'null-mx' });
  assert.deepEqual(await o('gone.test'), { kind: 'bounce', reply: '550', enhanced: '5.4.4', reason: 'nxdomain' });
  assert.deepEqual(await o('nodata.test'), { kind: 'bounce', reply: '550', enhanced: '5.4.4', reason: 'nodata' });
  assert.equal(((await o('temp.test')) as { enhanced: string }).enhanced, '4.4.3');
  assert.deepEqual(await o('noaddr.test'), { kind: 'defer', reply: '451', enhanced: '4.4.3', reason: 'MX host has no address' });
  const self = await resolveDomainPolicy('self.test', deps(l));
  assert.deepEqual(self.mx.map((t) => t.host), ['self.test']);
});

test('max_mx: only the first hosts in preference order are considered', async () => {
  const l = fakes({ mx: { 'a.test': mxOf(false, 'mx1.a.test', 'mx2.a.test', 'mx3.a.test') } });
  const p = await resolveDomainPolicy('a.test', deps(l, { maxMx: 2 }));
  assert.deepEqual(p.mx.map((t) => [t.host, t.preference]), [['mx1.a.test', 10], ['mx2.a.test', 20]]);
});
