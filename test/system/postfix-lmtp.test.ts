/*
 * Issue 10 point 2 through a real Postfix: mailveil in `delivery.mode: mx`
 * with `listen_protocol: lmtp`, behind Postfix as an after-queue content
 * filter whose transport is Postfix's lmtp client (README "LMTP in mx mode").
 *
 *   swaks ─► Postfix public smtpd ─content_filter=scan:[127.0.0.1]:PORT─► scan unix lmtp
 *         ─► mailveil (LMTP, mx) ─┬─► ok.test   MX 127.0.0.91:25 (signed zone, DANE-EE)
 *                                 └─► late.test MX 127.0.0.92:25 (unsigned zone: level may)
 *
 * One message with a card number (rule `require_tls: verified`) for one
 * recipient in each domain. ok.test gives a verified channel, late.test
 * does not, so after DATA mailveil answers 250 for the first recipient and
 * 451 4.7.5 for the second. What only a real Postfix shows:
 *  1. the ok.test sink has exactly one copy;
 *  2. Postfix's lmtp client logs alice status=sent and bob status=deferred
 *     with mailveil's 451 4.7.5 "in reply to end of DATA command";
 *  3. the operator then adds `tls_policy: late.test: verify` (the MX has a
 *     certificate for its name from a CA in tls.ca_file) and mailveil
 *     reloads its rules; `postqueue -f` makes Postfix retry bob alone: one
 *     LMTP transaction with one recipient, delivered over verified TLS, and
 *     alice is not delivered twice.
 * Retries are pinned to the flush: the instance's backoff is 1 h, and the
 * flush ignores it.
 *
 * Addresses 127.0.0.91-.92 (mx-delivery.test.ts uses .71-.75 and .80), so
 * both files can run in parallel. Under CI=true nothing skips.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsWorld, type DnsWorld } from '../helpers/dns-world';
import { isCI, systemSkipReason } from '../helpers/sink';
import { TestPki, type Issued } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { startMailveil, type LogLine, type Mailveil } from '../helpers/mailveil';
import { filterTo, runSwaks, startPostfix, type PostfixInstance } from '../helpers/postfix';
import { freePort, sleep } from '../helpers/ports';
import { REPO_ROOT } from '../helpers/paths';

const IP = { ok: '127.0.0.91', late: '127.0.0.92' };
const CLI_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const skip = systemSkipReason(
  ['postfix', 'postqueue', 'postconf', 'swaks', 'script', 'unbound', 'unbound-checkconf', 'ldns-keygen', 'ldns-signzone', 'openssl'],
  { root: true },
) || (!isCI() && !existsSync(CLI_JS) ? `mailveil is not built (${CLI_JS} missing; run npm run build)` : false);

let pki: TestPki;
let world: DnsWorld;
let dir: string;
let rulesDir: string;
const sinks: Record<'ok' | 'late', TlsSink> = {} as Record<'ok' | 'late', TlsSink>;
const running: { stop(): Promise<unknown> }[] = [];

const spkiOf = (c: Issued) => createHash('sha256').update(c.x509.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

before(async () => {
  if (skip) return;
  pki = new TestPki('postfix lmtp');
  const certOk = pki.leaf('mx-ok', { names: ['mx1.ok.test'] });
  const certLate = pki.leaf('mx-late', { names: ['mx1.late.test'] });
  sinks.ok = await startTlsSink({ cert: certOk, host: IP.ok, port: 25 });
  sinks.late = await startTlsSink({ cert: certLate, host: IP.late, port: 25 });
  running.push(sinks.ok, sinks.late);
  world = await startDnsWorld({
    zones: [
      { name: 'ok.test', mode: 'signed', records: ['@ MX 10 mx1', `mx1 A ${IP.ok}`, `_25._tcp.mx1 TLSA 3 1 1 ${spkiOf(certOk)}`] },
      { name: 'late.test', mode: 'unsigned', records: ['@ MX 10 mx1', `mx1 A ${IP.late}`] },
    ],
  });
  dir = mkdtempSync(join(tmpdir(), 'mv-pf-lmtp-'));
  rulesDir = join(dir, 'rules.d');
  mkdirSync(rulesDir);
  writeFileSync(join(rulesDir, '10-card.yaml'), [
    'rules:',
    '  - id: card',
    '    detector: credit_card',
    '    scope: [body]',
    '    action: redact',
    '    replacement: "[CARD]"',
    '    require_tls: verified',
    '',
  ].join('\n'));
});

after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
  await world?.stop();
  if (process.env.MAILVEIL_TEST_KEEP !== '1') {
    // TestPki leaves its temp dir behind; this file removes its own.
    for (const d of [dir, pki?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  }
});

test('Postfix lmtp → mailveil (LMTP, mx): per-recipient replies after DATA; the flush retries only the deferred recipient', { skip, timeout: 180_000 }, async (t) => {
  // ---- the world: mailveil (LMTP, mx) and a Postfix whose filter transport is lmtp
  const mvPort = await freePort();
  const cfg = join(dir, 'mailveil.yaml');
  writeFileSync(cfg, JSON.stringify({
    listen_protocol: 'lmtp',
    delivery: { mode: 'mx' },
    dns: { servers: [`${world.server.host}:${world.server.port}`], timeout: '3s' },
    tls: { ca_file: pki.caFile },
  }) + '\n');
  const mv: Mailveil = await startMailveil({ listenPort: mvPort, nextHop: '127.0.0.1:9', config: cfg, rulesDir, stateDir: join(dir, 'var') });
  running.push(mv);

  const pf: PostfixInstance = await startPostfix({
    // No reinjection in mx mode: nothing may reach the relayhost (a closed port).
    relayPort: await freePort(),
    contentFilter: filterTo(mvPort),
    // The README's LMTP lines: scan unix lmtp, XFORWARD, no MIME downgrade, a long wait for the dot's replies.
    scanCommand: 'lmtp',
    scanOptions: { lmtp_data_done_timeout: '1200s' },
    // Retries happen when the test flushes, not on their own.
    main: { minimal_backoff_time: '1h', maximal_backoff_time: '1h', queue_run_delay: '1h' },
  });
  t.after(() => pf.stop());
  assert.equal(pf.postconf('content_filter'), `scan:[127.0.0.1]:${mvPort}`);

  // ---- 1. one message, two recipients in two domains
  const file = join(dir, 'card.eml');
  writeFileSync(file, [
    'From: Sender <sender@src.example>',
    'To: Alice <alice@ok.test>, Bob <bob@late.test>',
    'Subject: lmtp retry',
    'Message-ID: <lmtp-retry@src.example>',
    'Date: Fri, 04 Dec 2026 10:00:00 +0000',
    '',
    'please charge 4111 1111 1111 1111 today',
  ].join('\n'));
  const r = await runSwaks(`127.0.0.1:${pf.publicPort}`, ['--from', 'sender@src.example', '--to', 'alice@ok.test,bob@late.test', '--data', `@${file}`]);
  assert.equal(r.code, 0, `swaks failed:\n${r.stdout}${r.stderr}`);
  const qid = r.queueId;
  assert.ok(qid, 'Postfix queued the message');

  const lmtpLine = (rcpt: string, status: string) =>
    new RegExp(`/scan/lmtp\\[\\d+\\]: ${qid}: to=<${esc(rcpt)}>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mvPort},.*status=${status} `);
  const sentAlice = await pf.waitForLog(lmtpLine('alice@ok.test', 'sent'), 60_000);
  const deferredBob = await pf.waitForLog(lmtpLine('bob@late.test', 'deferred'), 60_000);
  t.diagnostic(`postfix: ${sentAlice}`);
  t.diagnostic(`postfix: ${deferredBob}`);
  assert.match(sentAlice, /status=sent \(250 /);
  assert.match(deferredBob, /said: 451 4\.7\.5 .*\(in reply to end of DATA command\)/, 'the 4.7.5 came after DATA, for bob only');

  // (1) the ok.test MX got exactly one copy, for alice only, redacted, over DANE.
  assert.equal(sinks.ok.messages.length, 1, 'exactly one copy at ok.test');
  assert.deepEqual(sinks.ok.messages[0].to, ['alice@ok.test']);
  assert.ok(sinks.ok.messages[0].secure);
  assert.ok(!sinks.ok.messages[0].data.toString().includes('4111 1111'), 'the card number was redacted');
  assert.equal(sinks.late.messages.length, 0, 'nothing reached late.test over an unverified channel');

  // Postfix keeps only bob, deferred with mailveil's reply.
  const q = await pf.waitForQueue((e) => e.length === 1 && e[0].queue_name === 'deferred', 'the message deferred', 30_000);
  assert.deepEqual(q[0].recipients.map((x) => x.address), ['bob@late.test']);
  assert.match(q[0].recipients[0].delay_reason ?? '', /451 4\.7\.5/);

  const msgLines = () => mv.logs().filter((l: LogLine) => l.event === 'message');
  const first = await mv.waitForLog((l) => l.event === 'message', 'the first message line');
  assert.equal(first.queue_id, qid, 'XFORWARD IDENT from the lmtp client');
  assert.equal(first.rcpt_count, 2);
  assert.equal(first.outcome, 'per_recipient');
  await sleep(2000);
  assert.equal(msgLines().length, 1, 'no retry before the flush');

  // ---- 2. the operator gives late.test a verified policy; mailveil reloads its rules
  writeFileSync(join(rulesDir, '20-late.yaml'), 'tls_policy:\n  late.test: verify\n');
  process.kill(mv.pid, 'SIGHUP');
  await mv.waitForLog((l) => l.event === 'rules_reload' && l.result === 'ok' && l.files === 2, 'rules reloaded with the tls_policy file', 15_000);
  const destLinesBefore = mv.logs().filter((l) => l.event === 'mx_destination').length;

  // ---- 3. flush: Postfix retries bob alone
  await pf.flush();
  const sentBob = await pf.waitForLog(lmtpLine('bob@late.test', 'sent'), 60_000);
  t.diagnostic(`postfix: ${sentBob}`);
  await pf.waitForEmptyQueue(30_000);
  await sleep(1500);

  const second = msgLines()[1];
  assert.equal(msgLines().length, 2, 'exactly one more LMTP transaction');
  assert.equal(second.queue_id, qid);
  assert.equal(second.rcpt_count, 1, 'the retry carried only the deferred recipient');
  assert.equal(second.reply, 250);
  const retryDests = mv.logs().filter((l) => l.event === 'mx_destination').slice(destLinesBefore);
  assert.deepEqual(retryDests.map((l) => l.domain), ['late.test'], 'the retry opened a transaction to late.test only');
  assert.equal(retryDests[0].tls_level, 'verify');

  assert.equal(sinks.late.messages.length, 1, 'late.test got exactly one copy');
  const m = sinks.late.messages[0];
  assert.deepEqual(m.to, ['bob@late.test']);
  assert.ok(m.secure);
  assert.equal(m.servername, 'mx1.late.test');
  assert.match(m.data.toString(), /^X-Mailveil-Verdict: redact; rules=card; tls=verified-required\r\n/);
  assert.equal(sinks.ok.messages.length, 1, 'alice was not delivered twice');
  const aliceLines = pf.log().split('\n').filter((l) => l.includes('to=<alice@ok.test>'));
  assert.equal(aliceLines.length, 1, `Postfix delivered alice once: ${aliceLines.join('\n')}`);
  assert.equal(await mv.stop(), 0, 'mailveil exits 0 on SIGTERM');
});
