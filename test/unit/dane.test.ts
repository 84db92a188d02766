/*
 * The DANE verifier (src/tls/tlsa.ts, dane.ts, peer-chain.ts): a HIT and a
 * MISS for every usage x selector x matching type, the near misses (one
 * flipped bit, a certificate from another CA), the DANE-TA checks (name,
 * expiry, chain, TA not sent), the records that are unusable, digest
 * agility, wildcards, and a real TLS handshake over loopback.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { TestPki, type Issued } from '../helpers/test-pki';
import { isUsable, selected, tlsaMatches, usable, type TlsaRecord } from '../../src/tls/tlsa';
import { MAX_PRESENTED, verifyDane, type DaneResult } from '../../src/tls/dane';
import { DANE_CONNECT_OPTIONS, peerChain } from '../../src/tls/peer-chain';

const pki = new TestPki();
const other = new TestPki('other');
after(() => {
  for (const p of [pki, other]) rmSync(p.dir, { recursive: true, force: true });
});

const MX = 'mx.example.test';
const DAY = 86400_000;
const mx = pki.leaf('mx', { names: [MX] });
const rsa = pki.leaf('rsa', { names: [MX], keyType: 'rsa', issuer: 'root' });
const self = pki.leaf('self', { names: ['self.example.test'], issuer: 'self' });
const expired = pki.leaf('expired', { names: [MX], days: -1 });
const long = pki.leaf('long', { names: [MX], days: 60 });
const wild = pki.leaf('wild', { names: ['*.example.test'] });
const partial = pki.leaf('partial', { names: ['mx*.example.test'] });
const stranger = other.leaf('stranger', { names: [MX] });

/**
 * A certificate the test PKI will not make: signed by `issuer` (key file),
 * with the given extensions. For an issuer that is not a CA.
 */
function forged(label: string, subject: string, issuer: { certFile: string; keyFile: string }, ext: string[]): { x509: X509Certificate; certFile: string; keyFile: string } {
  const at = (f: string) => join(pki.dir, `${label}.${f}`);
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: pki.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', at('key')]);
  run(['req', '-new', '-key', at('key'), '-subj', subject, '-out', at('csr')]);
  writeFileSync(at('ext'), ext.join('\n') + '\n');
  run(['x509', '-req', '-in', at('csr'), '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', '0x77', '-extfile', at('ext'), '-days', '2', '-out', at('crt')]);
  return { x509: new X509Certificate(readFileSync(at('crt'))), certFile: at('crt'), keyFile: at('key') };
}

const chainOf = (...certs: Issued[]): X509Certificate[] => certs.map((c) => c.x509);
const MX_CHAIN = chainOf(mx, pki.intermediate);

/** The record `usage selector matchingType` for a certificate, as a zone would publish it. */
function rec(usage: number, selector: number, matchingType: number, cert: Issued): TlsaRecord {
  const bytes = selected(selector, cert.x509);
  const data = matchingType === 0 ? bytes : createHash(matchingType === 1 ? 'sha256' : 'sha512').update(bytes).digest();
  return { usage, selector, matchingType, data };
}

/**
 * The same record with its last bit flipped: the nearest miss. For a whole
 * SPKI (x 1 0) that moves the EC point off the curve, so the record is
 * malformed, hence unusable, rather than a miss: nearMiss() says which.
 */
function flipped(r: TlsaRecord): TlsaRecord {
  const data = Buffer.from(r.data);
  data[data.length - 1] ^= 1;
  return { ...r, data };
}

function nearMiss(r: TlsaRecord): (result: DaneResult) => void {
  return r.selector === 1 && r.matchingType === 0 ? (result) => assert.deepEqual(result, { ok: 'no-usable' }) : (result) => assertFailure(result, 'tlsa-invalid');
}

function dane(chain: X509Certificate[], records: TlsaRecord[], names = [MX], now?: Date): DaneResult {
  return verifyDane({ chain, records, names, now });
}

