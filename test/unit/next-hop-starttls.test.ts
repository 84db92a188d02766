/*
 * STARTTLS on the next-hop client (RFC 3207) against a scripted server:
 * a reply pipelined after "220 ready to start TLS" is refused (reply
 * injection, CVE-2011-0411 style), the EHLO keywords learnt in plain text
 * are discarded and EHLO is sent again, STARTTLS is never pipelined, and
 * at `may` a failed handshake falls back to one plain-text connection.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { NextHopConnection, NextHopError, type NextHopOptions } from '../../src/smtp/next-hop';
import { nextHopTls, type TlsOutcome } from '../../src/smtp/next-hop-tls';
import { TestPki, type Issued } from '../helpers/test-pki';

let pki: TestPki;
let leaf: Issued;
before(() => {
  pki = new TestPki('starttls unit');
  leaf = pki.leaf('hop', { names: ['hop.example.test'] });
});

interface Script {
  /** EHLO reply in plain text. */
  plainEhlo: string;
  /** What to write in answer to STARTTLS (default the bare 220). */
  starttls?: string;
  /** EHLO reply once TLS is up. */
  tlsEhlo?: string;
  /** Answer STARTTLS with 220, then close instead of a handshake. */
  noHandshake?: boolean;
}

/** A next hop that speaks STARTTLS; records every command line with whether it came over TLS, and each raw read. */
async function fakeTlsServer(script: Script) {
  const received: { line: string; tls: boolean }[] = [];
  const reads: string[] = [];
  let connections = 0;
  const server = createServer((raw) => {
    connections++;
    raw.on('error', () => undefined);
    raw.write('220 fake ESMTP\r\n');
    const serve = (sock: Socket, secure: boolean) => {
      let buf = '';
      const onData = (d: Buffer) => {
        reads.push(d.toString('latin1'));
        buf += d.toString('latin1');
        let nl: number;
        while ((nl = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          received.push({ line, tls: secure });
          if (/^EHLO /.test(line)) sock.write(secure ? (script.tlsEhlo ?? '250-fake\r\n250 8BITMIME\r\n') : script.plainEhlo);
          else if (line === 'STARTTLS' && !secure) {
            sock.write(script.starttls ?? '220 2.0.0 ready to start TLS\r\n');
            if (script.noHandshake) {
              sock.end();
              return;
            }
            sock.off('data', onData);
            const tls = new TLSSocket(sock, { isServer: true, key: leaf.key, cert: leaf.chain });
            tls.on('error', () => undefined);
            serve(tls, true);
            return;
          } else if (line === 'QUIT') sock.end('221 bye\r\n');
          else sock.write('250 2.0.0 Ok\r\n');
        }
      };
      sock.on('data', onData);
    };
    serve(raw, false);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { port, received, reads, connections: () => connections, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function opts(port: number, level: 'may' | 'encrypt' | 'verify', outcomes: TlsOutcome[], violations: string[] = []): NextHopOptions {
  return {
    host: '127.0.0.1',
    port,
    helo: 'mv.test',
    connectTimeout: 2000,
    commandTimeout: 2000,
    writeTimeout: 1000,
    dataTimeout: 1000,
    tls: nextHopTls({ level, ca_file: { path: pki.caFile, pem: pki.root.cert }, servername: 'hop.example.test', cert: null, key: null }, null),
    onTls: (o) => outcomes.push(o),
    onViolation: (w) => violations.push(w),
  };
}

const PLAIN_EHLO = '250-fake\r\n250-PIPELINING\r\n250-XFORWARD NAME ADDR\r\n250-STARTTLS\r\n250 SIZE 1000\r\n';

test('a reply pipelined after "220 ready to start TLS" is refused: protocol violation, no handshake, nothing more sent', async () => {
  for (const level of ['may', 'verify'] as const) {
    const srv = await fakeTlsServer({ plainEhlo: PLAIN_EHLO, starttls: '220 2.0.0 ready to start TLS\r\n250-injected\r\n250 XFORWARD NAME ADDR\r\n' });
    const outcomes: TlsOutcome[] = [];
    const violations: string[] = [];
    await assert.rejects(NextHopConnection.open(opts(srv.port, level, outcomes, violations)), (err: unknown) => {
      assert.ok(err instanceof NextHopError);
      assert.equal(err.kind, 'protocol', `${level}: ${err.message}`);
      assert.match(err.message, /reply injection/);
      return true;
    });
    assert.equal(violations.length, 1);
    assert.match(violations[0], /after the 220 reply to STARTTLS/);
    // Not even at may is an injection a reason to go on in plain text.
    assert.equal(srv.connections(), 1, `${level}: no second (plain) connection`);
    assert.deepEqual(srv.received.map((r) => r.line), ['EHLO mv.test', 'STARTTLS'], 'nothing after STARTTLS');
    await srv.close();
  }
});

test('the same injection split across packets (a second write right after the 220) is refused too', async () => {
  // STARTTLS answered with 220 and, in a separate write, an injected reply.
  const inj = await (async () => {
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.write('220 fake ESMTP\r\n');
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        let nl: number;
        while ((nl = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          if (/^EHLO/.test(line)) sock.write(PLAIN_EHLO);
          else if (line === 'STARTTLS') {
            sock.write('220 ready\r\n');
            setImmediate(() => sock.write('250 injected\r\n'));
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
  })();
  const outcomes: TlsOutcome[] = [];
  // The client starts its handshake on the 220; the later plain bytes then reach the TLS layer and fail it.
  await assert.rejects(NextHopConnection.open(opts(inj.port, 'encrypt', outcomes)), (err: unknown) => err instanceof NextHopError && (err.kind === 'tls' || err.kind === 'protocol'));
  await inj.close();
});

test('after the handshake the plain-text EHLO keywords are discarded and EHLO is sent again, over TLS; STARTTLS is sent alone', async () => {
  const srv = await fakeTlsServer({ plainEhlo: PLAIN_EHLO, tlsEhlo: '250-fake\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n' });
  const outcomes: TlsOutcome[] = [];
  const c = await NextHopConnection.open(opts(srv.port, 'verify', outcomes));
  assert.deepEqual(srv.received, [
    { line: 'EHLO mv.test', tls: false },
    { line: 'STARTTLS', tls: false },
    { line: 'EHLO mv.test', tls: true },
  ]);
  assert.ok(srv.reads.includes('STARTTLS\r\n'), 'STARTTLS in a write of its own');
  assert.deepEqual([...c.extensions.keys()].sort(), ['8BITMIME', 'SMTPUTF8'], 'only what the TLS EHLO said');
  assert.ok(!c.supports('XFORWARD') && !c.supports('PIPELINING') && !c.supports('STARTTLS'));
  assert.equal(outcomes.length, 1);
  assert.equal(outcomes[0].result, 'ok');
  assert.equal(outcomes[0].verified, true);
  assert.match(String(outcomes[0].protocol), /^TLSv1\.[23]$/);
  assert.deepEqual(c.tls, outcomes[0]);
  const r = await c.command('MAIL FROM:<a@example.com>');
  assert.equal(r.code, 250);
  assert.deepEqual(srv.received.at(-1), { line: 'MAIL FROM:<a@example.com>', tls: true });
  c.quit();
  await srv.close();
});

test('may: a failed handshake is reported, then one plain connection is used and counted downgraded; encrypt refuses with kind tls', async () => {
  const srv = await fakeTlsServer({ plainEhlo: PLAIN_EHLO, noHandshake: true });
  const outcomes: TlsOutcome[] = [];
  const c = await NextHopConnection.open(opts(srv.port, 'may', outcomes));
  assert.equal(srv.connections(), 2);
  assert.deepEqual(outcomes.map((o) => o.result), ['validation-failure', 'downgraded']);
  assert.equal(c.tls?.result, 'downgraded');
  assert.ok(c.supports('XFORWARD'), 'plain EHLO keywords on the plain connection');
  c.quit();
  const enc: TlsOutcome[] = [];
  await assert.rejects(NextHopConnection.open(opts(srv.port, 'encrypt', enc)), (err: unknown) => {
    assert.ok(err instanceof NextHopError);
    assert.equal(err.kind, 'tls');
    assert.deepEqual(err.tls, { level: 'encrypt', result: 'validation-failure' });
    return true;
  });
  assert.deepEqual(enc.map((o) => o.result), ['validation-failure']);
  await srv.close();
});
