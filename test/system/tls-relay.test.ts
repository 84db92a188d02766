/*
 * Issue 10, point 1: TLS to the fixed next hop (relay mode). The real
 * `mailveil serve`, configured with each tls.next_hop level, in front of a
 * STARTTLS-capable sink (test/helpers/tls-sink.ts) presenting a good, a
 * wrong-name, an expired or an untrusted certificate, or not offering
 * STARTTLS at all. For each case: the client's reply, what reached the sink
 * and whether over TLS, mailveil_tls_outbound_total{policy,result}, and the
 * `event: tls` log line. Postfix's smtp_tls_security_level is the reference
 * for what each level must do.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestPki, type Issued } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { startMailveil, type LogLine } from '../helpers/mailveil';
import { message, sendOne } from '../helpers/smtp-client';
import { metricValue } from '../helpers/scripted-hop';

const HOP = 'hop.example.test';
const RCPT = 'private.person@example.net';
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

let pki: TestPki;
let other: TestPki;
let certs: { ok: Issued; wrongName: Issued; expired: Issued; untrusted: Issued; client: Issued };
const sinks: Record<string, TlsSink> = {};

before(async () => {
  pki = new TestPki('mailveil tls-relay');
  other = new TestPki('someone else');
  certs = {
    ok: pki.leaf('hop', { names: [HOP] }),
    wrongName: pki.leaf('wrong', { names: ['other.example.test'] }),
    expired: pki.leaf('expired', { names: [HOP], days: -1 }),
    untrusted: other.leaf('untrusted', { names: [HOP] }),
    client: pki.leaf('client', { names: ['mailveil.example.test'] }),
  };
  const start = async (name: string, o: Parameters<typeof startTlsSink>[0]) => {
    sinks[name] = await startTlsSink(o);
    running.push(sinks[name]);
  };
  await start('ok', { cert: certs.ok });
  await start('plain', { cert: certs.ok, hideSTARTTLS: true });
  await start('wrongName', { cert: certs.wrongName });
  await start('expired', { cert: certs.expired });
  await start('untrusted', { cert: certs.untrusted });
  await start('clientCert', { cert: certs.ok, requestCert: true });
});

interface Outcome {
  mail: { code: number; text: string };
  final?: { code: number; text: string };
  delivered: number;
  secure?: boolean;
  protocol?: string;
  clientCert?: string;
  metric(result: string): Promise<number>;
  tlsLog: LogLine;
}

/** One message through a fresh mailveil with `tls.next_hop` = { level, ...extra } to `sink`. */
async function relay(level: string, sinkName: string, extra: Record<string, string> = {}): Promise<Outcome> {
  const sink = sinks[sinkName];
  const before = sink.count();
  const dir = mkdtempSync(join(tmpdir(), 'mv-tls-relay-'));
  const cfg = join(dir, 'mailveil.yaml');
  const hop = { level, servername: HOP, ca_file: pki.caFile, ...extra };
  writeFileSync(cfg, `tls:\n  next_hop: ${JSON.stringify(hop)}\n`);
  const mv = await startMailveil({ nextHop: sink.address, config: cfg });
  running.push(mv);
  try {
    const subject = `tls ${level} ${sinkName}`;
    const r = await sendOne(mv.port, { from: 'sender@example.com', to: [RCPT], body: message(subject, 'over the next hop\r\n') });
    const tlsLog = await mv.waitForLog((l) => l.event === 'tls', 'event tls');
    const delivered = sink.count() - before;
    const m = delivered ? sink.messages[sink.messages.length - 1] : undefined;
    const values = new Map<string, number>();
    // Read the metrics before the stop below.
    for (const result of ['ok', 'downgraded', 'starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired', 'certificate-not-trusted', 'validation-failure']) {
      values.set(result, (await metricValue(mv.metricsPort, 'mailveil_tls_outbound_total', { policy: level, result })) ?? 0);
    }
    for (const l of mv.logs()) assert.ok(!JSON.stringify(l).includes(RCPT), `a log line holds the recipient: ${JSON.stringify(l)}`);
    return { mail: r.mail, final: r.final, delivered, secure: m?.secure, protocol: m?.protocol, clientCert: m?.clientCert, metric: async (x) => values.get(x) ?? 0, tlsLog };
  } finally {
    await mv.stop();
  }
}

function assertTempfail(o: Outcome, code: string, text: RegExp) {
  assert.equal(o.mail.code, 451, `MAIL answered ${o.mail.code} ${o.mail.text}`);
  assert.match(o.mail.text, new RegExp(`^${code.replace(/\./g, '\\.')} `));
  assert.match(o.mail.text, text);
  assert.ok(!o.mail.text.includes(RCPT) && !o.mail.text.includes('example.net'), 'the reply names no recipient');
  assert.equal(o.delivered, 0, 'nothing delivered');
}

test('none: plain text even when STARTTLS is offered', async () => {
  const o = await relay('none', 'ok');
  assert.equal(o.final?.code, 250);
  assert.equal(o.delivered, 1);
  assert.equal(o.secure, false);
  assert.equal(await o.metric('ok'), 1);
  assert.equal(o.tlsLog.tls_level, 'none');
  assert.equal(o.tlsLog.protocol, null);
});

