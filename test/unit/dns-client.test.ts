/*
 * The DNS client's transport rules against an in-process fake server
 * (test/helpers/fake-dns.ts): the query's flags, the AD bit read back, TCP
 * after truncation, stray answers dropped, which failures move on to the
 * next server and which do not (SERVFAIL never does), and garbage answered
 * with an error, not a crash. Then the lookups' reading of answers: null
 * MX, implicit MX, CNAME chains, TXT strings, TLSA kinds, names refused.
 * Real DNSSEC validation is tested against unbound in test/system/dns-world.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer, DecodedPacket } from 'dns-packet';
import { DnsClient } from '../../src/dns/client';
import { DnsError } from '../../src/dns/errors';
import { DnsLookups } from '../../src/dns/lookups';
import { canonicalHost } from '../../src/dns/names';
import { FLAG, RCODE, reply, startFakeDns, type FakeDns, type Handler } from '../helpers/fake-dns';

const started: FakeDns[] = [];
after(async () => {
  for (const f of started) await f.close();
});

async function fake(handler: Handler): Promise<FakeDns> {
  const f = await startFakeDns(handler);
  started.push(f);
  return f;
}

const qname = (q: DecodedPacket) => q.questions![0].name;
const a = (name: string, data: string): Answer => ({ type: 'A', name, ttl: 60, class: 'IN', data });
const silent: Handler = () => [];

async function rejectsWith(p: Promise<unknown>, kind: string) {
  await assert.rejects(p, (e: unknown) => e instanceof DnsError && e.kind === kind && e.code === 'MV_DNS');
}

test('dns client: the query asks for recursion, the AD bit and DNSSEC records (EDNS0 DO, 1232-byte payload)', async () => {
  const f = await fake((q) => [reply(q, { answers: [a(qname(q), '192.0.2.1')] })]);
  await new DnsClient({ servers: [f.server], timeoutMs: 1000 }).query('Host.Example.', 'A');
  const q = f.seen[0].packet;
  assert.equal(q.flag_rd, true);
  assert.equal(q.flag_ad, true);
  assert.equal(q.questions![0].name, 'host.example', 'lower-case, no trailing dot');
  const opt = q.additionals!.find((x) => x.type === 'OPT') as { flag_do: boolean; udpPayloadSize: number };
  assert.equal(opt.flag_do, true);
  assert.equal(opt.udpPayloadSize, 1232);
});

test('dns client: secure is the AD bit of the answer, and nothing else', async () => {
  const f = await fake((q) => [reply(q, { flags: qname(q).startsWith('signed') ? FLAG.AD : 0, answers: [a(qname(q), '192.0.2.1')] })]);
  const c = new DnsClient({ servers: [f.server], timeoutMs: 1000 });
  const s = await c.query('signed.example', 'A');
  const u = await c.query('plain.example', 'A');
  assert.deepEqual([s.secure, s.rcode, s.answers.length], [true, 'NOERROR', 1]);
  assert.deepEqual([u.secure, u.rcode, u.answers.length], [false, 'NOERROR', 1]);
});

test('dns client: each query has its own id and source port', async () => {
  const f = await fake((q) => [reply(q)]);
  const c = new DnsClient({ servers: [f.server], timeoutMs: 1000 });
  for (let i = 0; i < 8; i++) await c.query('x.example', 'A');
  assert.ok(new Set(f.seen.map((s) => s.packet.id)).size >= 7, 'ids differ');
  assert.ok(new Set(f.seen.map((s) => s.port)).size >= 7, 'source ports differ');
});

test('dns client: a truncated UDP answer is asked again over TCP, and the TCP answer is the result', async () => {
  const many = Array.from({ length: 120 }, (_, i) => a('big.example', `192.0.2.${i}`));
  const f = await fake((q, via) => [via === 'udp' ? reply(q, { flags: FLAG.TC }) : reply(q, { flags: FLAG.AD, answers: many })]);
  const r = await new DnsClient({ servers: [f.server], timeoutMs: 1000 }).query('big.example', 'A');
  assert.deepEqual(f.seen.map((s) => s.via), ['udp', 'tcp']);
  assert.equal(r.answers.length, 120);
  assert.equal(r.secure, true);
});

test('dns client: answers with another id or another question are dropped, and the wait goes on', async () => {
  const f = await fake((q) => [
    reply(q, { id: (q.id! + 1) % 65536, answers: [a(qname(q), '203.0.113.66')] }),
    reply(q, { name: 'other.example', answers: [a('other.example', '203.0.113.66')] }),
    reply(q, { answers: [a(qname(q), '192.0.2.7')] }),
  ]);
  const r = await new DnsClient({ servers: [f.server], timeoutMs: 1000 }).query('x.example', 'A');
  assert.deepEqual(r.answers.map((x) => (x as { data: unknown }).data), ['192.0.2.7']);
});

test('dns client: only stray answers is a timeout', async () => {
  const f = await fake((q) => [reply(q, { id: (q.id! + 1) % 65536 })]);
  await rejectsWith(new DnsClient({ servers: [f.server], timeoutMs: 200 }).query('x.example', 'A'), 'timeout');
});

test('dns client: a server that does not answer in time is left for the next one', async () => {
  const dead = await fake(silent);
  const live = await fake((q) => [reply(q, { answers: [a(qname(q), '192.0.2.9')] })]);
  const t0 = Date.now();
  const r = await new DnsClient({ servers: [dead.server, live.server], timeoutMs: 250 }).query('x.example', 'A');
  assert.ok(Date.now() - t0 >= 240, 'waited for the first server');
  assert.equal(r.server.port, live.server.port);
  assert.equal(dead.seen.length, 1);
});

test('dns client: every server silent is a DnsError of kind timeout naming each', async () => {
  const d1 = await fake(silent);
  const d2 = await fake(silent);
  await assert.rejects(new DnsClient({ servers: [d1.server, d2.server], timeoutMs: 100 }).query('x.example', 'A'), (e: unknown) =>
    e instanceof DnsError && e.kind === 'timeout' && e.message.includes(String(d1.server.port)) && e.message.includes(String(d2.server.port)));
});

test('dns client: SERVFAIL is the answer (bogus, for a validating resolver): the next server is never asked', async () => {
  const first = await fake((q) => [reply(q, { rcode: RCODE.SERVFAIL })]);
  const second = await fake((q) => [reply(q, { flags: FLAG.AD, answers: [a(qname(q), '192.0.2.1')] })]);
  const c = new DnsClient({ servers: [first.server, second.server], timeoutMs: 500 });
  const r = await c.query('x.example', 'A');
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal(r.secure, false);
  assert.equal((await new DnsLookups(c).tlsa('mx.example')).kind, 'bogus');
  assert.equal(second.seen.length, 0);
});

test('dns client: REFUSED moves on to the next server; refused everywhere is a DnsError of kind refused', async () => {
  const no = await fake((q) => [reply(q, { rcode: RCODE.REFUSED })]);
  const yes = await fake((q) => [reply(q, { answers: [a(qname(q), '192.0.2.1')] })]);
  assert.equal((await new DnsClient({ servers: [no.server, yes.server], timeoutMs: 500 }).query('x.example', 'A')).rcode, 'NOERROR');
  await rejectsWith(new DnsClient({ servers: [no.server], timeoutMs: 500 }).query('x.example', 'A'), 'refused');
});

test('dns client: a malformed answer is a DnsError of kind malformed (no crash), and the next server is asked', async () => {
  const garbage = await fake((q) => {
    const bytes = reply(q, { answers: [a(qname(q), '192.0.2.1')] });
    return [bytes.subarray(0, bytes.length - 3), Buffer.from([q.id! >> 8, q.id! & 0xff, 0x81])];
  });
  await rejectsWith(new DnsClient({ servers: [garbage.server], timeoutMs: 500 }).query('x.example', 'A'), 'malformed');
  const good = await fake((q) => [reply(q, { answers: [a(qname(q), '192.0.2.1')] })]);
  const r = await new DnsClient({ servers: [garbage.server, good.server], timeoutMs: 500 }).query('x.example', 'A');
  assert.equal(r.server.port, good.server.port);
  // dns-packet alone would decode a TLSA record cut short as a shorter digest: the framing check stops it.
  const cutTlsa = await fake((q) => {
    const bytes = reply(q, { flags: FLAG.AD, answers: [{ type: 'TLSA', name: qname(q), ttl: 60, class: 'IN', data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 1) } }] });
    return [bytes.subarray(0, bytes.length - 5)];
  });
  await rejectsWith(new DnsClient({ servers: [cutTlsa.server], timeoutMs: 500 }).query('_25._tcp.mx.example', 'TLSA'), 'malformed');
  // Over TCP too: a truncated UDP answer, then garbage on the stream.
  const tcpGarbage = await fake((q, via) => (via === 'udp' ? [reply(q, { flags: FLAG.TC })] : [Buffer.from([q.id! >> 8, q.id! & 0xff, 1, 2, 3])]));
  await rejectsWith(new DnsClient({ servers: [tcpGarbage.server], timeoutMs: 500 }).query('x.example', 'A'), 'malformed');
});

test('dns client: names that are not valid are refused before anything is sent', async () => {
  const f = await fake((q) => [reply(q)]);
  const c = new DnsClient({ servers: [f.server], timeoutMs: 500 });
  for (const bad of ['', '.', 'a..b', 'exa mple.com', '-x.example', 'x-.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}b`, 'ex\u00e4mple.com']) {
    await rejectsWith(c.query(bad, 'A'), 'name');
  }
  assert.equal(f.seen.length, 0);
  assert.equal(canonicalHost('MX1.Example.COM.'), 'mx1.example.com');
  assert.equal(canonicalHost('10.0.0.1'), undefined, 'an IP address is not a host name');
  assert.equal(canonicalHost('_25._tcp.mx.example'), undefined, 'a host name has no service labels');
  await rejectsWith(new DnsLookups(c).mx('bad_domain.example'), 'name');
});

test('dns client: bad options are refused', () => {
  assert.throws(() => new DnsClient({ servers: [], timeoutMs: 100 }), TypeError);
  assert.throws(() => new DnsClient({ servers: [{ host: 'resolver.example', port: 53 }], timeoutMs: 100 }), TypeError);
  assert.throws(() => new DnsClient({ servers: [{ host: '127.0.0.1', port: 0 }], timeoutMs: 100 }), TypeError);
  assert.throws(() => new DnsClient({ servers: [{ host: '127.0.0.1', port: 53 }], timeoutMs: 0 }), TypeError);
});

// ---- lookups: reading the answers ----------------------------------------

type Zone = Record<string, { rcode?: number; ad?: boolean; answers?: Answer[] }>;

/** A fake that answers from a table keyed "name TYPE". */
async function zone(table: Zone): Promise<DnsLookups> {
  const f = await fake((q) => {
    const e = table[`${qname(q)} ${q.questions![0].type}`];
    return [reply(q, e ? { rcode: e.rcode, flags: e.ad ? FLAG.AD : 0, answers: e.answers } : { rcode: RCODE.NXDOMAIN })];
  });
  return new DnsLookups(new DnsClient({ servers: [f.server], timeoutMs: 500 }));
}

