/*
 * Issue 10 in mx mode, end to end: the real `mailveil serve` with
 * `delivery.mode: mx` delivers straight to each recipient domain's MX,
 * looked up through a real validating resolver (unbound, test/helpers/
 * dns-world.ts) with signed, unsigned and bogus zones, to STARTTLS sinks on
 * 127.0.0.71-74:25, with MTA-STS policies served over HTTPS from
 * 127.0.0.80:443. Each case is a row of the matrix; the client sees
 * the reply a Postfix in front of mailveil would see, and the sinks show
 * what really left.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDnsWorld, type DnsWorld } from '../helpers/dns-world';
import { systemSkipReason } from '../helpers/sink';
import { TestPki, type Issued } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { message, openSession, RawSmtp, sendOne, transaction, type SendResult } from '../helpers/smtp-client';
import { metricValue } from '../helpers/scripted-hop';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { StartTlsClient } from '../helpers/starttls-client';
import { rfc8460Errors } from '../helpers/rfc8460-schema';

const IP = { a: '127.0.0.71', wrongName: '127.0.0.72', plain: '127.0.0.73', down: '127.0.0.74', noReqTls: '127.0.0.75', dropsMail: '127.0.0.76', sts: '127.0.0.80' };
const tools = systemSkipReason(['unbound', 'unbound-checkconf', 'ldns-keygen', 'ldns-signzone', 'openssl']);
const skip = tools || (process.getuid?.() !== 0 ? 'needs root to listen on 127.0.0.x:25 and :443' : false);
const CARD_BODY = 'please charge 4111 1111 1111 1111 today\r\n';

let pki: TestPki;
let world: DnsWorld;
const sinks: Record<string, TlsSink> = {};
let sts: Server;
let dropsMail: TcpServer;
let dropsMailCount = 0;
const instances: Mailveil[] = [];
let dir: string;
let rulesDir: string;
const running: { stop(): Promise<unknown> }[] = [];

const spkiOf = (c: Issued) => createHash('sha256').update(c.x509.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const mx = (ip: string, tlsa?: string, name = 'mx1') => [`@ MX 10 ${name}`, `${name} A ${ip}`, ...(tlsa ? [`_25._tcp.${name} TLSA ${tlsa}`] : [])];
const STS_POLICIES: Record<string, string> = {
  'mta-sts.stsok.test': 'version: STSv1\nmode: enforce\nmx: mx1.stsok.test\nmax_age: 86400\n',
  'mta-sts.stsenforce.test': 'version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n',
  'mta-sts.ststesting.test': 'version: STSv1\nmode: testing\nmx: *.elsewhere.test\nmax_age: 86400\n',
  'mta-sts.shared.test': 'version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n',
};

before(async () => {
  if (skip) return;
  pki = new TestPki('mx delivery');
  const names = ['dane', 'danebad', 'nodane', 'bogus', 'stsok', 'stsenforce', 'ststesting', 'fallback', 'lmtpok', 'reqtls', 'v6', 'danetaok', 'secure', 'verifyins'].map((d) => `mx1.${d}.test`);
  const certA = pki.leaf('mx-a', { names: [...names, 'mx2.fallback.test'] });
  const certWrong = pki.leaf('mx-wrong', { names: ['someone-else.example'] });
  sinks.a = await startTlsSink({ cert: certA, host: IP.a, port: 25, refuseRcpt: /^nobody@/ });
  sinks.wrongName = await startTlsSink({ cert: certWrong, host: IP.wrongName, port: 25 });
  sinks.plain = await startTlsSink({ cert: certA, host: IP.plain, port: 25, hideSTARTTLS: true });
  sinks.noReqTls = await startTlsSink({ cert: certA, host: IP.noReqTls, port: 25, hideREQUIRETLS: true });
  sinks.v6 = await startTlsSink({ cert: certA, host: '::1', port: 25 });
  running.push(...Object.values(sinks));
  const stsCert = pki.leaf('sts', { names: Object.keys(STS_POLICIES) });
  sts = createServer({ key: stsCert.key, cert: stsCert.chain }, (req, res) => {
    const body = STS_POLICIES[String(req.headers.host ?? '').split(':')[0]];
    if (req.url !== '/.well-known/mta-sts.txt' || !body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => sts.listen(443, IP.sts, () => r()));
  // An MX that greets, says EHLO, and hangs up at MAIL FROM.
  dropsMail = createTcpServer((sock) => {
    sock.on('error', () => undefined);
    sock.write('220 drops ESMTP\r\n');
    sock.on('data', (d) => {
      const line = d.toString('latin1');
      if (/^EHLO/i.test(line)) sock.write('250-drops\r\n250 PIPELINING\r\n');
      else if (/^MAIL/i.test(line)) {
        dropsMailCount++;
        sock.destroy();
      } else if (/^QUIT/i.test(line)) sock.end('221 bye\r\n');
      else sock.write('250 ok\r\n');
    });
  });
  await new Promise<void>((r) => dropsMail.listen(25, IP.dropsMail, () => r()));
  const a = spkiOf(certA);
  const stsZone = (d: string) => [...mx(IP.a), '_mta-sts TXT "v=STSv1; id=20261204"', `mta-sts A ${IP.sts}`, `_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@${d}"`];
  world = await startDnsWorld({
    zones: [
      { name: 'dane.test', mode: 'signed', records: mx(IP.a, `3 1 1 ${a}`) },
      { name: 'danebad.test', mode: 'signed', records: mx(IP.a, `3 1 1 ${'ab'.repeat(32)}`) },
      // DANE-TA: the intermediate is the trust anchor, but the certificate names someone else.
      { name: 'danetaname.test', mode: 'signed', records: mx(IP.wrongName, `2 1 1 ${spkiOf(pki.intermediate)}`) },
      { name: 'nodane.test', mode: 'unsigned', records: mx(IP.a, `3 1 1 ${'ab'.repeat(32)}`) },
      { name: 'bogus.test', mode: 'bogus', records: mx(IP.a, `3 1 1 ${a}`) },
      { name: 'nullmx.test', mode: 'signed', records: ['@ MX 0 .'] },
      { name: 'plain.test', mode: 'unsigned', records: mx(IP.plain) },
      { name: 'wrongname.test', mode: 'unsigned', records: mx(IP.wrongName) },
      { name: 'stsok.test', mode: 'unsigned', records: stsZone('stsok.test') },
      { name: 'stsenforce.test', mode: 'unsigned', records: stsZone('stsenforce.test') },
      { name: 'ststesting.test', mode: 'unsigned', records: stsZone('ststesting.test') },
      { name: 'fallback.test', mode: 'unsigned', records: ['@ MX 10 mx1', `mx1 A ${IP.down}`, '@ MX 20 mx2', `mx2 A ${IP.a}`] },
      { name: 'lmtpok.test', mode: 'signed', records: mx(IP.a, `3 1 1 ${a}`) },
      { name: 'reqtls.test', mode: 'signed', records: mx(IP.noReqTls, `3 1 1 ${a}`) },
      // Same MX host as dane.test, but an MTA-STS policy (enforce) whose patterns it does not match.
      { name: 'shared.test', mode: 'unsigned', records: ['@ MX 10 mx1.dane.test.', '_mta-sts TXT "v=STSv1; id=1"', `mta-sts A ${IP.sts}`] },
      { name: 'verifyins.test', mode: 'unsigned', records: mx(IP.a) },
      { name: 'danetaok.test', mode: 'signed', records: mx(IP.a, `2 1 1 ${spkiOf(pki.intermediate)}`) },
      { name: 'secure.test', mode: 'unsigned', records: mx(IP.a) },
      { name: 'danebadplain.test', mode: 'signed', records: mx(IP.plain, `3 1 1 ${'cd'.repeat(32)}`) },
      { name: 'dropsmail.test', mode: 'unsigned', records: mx(IP.dropsMail) },
      { name: 'v6.test', mode: 'signed', records: ['@ MX 10 mx1', 'mx1 AAAA ::1', `_25._tcp.mx1 TLSA 3 1 1 ${a}`] },
    ],
  });
  dir = mkdtempSync(join(tmpdir(), 'mv-mx-'));
  rulesDir = join(dir, 'rules.d');
  mkdirSync(rulesDir);
  writeFileSync(
    join(rulesDir, '10-card.yaml'),
    [
      'rules:',
      '  - id: card',
      '    detector: credit_card',
      '    scope: [body]',
      '    action: redact',
      '    replacement: "[CARD]"',
      '    require_tls: verified',
      'tls_policy:',
      '  plain.test: encrypt',
      '  wrongname.test: verify',
      '  secure.test: secure',
      '  verifyins.test: verify',
      '',
    ].join('\n'),
  );
});

after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
  await new Promise<void>((r) => (sts ? sts.close(() => r()) : r()));
  await new Promise<void>((r) => (dropsMail ? dropsMail.close(() => r()) : r()));
  await world?.stop();
});

async function start(extra: Record<string, unknown> = {}): Promise<Mailveil> {
  const sub = mkdtempSync(join(dir, 'inst-'));
  const cfg = join(sub, 'mailveil.yaml');
  const conf = {
    delivery: { mode: 'mx' },
    dns: { servers: [`${world.server.host}:${world.server.port}`], timeout: '3s' },
    tls: { ca_file: pki.caFile },
    ...extra,
  };
  writeFileSync(cfg, JSON.stringify(conf) + '\n');
  const mv = await startMailveil({ nextHop: '127.0.0.1:9', config: cfg, rulesDir, stateDir: join(sub, 'var') });
  running.push(mv);
  instances.push(mv);
  return mv;
}

let mv: Mailveil;
const send = (to: string[], subject: string, body = 'nothing here\r\n', headers = ''): Promise<SendResult> =>
  sendOne(mv.port, { from: 'sender@example.com', to, body: message(subject, body, headers) });
const got = (sink: string, subject: string) => sinks[sink].messages.filter((m) => m.data.toString().includes(`Subject: ${subject}\r\n`));
const line = (r: { code: number; text: string } | undefined) => `${r?.code} ${r?.text}`;

test('mx: start mailveil in mx mode', { skip }, async () => {
  mv = await start();
});

test('mx: DANE-EE match (signed zone, 3 1 1) -> delivered over TLS, policy source dane', { skip }, async () => {
  const r = await send(['alice@dane.test'], 'dane ok');
  assert.equal(r.final?.code, 250, line(r.final));
  const [m] = got('a', 'dane ok');
  assert.ok(m?.secure, 'over TLS');
  assert.equal(m.servername, 'mx1.dane.test', 'SNI is the MX host name');
  const l = await mv.waitForLog((x) => x.event === 'tls' && x.domain === 'dane.test', 'tls line');
  assert.equal(l.policy_source, 'dane');
  assert.equal(l.result, 'ok');
  assert.equal(l.verified, true);
  assert.match(String(l.mx), /^[0-9a-f]{16}$/, 'the MX host as a pseudonym');
  assert.ok(Number(await metricValue(mv.metricsPort, 'mailveil_tls_outbound_total', { policy: 'dane', result: 'ok' })) >= 1);
});

test('mx: DANE-EE mismatch -> 451 4.7.5 after DATA (only the header could have said TLS-Required: No), nothing delivered', { skip }, async () => {
  const r = await send(['bob@danebad.test'], 'dane bad');
  assert.equal(r.rcpt[0].code, 250, 'accepted provisionally: the policy is the recipient side\'s');
  assert.equal(r.final?.code, 451, line(r.final));
  assert.match(r.final!.text, /^4\.7\.5 DANE/);
  assert.equal(got('a', 'dane bad').length, 0);
});

test('mx: DANE-TA with a certificate for another name -> 451 4.7.5', { skip }, async () => {
  const r = await send(['bob@danetaname.test'], 'dane ta name');
  assert.equal(r.final?.code, 451, line(r.final));
  assert.match(r.final!.text, /^4\.7\.5 /);
  assert.equal(got('wrongName', 'dane ta name').length, 0);
  const l = await mv.waitForLog((x) => x.event === 'tls' && x.domain === 'danetaname.test', 'tls line');
  assert.equal(l.result, 'certificate-host-mismatch', 'the TA matched; the name did not');
});

test('mx: DANE-TA (2 1 1, the issuing CA) with the MX name in the certificate -> delivered, verified', { skip }, async () => {
  const r = await send(['bo@danetaok.test'], 'dane ta ok');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('a', 'dane ta ok').length, 1);
  const l = await mv.waitForLog((x) => x.event === 'tls' && x.domain === 'danetaok.test', 'tls line');
  assert.equal(l.result, 'ok');
  assert.equal(l.verified, true);
});

test('mx: a static secure entry matches the MX certificate by dot-nexthop (mx1.secure.test under .secure.test)', { skip }, async () => {
  const r = await send(['sid@secure.test'], 'static secure');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('a', 'static secure').length, 1);
});

test('mx: TLSA in an unsigned zone is not DANE: delivered at the default level (may)', { skip }, async () => {
  const r = await send(['carol@nodane.test'], 'no dane');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('a', 'no dane').length, 1);
  const l = await mv.waitForLog((x) => x.event === 'tls' && x.domain === 'nodane.test', 'tls line');
  assert.equal(l.policy_source, 'default');
  assert.equal(l.tls_level, 'may');
});

test('mx: bogus TLSA (SERVFAIL from the validating resolver) -> 451 4.7.5', { skip }, async () => {
  const r = await send(['dan@bogus.test'], 'bogus');
  assert.equal(r.final?.code, 451, line(r.final));
  assert.match(r.final!.text, /^4\.7\.5 /);
  assert.equal(got('a', 'bogus').length, 0);
});

test('mx: null MX -> 556 5.1.10', { skip }, async () => {
  const r = await send(['erin@nullmx.test'], 'null mx');
  assert.equal(r.rcpt[0].code, 556, line(r.rcpt[0]));
  assert.match(r.rcpt[0].text, /^5\.1\.10 /);
});

test('mx: TLS-Required: No sets a failed DANE policy aside: delivered over TLS at level may; a require_tls card is not', { skip }, async () => {
  const r = await send(['bea@danebad.test'], 'relaxed', 'nothing here\r\n', 'TLS-Required: No\r\n');
  assert.equal(r.final?.code, 250, line(r.final));
  const [m] = got('a', 'relaxed');
  assert.ok(m?.secure, 'TLS is still attempted (RFC 8689 5)');
  assert.match(m.data.toString(), /\r\nTLS-Required: No\r\n/);
  const l = await mv.waitForLog((x) => x.event === 'tls_required_no' && x.domain === 'danebad.test', 'relax line');
  assert.equal(l.result, 'relaxed');
  const card = await send(['ben@danebad.test'], 'relaxed card', CARD_BODY, 'TLS-Required: No\r\n');
  assert.equal(card.final?.code, 451, 'TLS-Required: No never relaxes a require_tls rule');
  assert.equal(got('a', 'relaxed card').length, 0);
});

test('mx: TLS-Required: No to a user the MX does not know: its 550 is passed back after DATA (SMTP), per recipient over LMTP', { skip }, async () => {
  const r = await send(['nobody@danebad.test'], 'relaxed unknown', 'nothing here\r\n', 'TLS-Required: No\r\n');
  assert.equal(r.rcpt[0].code, 250, 'accepted provisionally');
  assert.equal(r.final?.code, 550, line(r.final));
  const lmtp = await start({ listen_protocol: 'lmtp' });
  const { client } = await RawSmtp.open(lmtp.port);
  try {
    assert.equal((await client.cmd('LHLO client.example.org')).code, 250);
    assert.equal((await client.cmd('MAIL FROM:<sender@example.com>')).code, 250);
    assert.equal((await client.cmd('RCPT TO:<nobody@danebad.test>')).code, 250);
    assert.equal((await client.cmd('RCPT TO:<ok@danebad.test>')).code, 250);
    assert.equal((await client.cmd('DATA')).code, 354);
    await client.write(message('relaxed split', 'nothing here\r\n', 'TLS-Required: No\r\n') + '\r\n.\r\n');
    const first = await client.reply(60_000);
    const second = await client.reply(60_000);
    assert.equal(first.code, 550, line(first));
    assert.equal(second.code, 250, line(second));
  } finally {
    client.close();
  }
  const ms = got('a', 'relaxed split');
  assert.equal(ms.length, 1);
  assert.deepEqual(ms[0].to, ['ok@danebad.test']);
  await lmtp.stop();
});

test('mx: a static policy is the operator\'s, not the recipient\'s: TLS-Required: No does not relax it (4.7.4 at RCPT)', { skip }, async () => {
  const r = await send(['fay@plain.test'], 'relaxed static', 'nothing here\r\n', 'TLS-Required: No\r\n');
  assert.equal(r.rcpt[0].code, 451, line(r.rcpt[0]));
  assert.match(r.rcpt[0].text, /^4\.7\.4 /);
});

test('mx: one domain\'s broken MTA-STS policy does not touch another domain on the same MX host', { skip }, async () => {
  const broken = await send(['gus@shared.test'], 'shared broken');
  assert.equal(broken.final?.code, 451, line(broken.final));
  const ok = await send(['hal@dane.test'], 'shared ok');
  assert.equal(ok.final?.code, 250, line(ok.final));
  assert.equal(got('a', 'shared broken').length, 0);
  assert.equal(got('a', 'shared ok').length, 1);
});

test('mx: a plain MX under a static encrypt entry -> 451 4.7.4, never sent in clear', { skip }, async () => {
  const r = await send(['frank@plain.test'], 'plain encrypt');
  assert.equal(r.rcpt[0].code, 451, line(r.rcpt[0]));
  assert.match(r.rcpt[0].text, /^4\.7\.4 /);
  assert.equal(sinks.plain.mailCommands(), 0);
});

test('mx: a certificate for another name under a static verify entry -> 451 4.7.5', { skip }, async () => {
  const r = await send(['gina@wrongname.test'], 'wrong name');
  assert.equal(r.rcpt[0].code, 451, line(r.rcpt[0]));
  assert.match(r.rcpt[0].text, /^4\.7\.5 /);
  assert.equal(got('wrongName', 'wrong name').length, 0);
});

test('mx: MTA-STS enforce with a matching MX -> delivered over verified TLS (source mta-sts)', { skip }, async () => {
  const r = await send(['hank@stsok.test'], 'sts ok');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('a', 'sts ok').length, 1);
  const l = await mv.waitForLog((x) => x.event === 'tls' && x.domain === 'stsok.test', 'tls line');
  assert.equal(l.policy_source, 'mta-sts');
  assert.equal(l.verified, true);
});

test('mx: MTA-STS enforce with the MX outside the policy patterns -> 451 4.7.5, no connection', { skip }, async () => {
  const r = await send(['ivy@stsenforce.test'], 'sts enforce');
  assert.equal(r.final?.code, 451, line(r.final));
  assert.match(r.final!.text, /^4\.7\.5 /);
  assert.equal(got('a', 'sts enforce').length, 0);
});

test('mx: MTA-STS testing with the MX outside the patterns -> delivered (and reported, below)', { skip }, async () => {
  const r = await send(['jack@ststesting.test'], 'sts testing');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('a', 'sts testing').length, 1);
});

test('mx: the lowest-preference MX is down -> the next one takes the message', { skip }, async () => {
  const r = await send(['kim@fallback.test'], 'fallback');
  assert.equal(r.final?.code, 250, line(r.final));
  const [m] = got('a', 'fallback');
  assert.equal(m.servername, 'mx2.fallback.test');
});

test('mx: an MX with only an IPv6 address (AAAA ::1) under DANE -> delivered over IPv6', { skip }, async () => {
  const r = await send(['uma@v6.test'], 'over v6');
  assert.equal(r.final?.code, 250, line(r.final));
  assert.equal(got('v6', 'over v6').length, 1);
});

test('mx: connections are reused per destination: two messages to one domain, one connection', { skip }, async () => {
  const before = sinks.a.sessions().connections;
  for (const n of [1, 2]) assert.equal((await send(['val@lmtpok.test'], `reuse ${n}`)).final?.code, 250);
  assert.equal(got('a', 'reuse 1').length + got('a', 'reuse 2').length, 2);
  assert.equal(sinks.a.sessions().connections - before, 1, 'the second message went over the idle connection');
});

test('mx over SMTP: an RCPT for a second domain gets 452 4.5.3; the first domain is delivered alone', { skip }, async () => {
  const r = await send(['lee@dane.test', 'lou@nodane.test'], 'two domains');
  assert.equal(r.rcpt[0].code, 250);
  assert.equal(r.rcpt[1].code, 452, line(r.rcpt[1]));
  assert.match(r.rcpt[1].text, /^4\.5\.3 /);
  assert.equal(r.final?.code, 250);
  const ms = got('a', 'two domains');
  assert.equal(ms.length, 1);
  assert.deepEqual(ms[0].to, ['lee@dane.test']);
});

test('mx: require_tls with a card: a domain at may -> 451 4.7.5; over DANE -> delivered, redacted', { skip }, async () => {
  const may = await send(['mo@nodane.test'], 'card may', CARD_BODY);
  assert.equal(may.final?.code, 451, line(may.final));
  assert.match(may.final!.text, /^4\.7\.5 /);
  assert.equal(got('a', 'card may').length, 0);
  const dane = await send(['ned@dane.test'], 'card dane', CARD_BODY);
  assert.equal(dane.final?.code, 250, line(dane.final));
  const [m] = got('a', 'card dane');
  assert.ok(m.secure);
  assert.equal(m.requireTls, true, 'REQUIRETLS on MAIL FROM where the MX offers it');
  assert.match(m.data.toString(), /^X-Mailveil-Verdict: redact; rules=card; tls=verified-required\r\n/);
  assert.ok(!m.data.toString().includes('4111 1111'));
});

test('mx: static verify over an unsigned MX answer is verified for a require_tls rule, not for REQUIRETLS (RFC 8689 4.2.1)', { skip }, async () => {
  const card = await send(['vi@verifyins.test'], 'verify card', CARD_BODY);
  assert.equal(card.final?.code, 250, line(card.final));
  assert.equal(got('a', 'verify card').length, 1);
  const req = await send(['vo@verifyins.test'], 'verify reqtls', 'nothing here\r\n', 'Require-TLS-ESMTP: yes\r\n');
  assert.equal(req.final?.code, 451, line(req.final));
  assert.equal(got('a', 'verify reqtls').length, 0);
});

test('mx: Require-TLS-ESMTP: yes is REQUIRETLS: a verified MX without REQUIRETLS -> 451 4.7.5; with it -> delivered', { skip }, async () => {
  const no = await send(['olga@reqtls.test'], 'reqtls missing', 'nothing here\r\n', 'Require-TLS-ESMTP: yes\r\n');
  assert.equal(no.final?.code, 451, line(no.final));
  assert.equal(got('noReqTls', 'reqtls missing').length, 0);
  const yes = await send(['pat@dane.test'], 'reqtls ok', 'nothing here\r\n', 'Require-TLS-ESMTP: yes\r\n');
  assert.equal(yes.final?.code, 250, line(yes.final));
  assert.equal(got('a', 'reqtls ok')[0].requireTls, true);
});

test('mx: MTA-STS policies are cached, and the cache is counted (mailveil_mta_sts_cache_entries)', { skip }, async () => {
  assert.ok(Number(await metricValue(mv.metricsPort, 'mailveil_mta_sts_cache_entries')) >= 3);
});

test('mx: delivery.destination_concurrency: a second transaction to a busy domain waits, then gets 451 4.4.5', { skip }, async () => {
  const one = await start({ delivery: { mode: 'mx', destination_concurrency: 1 }, timeouts: { next_hop_connect: '1s' } });
  const a = await openSession(one.port);
  const b = await openSession(one.port);
  try {
    assert.equal((await a.cmd('MAIL FROM:<sender@example.com>')).code, 250);
    assert.equal((await a.cmd('RCPT TO:<ian@dane.test>')).code, 250, 'the first holds the one slot');
    assert.equal((await b.cmd('MAIL FROM:<sender@example.com>')).code, 250);
    const busy = await b.cmd('RCPT TO:<jo@dane.test>');
    assert.equal(busy.code, 451, line(busy));
    assert.match(busy.text, /^4\.4\.5 /);
    assert.equal((await a.cmd('RSET')).code, 250, 'the slot is freed');
    // As Postfix would: the deferred recipient comes back in a later transaction.
    assert.equal((await b.cmd('RSET')).code, 250);
    assert.equal((await b.cmd('MAIL FROM:<sender@example.com>')).code, 250);
    assert.equal((await b.cmd('RCPT TO:<jo@dane.test>')).code, 250);
  } finally {
    a.close();
    b.close();
  }
  await one.stop();
});

test('mx: TLS-Required: No keeps the operator\'s floor: with default_level encrypt a failed DANE host without STARTTLS is not used in clear', { skip }, async () => {
  const clearOk = await send(['ada@danebadplain.test'], 'relaxed clear', 'nothing here\r\n', 'TLS-Required: No\r\n');
  assert.equal(clearOk.final?.code, 250, 'default_level may: RFC 8689 5 allows plain text');
  assert.equal(got('plain', 'relaxed clear').length, 1);
  const enc = await start({ tls: { ca_file: pki.caFile, default_level: 'encrypt' } });
  const r = await sendOne(enc.port, { from: 'sender@example.com', to: ['abe@danebadplain.test'], body: message('relaxed floor', 'nothing here\r\n', 'TLS-Required: No\r\n') });
  assert.equal(r.final?.code, 451, line(r.final));
  assert.equal(got('plain', 'relaxed floor').length, 0);
  await enc.stop();
});

test('mx: an MX that drops the connection at MAIL FROM does not keep its domain\'s concurrency slot', { skip }, async () => {
  const one = await start({ delivery: { mode: 'mx', destination_concurrency: 1 } });
  const before = dropsMailCount;
  for (let i = 0; i < 3; i++) {
    const r = await sendOne(one.port, { from: 'sender@example.com', to: ['cy@dropsmail.test'], body: message(`drops ${i}`, 'x\r\n') });
    assert.equal(r.rcpt[0]?.code, 451, line(r.rcpt[0]));
    assert.doesNotMatch(r.rcpt[0].text, /^4\.4\.5 /, 'never "too many deliveries": the slot was freed');
  }
  assert.equal(dropsMailCount - before, 3, 'each transaction reached the MX');
  await one.stop();
});

test('mx: REQUIRETLS on MAIL FROM is offered after STARTTLS and honoured per domain: DANE with REQUIRETLS -> delivered; without it, or at may -> 451', { skip }, async () => {
  const inbound = pki.leaf('inbound', { names: ['mailveil.test.example'] });
  const rt = await start({ inbound_tls: { cert: inbound.chainFile, key: inbound.keyFile } });
  const { c } = await StartTlsClient.open(rt.port);
  try {
    assert.equal((await c.cmd('EHLO client.example.org')).code, 250);
    const ehlo = await c.starttls();
    assert.match(ehlo.text, /^REQUIRETLS$/m, 'advertised on the TLS session');
    const ok = await c.send('MAIL FROM:<sender@example.com> REQUIRETLS', message('reqtls esmtp ok', 'nothing here\r\n'), 'kai@dane.test');
    assert.equal(ok.code, 250, `${ok.code} ${ok.text}`);
    const noReq = await c.send('MAIL FROM:<sender@example.com> REQUIRETLS', message('reqtls esmtp no', 'nothing here\r\n'), 'lou@reqtls.test');
    assert.equal(noReq.code, 451, `${noReq.code} ${noReq.text}`);
    const may = await c.send('MAIL FROM:<sender@example.com> REQUIRETLS', message('reqtls esmtp may', 'nothing here\r\n'), 'max@nodane.test');
    assert.equal(may.code, 451, `${may.code} ${may.text}`);
  } finally {
    c.close();
  }
  const [m] = got('a', 'reqtls esmtp ok');
  assert.equal(m?.requireTls, true, 'REQUIRETLS went on to the MX');
  assert.equal(got('noReqTls', 'reqtls esmtp no').length, 0);
  assert.equal(got('a', 'reqtls esmtp may').length, 0);
  await rt.stop();
});

test('mx over LMTP: two domains, one fails: one 250 and one 451 after DATA, and the sink has exactly one copy', { skip }, async () => {
  const lmtp = await start({ listen_protocol: 'lmtp' });
  const { client, greeting } = await RawSmtp.open(lmtp.port);
  assert.match(greeting.text, /LMTP/);
  try {
    assert.equal((await client.cmd('LHLO client.example.org')).code, 250);
    assert.equal((await client.cmd('MAIL FROM:<sender@example.com>')).code, 250);
    assert.equal((await client.cmd('RCPT TO:<quinn@lmtpok.test>')).code, 250);
    assert.equal((await client.cmd('RCPT TO:<rita@nodane.test>')).code, 250);
    assert.equal((await client.cmd('DATA')).code, 354);
    await client.write(message('lmtp split', CARD_BODY) + '\r\n.\r\n');
    const first = await client.reply(60_000);
    const second = await client.reply(60_000);
    assert.equal(first.code, 250, line(first));
    assert.equal(second.code, 451, line(second));
    assert.match(second.text, /^4\.7\.5 /);
  } finally {
    client.close();
  }
  const ms = got('a', 'lmtp split');
  assert.equal(ms.length, 1, 'exactly one copy');
  assert.deepEqual(ms[0].to, ['quinn@lmtpok.test']);
  const l = await lmtp.waitForLog((x) => x.event === 'message', 'message line');
  assert.equal(l.outcome, 'per_recipient');
  await lmtp.stop();
});

test('mx: TLS-RPT counts the sessions; the MTA-STS testing mismatch is reported as a failure', { skip }, async () => {
  await mv.stop(); // the drain writes the counters
  const day = new Date().toISOString().slice(0, 10);
  const stateDir = mv.stateDir;
  const r = spawnSync(process.execPath, [BIN, 'tlsrpt', 'report', '--date', day, '--domain', 'ststesting.test', '--state-dir', stateDir, '--organization', 'mailveil test'], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(rfc8460Errors(report), undefined, 'the report validates against RFC 8460 4.4');
  const p = report.policies[0];
  assert.equal(p.policy['policy-type'], 'sts');
  assert.equal(p.summary['total-failure-session-count'], 1);
  assert.equal(p['failure-details'][0]['result-type'], 'validation-failure');
  const d = spawnSync(process.execPath, [BIN, 'tlsrpt', 'report', '--date', day, '--domain', 'dane.test', '--state-dir', stateDir], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(d.status, 0, d.stderr);
  const dr = JSON.parse(d.stdout);
  assert.equal(rfc8460Errors(dr), undefined);
  // Hosts excluded before any connection are reported too: the bogus TLSA as dnssec-invalid, the MTA-STS enforce mismatch.
  for (const [domain, type] of [['bogus.test', 'dnssec-invalid'], ['stsenforce.test', 'validation-failure']]) {
    const x = spawnSync(process.execPath, [BIN, 'tlsrpt', 'report', '--date', day, '--domain', domain, '--state-dir', stateDir], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(x.status, 0, x.stderr);
    const rep = JSON.parse(x.stdout);
    assert.ok(rep.policies.some((q: { 'failure-details'?: { 'result-type': string }[] }) => q['failure-details']?.some((f) => f['result-type'] === type)), `${domain}: ${x.stdout}`);
  }
  assert.equal(dr.policies[0].policy['policy-type'], 'tlsa');
  assert.ok(dr.policies[0].summary['total-successful-session-count'] >= 1);
  // Every instance of this file: no local part, address or card digits in any log line.
  for (const inst of instances)
    for (const l of inst.logs()) {
      const s = JSON.stringify(l);
      for (const local of ['alice@', 'bob@', 'carol@', 'quinn@', 'rita@', 'ian@', 'jo@', 'cy@', 'abe@', 'sender@', '4111']) assert.ok(!s.includes(local), `a log line holds ${local}: ${s}`);
    }
});
