/*
 * `mailveil tls check` end to end: a real validating resolver (unbound, the
 * DNS world) with signed, unsigned and bogus zones, and a STARTTLS sink on
 * 127.0.0.61:25 whose certificate a DANE-EE (3 1 1) record pins. The
 * command must report DANE with the AD bit, fall back to the default level
 * without DNSSEC, defer on bogus TLSA, bounce a null MX, apply the static
 * map, and never send MAIL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsWorld, type DnsWorld } from '../helpers/dns-world';
import { systemSkipReason } from '../helpers/sink';
import { TestPki } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { BIN, REPO_ROOT } from '../helpers/paths';

const MX_IP = '127.0.0.61';
const tools = systemSkipReason(['unbound', 'unbound-checkconf', 'ldns-keygen', 'ldns-signzone', 'openssl']);
const skip = tools || (process.getuid?.() !== 0 ? 'needs root to listen on 127.0.0.61:25' : false);

let world: DnsWorld;
let sink: TlsSink;
let pki: TestPki;
let configFile: string;

before(async () => {
  if (skip) return;
  pki = new TestPki('tls check');
  const cert = pki.leaf('mx', { names: ['mx1.dane.test', 'mx1.nodane.test', 'mx1.bogus.test', 'mx1.mismatch.test', 'mx1.static.test'] });
  sink = await startTlsSink({ cert, host: MX_IP, port: 25 });
  const spki = createHash('sha256').update(cert.x509.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const zone = (ip = MX_IP, tlsa?: string) => ['@ MX 10 mx1', `mx1 A ${ip}`, ...(tlsa ? [`_25._tcp.mx1 TLSA 3 1 1 ${tlsa}`] : [])];
  world = await startDnsWorld({
    zones: [
      { name: 'dane.test', mode: 'signed', records: zone(MX_IP, spki) },
      { name: 'nodane.test', mode: 'unsigned', records: zone(MX_IP, spki) },
      { name: 'bogus.test', mode: 'bogus', records: zone(MX_IP, spki) },
      { name: 'mismatch.test', mode: 'signed', records: zone(MX_IP, 'ab'.repeat(32)) },
      { name: 'static.test', mode: 'unsigned', records: zone() },
      { name: 'nullmx.test', mode: 'signed', records: ['@ MX 0 .'] },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'mv-tlscheck-'));
  const rules = join(dir, 'rules.d');
  mkdirSync(rules);
  writeFileSync(join(rules, '50-tls.yaml'), 'tls_policy:\n  static.test: { level: verify, match: [hostname] }\n  .example.invalid: secure\n');
  configFile = join(dir, 'mailveil.yaml');
  writeFileSync(
    configFile,
    [
      `rules_dir: ${rules}`,
      `local_rules_dir: ${join(dir, 'rules.local.d')}`,
      `state_dir: ${join(dir, 'var')}`,
      'dns:',
      `  servers: ["${world.server.host}:${world.server.port}"]`,
      '  timeout: 3s',
      'tls:',
      `  ca_file: ${pki.caFile}`,
      '',
    ].join('\n'),
  );
});

after(async () => {
  await sink?.stop();
  await world?.stop();
});

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

async function check(domain: string) {
  const r = await run('tls', 'check', domain, '--config', configFile, '--json');
  assert.equal(r.err, '', r.err);
  return { code: r.code, report: JSON.parse(r.out) };
}

test('tls check: signed zone with a matching TLSA 3 1 1: DANE verified, AD reported, effective level dane, exit 0', { skip }, async () => {
  const { code, report } = await check('dane.test');
  assert.equal(code, 0, JSON.stringify(report, null, 2));
  assert.deepEqual(report.mx, { kind: 'mx', secure: true });
  assert.deepEqual(report.effective.source, 'dane');
  assert.deepEqual(report.effective.level, 'dane');
  const h = report.hosts[0];
  assert.equal(h.host, 'mx1.dane.test');
  assert.equal(h.address_secure, true);
  assert.equal(h.dane.state, 'usable');
  assert.equal(h.probe.starttls, 'offered');
  assert.match(h.probe.protocol, /^TLSv1\.[23]$/);
  assert.equal(h.probe.pkix.trusted, true);
  assert.deepEqual(h.probe.dane, { ok: true, usage: 3, depth: 0 });
  assert.ok(h.probe.certificate.names.includes('mx1.dane.test'));
  assert.equal(h.met, true);
  assert.equal(report.ok, true);
});

test('tls check: the human output names the AD bit, the TLSA status and the handshake', { skip }, async () => {
  const r = await run('tls', 'check', 'dane.test', '--config', configFile);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /MX lookup: mx \(DNSSEC: secure, AD\)/);
  assert.match(r.out, /DANE\/TLSA: usable: 3 1 1 [0-9a-f]{64}/);
  assert.match(r.out, /DANE verification: verified \(usage 3, depth 0\)/);
  assert.match(r.out, /effective policy: level dane, decided by dane/);
  assert.match(r.out, /TLS: TLSv1\.[23] /);
});

test('tls check: unsigned zone: no DANE, default level may, exit 0', { skip }, async () => {
  const { code, report } = await check('nodane.test');
  assert.equal(code, 0);
  assert.deepEqual(report.mx, { kind: 'mx', secure: false });
  assert.deepEqual(report.effective, { source: 'default', level: 'may' });
  assert.deepEqual(report.hosts[0].dane, { state: 'not-looked-up', why: 'mx-insecure' });
  assert.equal(report.hosts[0].probe.dane, undefined);
  assert.equal(report.mta_sts.state, 'none');
});

test('tls check: bogus TLSA defers 4.7.5 and exits 1', { skip }, async () => {
  const { code, report } = await check('bogus.test');
  assert.equal(code, 1);
  assert.equal(report.hosts[0].dane.state, 'bogus');
  assert.equal(report.outcome.kind, 'defer');
  assert.equal(report.outcome.enhanced, '4.7.5');
  assert.equal(report.hosts[0].met, false);
});

test('tls check: a usable TLSA RRset that matches nothing: DANE fails, exit 1', { skip }, async () => {
  const { code, report } = await check('mismatch.test');
  assert.equal(code, 1);
  assert.equal(report.effective.level, 'dane');
  assert.equal(report.hosts[0].probe.dane.ok, false);
  assert.equal(report.hosts[0].probe.dane.failure, 'tlsa-invalid');
});

test('tls check: null MX is a 556 5.1.10 bounce, exit 1', { skip }, async () => {
  const { code, report } = await check('nullmx.test');
  assert.equal(code, 1);
  assert.deepEqual(report.outcome, { kind: 'bounce', reply: '556', enhanced: '5.1.10', reason: 'null-mx' });
  assert.deepEqual(report.hosts, []);
});

test('tls check: a static tls_policy entry decides, with its file and line; verify against tls.ca_file and the MX name', { skip }, async () => {
  const { code, report } = await check('static.test');
  assert.equal(code, 0, JSON.stringify(report, null, 2));
  assert.equal(report.static.level, 'verify');
  assert.equal(report.static.line, 2);
  assert.deepEqual(report.mta_sts, { enabled: true, state: 'not-consulted' });
  assert.deepEqual(report.effective, { source: 'static', level: 'verify', match: ['mx1.static.test'] });
  assert.deepEqual(report.hosts[0].probe.name_match, { ok: true, names: ['mx1.static.test'], matched: 'mx1.static.test' });
});

test('tls check: an argument that is not a domain is a usage-level user error (exit 1, one line)', { skip }, async () => {
  const r = await run('tls', 'check', 'not a domain', '--config', configFile);
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.match(r.err, /^mailveil: not a domain: not a domain name\n$/);
});

test('tls check: never sends MAIL; every probe did STARTTLS and QUIT', { skip }, async () => {
  assert.equal(sink.mailCommands(), 0);
  assert.equal(sink.count(), 0);
  assert.ok(sink.sessions().secured >= 5, JSON.stringify(sink.sessions()));
});