test('may + offered: delivered over TLS, counted ok, logged with protocol and cipher', async () => {
  const o = await relay('may', 'ok');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, true);
  assert.match(String(o.protocol), /^TLSv1\.[23]$/);
  assert.equal(await o.metric('ok'), 1);
  assert.equal(o.tlsLog.result, 'ok');
  assert.equal(o.tlsLog.level, 'info', "pino's level is not overwritten by the TLS level");
  assert.equal(o.tlsLog.tls_level, 'may');
  assert.equal(o.tlsLog.policy_source, 'static');
  assert.equal(o.tlsLog.protocol, o.protocol);
  assert.ok(o.tlsLog.cipher);
  assert.equal(o.tlsLog.verified, true);
  assert.match(String(o.tlsLog.next_hop), /^127\.0\.0\.1:\d+$/);
});

test('may + not offered: plain text, counted downgraded', async () => {
  const o = await relay('may', 'plain');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, false);
  assert.equal(await o.metric('downgraded'), 1);
  assert.equal(await o.metric('ok'), 0);
  assert.equal(o.tlsLog.result, 'downgraded');
});

test('may + an untrusted, expired certificate: still TLS (may takes any certificate), verified false in the log', async () => {
  const o = await relay('may', 'expired');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, true);
  assert.equal(o.tlsLog.verified, false);
  assert.equal(await o.metric('ok'), 1);
});

test('encrypt + not offered: 451 4.7.4, nothing delivered, starttls-not-supported', async () => {
  const o = await relay('encrypt', 'plain');
  assertTempfail(o, '4.7.4', /does not offer STARTTLS/);
  assert.equal(await o.metric('starttls-not-supported'), 1);
  assert.equal(o.tlsLog.result, 'starttls-not-supported');
});

test('encrypt + wrong name: TLS anyway, delivered', async () => {
  const o = await relay('encrypt', 'wrongName');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, true);
  assert.equal(await o.metric('ok'), 1);
});

test('verify + not offered: 451 4.7.5', async () => {
  const o = await relay('verify', 'plain');
  assertTempfail(o, '4.7.5', /does not offer STARTTLS/);
  assert.equal(await o.metric('starttls-not-supported'), 1);
});

test('verify + wrong name: 451 4.7.5, certificate-host-mismatch', async () => {
  const o = await relay('verify', 'wrongName');
  assertTempfail(o, '4.7.5', /certificate does not match its name/);
  assert.equal(await o.metric('certificate-host-mismatch'), 1);
});

test('verify + untrusted CA: 451 4.7.5, certificate-not-trusted', async () => {
  const o = await relay('verify', 'untrusted');
  assertTempfail(o, '4.7.5', /certificate not trusted/);
  assert.equal(await o.metric('certificate-not-trusted'), 1);
});

test('verify without ca_file: the system store does not know the test CA', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-tls-relay-'));
  const cfg = join(dir, 'mailveil.yaml');
  writeFileSync(cfg, `tls:\n  next_hop: { level: verify, servername: ${HOP} }\n`);
  const mv = await startMailveil({ nextHop: sinks.ok.address, config: cfg });
  running.push(mv);
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: [RCPT], body: message('no ca', 'x\r\n') });
  await mv.stop();
  assert.equal(r.mail.code, 451);
  assert.match(r.mail.text, /^4\.7\.5 Next hop TLS certificate not trusted/);
});

test('verify + expired: 451 4.7.5, certificate-expired', async () => {
  const o = await relay('verify', 'expired');
  assertTempfail(o, '4.7.5', /certificate expired/);
  assert.equal(await o.metric('certificate-expired'), 1);
  assert.equal(o.tlsLog.result, 'certificate-expired');
  assert.equal(o.tlsLog.level, 'warn');
  assert.equal(o.tlsLog.reason, 'CERT_HAS_EXPIRED');
});

test('verify ok: delivered over TLS, verified', async () => {
  const o = await relay('verify', 'ok');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, true);
  assert.equal(await o.metric('ok'), 1);
  assert.equal(o.tlsLog.verified, true);
  assert.equal(o.tlsLog.tls_level, 'verify');
});

test('secure ok: delivered over TLS', async () => {
  const o = await relay('secure', 'ok');
  assert.equal(o.final?.code, 250);
  assert.equal(o.secure, true);
  assert.equal(await o.metric('ok'), 1);
});

test('secure + wrong name: 451 4.7.5 (the same name rule as verify)', async () => {
  const o = await relay('secure', 'wrongName');
  assertTempfail(o, '4.7.5', /certificate does not match its name/);
  assert.equal(await o.metric('certificate-host-mismatch'), 1);
});

test('a configured client certificate is presented; without one, none is', async () => {
  const withCert = await relay('verify', 'clientCert', { cert: certs.client.chainFile, key: certs.client.keyFile });
  assert.equal(withCert.final?.code, 250);
  assert.equal(withCert.secure, true);
  assert.equal(withCert.clientCert, 'mailveil.example.test');
  const without = await relay('verify', 'clientCert');
  assert.equal(without.final?.code, 250);
  assert.equal(without.clientCert, undefined);
});