test('lookups: MX hosts sorted by preference and de-duplicated; a null MX; an implicit MX; nodata; nxdomain', async () => {
  const mx = (name: string, preference: number, exchange: string): Answer => ({ type: 'MX', name, ttl: 60, class: 'IN', data: { preference, exchange } });
  const l = await zone({
    'a.example MX': { ad: true, answers: [mx('a.example', 20, 'MX2.a.example.'), mx('a.example', 10, 'mx1.a.example'), mx('a.example', 30, 'mx1.a.example')] },
    'null.example MX': { ad: true, answers: [mx('null.example', 0, '.')] },
    'implicit.example MX': { ad: true },
    'implicit.example A': { ad: true, answers: [a('implicit.example', '192.0.2.5')] },
    'implicit.example AAAA': { ad: false },
    'empty.example MX': {},
    'empty.example A': {},
    'empty.example AAAA': {},
    'junk.example MX': { answers: [mx('junk.example', 10, 'bad_name.example'), mx('junk.example', 20, '192.0.2.1')] },
    'fail.example MX': { rcode: RCODE.SERVFAIL },
  });
  assert.deepEqual(await l.mx('A.Example.'), { kind: 'mx', secure: true, hosts: [{ exchange: 'mx1.a.example', preference: 10 }, { exchange: 'mx2.a.example', preference: 20 }] });
  assert.deepEqual(await l.mx('null.example'), { kind: 'null-mx', secure: true });
  assert.deepEqual(await l.mx('implicit.example'), { kind: 'implicit', secure: false }, 'secure only when MX, A and AAAA all are');
  assert.deepEqual(await l.mx('empty.example'), { kind: 'nodata', secure: false });
  assert.deepEqual(await l.mx('nowhere.example'), { kind: 'nxdomain', secure: false });
  assert.equal((await l.mx('junk.example')).kind, 'temp', 'MX names that are not host names defer, as in Postfix');
  assert.deepEqual(await l.mx('fail.example'), { kind: 'temp', reason: 'servfail', detail: (await l.mx('fail.example') as { detail: string }).detail });
});

