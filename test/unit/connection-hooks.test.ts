/*
 * The additions to smtp-server's connection (src/smtp/connection-hooks.ts)
 * rely on its internals; this fails if an upgrade changes them: a control
 * character in MAIL/RCPT gets 501 5.5.2, an idle timeout is reported, each
 * command verb is reported, and a session's connection can be found.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { SMTPServer } from 'smtp-server';
import { connectionOf, observeConnections } from '../../src/smtp/connection-hooks';

async function start(socketTimeout: number) {
  const events: string[] = [];
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    socketTimeout,
    onMailFrom: (_a, _s, cb) => cb(),
    onRcptTo: (_a, _s, cb) => cb(),
  });
  observeConnections(server, {
    idleTimeout: (s) => events.push(`idle ${s.id}`),
    command: (_s, verb) => events.push(verb),
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return { server, port, events, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A raw client that collects reply lines. */
async function client(port: number): Promise<{ sock: Socket; next(): Promise<string> }> {
  const sock = connect(port, '127.0.0.1');
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (/^\d{3}-/.test(line)) continue;
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  await once(sock, 'connect');
  return { sock, next: () => (lines.length ? Promise.resolve(lines.shift()!) : new Promise((r) => waiters.push(r))) };
}

test('a bare CR or another control character in MAIL or RCPT gets 501 5.5.2; clean lines pass', async () => {
  const srv = await start(5000);
  const c = await client(srv.port);
  assert.match(await c.next(), /^220 /);
  c.sock.write('EHLO client.example.org\r\n');
  assert.match(await c.next(), /^250 /);
  c.sock.write('MAIL FROM:<a@example.com>\rRCPT TO:<b@example.net>\r\n');
  assert.match(await c.next(), /^501 5\.5\.2 /);
  c.sock.write('MAIL FROM:<a@example.com>\r\n');
  assert.match(await c.next(), /^250 /);
  c.sock.write('RCPT TO:<b@example.net>\x00\r\n');
  assert.match(await c.next(), /^501 5\.5\.2 /);
  c.sock.write('RCPT TO:<b@example.net>\r\n');
  assert.match(await c.next(), /^250 /);
  assert.deepEqual(srv.events.filter((e) => !e.startsWith('idle')), ['EHLO', 'MAIL', 'MAIL', 'RCPT', 'RCPT']);
  const [conn] = srv.server.connections;
  assert.equal(connectionOf(srv.server, conn.id), conn);
  assert.equal(connectionOf(srv.server, 'no-such-session'), undefined);
  c.sock.destroy();
  await srv.close();
});

test('an idle client is reported once when smtp-server times it out', async () => {
  const srv = await start(200);
  const c = await client(srv.port);
  assert.match(await c.next(), /^220 /);
  assert.match(await c.next(), /^421 /);
  assert.equal(srv.events.filter((e) => e.startsWith('idle')).length, 1);
  c.sock.destroy();
  await srv.close();
});
