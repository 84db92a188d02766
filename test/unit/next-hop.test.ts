/*
 * The next-hop client against a scripted server: reply parsing, the EHLO
 * fallback, and above all that a failing body never gets its final dot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { NextHopConnection, NextHopError } from '../../src/smtp/next-hop';

type Script = (line: string, sock: Socket) => string | undefined;

async function fakeServer(script: Script, greeting = '220 fake ESMTP\r\n') {
  const received: string[] = [];
  const server = createServer((sock) => {
    sock.write(greeting);
    let buf = '';
    let inData = false;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        received.push(line);
        if (inData) {
          if (line === '.') {
            inData = false;
            sock.write(script('.', sock) ?? '250 2.0.0 Ok: queued\r\n');
          }
          continue;
        }
        const out = script(line, sock);
        if (line === 'DATA' && (out ?? '').startsWith('354')) inData = true;
        if (out) sock.write(out);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { port, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const opts = (port: number) => ({ host: '127.0.0.1', port, helo: 'mv.test', connectTimeout: 2000, commandTimeout: 500, writeTimeout: 1000, dataTimeout: 1000 });

const ehloOk: Script = (line) => {
  if (line.startsWith('EHLO')) return '250-fake\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-XFORWARD NAME ADDR\r\n250 8BITMIME\r\n';
  if (line === 'DATA') return '354 go\r\n';
  return line === '.' ? undefined : '250 2.1.0 Ok\r\n';
};

test('EHLO extensions are parsed, multi-line replies joined', async () => {
  const srv = await fakeServer(ehloOk);
  const c = await NextHopConnection.open(opts(srv.port));
  assert.ok(c.supports('size') && c.supports('8BITMIME'));
  assert.equal(c.extensions.get('XFORWARD'), 'NAME ADDR');
  const r = await c.command('MAIL FROM:<a@example.com>');
  assert.deepEqual(r, { code: 250, enhanced: '2.1.0', text: 'Ok' });
  c.quit();
  await srv.close();
});

test('a server that refuses EHLO gets HELO', async () => {
  const srv = await fakeServer((line) => (line.startsWith('EHLO') ? '502 5.5.1 no\r\n' : '250 ok\r\n'));
  const c = await NextHopConnection.open(opts(srv.port));
  assert.equal(c.extensions.size, 0);
  assert.ok(srv.received.includes('HELO mv.test'));
  c.quit();
  await srv.close();
});

test('the body goes out as given and the final dot follows only a complete body', async () => {
  const srv = await fakeServer(ehloOk);
  const c = await NextHopConnection.open(opts(srv.port));
  await c.command('MAIL FROM:<a@example.com>');
  const r = await c.data(Readable.from([Buffer.from('Subject: a\r\n\r\nline\r\n')]));
  assert.equal(r.code, 250);
  assert.deepEqual(srv.received.slice(-5), ['DATA', 'Subject: a', '', 'line', '.']);
  c.quit();
  await srv.close();
});

test('a body that fails midway never gets its final dot, and the connection is dropped', async () => {
  const srv = await fakeServer(ehloOk);
  const c = await NextHopConnection.open(opts(srv.port));
  await c.command('MAIL FROM:<a@example.com>');
  const failing = Readable.from(
    (async function* () {
      yield Buffer.from('Subject: a\r\n\r\npart one\r\n');
      throw new Error('spool read failed');
    })(),
  );
  await assert.rejects(c.data(failing), (e: NextHopError) => e.kind === 'aborted');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!srv.received.includes('.'), 'the final dot was sent for a broken body');
  assert.equal(c.usable, false);
  await srv.close();
});

test('no reply within the command timeout: timeout error, connection unusable', async () => {
  const srv = await fakeServer((line) => (line.startsWith('EHLO') ? '250 fake\r\n' : undefined));
  const c = await NextHopConnection.open(opts(srv.port));
  await assert.rejects(c.command('MAIL FROM:<a@example.com>'), (e: NextHopError) => e.kind === 'timeout');
  assert.equal(c.usable, false);
  await srv.close();
});

test('an unsolicited 421 while idle makes the connection unusable', async () => {
  let sockRef: Socket | undefined;
  const srv = await fakeServer((line, sock) => {
    sockRef = sock;
    return line.startsWith('EHLO') ? '250 fake\r\n' : '250 ok\r\n';
  });
  const c = await NextHopConnection.open(opts(srv.port));
  sockRef!.write('421 4.3.2 shutting down\r\n');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(c.usable, false);
  await srv.close();
});

test('a refused connection is a connect error', async () => {
  const srv = await fakeServer(ehloOk);
  const port = srv.port;
  await srv.close();
  await assert.rejects(NextHopConnection.open(opts(port)), (e: NextHopError) => e.kind === 'connect');
});

test('a command containing a line break is never sent', async () => {
  const srv = await fakeServer(ehloOk);
  const c = await NextHopConnection.open(opts(srv.port));
  await assert.rejects(c.command('MAIL FROM:<a@example.com>\r\nRCPT TO:<x@example.net>'), /line break/);
  c.quit();
  await srv.close();
});

test('pipelined commands: replies that arrive together are handed out in order', async () => {
  // The server answers both commands in a single write, as a pipelining server may.
  const srv = await fakeServer((line) => {
    if (line.startsWith('EHLO')) return '250-fake\r\n250 PIPELINING\r\n';
    if (line.startsWith('XFORWARD')) return undefined;
    if (line.startsWith('MAIL')) return '250 2.0.0 xforward ok\r\n250 2.1.0 sender ok\r\n';
    return '250 ok\r\n';
  });
  const c = await NextHopConnection.open(opts(srv.port));
  const [x, m] = await c.commands(['XFORWARD ADDR=192.0.2.1', 'MAIL FROM:<a@example.com>']);
  assert.equal(x.text, 'xforward ok');
  assert.equal(m.text, 'sender ok');
  assert.ok(c.usable);
  assert.equal((await c.command('RCPT TO:<b@example.net>')).code, 250);
  c.quit();
  await srv.close();
});