test('lookups: CNAME chains in the answer are followed; records at other owners are ignored', async () => {
  const cname = (name: string, data: string): Answer => ({ type: 'CNAME', name, ttl: 60, class: 'IN', data });
  const l = await zone({
    'www.example A': { ad: true, answers: [cname('www.example', 'web.example'), cname('web.example', 'host.example'), a('host.example', '192.0.2.10'), a('evil.example', '203.0.113.1')] },
    'www.example AAAA': { ad: true, answers: [cname('www.example', 'web.example'), cname('web.example', 'host.example')] },
    'loop.example A': { answers: [cname('loop.example', 'loop2.example'), cname('loop2.example', 'loop.example'), a('loop.example', '203.0.113.2')] },
    'loop.example AAAA': {},
  });
  assert.deepEqual(await l.addresses('www.example'), { kind: 'addresses', ipv4: ['192.0.2.10'], ipv6: [], secure: true });
  assert.deepEqual(await l.addresses('loop.example'), { kind: 'addresses', ipv4: [], ipv6: [], secure: false });
});

test('lookups: TLSA is secure, insecure, none-secure or bogus by rcode and AD bit', async () => {
  const tlsa = (name: string): Answer => ({ type: 'TLSA', name, ttl: 60, class: 'IN', data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 0xab) } });
  const l = await zone({
    '_25._tcp.s.example TLSA': { ad: true, answers: [tlsa('_25._tcp.s.example')] },
    '_25._tcp.u.example TLSA': { ad: false, answers: [tlsa('_25._tcp.u.example')] },
    '_25._tcp.n.example TLSA': { ad: true },
    '_25._tcp.x.example TLSA': { ad: true, rcode: RCODE.NXDOMAIN },
    '_25._tcp.b.example TLSA': { rcode: RCODE.SERVFAIL },
    '_465._tcp.s.example TLSA': { ad: true, answers: [tlsa('_465._tcp.s.example')] },
  });
  assert.deepEqual(await l.tlsa('s.example'), { kind: 'secure', records: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 0xab) }] });
  assert.equal((await l.tlsa('s.example', 465)).kind, 'secure');
  assert.deepEqual(await l.tlsa('u.example'), { kind: 'insecure' });
  assert.deepEqual(await l.tlsa('n.example'), { kind: 'none-secure' });
  assert.deepEqual(await l.tlsa('x.example'), { kind: 'none-secure' });
  assert.deepEqual(await l.tlsa('b.example'), { kind: 'bogus' });
  assert.deepEqual(await l.tlsa('nothing.example'), { kind: 'insecure' }, 'an unsigned NXDOMAIN');
});

test('lookups: TXT character-strings are joined per record', async () => {
  const txt = (data: string[]): Answer => ({ type: 'TXT', name: '_mta-sts.example', ttl: 60, class: 'IN', data });
  const l = await zone({ '_mta-sts.example TXT': { ad: true, answers: [txt(['v=STSv1; ', 'id=2024']), txt(['other'])] } });
  assert.deepEqual(await l.txt('_mta-sts.example'), { kind: 'txt', records: ['v=STSv1; id=2024', 'other'], secure: true });
  assert.deepEqual(await l.txt('_mta-sts.nowhere.example'), { kind: 'nxdomain', secure: false });
});

test('lookups: a timeout is a temp result, not an exception', async () => {
  const dead = await fake(silent);
  const l = new DnsLookups(new DnsClient({ servers: [dead.server], timeoutMs: 100 }));
  assert.equal((await l.mx('x.example')).kind, 'temp');
  assert.deepEqual(await l.tlsa('x.example').then((r) => r.kind === 'temp' && r.reason), 'timeout');
});
