/*
 * The DNS layer against a real validating resolver (unbound, started by
 * test/helpers/dns-world.ts), so the AD bit is one unbound earned: a signed
 * zone validates, an unsigned one does not, and a zone whose TLSA data was
 * changed after signing comes back SERVFAIL for that RRset only. Also the
 * MX forms delivery must tell apart: null MX, implicit MX, NXDOMAIN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DnsClient } from '../../src/dns/client';
import type { DnsLookups } from '../../src/dns/lookups';
import { startDnsWorld, type DnsWorld } from '../helpers/dns-world';
import { systemSkipReason } from '../helpers/sink';

const skip = systemSkipReason(['unbound', 'unbound-checkconf', 'ldns-keygen', 'ldns-signzone']);
const DIGEST = 'ab'.repeat(32);
const mailZone = ['@ MX 10 mx1', '@ MX 20 mx2', 'mx1 A 127.0.0.2', 'mx1 AAAA ::2', 'mx2 A 127.0.0.3', `_25._tcp.mx1 TLSA 3 1 1 ${DIGEST}`, 'alias CNAME mx1', '_mta-sts TXT "v=STSv1; " "id=20240101"'];

let world: DnsWorld;
let dns: DnsLookups;

before(async () => {
  if (skip) return;
  world = await startDnsWorld({
    zones: [
      { name: 'signed.test', mode: 'signed', records: mailZone },
      { name: 'unsigned.test', mode: 'unsigned', records: mailZone },
      { name: 'bogus.test', mode: 'bogus', records: mailZone },
      { name: 'nullmx.test', mode: 'signed', records: ['@ MX 0 .'] },
      { name: 'implicit.test', mode: 'signed', records: ['@ A 127.0.0.4'] },
    ],
  });
  dns = world.lookups();
});

after(async () => {
  await world?.stop();
});

test('dns world: a signed zone validates: MX, A/AAAA, TLSA, TXT and a CNAME all come back secure', { skip }, async () => {
  assert.deepEqual(await dns.mx('signed.test'), { kind: 'mx', secure: true, hosts: [{ exchange: 'mx1.signed.test', preference: 10 }, { exchange: 'mx2.signed.test', preference: 20 }] });
  assert.deepEqual(await dns.addresses('mx1.signed.test'), { kind: 'addresses', ipv4: ['127.0.0.2'], ipv6: ['::2'], secure: true });
  assert.deepEqual(await dns.tlsa('mx1.signed.test'), { kind: 'secure', records: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.from(DIGEST, 'hex') }] });
  assert.deepEqual(await dns.txt('_mta-sts.signed.test'), { kind: 'txt', records: ['v=STSv1; id=20240101'], secure: true });
  assert.deepEqual(await dns.addresses('alias.signed.test'), { kind: 'addresses', ipv4: ['127.0.0.2'], ipv6: ['::2'], secure: true });
  const raw = await new DnsClient({ servers: [world.server], timeoutMs: 2000 }).query('mx1.signed.test', 'A');
  assert.ok(raw.answers.some((a) => a.type === 'RRSIG'), 'DO bit set: the resolver sends the signatures along');
});

test('dns world: in a signed zone, no TLSA and no such name are proven (secure NODATA / NXDOMAIN)', { skip }, async () => {
  assert.deepEqual(await dns.tlsa('mx2.signed.test'), { kind: 'none-secure' });
  assert.deepEqual(await dns.tlsa('nosuch.signed.test'), { kind: 'none-secure' });
  assert.deepEqual(await dns.mx('nosuch.signed.test'), { kind: 'nxdomain', secure: true });
  assert.deepEqual(await dns.addresses('mx2.signed.test'), { kind: 'addresses', ipv4: ['127.0.0.3'], ipv6: [], secure: true });
});

test('dns world: an unsigned zone answers without the AD bit: TLSA records there are insecure (no DANE)', { skip }, async () => {
  assert.deepEqual(await dns.mx('unsigned.test'), { kind: 'mx', secure: false, hosts: [{ exchange: 'mx1.unsigned.test', preference: 10 }, { exchange: 'mx2.unsigned.test', preference: 20 }] });
  assert.deepEqual(await dns.addresses('mx1.unsigned.test'), { kind: 'addresses', ipv4: ['127.0.0.2'], ipv6: ['::2'], secure: false });
  assert.deepEqual(await dns.tlsa('mx1.unsigned.test'), { kind: 'insecure' });
  assert.deepEqual(await dns.mx('nosuch.unsigned.test'), { kind: 'nxdomain', secure: false });
});

test('dns world: TLSA edited after signing is bogus (SERVFAIL); the rest of that zone still validates', { skip }, async () => {
  assert.deepEqual(await dns.tlsa('mx1.bogus.test'), { kind: 'bogus' });
  const raw = await new DnsClient({ servers: [world.server], timeoutMs: 2000 }).query('_25._tcp.mx1.bogus.test', 'TLSA');
  assert.deepEqual([raw.rcode, raw.secure, raw.answers.length], ['SERVFAIL', false, 0]);
  assert.match(world.log(), /validation failure <_25\._tcp\.mx1\.bogus\.test\. TLSA IN>/);
  // What unbound really does: only the tampered RRset fails; MX and A keep their AD bit.
  assert.deepEqual(await dns.mx('bogus.test'), { kind: 'mx', secure: true, hosts: [{ exchange: 'mx1.bogus.test', preference: 10 }, { exchange: 'mx2.bogus.test', preference: 20 }] });
  assert.deepEqual(await dns.addresses('mx1.bogus.test'), { kind: 'addresses', ipv4: ['127.0.0.2'], ipv6: ['::2'], secure: true });
  assert.deepEqual(await dns.tlsa('mx2.bogus.test'), { kind: 'none-secure' });
});

test('dns world: null MX, implicit MX, and a domain that does not exist', { skip }, async () => {
  assert.deepEqual(await dns.mx('nullmx.test'), { kind: 'null-mx', secure: true });
  assert.deepEqual(await dns.mx('implicit.test'), { kind: 'implicit', secure: true });
  assert.deepEqual(await dns.mx('nosuch.test'), { kind: 'nxdomain', secure: false }, 'the unsigned test. parent: fast and insecure');
});

test('dns world: a bogus zone can break other RRsets than TLSA, on request', { skip }, async () => {
  const w = await startDnsWorld({ zones: [{ name: 'broken.test', mode: 'bogus', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.2', 'mx2 A 127.0.0.3'], tamper: ['mx1 A'] }] });
  try {
    const l = w.lookups();
    assert.equal((await l.addresses('mx1.broken.test')).kind, 'temp');
    assert.deepEqual(await l.addresses('mx2.broken.test'), { kind: 'addresses', ipv4: ['127.0.0.3'], ipv6: [], secure: true });
    assert.deepEqual(await l.mx('broken.test'), { kind: 'mx', secure: true, hosts: [{ exchange: 'mx1.broken.test', preference: 10 }] });
  } finally {
    await w.stop();
  }
});
