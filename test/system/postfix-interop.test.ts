/*
 * Real Postfix interop: mailveil as an after-queue content_filter, laid out
 * exactly as DESIGN.md's deployment picture.
 *
 *   swaks ─► Postfix public smtpd ─content_filter─► mailveil ─► Postfix reinjection smtpd ─► smtp-sink
 *
 * What only a real Postfix can show:
 *  - Postfix's smtp client (the `scan` transport) accepts mailveil's
 *    replies and the message comes back intact through reinjection;
 *  - the XFORWARD attributes Postfix sends survive mailveil, so the
 *    reinjection smtpd still knows the original client and queue id;
 *  - "acknowledge only what is durable" as Postfix experiences it: when
 *    mailveil is down the message stays in Postfix's queue, and after
 *    mailveil comes back it is delivered exactly once.
 *
 * The client's address is made distinguishable from loopback with XCLIENT
 * (192.0.2.55 is a documentation address: no packet is ever sent to it, it
 * is only an attribute Postfix carries). Everything listens on 127.0.0.1.
 *
 * Under CI=true nothing skips: a missing postfix/swaks or an unbuilt
 * mailveil is a failure. Elsewhere the test skips with the reason.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startMailveil, Mailveil } from '../helpers/mailveil';
import { REPO_ROOT } from '../helpers/paths';
import { freePort, sleep } from '../helpers/ports';
import { filterTo, PostfixInstance, runSwaks, startPostfix } from '../helpers/postfix';
import { isCI, Sink, startSink, systemSkipReason } from '../helpers/sink';

const CLI_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const skip = systemSkipReason(['postfix', 'postqueue', 'postconf', 'smtp-sink', 'swaks', 'script'], { root: true })
  || (!isCI() && !existsSync(CLI_JS) ? `mailveil is not built (${CLI_JS} missing; run npm run build)` : false);

const CLIENT_ADDR = '192.0.2.55';
const CLIENT_NAME = 'client.example.net';

/** Everything one scenario needs, torn down by t.after even when an assertion fails. */
async function setup(t: { after(fn: () => unknown): void }) {
  const tmp = mkdtempSync(join(tmpdir(), 'mailveil-interop-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const sink: Sink = await startSink();
  t.after(() => sink.stop());
  const mvPort = await freePort();
  const pf: PostfixInstance = await startPostfix({
    relayPort: sink.port,
    contentFilter: filterTo(mvPort),
    publicOptions: { smtpd_authorized_xclient_hosts: '127.0.0.0/8' },
    relayDomains: ['dest.example'],
  });
  t.after(() => pf.stop());
  const stateDir = join(tmp, 'state');
  const mailveils: Mailveil[] = [];
  t.after(async () => { for (const m of mailveils) await m.stop().catch(() => undefined); });
  const start = async () => {
    const mv = await startMailveil({ listenPort: mvPort, nextHop: `127.0.0.1:${pf.reinjectPort}`, stateDir });
    mailveils.push(mv);
    return mv;
  };
  return { tmp, sink, pf, mvPort, start };
}

/** A complete message we control byte for byte (swaks --data), without PII so no rule rewrites it. */
function writeMessage(dir: string, token: string): { file: string; body: string } {
  const body = [
    `Token ${token}.`,
    'This paragraph travels through Postfix, mailveil and Postfix again.',
    '.A line that starts with a dot must survive dot-stuffing on two hops.',
    '..and one that starts with two dots.',
    'x'.repeat(900),
    '',
    'Last line.',
  ].join('\n');
  const msg = [
    'From: Sender <sender@src.example>',
    'To: User <user@dest.example>',
    `Subject: interop ${token}`,
    `Message-ID: <${token}@src.example>`,
    'Date: Mon, 02 Jun 2025 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    body,
  ].join('\n');
  const file = join(dir, `${token}.eml`);
  // No trailing newline: swaks adds the CRLF before "." itself (a trailing LF would become an extra empty line).
  writeFileSync(file, msg);
  return { file, body: body + '\n' };
}

const send = (pf: PostfixInstance, file: string) => runSwaks(`127.0.0.1:${pf.publicPort}`, [
  '--from', 'sender@src.example', '--to', 'user@dest.example',
  '--xclient-addr', CLIENT_ADDR, '--xclient-name', CLIENT_NAME,
  '--data', `@${file}`,
]);

test('Postfix → mailveil → Postfix reinjection → sink: delivered once, intact, XFORWARD preserved', { skip, timeout: 120_000 }, async (t) => {
  const { tmp, sink, pf, mvPort, start } = await setup(t);
  const mv = await start();

  const { file, body } = writeMessage(tmp, 'tok-interop-1');
  const r = await send(pf, file);
  assert.equal(r.code, 0, `swaks failed:\n${r.stdout}${r.stderr}`);
  assert.ok(r.queueId, 'public smtpd answered "queued as"');

  await sink.waitForMessages(1, 30_000);
  await pf.waitForEmptyQueue(30_000);
  await sleep(1500); // > one queue_run_delay: a duplicate would have shown up by now
  const msgs = sink.messages();
  assert.equal(msgs.length, 1, 'exactly one message at the sink');
  const m = msgs[0];

  assert.equal(m.body, body, 'body byte-identical (capture is LF-normalised)');
  assert.equal(m.mailFrom.split(' ')[0], '<sender@src.example>');
  assert.deepEqual(m.rcptTo.map((x) => x.split(' ')[0]), ['<user@dest.example>']);
  assert.ok(m.header('X-Mailveil-Verdict').length >= 1, 'went through mailveil (X-Mailveil-Verdict header)');
  assert.match(m.header('X-Mailveil-Verdict')[0], /^[a-z]+(;|$)/);

  // Postfix handed the message to mailveil and mailveil's 250 was accepted …
  await pf.waitForLog(new RegExp(`/scan/smtp\\[\\d+\\]: ${r.queueId}: to=<user@dest\\.example>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mvPort},.*status=sent`));
  // … and mailveil forwarded Postfix's XFORWARD attributes to the reinjection smtpd.
  const reinject = await pf.waitForLog(/\/reinject\/smtpd\[\d+\]: \w+: client=/);
  assert.match(reinject, new RegExp(`orig_client=${CLIENT_NAME.replace(/\./g, '\\.')}\\[${CLIENT_ADDR.replace(/\./g, '\\.')}\\]`),
    'XFORWARD NAME/ADDR reached the reinjection smtpd');
  assert.match(reinject, new RegExp(`orig_queue_id=${r.queueId}\\b`), 'XFORWARD IDENT reached the reinjection smtpd');

  // DESIGN "Logs": one info line per message. Its client is the XFORWARD'd
  // original client, so it must be a pseudonym, never 192.0.2.55 in clear.
  const line = await mv.waitForLog((l) => 'verdict' in l && 'rcpt_count' in l, 'the per-message info line');
  assert.equal(line.rcpt_count, 1);
  assert.equal(line.queue_id, r.queueId, "mailveil's line carries Postfix's queue id (XFORWARD IDENT)");
  assert.equal(typeof line.client, 'string');
  // DESIGN guarantee 6, seen from the outside: the original client's IP and the
  // addresses are not in mailveil's log in clear text.
  const logText = mv.logs().map((l) => JSON.stringify(l)).join('\n');
  for (const secret of [CLIENT_ADDR, 'sender@src.example', 'user@dest.example']) {
    assert.ok(!logText.includes(secret), `mailveil log must not contain ${secret}`);
  }

  assert.equal(await mv.stop(), 0, 'mailveil exits 0 on SIGTERM');
});

test('mailveil down: Postfix keeps the message deferred; after restart + flush it is delivered exactly once', { skip, timeout: 120_000 }, async (t) => {
  const { tmp, sink, pf, mvPort, start } = await setup(t);

  // 1. A first message while mailveil is up, then a clean drain.
  const first = await start();
  const a = writeMessage(tmp, 'tok-before-restart');
  const ra = await send(pf, a.file);
  assert.equal(ra.code, 0, ra.stdout + ra.stderr);
  await sink.waitForMessages(1, 30_000);
  await pf.waitForEmptyQueue(30_000);
  assert.equal(await first.stop(), 0, 'mailveil exits 0 on SIGTERM');

  // 2. mailveil is down: Postfix accepts (it owns the message) and defers it.
  const b = writeMessage(tmp, 'tok-while-down');
  const rb = await send(pf, b.file);
  assert.equal(rb.code, 0, rb.stdout + rb.stderr);
  const q = await pf.waitForQueue(
    (entries) => entries.some((e) => e.queue_id === rb.queueId && e.queue_name === 'deferred' &&
      e.recipients.some((x) => /Connection refused|connect to/i.test(x.delay_reason ?? ''))),
    `message ${rb.queueId} deferred with a connect error`, 30_000);
  assert.equal(q.length, 1, 'only that message is queued');
  assert.equal(sink.messages().length, 1, 'nothing new reached the sink while mailveil was down');

  // 3. mailveil comes back on the same port; flushing delivers the deferred message once.
  const second = await start();
  await pf.flush();
  await sink.waitForMessages(2, 30_000);
  await pf.waitForEmptyQueue(30_000);
  await sleep(2500); // > queue_run_delay + backoff: a redelivery would have arrived
  const msgs = sink.messages();
  assert.equal(msgs.length, 2, 'exactly two messages in total (no duplicate of the deferred one)');
  const bodies = msgs.map((m) => m.body);
  assert.equal(bodies.filter((x) => x === a.body).length, 1);
  assert.equal(bodies.filter((x) => x === b.body).length, 1);
  for (const m of msgs) assert.ok(m.header('X-Mailveil-Verdict').length >= 1, 'both went through mailveil');
  await pf.waitForLog(new RegExp(`/scan/smtp\\[\\d+\\]: ${rb.queueId}: to=<user@dest\\.example>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mvPort},.*status=sent`));
  assert.equal(await second.stop(), 0, 'restarted mailveil exits 0 on SIGTERM');
});
