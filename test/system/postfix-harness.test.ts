/*
 * Self-test of the system-test harness (smtp-sink + private Postfix),
 * independent of mailveil.
 *
 * When the mailveil interop test fails, this file tells whether the
 * harness or mailveil is to blame: it proves that smtp-sink captures and
 * fault flags work, that a private Postfix instance starts, relays to the
 * sink and leaves an empty queue, and that the DESIGN.md filter plumbing
 * (scan transport with XFORWARD → reinjection smtpd) carries the original
 * client when the "filter" is simply the reinjection listener itself.
 * It is cheap (a few seconds) and needs no mailveil build.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { freePort } from '../helpers/ports';
import { filterTo, runSwaks, startPostfix, SYSTEM_MAIN_CF } from '../helpers/postfix';
import { startSink, systemSkipReason } from '../helpers/sink';

const sinkSkip = systemSkipReason(['smtp-sink', 'swaks']);
const postfixSkip = systemSkipReason(['postfix', 'postqueue', 'postconf', 'smtp-sink', 'swaks', 'script'], { root: true });

test('smtp-sink captures one file per message with envelope and unstuffed body', { skip: sinkSkip, timeout: 30_000 }, async (t) => {
  const sink = await startSink();
  t.after(() => sink.stop());

  const r = await runSwaks(sink.address, [
    '--from', 'sender@src.example', '--to', 'one@dest.example,two@dest.example',
    '--header', 'Subject: harness check', '--body', 'line one\n.leading dot\nlast line',
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);

  const [m, ...more] = await sink.waitForMessages(1);
  assert.equal(more.length, 0);
  assert.equal(m.clientAddr, '127.0.0.1');
  assert.equal(m.mailFrom, '<sender@src.example>');
  assert.deepEqual(m.rcptTo, ['<one@dest.example>', '<two@dest.example>']);
  assert.deepEqual(m.header('Subject'), ['harness check']);
  // swaks dot-stuffs ".leading dot" on the wire; the capture holds it unstuffed.
  assert.match(m.body, /^line one\n\.leading dot\nlast line\n/);
});

test('smtp-sink fault flags pass through (-r RCPT gives a 4xx, nothing captured)', { skip: sinkSkip, timeout: 30_000 }, async (t) => {
  const sink = await startSink({ flags: ['-r', 'RCPT'] });
  t.after(() => sink.stop());
  const r = await runSwaks(sink.address, ['--from', 'a@src.example', '--to', 'b@dest.example']);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /<\*\*\s+4\d\d /, 'expected a 4xx reply to RCPT');
  assert.equal(sink.messages().length, 0);
});

test('private Postfix instance without content_filter relays to smtp-sink', { skip: postfixSkip, timeout: 90_000 }, async (t) => {
  const sink = await startSink();
  t.after(() => sink.stop());
  const pf = await startPostfix({ relayPort: sink.port });
  t.after(() => pf.stop());

  assert.match(readFileSync(SYSTEM_MAIN_CF, 'utf8'), new RegExp(`alternate_config_directories\\s*=.*${pf.configDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.equal(pf.postconf('content_filter'), '');
  assert.equal(pf.postconf('inet_interfaces'), '127.0.0.1');

  const r = await runSwaks(`127.0.0.1:${pf.publicPort}`, [
    '--from', 'a@src.example', '--to', 'user@dest.example', '--body', 'harness body text',
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(r.queueId, 'swaks saw "queued as"');

  const [m] = await sink.waitForMessages(1);
  assert.match(m.body, /^harness body text\n/);
  assert.equal(m.mailFrom.split(' ')[0], '<a@src.example>');
  assert.match(m.header('Received')[0], /by mx\.test\.example \(Postfix\) with ESMTP id/);
  await pf.waitForEmptyQueue();
  await pf.waitForLog(new RegExp(`${r.queueId}: to=<user@dest\\.example>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${sink.port}.*status=sent`));

  await pf.stop();
  assert.doesNotMatch(readFileSync(SYSTEM_MAIN_CF, 'utf8'), new RegExp(pf.configDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
    'stop() removes the instance from alternate_config_directories');
});

test('filter plumbing: scan transport sends XFORWARD to the reinjection smtpd', { skip: postfixSkip, timeout: 90_000 }, async (t) => {
  // The "filter" is the reinjection listener itself: Postfix → scan (smtp + XFORWARD)
  // → reinjection smtpd → sink. This is the path mailveil sits in the middle of.
  const sink = await startSink();
  t.after(() => sink.stop());
  const reinjectPort = await freePort();
  const pf = await startPostfix({
    relayPort: sink.port,
    reinjectPort,
    contentFilter: filterTo(reinjectPort),
    publicOptions: { smtpd_authorized_xclient_hosts: '127.0.0.0/8' },
    // Postfix's smtp client refuses a server that greets with its own myhostname (mail loop).
    reinjectOptions: { myhostname: 'reinject.test.example' },
  });
  t.after(() => pf.stop());

  const r = await runSwaks(`127.0.0.1:${pf.publicPort}`, [
    '--from', 'a@src.example', '--to', 'user@dest.example',
    '--xclient-addr', '192.0.2.55', '--xclient-name', 'client.example.net',
    '--body', 'xforward plumbing',
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(r.queueId);

  const [m, ...more] = await sink.waitForMessages(1);
  assert.equal(more.length, 0);
  assert.match(m.body, /^xforward plumbing\n/);
  // Postfix 3.x logs XFORWARD data as orig_client/orig_queue_id; the Received
  // header of the reinjection smtpd names the real (loopback) peer.
  const line = await pf.waitForLog(/\/reinject\/smtpd\[\d+\]: \w+: client=/);
  assert.match(line, new RegExp(`orig_queue_id=${r.queueId}, orig_client=client\\.example\\.net\\[192\\.0\\.2\\.55\\]`));
  await pf.waitForEmptyQueue();
});
