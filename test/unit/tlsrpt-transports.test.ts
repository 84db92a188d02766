/*
 * The two ways a TLS-RPT report leaves, against loopback servers:
 *  - postReport (src/tlsrpt/report-https.ts): 2xx is sent; a 3xx is not
 *    followed; a 4xx is permanent except 408/429; a 5xx, a certificate for
 *    another name and an untrusted CA are retried; the host is looked up
 *    through the given lookup, never the system resolver;
 *  - sendReportMail (src/operations/tlsrpt-submit.ts): the next hop's reply
 *    decides: 250 sent, 4xx retried, 5xx given up, a refused connection
 *    retried.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { postReport } from '../../src/tlsrpt/report-https';
import { sendReportMail } from '../../src/operations/tlsrpt-submit';
import type { NextHopOptions } from '../../src/smtp/next-hop';
import { TestPki } from '../helpers/test-pki';
import { freePort, LOOPBACK } from '../helpers/ports';

let pki: TestPki;
let other: TestPki;
let web: Server;
let port = 0;
const seen: { path: string; type?: string; length: number }[] = [];

before(async () => {
  pki = new TestPki('tlsrpt https');
  other = new TestPki('someone else');
  const cert = pki.leaf('web', { names: ['reports.example.test'] });
  web = createServer({ cert: cert.chain, key: cert.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', type: req.headers['content-type'], length: Buffer.concat(chunks).length });
      const status = Number((req.url ?? '').split('/')[1]) || 200;
      res.writeHead(status, status === 302 ? { location: 'https://elsewhere.example.test/' } : {}).end('x'.repeat(10));
    });
  });
  await new Promise<void>((resolve) => web.listen(0, LOOPBACK, resolve));
  port = (web.address() as AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
});

const gz = Buffer.from('not really gzip, the server does not care');
const lookups: string[] = [];
const lookup = async (host: string) => {
  lookups.push(host);
  return '127.0.0.1';
};

test('postReport: 2xx is sent, with the report media type; the host goes through the given lookup', async () => {
  const r = await postReport(new URL(`https://reports.example.test:${port}/202/tlsrpt?x=1`), gz, { lookup, ca: pki.root.cert });
  assert.deepEqual(r, { kind: 'sent', status: 202 });
  assert.deepEqual(seen.at(-1), { path: '/202/tlsrpt?x=1', type: 'application/tlsrpt+gzip', length: gz.length });
  assert.deepEqual(lookups, ['reports.example.test']);
});

test('postReport: a redirect is not followed; 4xx is permanent but 408 and 429; 5xx is retried', async () => {
  const at = (status: number) => postReport(new URL(`https://reports.example.test:${port}/${status}`), gz, { lookup, ca: pki.root.cert });
  assert.deepEqual(await at(302), { kind: 'failed', permanent: false, status: 302, detail: 'HTTP 302; redirects are not followed' });
  assert.equal(seen.filter((s) => s.path === '/').length, 0);
  assert.deepEqual(await at(404), { kind: 'failed', permanent: true, status: 404, detail: 'HTTP 404' });
  assert.deepEqual(await at(429), { kind: 'failed', permanent: false, status: 429, detail: 'HTTP 429' });
  assert.deepEqual(await at(408), { kind: 'failed', permanent: false, status: 408, detail: 'HTTP 408' });
  assert.deepEqual(await at(503), { kind: 'failed', permanent: false, status: 503, detail: 'HTTP 503' });
});

test('postReport: a certificate for another name, or from a CA not trusted, is not sent to (retried)', async () => {
  const before = seen.length;
  const wrongName = await postReport(new URL(`https://other.example.test:${port}/`), gz, { lookup, ca: pki.root.cert });
  assert.equal(wrongName.kind, 'failed');
  assert.match((wrongName as { detail: string }).detail, /ALTNAME|HOST/i);
  const untrusted = await postReport(new URL(`https://reports.example.test:${port}/`), gz, { lookup, ca: other.root.cert });
  assert.equal(untrusted.kind === 'failed' && untrusted.permanent, false);
  const noCa = await postReport(new URL(`https://reports.example.test:${port}/`), gz, { lookup });
  assert.equal(noCa.kind, 'failed', 'the system store alone does not trust the test CA');
  const noAddress = await postReport(new URL(`https://reports.example.test:${port}/`), gz, { lookup: async () => Promise.reject(Object.assign(new Error('x'), { code: 'dns-servfail' })), ca: pki.root.cert });
  assert.deepEqual(noAddress, { kind: 'failed', permanent: false, status: undefined, detail: 'reports.example.test: dns-servfail' });
  assert.equal(seen.length, before, 'no request reached the server');
});

/* ---------- report mail through the next hop ---------- */

async function hop(rcptReply: (to: string) => Error | undefined): Promise<{ server: SMTPServer; opts: NextHopOptions; got: string[] }> {
  const got: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    disableReverseLookup: true,
    onRcptTo(addr, _s, cb) {
      cb(rcptReply(addr.address) ?? null);
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        got.push(session.envelope.rcptTo.map((r) => r.address).join(','));
        cb(null);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  const p = (server.server.address() as AddressInfo).port;
  return { server, got, opts: { host: LOOPBACK, port: p, helo: 'mx-out.ours.example', connectTimeout: 2000, commandTimeout: 2000, writeTimeout: 2000, dataTimeout: 2000 } };
}

const smtpError = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
const MESSAGE = Buffer.from('From: <tlsrpt@ours.example>\r\nTo: <r@b.example>\r\nSubject: t\r\n\r\nbody\r\n');

test('sendReportMail: 250 is sent; a 4xx RCPT is retried; a 5xx RCPT is given up; nothing is sent after a refused RCPT', async () => {
  const h = await hop((to) => (to.startsWith('later') ? smtpError(451, '4.3.0 try later') : to.startsWith('never') ? smtpError(550, '5.1.1 no such user') : undefined));
  try {
    assert.deepEqual(await sendReportMail(h.opts, 'tlsrpt@ours.example', 'r@b.example', MESSAGE), { kind: 'sent', result: '250' });
    assert.deepEqual(await sendReportMail(h.opts, 'tlsrpt@ours.example', 'later@b.example', MESSAGE), { kind: 'failed', permanent: false, result: '451 4.3.0' });
    assert.deepEqual(await sendReportMail(h.opts, 'tlsrpt@ours.example', 'never@b.example', MESSAGE), { kind: 'failed', permanent: true, result: '550 5.1.1' });
    assert.deepEqual(h.got, ['r@b.example']);
  } finally {
    await new Promise<void>((resolve) => h.server.close(() => resolve()));
  }
});

test('sendReportMail: a next hop that is not there is retried', async () => {
  const p = await freePort();
  const r = await sendReportMail({ host: LOOPBACK, port: p, helo: 'x.example', connectTimeout: 1000, commandTimeout: 1000, writeTimeout: 1000, dataTimeout: 1000 }, 'a@ours.example', 'r@b.example', MESSAGE);
  assert.deepEqual(r, { kind: 'failed', permanent: false, result: 'connect' });
});
