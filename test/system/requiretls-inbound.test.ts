/*
 * REQUIRETLS received (RFC 8689; issue 10 point 5), from a client's side:
 * the real `mailveil serve` with inbound_tls, a raw client that does
 * STARTTLS and sends `MAIL FROM:<...> REQUIRETLS`, and TLS sinks
 * (test/helpers/tls-sink.ts) as next hops.
 *  (a) REQUIRETLS is advertised only after STARTTLS, and only when a
 *      verified path is configured (tls.next_hop at verify here);
 *  (b) a verified next hop that advertises REQUIRETLS gets the message with
 *      REQUIRETLS on MAIL FROM;
 *  (c) a verified next hop that does not advertise it, and no
 *      secure_next_hop: 451 4.7.5 (550 5.7.10 with escalation_failure:
 *      bounce), nothing at the sink (RFC 8689 4.2.1);
 *  (d) `TLS-Required: No` without REQUIRETLS or a require_tls rule: an
 *      ordinary message, delivered with the header kept.
 * tls-escalation.test.ts covers the rest: a require_tls rule, the
 * Require-TLS-ESMTP header, `TLS-Required: No` not relaxing a rule, and
 * secure_next_hop with and without REQUIRETLS.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestPki, type Issued } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { StartTlsClient as Client } from '../helpers/starttls-client';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { message, type ClientReply } from '../helpers/smtp-client';

const HOP = 'hop.example.test';
const RCPT = 'private.person@example.net';
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

let pki: TestPki;
let inbound: Issued;
const sinks: Record<'withRequireTls' | 'noRequireTls', TlsSink> = {} as never;

before(async () => {
  pki = new TestPki('mailveil requiretls-inbound');
  inbound = pki.leaf('mailveil', { names: ['mailveil.test.example'] });
  const hop = pki.leaf('hop', { names: [HOP] });
  sinks.withRequireTls = await startTlsSink({ cert: hop });
  sinks.noRequireTls = await startTlsSink({ cert: hop, hideREQUIRETLS: true });
  running.push(...Object.values(sinks));
});

async function start(sink: TlsSink, level: 'may' | 'verify', failure: 'defer' | 'bounce' = 'defer'): Promise<Mailveil> {
  const cfg = join(mkdtempSync(join(tmpdir(), 'mv-reqtls-in-')), 'mailveil.yaml');
  const tls = { next_hop: { level, servername: HOP, ca_file: pki.caFile }, secure_next_hop: null, escalation_failure: failure };
  writeFileSync(cfg, `inbound_tls: ${JSON.stringify({ cert: inbound.chainFile, key: inbound.keyFile })}\ntls: ${JSON.stringify(tls)}\n`);
  // An empty rules dir: no require_tls rule, so only REQUIRETLS can ask for verified TLS.
  const mv = await startMailveil({ nextHop: sink.address, config: cfg, rulesDir: mkdtempSync(join(tmpdir(), 'mv-reqtls-rules-')) });
  running.push(mv);
  return mv;
}

const advertises = (ehlo: ClientReply) => /^REQUIRETLS$/m.test(ehlo.text);
const CLEAN = message('requiretls', 'nothing sensitive here\r\n');

test('(a) REQUIRETLS is advertised only after STARTTLS, and only with a verified path', async () => {
  const verified = await start(sinks.withRequireTls, 'verify');
  let { c } = await Client.open(verified.port);
  const before = await c.cmd('EHLO client.example.org');
  assert.match(before.text, /^STARTTLS$/m);
  assert.ok(!advertises(before), `advertised before STARTTLS:\n${before.text}`);
  assert.ok(advertises(await c.starttls()), 'advertised on the TLS session with tls.next_hop at verify');
  c.close();

  const noPath = await start(sinks.withRequireTls, 'may');
  ({ c } = await Client.open(noPath.port));
  await c.cmd('EHLO client.example.org');
  const after = await c.starttls();
  assert.match(after.text, /^PIPELINING$/m);
  assert.ok(!advertises(after), `advertised with no verified path:\n${after.text}`);
  c.close();
});

test('(b) REQUIRETLS received, next hop verified and advertising it: delivered with REQUIRETLS on MAIL FROM', async () => {
  const mv = await start(sinks.withRequireTls, 'verify');
  const n = sinks.withRequireTls.count();
  const { c } = await Client.open(mv.port);
  await c.cmd('EHLO client.example.org');
  await c.starttls();
  const r = await c.send('MAIL FROM:<sender@example.com> REQUIRETLS', CLEAN, RCPT);
  c.close();
  assert.equal(r.code, 250, r.text);
  assert.equal(sinks.withRequireTls.count(), n + 1);
  const m = sinks.withRequireTls.messages.at(-1)!;
  assert.equal(m.secure, true);
  assert.equal(m.requireTls, true, 'REQUIRETLS on the next hop MAIL FROM');
  assert.deepEqual(m.to, [RCPT]);
  assert.match(m.data.toString(), /^X-Mailveil-Verdict: pass; rules=; tls=verified-required\r\n/);
  const line = await mv.waitForLog((l) => l.event === 'message' && l.tls === 'verified-required', 'the message line');
  assert.equal(line.tls_path, 'mirrored');
});

test('(c) REQUIRETLS received, verified next hop without REQUIRETLS, no secure_next_hop: 451 4.7.5 (bounce: 550 5.7.10), nothing delivered', async () => {
  for (const [failure, code, enhanced] of [['defer', 451, '4.7.5'], ['bounce', 550, '5.7.10']] as const) {
    const mv = await start(sinks.noRequireTls, 'verify', failure);
    const n = sinks.noRequireTls.count();
    const { c } = await Client.open(mv.port);
    await c.cmd('EHLO client.example.org');
    assert.ok(advertises(await c.starttls()), 'advertised: a verified path is configured');
    const r = await c.send('MAIL FROM:<sender@example.com> REQUIRETLS', CLEAN, RCPT);
    c.close();
    assert.equal(r.code, code, `${failure}: ${r.code} ${r.text}`);
    assert.ok(r.text.startsWith(`${enhanced} `), r.text);
    assert.ok(!r.text.includes(RCPT));
    assert.equal(sinks.noRequireTls.count(), n, 'nothing reached the sink');
    // The same hop takes a message without REQUIRETLS: only the requirement was missing.
    const { c: c2 } = await Client.open(mv.port);
    await c2.cmd('EHLO client.example.org');
    await c2.starttls();
    const ok = await c2.send('MAIL FROM:<sender@example.com>', CLEAN, RCPT);
    c2.close();
    assert.equal(ok.code, 250, ok.text);
    assert.equal(sinks.noRequireTls.count(), n + 1);
  }
});

test('(d) TLS-Required: No with no REQUIRETLS and no require_tls rule: delivered as any message, header kept', async () => {
  const mv = await start(sinks.noRequireTls, 'may');
  const n = sinks.noRequireTls.count();
  const { c } = await Client.open(mv.port);
  await c.cmd('EHLO client.example.org');
  const r = await c.send('MAIL FROM:<sender@example.com>', message('relaxed', 'nothing sensitive\r\n', 'TLS-Required: No\r\n'), RCPT);
  c.close();
  assert.equal(r.code, 250, r.text);
  assert.equal(sinks.noRequireTls.count(), n + 1);
  const m = sinks.noRequireTls.messages.at(-1)!;
  assert.equal(m.requireTls, false);
  const text = m.data.toString();
  assert.match(text, /\r\nTLS-Required: No\r\n/, 'the header travels on (RFC 8689 section 5)');
  assert.match(text, /^X-Mailveil-Verdict: pass; rules=\r\n/, 'no tls=verified-required');
});
