/*
 * The policy fetch (src/mta-sts/fetch.ts) against real HTTPS servers on
 * 127.0.0.1, with certificates from the test PKI: what is taken (a 200
 * text/plain policy, over SNI for mta-sts.<domain>) and every way it is
 * refused (redirect, status, media type, size, stall, certificate).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { TestPki } from '../helpers/test-pki';
import { fetchPolicy, MAX_POLICY_BYTES, type FetchResult } from '../../src/mta-sts/fetch';

const POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.mx.example.test\r\nmax_age: 86400\r\n';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Host {
  server: https.Server;
  port: number;
  requests: { url?: string; host?: string; sni?: string | false | null }[];
  handler: Handler;
}

let pki: TestPki;
let otherPki: TestPki;
let ca: string;
const hosts: Host[] = [];

async function host(key: string, cert: string): Promise<Host> {
  const h = { requests: [], handler: () => undefined } as unknown as Host;
  h.server = https.createServer({ key, cert }, (req, res) => {
    h.requests.push({ url: req.url, host: req.headers.host, sni: (req.socket as TLSSocket).servername });
    h.handler(req, res);
  });
  await new Promise<void>((r) => h.server.listen(0, '127.0.0.1', r));
  h.port = (h.server.address() as AddressInfo).port;
  hosts.push(h);
  return h;
}

let good: Host;
let wrongName: Host;
let untrusted: Host;

before(async () => {
  pki = new TestPki('mta-sts fetch');
  otherPki = new TestPki('someone else');
  ca = pki.root.cert;
  const leaf = pki.leaf('mta-sts', { names: ['mta-sts.example.test'] });
  good = await host(leaf.key, leaf.chain);
  const other = pki.leaf('other', { names: ['mta-sts.other.test'] });
  wrongName = await host(other.key, other.chain);
  const foreign = otherPki.leaf('foreign', { names: ['mta-sts.example.test'] });
  untrusted = await host(foreign.key, foreign.chain);
});

after(async () => {
  for (const h of hosts) {
    h.server.closeAllConnections();
    await new Promise((r) => h.server.close(r));
  }
});

const lookup = async (): Promise<string> => '127.0.0.1';
const get = (h: Host, over: Partial<Parameters<typeof fetchPolicy>[1]> = {}): Promise<FetchResult> =>
  fetchPolicy('example.test', { lookup, ca, port: h.port, timeoutMs: 3000, ...over });

function failure(r: FetchResult): { reason: string; type: string } {
  assert.equal(r.kind, 'failed', JSON.stringify(r));
  const f = r as Extract<FetchResult, { kind: 'failed' }>;
  return { reason: f.reason, type: f.failure.type };
}

test('200 text/plain: the policy, fetched from /.well-known/mta-sts.txt with SNI and Host mta-sts.<domain>', async () => {
  good.requests.length = 0;
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(POLICY);
  const looked: string[] = [];
  const r = await get(good, { lookup: async (h) => (looked.push(h), '127.0.0.1') });
  assert.deepEqual(r, { kind: 'ok', text: POLICY, policy: { mode: 'enforce', mx: ['mx1.example.test', '*.mx.example.test'], maxAge: 86400 } });
  assert.deepEqual(looked, ['mta-sts.example.test']);
  assert.deepEqual(good.requests, [{ url: '/.well-known/mta-sts.txt', host: `mta-sts.example.test:${good.port}`, sni: 'mta-sts.example.test' }]);
  // The domain is taken in any case and with a trailing dot.
  assert.equal((await fetchPolicy('EXAMPLE.test.', { lookup, ca, port: good.port })).kind, 'ok');
});

test('301: a failure, and the redirect is not followed', async () => {
  good.requests.length = 0;
  good.handler = (req, res) =>
    req.url === '/.well-known/mta-sts.txt'
      ? res.writeHead(301, { location: `https://mta-sts.example.test:${good.port}/moved.txt` }).end()
      : res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
  assert.deepEqual(failure(await get(good)), { reason: 'redirect', type: 'sts-policy-fetch-error' });
  assert.equal(good.requests.length, 1, 'one request: the Location was not fetched');
  for (const status of [302, 307, 308]) {
    good.handler = (_req, res) => res.writeHead(status, { location: '/x' }).end();
    assert.equal(failure(await get(good)).reason, 'redirect', String(status));
  }
});

test('404, 500 and 204 are failures (only 200 is taken)', async () => {
  for (const status of [404, 500, 204, 203]) {
    good.handler = (_req, res) => res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 204 ? undefined : POLICY);
    assert.deepEqual(failure(await get(good)), { reason: 'status', type: 'sts-policy-fetch-error' }, String(status));
  }
});

test('a media type other than text/plain is refused, even with a valid policy in it', async () => {
  for (const type of ['text/html', 'application/octet-stream', 'text/plainx', undefined]) {
    good.handler = (_req, res) => {
      if (type) res.setHeader('content-type', type);
      res.writeHead(200).end(POLICY);
    };
    assert.deepEqual(failure(await get(good)), { reason: 'media-type', type: 'sts-policy-invalid' }, String(type));
  }
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'Text/Plain ; charset=us-ascii' }).end(POLICY);
  assert.equal((await get(good)).kind, 'ok', 'the media type compares without case, parameters allowed');
});

test('a body over 64 KiB is a failure, whether or not Content-Length announces it; exactly 64 KiB is read', async () => {
  const pad = (n: number) => POLICY + 'x: ' + 'a'.repeat(n - POLICY.length - 4) + '\n';
  good.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no length
    const body = pad(65 * 1024);
    for (let i = 0; i < body.length; i += 4096) res.write(body.slice(i, i + 4096));
    res.end();
  };
  assert.deepEqual(failure(await get(good)), { reason: 'too-large', type: 'sts-policy-fetch-error' });
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(pad(65 * 1024));
  assert.equal(failure(await get(good)).reason, 'too-large', 'announced by Content-Length');
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(pad(MAX_POLICY_BYTES));
  assert.equal((await get(good)).kind, 'ok', 'exactly the limit');
  good.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(POLICY);
    const more = setInterval(() => res.write('x: ' + 'a'.repeat(8000) + '\n'), 1); // endless
    res.on('close', () => clearInterval(more));
  };
  assert.equal(failure(await get(good)).reason, 'too-large', 'an endless body stops at the limit');
});

test('a host that stalls (before headers, or mid-body) is a timeout failure', async () => {
  good.handler = () => undefined; // never answers
  let t0 = Date.now();
  assert.deepEqual(failure(await get(good, { timeoutMs: 300 })), { reason: 'timeout', type: 'sts-policy-fetch-error' });
  assert.ok(Date.now() - t0 < 2000, 'within the deadline');
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).write('version: STSv1\n');
  t0 = Date.now();
  assert.equal(failure(await get(good, { timeoutMs: 300 })).reason, 'timeout');
  assert.ok(Date.now() - t0 < 2000);
  const slowLookup = () => new Promise<string>(() => undefined);
  assert.equal(failure(await get(good, { timeoutMs: 200, lookup: slowLookup })).reason, 'timeout', 'the lookup counts toward the deadline');
});

test('certificates: another name, or an untrusted CA, is sts-webpki-invalid and nothing is requested', async () => {
  for (const h of [wrongName, untrusted]) {
    h.requests.length = 0;
    h.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
    assert.deepEqual(failure(await get(h)), { reason: 'certificate', type: 'sts-webpki-invalid' });
    assert.equal(h.requests.length, 0);
  }
  // Without the test CA, the system store alone does not trust the good host either.
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
  assert.equal(failure(await get(good, { ca: undefined })).type, 'sts-webpki-invalid');
});

test('lookup, connect and policy failures carry their types', async () => {
  assert.deepEqual(failure(await get(good, { lookup: async () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOTFOUND' })) })), { reason: 'lookup', type: 'sts-policy-fetch-error' });
  assert.equal(failure(await get(good, { lookup: async () => 'not-an-ip' })).reason, 'lookup');
  const closed = https.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  assert.deepEqual(failure(await get(good, { port })), { reason: 'connect', type: 'sts-policy-fetch-error' });
  good.handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('version: STSv1\nmode: enforce\nmax_age: 86400\n');
  assert.deepEqual(failure(await get(good)), { reason: 'policy', type: 'sts-policy-invalid' });
  assert.equal(failure(await fetchPolicy('bad domain', { lookup, ca })).reason, 'bad-domain');
});

test('the default port is 443, and the Host header then has no port (127.0.0.53:443)', async (t) => {
  const leaf = pki.leaf('mta-sts-443', { names: ['mta-sts.example.test'] });
  const seen: (string | undefined)[] = [];
  const server = https.createServer({ key: leaf.key, cert: leaf.chain }, (req, res) => {
    seen.push(req.headers.host);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
  });
  const listening = await new Promise<boolean>((ok) => {
    server.once('error', () => ok(false));
    server.listen(443, '127.0.0.53', () => ok(true));
  });
  if (!listening) return t.skip('cannot bind 127.0.0.53:443 (not root, or taken)');
  try {
    const r = await fetchPolicy('example.test', { lookup: async () => '127.0.0.53', ca, timeoutMs: 3000 });
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    assert.deepEqual(seen, ['mta-sts.example.test']);
  } finally {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
});
