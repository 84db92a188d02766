/*
 * `mailveil tlsrpt send` end to end, on loopback only:
 *  - a real validating resolver (unbound, the DNS world) publishes
 *    `_smtp._tls.b.test` with an https: and a mailto: rua, and the address
 *    of the report endpoint `reports.rpt.test`;
 *  - the endpoint is a local HTTPS server with a test-PKI certificate for
 *    that name, trusted through `tls.ca_file` only;
 *  - the next hop is a STARTTLS sink (smtp-server) that keeps the bytes.
 * The first run: the endpoint answers 500 (not delivered, exit 1), the mail
 * goes out; its report and the POSTed one validate against RFC 8460's
 * schema. The second run retries only the POST (200 now) and sends no mail;
 * the third sends nothing at all. A dry run before any of it sends nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startDnsWorld, type DnsWorld } from '../helpers/dns-world';
import { systemSkipReason } from '../helpers/sink';
import { TestPki } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { LOOPBACK } from '../helpers/ports';
import { parseReportMail } from '../helpers/report-mail';
import { rfc8460Errors } from '../helpers/rfc8460-schema';
import { TlsRptStore } from '../../src/tlsrpt/store';
import { utcDay } from '../../src/tlsrpt/counts';
import { tlsrptDayDir } from '../../src/state-layout';

const skip = systemSkipReason(['unbound', 'unbound-checkconf', 'ldns-keygen', 'ldns-signzone', 'openssl']);

const DAY = utcDay(new Date(Date.now() - 86_400_000));
const STS = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: mx.b.test', 'max_age: 604800'], mxHosts: ['mx.b.test'] };

interface Post {
  method: string;
  path: string;
  type: string | undefined;
  body: Buffer;
}

let world: DnsWorld;
let sink: TlsSink;
let pki: TestPki;
let https: Server;
let configFile: string;
let state: string;
const posts: Post[] = [];
let status = 500;
const dirs: string[] = [];

before(async () => {
  if (skip) return;
  pki = new TestPki('tlsrpt');
  const web = pki.leaf('reports', { names: ['reports.rpt.test'] });
  https = createServer({ cert: web.chain, key: web.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push({ method: req.method ?? '', path: req.url ?? '', type: req.headers['content-type'], body: Buffer.concat(chunks) });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => https.listen(0, LOOPBACK, resolve));
  const port = (https.address() as AddressInfo).port;
  sink = await startTlsSink({ cert: pki.leaf('relay', { names: ['relay.test'] }) });
  world = await startDnsWorld({
    zones: [
      { name: 'b.test', mode: 'signed', records: [`_smtp._tls TXT "v=TLSRPTv1; rua=https://reports.rpt.test:${port}/v1/tlsrpt,mailto:tls-reports@rpt.test"`] },
      { name: 'rpt.test', mode: 'signed', records: ['reports A 127.0.0.1'] },
    ],
  });

  state = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-submit-'));
  dirs.push(state);
  const w = new TlsRptStore(state, { now: () => new Date(`${DAY}T08:00:00Z`), flushIntervalMs: 0 });
  for (let i = 0; i < 4; i++) w.record({ policyDomain: 'b.test', policy: STS, result: 'success' });
  w.record({ policyDomain: 'b.test', policy: STS, result: { type: 'certificate-host-mismatch', receivingMxHostname: 'mx.b.test', receivingIp: '127.0.0.62' } });
  // No TLS-RPT record: nothing to send for it.
  w.record({ policyDomain: 'quiet.test', policy: { type: 'no-policy-found', strings: [], mxHosts: [] }, result: 'success' });
  await w.close();
  configFile = join(state, 'mailveil.yaml');
  writeFileSync(
    configFile,
    [
      `state_dir: ${state}`,
      'hostname: mx-out.ours.test',
      `next_hop: ${sink.address}`,
      'dns:',
      `  servers: ["${world.server.host}:${world.server.port}"]`,
      '  timeout: 3s',
      'tls:',
      `  ca_file: ${pki.caFile}`,
      '  tlsrpt: { submit: true, organization: Ours Inc, contact: tlsrpt@ours.test }',
      '',
    ].join('\n'),
  );
  writeFileSync(join(state, 'state.json'), JSON.stringify({ kind: 'mailveil-state', format: 1, created: new Date().toISOString() }));
});

after(async () => {
  await sink?.stop();
  await world?.stop();
  await new Promise<void>((resolve) => (https ? https.close(() => resolve()) : resolve()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function send(...extra: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.MAILVEIL_CONFIG;
    const child = spawn(process.execPath, [BIN, 'tlsrpt', 'send', '--date', DAY, '--config', configFile, ...extra], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

test('tlsrpt send: dry run, then the report by mail and by HTTPS POST; a failed POST is retried and nothing is sent twice', { skip }, async () => {
  const dry = await send('--dry-run');
  assert.equal(dry.code, 0, dry.err);
  assert.equal(dry.out, [`b.test https reports.rpt.test: would send`, `b.test mailto rpt.test: would send`, 'quiet.test: no usable TLS-RPT record (nxdomain); nothing to send', ''].join('\n'));
  assert.equal(posts.length + sink.count(), 0, 'a dry run sends nothing');

  // Run 1: the endpoint answers 500; the mail goes out.
  const first = await send();
  assert.equal(first.code, 1, first.out + first.err);
  assert.equal(first.out, ['b.test https reports.rpt.test: failed, retried by the next run (HTTP 500)', 'b.test mailto rpt.test: sent (250)', 'quiet.test: no usable TLS-RPT record (nxdomain); nothing to send', ''].join('\n'));
  assert.equal(first.err, `mailveil: 1 of the TLS reports of ${DAY} were not delivered\n`);
  assert.ok(!first.out.includes('tls-reports'), 'a mailto: target is named by its domain only');

  assert.equal(posts.length, 1);
  assert.deepEqual([posts[0].method, posts[0].path, posts[0].type], ['POST', '/v1/tlsrpt', 'application/tlsrpt+gzip']);
  const posted = JSON.parse(gunzipSync(posts[0].body).toString('utf8'));
  assert.equal(rfc8460Errors(posted), undefined, rfc8460Errors(posted));
  assert.equal(posted['report-id'], `${DAY}T00:00:00Z_b.test@mx-out.ours.test`);
  assert.equal(posted['organization-name'], 'Ours Inc');
  assert.equal(posted['contact-info'], 'tlsrpt@ours.test');
  assert.deepEqual(posted.policies[0].summary, { 'total-successful-session-count': 4, 'total-failure-session-count': 1 });

  const [msg] = await sink.waitForMessages(1);
  assert.equal(msg.from, 'tlsrpt@ours.test');
  assert.deepEqual(msg.to, ['tls-reports@rpt.test']);
  const mail = parseReportMail(msg.data);
  assert.equal(mail.type, 'multipart/report');
  assert.equal(mail.params['report-type'], 'tlsrpt');
  assert.equal(mail.fields.get('tls-report-domain'), 'b.test');
  assert.equal(mail.fields.get('tls-report-submitter'), 'mx-out.ours.test');
  assert.equal(mail.fields.get('subject'), `Report Domain: b.test Submitter: mx-out.ours.test Report-ID: <${DAY}T00:00:00Z_b.test@mx-out.ours.test>`);
  assert.deepEqual(mail.parts.map((p) => p.type), ['text/plain', 'application/tlsrpt+gzip']);
  const begin = Date.parse(`${DAY}T00:00:00Z`) / 1000;
  assert.match(mail.attachmentName ?? '', new RegExp(`^mx-out\\.ours\\.test!b\\.test!${begin}!${begin + 86_399}![0-9a-f]{16}\\.json\\.gz$`));
  assert.deepEqual(mail.report, posted, 'the same report both ways');

  // Run 2: the endpoint takes it now; the mail is not sent again.
  status = 200;
  const second = await send();
  assert.equal(second.code, 0, second.out + second.err);
  assert.equal(second.out, ['b.test https reports.rpt.test: sent (HTTP 200)', 'b.test mailto rpt.test: already sent (250)', 'quiet.test: no usable TLS-RPT record (nxdomain); nothing to send', ''].join('\n'));
  assert.equal(posts.length, 2);
  assert.deepEqual(JSON.parse(gunzipSync(posts[1].body).toString('utf8')), posted);

  // Run 3: nothing is left to send.
  const third = await send();
  assert.equal(third.code, 0, third.out + third.err);
  assert.equal(third.out, ['b.test https reports.rpt.test: already sent (HTTP 200)', 'b.test mailto rpt.test: already sent (250)', 'quiet.test: no usable TLS-RPT record (nxdomain); nothing to send', ''].join('\n'));
  assert.equal(posts.length, 2);
  assert.equal(sink.count(), 1, 'one report mail in all');
  assert.ok(readdirSync(tlsrptDayDir(state, DAY)).some((n) => n.startsWith('sent-')));
});

test('tlsrpt send: today is not over, and a bad date is a usage error', { skip }, async () => {
  const today = utcDay(new Date());
  const env = { ...process.env };
  delete env.MAILVEIL_CONFIG;
  const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'tlsrpt', 'send', '--date', today, '--config', configFile], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('close', (code) => resolve({ code, err }));
  });
  assert.equal(r.code, 2);
  assert.equal(r.err, `mailveil: --date: ${today} is not over yet (UTC); reports are sent for finished days\n`);
});
