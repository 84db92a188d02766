/*
 * The admin HTTP API (issue 4, point 6) as an operator uses it: a running
 * bin/mailveil in front of smtp-sink holds messages through SMTP, then the
 * API (with the token from <state_dir>/admin.token) lists, shows, releases
 * through the real next hop, deletes, purges, rotates keys, finds, exports
 * and erases a subject, and prints the Art. 30 report. Checked along the
 * way: 401s are audited as auth_failed (actor token:unknown, no token
 * value), every change is audited with actor token:admin, a refused release
 * is 502 with the reply code and keeps the entry, and serve refuses a
 * non-loopback admin address without TLS (exit 1, one line).
 * Tests run in order and share one mailveil.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';

import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { findTool, startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { sendOne, type ClientReply } from '../helpers/smtp-client';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { freePort } from '../helpers/ports';
import { auditDir, type AuditEvent } from '../../src/audit/log';
import { cleanupAfter } from '../helpers/cleanup';

const skip = systemSkipReason(['smtp-sink']);
const { running, tempDir } = cleanupAfter();

const RULES = `rules:
  - id: t-hold
    pattern: '\\bHOLDME-[0-9]{4}\\b'
    scope: [body, attachments]
    action: quarantine
  - id: t-subject
    pattern: '\\bSUBJSECRET-[0-9]{4}\\b'
    scope: [subject]
    action: quarantine
`;

const V = {
  from: 'api-sender@example.com',
  rcpt: 'api-rcpt@example.net',
  other: 'api-other@example.net',
  hold: 'HOLDME-5150',
  subject: 'SUBJSECRET-3141',
  bodyMarker: 'BODYMARKER-api-only-in-the-body',
};

interface Env {
  sink: Sink;
  sinkPort: number;
  mv: Mailveil;
  stateDir: string;
  token: string;
  base: string;
}
let envPromise: Promise<Env> | undefined;

function env(): Promise<Env> {
  envPromise ??= (async () => {
    const rulesDir = tempDir('mv-api-rules-');
    cpSync(join(REPO_ROOT, 'rules.d', '00-headers.yaml'), join(rulesDir, '00-headers.yaml'));
    writeFileSync(join(rulesDir, '10-test.yaml'), RULES);
    const stateDir = tempDir('mv-api-state-');
    const sinkPort = await freePort();
    const sink = await startSink({ port: sinkPort });
    running.push(sink);
    const mv = await startMailveil({ nextHop: sink.address, rulesDir, stateDir });
    running.push(mv);
    const token = readFileSync(join(stateDir, 'admin.token'), 'utf8').trim();
    return { sink, sinkPort, mv, stateDir, token, base: `http://127.0.0.1:${mv.adminPort}` };
  })();
  return envPromise;
}

async function api(e: Env, method: string, path: string, body?: unknown, token: string | null = e.token) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(e.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const type = r.headers.get('content-type') ?? '';
  const buf = Buffer.from(await r.arrayBuffer());
  const json = type.startsWith('application/json') ? JSON.parse(buf.toString('utf8')) : undefined;
  return { status: r.status, type, json, buf, headers: r.headers };
}

let seq = 0;
async function hold(e: Env, testCase: string, subject = `case ${testCase}`, to = [V.rcpt]): Promise<string> {
  const body =
    `From: Sender <${V.from}>\r\nTo: ${to.map((a) => `<${a}>`).join(', ')}\r\nSubject: ${subject}\r\n` +
    `Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <api-${testCase}-${++seq}@mail.example.com>\r\n` +
    `X-Test-Case: ${testCase}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    `Hello,\r\nthe reference is ${V.hold}.\r\n${V.bodyMarker}\r\n`;
  const r = await sendOne(e.mv.port, { from: V.from, to, body });
  const final = r.final as ClientReply;
  assert.equal(final?.code, 250, JSON.stringify(r));
  const m = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/.exec(final.text);
  assert.ok(m, final.text);
  return m[1];
}

function auditEvents(stateDir: string): AuditEvent[] {
  const dir = auditDir(stateDir);
  return readdirSync(dir)
    .filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent));
}

const ids: Record<string, string> = {};

test('the token file is made on first start: 64 hex characters, mode 0600', { skip }, async () => {
  const e = await env();
  const st = statSync(join(e.stateDir, 'admin.token'));
  assert.equal(st.mode & 0o777, 0o600);
  assert.match(e.token, /^[0-9a-f]{64}$/);
});

test('no token or a wrong token: 401 {error}, audited as auth_failed without the token', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'GET', '/api/quarantine', undefined, null);
  assert.equal(r.status, 401);
  assert.equal(typeof r.json.error, 'string');
  const wrong = 'f'.repeat(64);
  r = await api(e, 'POST', '/api/keys/rotate', undefined, wrong);
  assert.equal(r.status, 401);
  r = await api(e, 'GET', '/api/quarantine', undefined, e.token.slice(0, 10));
  assert.equal(r.status, 401);
  const failed = auditEvents(e.stateDir).filter((x) => x.event === 'auth_failed');
  assert.equal(failed.length, 3);
  assert.ok(failed.every((x) => x.actor === 'token:unknown'));
  assert.deepEqual(failed[1].details, { method: 'POST', path: '/api/keys/rotate' });
  const log = readdirSync(auditDir(e.stateDir)).map((n) => readFileSync(join(auditDir(e.stateDir), n), 'utf8')).join('');
  assert.ok(!log.includes(wrong) && !log.includes(e.token.slice(0, 10)));
  // A 401 changed nothing.
  assert.equal(auditEvents(e.stateDir).filter((x) => x.event === 'key_rotate').length, 0);
});

test('list: entries held through SMTP, filtered by rule and older_than; bad filters are 400', { skip }, async () => {
  const e = await env();
  ids.a = await hold(e, 'aa');
  ids.b = await hold(e, 'ab');
  ids.s = await hold(e, 'as', `Quarterly ${V.subject} report`, [V.rcpt, V.other]);
  let r = await api(e, 'GET', '/api/quarantine');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.entries.map((x: { id: string }) => x.id).sort(), [ids.a, ids.b, ids.s].sort());
  r = await api(e, 'GET', '/api/quarantine?rule=t-subject');
  assert.deepEqual(r.json.entries.map((x: { id: string }) => x.id), [ids.s]);
  r = await api(e, 'GET', '/api/quarantine?older_than=1d');
  assert.deepEqual(r.json.entries, []);
  r = await api(e, 'GET', '/api/quarantine?older_than=soon');
  assert.equal(r.status, 400);
  assert.match(r.json.error, /^older_than: must be a duration/);
  r = await api(e, 'GET', '/api/quarantine?rule=Not%20A%20Rule');
  assert.equal(r.status, 400);
  assert.ok(!JSON.stringify((await api(e, 'GET', '/api/quarantine')).json).includes('@'), 'no address in the list');
});

test('show: summary, findings and masked headers, never the body; unknown id 404, bad id 400', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'GET', `/api/quarantine/${ids.s}`);
  assert.equal(r.status, 200);
  assert.equal(r.json.id, ids.s);
  assert.deepEqual(r.json.rules.sort(), ['t-hold', 't-subject']);
  assert.ok(r.json.findings.some((f: { rule: string }) => f.rule === 't-subject'));
  assert.match(r.json.headers, /^Subject: /m);
  const text = r.buf.toString('utf8');
  assert.ok(!text.includes(V.bodyMarker), 'no body');
  assert.ok(!text.includes(V.hold) && !text.includes(V.subject), 'no matched value');
  r = await api(e, 'GET', '/api/quarantine/ZZZZ0000NOPE');
  assert.equal(r.status, 404);
  assert.match(r.json.error, /ZZZZ0000NOPE/);
  r = await api(e, 'GET', '/api/quarantine/not..valid');
  assert.equal(r.status, 400);
  r = await api(e, 'GET', '/api/nothing-here');
  assert.equal(r.status, 404);
  r = await api(e, 'PUT', `/api/quarantine/${ids.s}`);
  assert.equal(r.status, 405);
});

test('release: a refusing next hop is 502 with the reply code and keeps the entry; then delivered once and removed', { skip }, async () => {
  const e = await env();
  // Swap the next hop for one that refuses the final dot, on the same port.
  await e.sink.stop();
  const refusing = await startSink({ port: e.sinkPort, flags: ['-f', '.'] });
  let r;
  try {
    r = await api(e, 'POST', `/api/quarantine/${ids.a}/release`);
  } finally {
    await refusing.stop();
  }
  assert.equal(r.status, 502, JSON.stringify(r.json));
  assert.equal(r.json.released, false);
  assert.ok(r.json.code >= 500 && r.json.code < 600, JSON.stringify(r.json));
  assert.equal((await api(e, 'GET', `/api/quarantine/${ids.a}`)).status, 200, 'entry kept');

  e.sink = await startSink({ port: e.sinkPort });
  running.push(e.sink);
  r = await api(e, 'POST', `/api/quarantine/${ids.a}/release`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.code, 250);
  assert.equal(r.json.released, true);
  await e.sink.waitForMessages(1);
  const copies = e.sink.messages().filter((m) => m.header('X-Test-Case')[0] === 'aa');
  assert.equal(copies.length, 1);
  assert.ok(copies[0].body.includes(V.bodyMarker), 'the original is delivered');
  assert.equal((await api(e, 'GET', `/api/quarantine/${ids.a}`)).status, 404, 'entry gone');
  assert.equal((await api(e, 'POST', `/api/quarantine/${ids.a}/release`)).status, 404);
  const rel = auditEvents(e.stateDir).filter((x) => x.event === 'release' && x.id === ids.a);
  assert.deepEqual(rel.map((x) => [x.actor, x.details?.result]), [['token:admin', 'failed'], ['token:admin', 'ok']]);
});

test('delete: 200, then 404; audited as token:admin', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'DELETE', `/api/quarantine/${ids.b}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { id: ids.b, deleted: true });
  r = await api(e, 'DELETE', `/api/quarantine/${ids.b}`);
  assert.equal(r.status, 404);
  const del = auditEvents(e.stateDir).filter((x) => x.event === 'delete');
  assert.equal(del.length, 1);
  assert.equal(del[0].actor, 'token:admin');
  assert.equal(del[0].id, ids.b);
});

test('purge returns the counts; keys rotate returns the new key id; both audited', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'POST', '/api/quarantine/purge');
  assert.equal(r.status, 200);
  assert.equal(r.json.quarantineDeleted, 0);
  assert.equal(r.json.quarantineRemaining, 1);
  const before = (await api(e, 'GET', `/api/quarantine/${ids.s}`)).json.keyId;
  r = await api(e, 'POST', '/api/keys/rotate');
  assert.equal(r.status, 200);
  assert.match(r.json.keyId, /^[0-9a-f]+$/);
  assert.notEqual(r.json.keyId, before);
  assert.equal(r.json.previous, before);
  const ev = auditEvents(e.stateDir);
  assert.ok(ev.some((x) => x.event === 'purge' && x.actor === 'token:admin' && x.details?.quarantine_deleted === 0));
  assert.ok(ev.some((x) => x.event === 'key_rotate' && x.actor === 'token:admin' && x.details?.new_key === r.json.keyId));
  // The entry written under the old key still shows.
  assert.equal((await api(e, 'GET', `/api/quarantine/${ids.s}`)).status, 200);
});

test('sar: find, export (a tar.gz), erase, then find returns nothing', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'GET', `/api/sar?address=${encodeURIComponent(V.other)}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.messages.map((m: { id: string }) => m.id), [ids.s]);
  r = await api(e, 'POST', '/api/sar', { address: V.other.toUpperCase() });
  assert.deepEqual(r.json.messages.map((m: { id: string }) => m.id), [ids.s], 'POST and normalisation');
  assert.equal((await api(e, 'POST', '/api/sar', { address: 'not an address' })).status, 400);
  assert.equal((await api(e, 'POST', '/api/sar/export', {})).status, 400);
  assert.equal((await api(e, 'POST', '/api/sar/export', undefined)).status, 400);

  r = await api(e, 'POST', '/api/sar/export', { address: V.other });
  assert.equal(r.status, 200);
  assert.equal(r.type, 'application/gzip');
  const tarText = gunzipSync(r.buf).toString('latin1');
  assert.ok(tarText.includes(`messages/${ids.s}.eml`));
  assert.ok(tarText.includes(V.bodyMarker), 'the decrypted message is in the archive');
  assert.equal(r.headers.get('x-mailveil-messages'), '1');
  const exportsDir = join(e.stateDir, 'exports');
  assert.ok(!existsSync(exportsDir) || readdirSync(exportsDir).length === 0, 'no archive left under state_dir');
  assert.ok(auditEvents(e.stateDir).some((x) => x.event === 'export' && x.actor === 'token:admin' && x.details?.messages === 1));

  r = await api(e, 'POST', '/api/sar/erase', { address: V.other });
  assert.equal(r.status, 200);
  assert.equal(r.json.messages, 1);
  assert.ok(r.json.events >= 1);
  r = await api(e, 'POST', '/api/sar', { address: V.other });
  assert.deepEqual([r.json.messages, r.json.events], [[], []]);
  assert.equal((await api(e, 'GET', `/api/quarantine/${ids.s}`)).status, 404);
  assert.ok(auditEvents(e.stateDir).some((x) => x.event === 'erase' && x.actor === 'token:admin'));
  // Nothing to export any more.
  assert.equal((await api(e, 'POST', '/api/sar/export', { address: V.other })).status, 404);
});

test('gdpr report is Markdown; an oversized body is 413', { skip }, async () => {
  const e = await env();
  let r = await api(e, 'GET', '/api/gdpr/report');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/markdown/);
  assert.match(r.buf.toString('utf8'), /^# Record of processing/);
  r = await api(e, 'POST', '/api/sar', { address: 'x'.repeat(70 * 1024) });
  assert.equal(r.status, 413);
});

test('serve refuses a non-loopback admin address without TLS: exit 1, one line', async () => {
  const stateDir = tempDir('mv-api-refuse-');
  const [listen, metrics, admin] = [await freePort(), await freePort(), await freePort()];
  const r = spawnSync(
    process.execPath,
    [BIN, 'serve', '--state-dir', stateDir, '--rules', join(REPO_ROOT, 'rules.d'), '--listen', `127.0.0.1:${listen}`, '--metrics', `127.0.0.1:${metrics}`, '--admin', `0.0.0.0:${admin}`],
    { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^mailveil: admin: refusing to serve the admin API on 0\.0\.0\.0:\d+ without TLS/);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
  assert.ok(!existsSync(join(stateDir, 'admin.token')), 'nothing started');
});

test('with admin_tls, a non-loopback admin address is served over HTTPS with the same token check', { skip: skip || (findTool('openssl') ? false : 'openssl not found') }, async () => {
  const dir = tempDir('mv-api-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=admin.test.example',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cfg = join(dir, 'mailveil.yaml');
  writeFileSync(cfg, 'admin_tls: { cert: cert.pem, key: key.pem }\n');
  const adminPort = await freePort();
  const mv = await startMailveil({ nextHop: '127.0.0.1:9', config: cfg, adminPort, extraArgs: ['--admin', `0.0.0.0:${adminPort}`] });
  running.push(mv);
  const token = readFileSync(join(mv.stateDir, 'admin.token'), 'utf8').trim();
  const get = (auth?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: adminPort, path: '/api/quarantine', rejectUnauthorized: false, headers: auth ? { authorization: auth } : {} },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  assert.equal((await get()).status, 401);
  const r = await get(`Bearer ${token}`);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body).entries, []);
  await mv.stop();
});