function assertFailure(r: DaneResult, failure: string, detail?: RegExp): void {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (r.ok === false) {
    assert.equal(r.failure, failure, r.detail);
    if (detail) assert.match(r.detail, detail);
  }
}

const COMBINATIONS = [0, 1].flatMap((selector) => [0, 1, 2].map((matchingType) => ({ selector, matchingType })));

describe('DANE-EE(3): the leaf matches', () => {
  for (const { selector, matchingType } of COMBINATIONS) {
    const form = `3 ${selector} ${matchingType}`;
    test(`${form} HIT: the leaf's record`, () => {
      assert.ok(tlsaMatches(rec(3, selector, matchingType, mx), mx.x509));
      assert.deepEqual(dane(MX_CHAIN, [rec(3, selector, matchingType, mx)]), { ok: true, usage: 3, depth: 0, record: rec(3, selector, matchingType, mx) });
    });
    test(`${form} MISS: another CA's leaf with the same name, and the leaf's record with one bit flipped`, () => {
      assertFailure(dane(MX_CHAIN, [rec(3, selector, matchingType, stranger)]), 'tlsa-invalid');
      assert.equal(tlsaMatches(flipped(rec(3, selector, matchingType, mx)), mx.x509), false);
      nearMiss(rec(3, selector, matchingType, mx))(dane(MX_CHAIN, [flipped(rec(3, selector, matchingType, mx))]));
    });
  }

  test('an RSA leaf: HIT on its own record, MISS on the EC leaf\'s', () => {
    assert.equal(dane(chainOf(rsa), [rec(3, 1, 2, rsa)]).ok, true);
    assertFailure(dane(chainOf(rsa), [rec(3, 1, 2, mx)]), 'tlsa-invalid');
  });

  test('the name is not checked: a leaf for another name still passes', () => {
    assert.equal(dane(MX_CHAIN, [rec(3, 1, 1, mx)], ['elsewhere.example.org']).ok, true);
  });

  test('expiry is not checked: an expired leaf, and a self-signed one long after its end', () => {
    assert.equal(dane(chainOf(expired), [rec(3, 0, 1, expired)]).ok, true);
    assert.equal(dane(chainOf(self), [rec(3, 1, 1, self)], [MX], new Date(Date.now() + 30 * DAY)).ok, true);
  });

  test('only the leaf counts: a DANE-EE record of the intermediate matches nothing', () => {
    assertFailure(dane(MX_CHAIN, [rec(3, 1, 1, pki.intermediate)]), 'tlsa-invalid');
  });
});

