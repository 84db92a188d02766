/*
 * Issue 10, points 4 and 5 in relay mode: a message a `require_tls:
 * verified` rule fired on (or that carries `Require-TLS-ESMTP: yes`) leaves
 * only over verified TLS. The real `mailveil serve` with two STARTTLS sinks
 * (test/helpers/tls-sink.ts): next_hop at level may, and
 * tls.secure_next_hop. Flagged messages reach the secure sink over verified
 * TLS and never the normal one; clean ones the normal one; a secure hop
 * whose certificate does not verify gives 451 4.7.5 (or 550 5.7.10 with
 * escalation_failure: bounce) and delivers nothing; REQUIRETLS goes on MAIL
 * FROM only where the secure hop advertises it.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestPki, type Issued } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { message, sendOne, type SendResult } from '../helpers/smtp-client';
import { metricValue } from '../helpers/scripted-hop';

const HOP = 'hop.example.test';
const RCPT = 'private.person@example.net';
const CARD_BODY = 'please charge 4111 1111 1111 1111 today\r\n';
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

let pki: TestPki;
let certs: { ok: Issued; wrongName: Issued };
const sinks: Record<string, TlsSink> = {};
let rulesDir: string;

before(async () => {
  pki = new TestPki('mailveil tls-escalation');
  certs = { ok: pki.leaf('hop', { names: [HOP] }), wrongName: pki.leaf('wrong', { names: ['other.example.test'] }) };
  for (const [name, o] of Object.entries({
    normal: { cert: certs.ok },
    secure: { cert: certs.ok },
    secureNoRequireTls: { cert: certs.ok, hideREQUIRETLS: true },
    secureWrongName: { cert: certs.wrongName },
  })) {
    sinks[name] = await startTlsSink(o);
    running.push(sinks[name]);
  }
  rulesDir = mkdtempSync(join(tmpdir(), 'mv-esc-rules-'));
  mkdirSync(rulesDir, { recursive: true });
  writeFileSync(join(rulesDir, '10-card.yaml'), 'rules:\n  - id: card\n    detector: credit_card\n    scope: [body]\n    action: redact\n    replacement: "[CARD]"\n    require_tls: verified\n');
});

async function start(secure: string | null, failure = 'defer'): Promise<Mailveil> {
  const dir = mkdtempSync(join(tmpdir(), 'mv-esc-'));
  const cfg = join(dir, 'mailveil.yaml');
  const tls = { next_hop: { level: 'may', servername: HOP, ca_file: pki.caFile }, secure_next_hop: secure ? sinks[secure].address : null, escalation_failure: failure };
  writeFileSync(cfg, `tls: ${JSON.stringify(tls)}\n`);
  const mv = await startMailveil({ nextHop: sinks.normal.address, config: cfg, rulesDir });
  running.push(mv);
  return mv;
}

const counts = () => Object.fromEntries(Object.entries(sinks).map(([k, s]) => [k, s.count()]));
const delta = (before: Record<string, number>) => Object.fromEntries(Object.entries(sinks).map(([k, s]) => [k, s.count() - before[k]]).filter(([, n]) => n !== 0));
const send = (mv: Mailveil, subject: string, body: string, headers = ''): Promise<SendResult> =>
  sendOne(mv.port, { from: 'sender@example.com', to: [RCPT], body: message(subject, body, headers) });
const last = (name: string) => sinks[name].messages[sinks[name].messages.length - 1];

test('relay mode: a card message goes to secure_next_hop over verified TLS with REQUIRETLS, a clean one to next_hop', async () => {
  const mv = await start('secure');
  let before = counts();
  const card = await send(mv, 'card', CARD_BODY);
  assert.equal(card.final?.code, 250, `${card.final?.code} ${card.final?.text}`);
  assert.deepEqual(delta(before), { secure: 1 }, 'only the secure sink got it');
  const m = last('secure');
  assert.equal(m.secure, true);
  assert.equal(m.requireTls, true, 'REQUIRETLS on MAIL FROM: the secure sink advertises it');
  assert.deepEqual(m.to, [RCPT]);
  assert.equal(m.from, 'sender@example.com');
  const text = m.data.toString();
  assert.match(text, /^X-Mailveil-Verdict: redact; rules=card; tls=verified-required\r\n/);
  assert.ok(!text.includes('4111 1111'), 'redacted');

  before = counts();
  const clean = await send(mv, 'clean', 'nothing here\r\n');
  assert.equal(clean.final?.code, 250);
  assert.deepEqual(delta(before), { normal: 1 }, 'only the normal sink got it');
  assert.match(last('normal').data.toString(), /^X-Mailveil-Verdict: pass; rules=\r\n/);
  assert.equal(last('normal').requireTls, false);

  const line = await mv.waitForLog((l) => l.event === 'message' && l.tls === 'verified-required', 'message line with tls');
  assert.equal(line.tls_path, 'secure_next_hop');
  assert.equal(await metricValue(mv.metricsPort, 'mailveil_tls_escalations_total', { result: 'secure_next_hop' }), 1);
  assert.equal(await metricValue(mv.metricsPort, 'mailveil_tls_outbound_total', { policy: 'secure', result: 'ok' }), 1);
  for (const l of mv.logs()) assert.ok(!JSON.stringify(l).includes(RCPT) && !JSON.stringify(l).includes('4111'), `a log line holds a value: ${JSON.stringify(l)}`);
  await mv.stop();
});

test('Require-TLS-ESMTP: yes flags a clean message (kept in it); TLS-Required: No does not relax a require_tls rule', async () => {
  const mv = await start('secure');
  let before = counts();
  const r = await send(mv, 'reqtls header', 'nothing here\r\n', 'Require-TLS-ESMTP: yes\r\n');
  assert.equal(r.final?.code, 250);
  assert.deepEqual(delta(before), { secure: 1 });
  assert.match(last('secure').data.toString(), /\r\nRequire-TLS-ESMTP: yes\r\n/);
  assert.match(last('secure').data.toString(), /^X-Mailveil-Verdict: pass; rules=; tls=verified-required\r\n/);
  before = counts();
  const relaxed = await send(mv, 'relaxed card', CARD_BODY, 'TLS-Required: No\r\n');
  assert.equal(relaxed.final?.code, 250);
  assert.deepEqual(delta(before), { secure: 1 }, 'TLS-Required: No never relaxes a require_tls rule');
  assert.match(last('secure').data.toString(), /\r\nTLS-Required: No\r\n/);
  await mv.stop();
});

test('a secure hop that does not advertise REQUIRETLS gets the flagged message without it', async () => {
  const mv = await start('secureNoRequireTls');
  const before = counts();
  const r = await send(mv, 'card no reqtls', CARD_BODY);
  assert.equal(r.final?.code, 250);
  assert.deepEqual(delta(before), { secureNoRequireTls: 1 });
  assert.equal(last('secureNoRequireTls').requireTls, false);
  await mv.stop();
});

test('secure_next_hop with a wrong-name certificate: 451 4.7.5, nothing delivered anywhere', async () => {
  const mv = await start('secureWrongName');
  const before = counts();
  const r = await send(mv, 'card wrong name', CARD_BODY);
  assert.equal(r.final?.code, 451, `${r.final?.code} ${r.final?.text}`);
  assert.match(String(r.final?.text), /^4\.7\.5 /);
  assert.ok(!String(r.final?.text).includes(RCPT));
  assert.deepEqual(delta(before), {});
  assert.equal(await metricValue(mv.metricsPort, 'mailveil_tls_outbound_total', { policy: 'secure', result: 'certificate-host-mismatch' }), 1);
  await mv.stop();
});

test('no secure_next_hop and a may next_hop: 451 4.7.5 (defer), 550 5.7.10 (bounce); clean mail still flows', async () => {
  const mv = await start(null);
  let before = counts();
  const d = await send(mv, 'card defer', CARD_BODY);
  assert.equal(d.final?.code, 451);
  assert.match(String(d.final?.text), /^4\.7\.5 /);
  assert.deepEqual(delta(before), {});
  before = counts();
  assert.equal((await send(mv, 'clean', 'nothing\r\n')).final?.code, 250);
  assert.deepEqual(delta(before), { normal: 1 });
  await mv.stop();
  const b = await start(null, 'bounce');
  before = counts();
  const r = await send(b, 'card bounce', CARD_BODY);
  assert.equal(r.final?.code, 550);
  assert.match(String(r.final?.text), /^5\.7\.10 /);
  assert.deepEqual(delta(before), {});
  assert.equal(await metricValue(b.metricsPort, 'mailveil_tls_escalations_total', { result: 'bounced' }), 1);
  await b.stop();
});