describe('DANE-TA(2): a certificate above the leaf matches, and the path to it verifies', () => {
  for (const { selector, matchingType } of COMBINATIONS) {
    const form = `2 ${selector} ${matchingType}`;
    test(`${form} HIT: TA = the intermediate`, () => {
      const r = rec(2, selector, matchingType, pki.intermediate);
      assert.deepEqual(dane(MX_CHAIN, [r]), { ok: true, usage: 2, depth: 1, record: r, name: MX });
    });
    test(`${form} MISS: TA = another CA's intermediate, and the right one with one bit flipped`, () => {
      assertFailure(dane(MX_CHAIN, [rec(2, selector, matchingType, other.intermediate)]), 'tlsa-invalid');
      nearMiss(rec(2, selector, matchingType, pki.intermediate))(dane(MX_CHAIN, [flipped(rec(2, selector, matchingType, pki.intermediate))]));
    });
  }

  test('2 1 1 HIT: TA = the root, sent by the server (depth 2), and in any order', () => {
    const r = rec(2, 1, 1, pki.root);
    assert.deepEqual(dane(chainOf(mx, pki.intermediate, pki.root), [r]), { ok: true, usage: 2, depth: 2, record: r, name: MX });
    assert.deepEqual(dane(chainOf(mx, pki.root, pki.intermediate), [r]), { ok: true, usage: 2, depth: 2, record: r, name: MX });
  });

  test('2 0 1 HIT: an RSA leaf straight under the root (depth 1)', () => {
    assert.equal(dane(chainOf(rsa, pki.root), [rec(2, 0, 1, pki.root)]).ok, true);
  });

  test('a DANE-TA record of the leaf itself is no trust anchor (depth 0 is DANE-EE only)', () => {
    assertFailure(dane(MX_CHAIN, [rec(2, 0, 1, mx)]), 'tlsa-invalid');
  });

  test('the name must match: MISS on a foreign name, HIT on the second reference name (the next-hop domain)', () => {
    const r = rec(2, 1, 1, pki.intermediate);
    assertFailure(dane(MX_CHAIN, [r], ['mx.example.org']), 'certificate-host-mismatch');
    assert.deepEqual(dane(MX_CHAIN, [r], ['mx.example.org', MX]), { ok: true, usage: 2, depth: 1, record: r, name: MX });
  });

  test('expiry is checked: an expired leaf, a leaf not yet valid, an intermediate past its end', () => {
    const r = rec(2, 1, 1, pki.intermediate);
    assertFailure(dane(chainOf(expired, pki.intermediate), [r]), 'certificate-expired', /depth 0 expired/);
    assertFailure(dane(MX_CHAIN, [r], [MX], new Date(Date.now() - DAY)), 'certificate-expired', /depth 0 is not valid before/);
    // The leaf lasts 2 days, the intermediate 30: at 40 days the leaf is reported first, as the nearest.
    assertFailure(dane(MX_CHAIN, [r], [MX], new Date(Date.now() + 40 * DAY)), 'certificate-expired', /depth 0/);
  });

  test('a broken chain: a leaf from another CA sent with our intermediate is not trusted; alone, nothing matches', () => {
    const r = rec(2, 1, 1, pki.intermediate);
    assertFailure(dane(chainOf(stranger, pki.intermediate), [r]), 'certificate-not-trusted', /does not verify up to it/);
    assertFailure(dane(chainOf(stranger), [r]), 'tlsa-invalid');
  });

  test('an issuer that is not a CA breaks the path, though it may sign certificates', () => {
    const notCa = forged('not-ca', '/CN=not a CA', pki.intermediate, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,keyCertSign']);
    const under = forged('under-not-ca', `/CN=${MX}`, notCa, [`subjectAltName=DNS:${MX}`]);
    const chain = [under.x509, notCa.x509, pki.intermediate.x509];
    assertFailure(dane(chain, [rec(2, 1, 1, pki.intermediate)]), 'certificate-not-trusted', /depth 1 is not a CA/);
  });

  test('a self-signed leaf is not its own DANE-TA anchor', () => {
    assertFailure(dane(chainOf(self), [rec(2, 0, 1, self)], ['self.example.test']), 'tlsa-invalid');
  });
});

describe('DANE-TA(2) with the TA not sent by the server (RFC 7671 5.2.2)', () => {
  test('2 0 0 HIT: the root, carried whole by the record, signed the intermediate', () => {
    const r = rec(2, 0, 0, pki.root);
    assert.deepEqual(dane(MX_CHAIN, [r]), { ok: true, usage: 2, depth: 2, record: r, name: MX });
  });
  test('2 1 0 HIT: the intermediate\'s bare key signed the leaf, sent alone', () => {
    const r = rec(2, 1, 0, pki.intermediate);
    assert.deepEqual(dane(chainOf(mx), [r]), { ok: true, usage: 2, depth: 1, record: r, name: MX });
  });
  test('MISS: a digest record cannot stand in for a TA the server did not send; another CA\'s whole root signs nothing here', () => {
    assertFailure(dane(MX_CHAIN, [rec(2, 0, 1, pki.root)]), 'tlsa-invalid');
    assertFailure(dane(MX_CHAIN, [rec(2, 0, 0, other.root)]), 'tlsa-invalid');
    assertFailure(dane(chainOf(mx), [rec(2, 1, 0, other.intermediate)]), 'tlsa-invalid');
  });
  test('the TA certificate is checked for expiry too, sent or carried by the record', () => {
    // A leaf for 60 days under an intermediate for 30: at 35 days only the TA is past its end.
    const later = new Date(Date.now() + 35 * DAY);
    assert.equal(dane(chainOf(long), [rec(2, 0, 0, pki.intermediate)]).ok, true);
    assertFailure(dane(chainOf(long), [rec(2, 0, 0, pki.intermediate)], [MX], later), 'certificate-expired', /depth 1 expired/);
    assertFailure(dane(chainOf(long, pki.intermediate), [rec(2, 1, 1, pki.intermediate)], [MX], later), 'certificate-expired', /depth 1 expired/);
    // A bare key has no dates: only the leaf's count.
    assert.equal(dane(chainOf(long), [rec(2, 1, 0, pki.intermediate)], [MX], later).ok, true);
  });
});

describe('usable records', () => {
  test('usages 0 and 1 only: no usable record (the caller behaves as encrypt)', () => {
    assert.deepEqual(dane(MX_CHAIN, [rec(0, 1, 1, pki.root), rec(1, 1, 1, mx)]), { ok: 'no-usable' });
  });
  test('an empty RRset: no usable record', () => {
    assert.deepEqual(dane(MX_CHAIN, []), { ok: 'no-usable' });
  });
  test('an unknown usage, selector or matching type, a digest of the wrong length, full data that does not parse: unusable', () => {
    const good = rec(3, 1, 1, mx);
    const bad: TlsaRecord[] = [
      { ...good, usage: 4 },
      { ...good, selector: 2 },
      { ...good, matchingType: 3 },
      { ...good, matchingType: 255 },
      { ...good, data: good.data.subarray(0, 31) },
      { ...rec(3, 1, 2, mx), data: rec(3, 1, 2, mx).data.subarray(0, 32) },
      { ...rec(3, 0, 0, mx), data: Buffer.concat([mx.x509.raw, Buffer.from([0])]) },
      { usage: 3, selector: 0, matchingType: 0, data: Buffer.from('not a certificate') },
      { usage: 2, selector: 1, matchingType: 0, data: Buffer.from('not a key') },
    ];
    for (const r of bad) assert.equal(isUsable(r), false, `${r.usage} ${r.selector} ${r.matchingType} (${r.data.length} bytes)`);
    assert.deepEqual(dane(MX_CHAIN, bad), { ok: 'no-usable' });
    assert.equal(tlsaMatches({ ...good, usage: 1 }, mx.x509), false, 'an unusable record matches nothing, even with the right digest');
  });
  test('unusable records beside a usable one are ignored: HIT on the usable, MISS when it does not match', () => {
    assert.equal(dane(MX_CHAIN, [rec(1, 1, 1, mx), { ...rec(3, 1, 1, mx), selector: 7 }, rec(3, 1, 1, mx)]).ok, true);
    assertFailure(dane(MX_CHAIN, [rec(1, 1, 1, mx), rec(3, 1, 1, stranger)]), 'tlsa-invalid');
  });
});

describe('digest algorithm agility (RFC 7671 9)', () => {
  test('SHA2-512 beside SHA2-256 for one usage and selector: the SHA2-256 records are ignored', () => {
    const records = [rec(3, 1, 1, mx), rec(3, 1, 2, stranger)];
    assert.deepEqual(usable(records), [records[1]]);
    assertFailure(dane(MX_CHAIN, records), 'tlsa-invalid');
  });
  test('another selector, another usage, or a Full(0) record is not pruned', () => {
    assert.equal(dane(MX_CHAIN, [rec(3, 0, 1, mx), rec(3, 1, 2, stranger)]).ok, true);
    assert.equal(dane(MX_CHAIN, [rec(2, 1, 1, pki.intermediate), rec(3, 1, 2, stranger)]).ok, true);
    assert.equal(dane(MX_CHAIN, [rec(3, 1, 0, mx), rec(3, 1, 2, stranger)]).ok, true);
  });
  test('a malformed SHA2-512 record does not prune a good SHA2-256 one', () => {
    const short = { ...rec(3, 1, 2, stranger), data: Buffer.alloc(10) };
    assert.equal(dane(MX_CHAIN, [rec(3, 1, 1, mx), short]).ok, true);
  });
});

describe('names and wildcards (DANE-TA only)', () => {
  const r = rec(2, 1, 1, pki.intermediate);
  const wildChain = chainOf(wild, pki.intermediate);
  test('"*.example.test" HIT: one whole left-most label', () => {
    assert.equal(dane(wildChain, [r], ['mx.example.test']).ok, true);
  });
  test('"*.example.test" MISS: the parent domain, and two labels', () => {
    assertFailure(dane(wildChain, [r], ['example.test']), 'certificate-host-mismatch');
    assertFailure(dane(wildChain, [r], ['a.mx.example.test']), 'certificate-host-mismatch');
  });
  test('"mx*.example.test" MISS: no partial-label wildcards', () => {
    assertFailure(dane(chainOf(partial, pki.intermediate), [r], ['mx1.example.test']), 'certificate-host-mismatch');
  });
  test('a reference name holding "*" matches nothing, not even the same wildcard', () => {
    assertFailure(dane(wildChain, [r], ['*.example.test']), 'certificate-host-mismatch');
  });
  test('case and a trailing dot do not matter', () => {
    assert.equal(dane(MX_CHAIN, [r], ['MX.Example.TEST.']).ok, true);
  });
});

describe('what the verifier refuses outright', () => {
  test('no certificate, or more than MAX_PRESENTED: validation-failure', () => {
    assertFailure(dane([], [rec(3, 1, 1, mx)]), 'validation-failure');
    const long = [mx.x509, ...Array.from({ length: MAX_PRESENTED }, () => pki.intermediate.x509)];
    assertFailure(dane(long, [rec(3, 1, 1, mx)]), 'validation-failure');
  });
  test('no reference name is a caller bug and throws', () => {
    assert.throws(() => verifyDane({ chain: MX_CHAIN, records: [rec(3, 1, 1, mx)], names: [] }), TypeError);
  });
});

describe('a real TLS handshake over loopback', () => {
  async function handshake(server: Issued, ca = false): Promise<X509Certificate[]> {
    const srv = createServer({ key: server.key, cert: ca ? server.chain + pki.root.cert : server.chain });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    try {
      const { port } = srv.address() as AddressInfo;
      const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername: MX, ...DANE_CONNECT_OPTIONS });
      await once(socket, 'secureConnect');
      const chain = peerChain(socket);
      socket.destroy();
      return chain;
    } finally {
      srv.close();
    }
  }

  test('a leaf and intermediate from a private CA: the presented chain, DANE-TA and DANE-EE HIT, a wrong record MISS', async () => {
    const chain = await handshake(mx);
    assert.deepEqual(chain.map((c) => c.fingerprint256), MX_CHAIN.map((c) => c.fingerprint256));
    assert.equal(verifyDane({ chain, records: [rec(2, 0, 1, pki.intermediate)], names: [MX] }).ok, true);
    assert.equal(verifyDane({ chain, records: [rec(3, 1, 1, mx)], names: [MX] }).ok, true);
    assertFailure(verifyDane({ chain, records: [rec(3, 1, 1, stranger)], names: [MX] }), 'tlsa-invalid');
  });

  test('a self-signed leaf passes DANE-EE though Node alone would refuse it', async () => {
    const chain = await handshake(self);
    assert.equal(chain.length, 1);
    assert.equal(verifyDane({ chain, records: [rec(3, 1, 2, self)], names: [MX] }).ok, true);
  });

  test('a server that sends its root too: the walk stops where the root names itself', async () => {
    const chain = await handshake(mx, true);
    assert.equal(chain.length, 3);
    assert.equal(verifyDane({ chain, records: [rec(2, 1, 1, pki.root)], names: [MX] }).ok, true);
  });
});
