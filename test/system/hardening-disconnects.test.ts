/*
 * Issue 8, point 7: a client that goes away at each phase of a transaction,
 * in front of a scripted next hop that records every command and every
 * committed message. Each test reproduces one trigger from the issue and
 * asserts, as a user would notice it:
 *  - nothing acknowledged is lost: a message the client got 250 for is
 *    committed at the hop exactly once, whole; nothing is committed twice or
 *    truncated;
 *  - the hop never sees a command that came from a message body (every body
 *    here carries RSET, MAIL FROM:<attacker@evil.test>, RCPT, DATA lines);
 *  - the relay stays usable: the next client's message, through the same
 *    mailveil and its pooled next-hop connections, gets the hop's real answer
 *    (no stale "250 2.1.5" taken for the reply to the dot);
 *  - every message that reached DATA gets exactly one `"msg":"message"` line
 *    with its `outcome`, and afterwards nothing is in flight
 *    (mailveil_messages_in_flight 0), no *.spool file is left and no
 *    transaction is left open at the hop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil, type LogLine, type Mailveil } from '../helpers/mailveil';
import { sleep } from '../helpers/ports';
import {
  Findings,
  ScriptedHop,
  deliveryProblems,
  foreignCommands,
  relaySettledProblems,
  verbOfLine,
  type HopConnection,
  type HopTransaction,
  type ScriptedHopOptions,
  type SentMessage,
} from '../helpers/scripted-hop';
import { SMUGGLED_LINES, envelope, messageWithCommands, openSession, sendWithCommands, writeAll } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

const MiB = 1024 * 1024;
/** Every address a client in this file uses: anything else in a MAIL/RCPT at the hop came from a body. */
const ADDRESSES = ['sender@example.com', 'rcpt@example.net', 'gone@example.com', 'left@example.net', 'next@example.com', 'next1@example.net', 'next2@example.net'];

/** Short deadlines, so a hang shows in seconds; every value with its unit. */
const TIMEOUTS = {
  next_hop_connect: '2s',
  next_hop_command: '5s',
  next_hop_write: '2s',
  next_hop_data: '8s',
  client_idle: '10s',
  drain: '5s',
};

async function relay(hopOpts: ScriptedHopOptions = {}, timeouts: Record<string, string> = {}): Promise<{ hop: ScriptedHop; mv: Mailveil }> {
  const hop = await ScriptedHop.start(hopOpts);
  running.push(hop);
  const dir = tempDir('mv-hard-disc-');
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ timeouts: { ...TIMEOUTS, ...timeouts } }) + '\n');
  const mv = await startMailveil({ nextHop: hop.address, config });
  running.push(mv);
  return { hop, mv };
}

const messageLines = (mv: Mailveil): LogLine[] => mv.logs().filter((l) => l.msg === 'message');

/** Waits for `n` message lines, then a little longer to catch a second line for the same message. */
async function waitForMessageLines(mv: Mailveil, n: number, timeoutMs = 12_000): Promise<LogLine[]> {
  const deadline = Date.now() + timeoutMs;
  while (messageLines(mv).length < n && Date.now() < deadline) await sleep(25);
  await sleep(300);
  return messageLines(mv);
}

/** The message lines of the message sent with `rcpts` recipients (each test gives its messages distinct counts). */
const linesWithRcpts = (mv: Mailveil, rcpts: number) => messageLines(mv).filter((l) => l.rcpt_count === rcpts);

/** Exactly one message line for the message with `rcpts` recipients, with `outcome`. */
function checkMessageLine(f: Findings, mv: Mailveil, rcpts: number, outcome: string, what: string): void {
  const mine = linesWithRcpts(mv, rcpts);
  if (f.check(mine.length === 1, `${what}: expected exactly one "message" log line, got ${mine.length}: ${JSON.stringify(messageLines(mv))}`)) {
    f.equal(mine[0].outcome, outcome, `${what}: outcome`);
  }
}

/** The second client: a normal message through the same mailveil; it must be delivered once, with its own envelope. */
async function nextClient(f: Findings, mv: Mailveil, hop: ScriptedHop, token: string): Promise<SentMessage> {
  const sent = await sendWithCommands(mv.port, { token, from: 'next@example.com', to: ['next1@example.net', 'next2@example.net'] });
  f.check(sent.reply.code === 250, `the next client's message, on a healthy hop, must be accepted: got ${sent.reply.code} ${sent.reply.text}`);
  f.check(!/next hop said: 250 2\.1\.5/.test(sent.reply.text), `the next client got a stale RCPT reply as the reply to its dot: ${sent.reply.text}`);
  const copies = hop.copiesOf(token);
  if (copies.length === 1) {
    f.equal(copies[0].mail, 'MAIL FROM:<next@example.com>', "the next client's committed copy: sender");
    f.equal(copies[0].rcpts.map((r) => /<([^>]*)>/.exec(r)?.[1]), ['next1@example.net', 'next2@example.net'], "the next client's committed copy: recipients");
  }
  return sent;
}

/** The two assertions of every test: nothing acknowledged lost (or doubled, or damaged), no body line taken for a command. */
function checkNothingLostNothingInjected(f: Findings, hop: ScriptedHop, sent: SentMessage[]): void {
  hop.resumeAll();
  f.add(deliveryProblems(hop, sent));
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ADDRESSES });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
}

const isVerb = (verb: string) => (_c: HopConnection, line: string) => verbOfLine(line) === verb;

for (const verb of ['MAIL', 'RCPT'] as const) {
  test(`client leaves while its ${verb} is outstanding at the next hop: nothing stays open, and the next client's message is delivered once`, async () => {
    const { hop, mv } = await relay();
    const f = new Findings();
    hop.script(verb, { delayMs: 500 });
    const c = await openSession(mv.port);
    if (verb === 'RCPT') assert.equal((await c.cmd('MAIL FROM:<gone@example.com>')).code, 250);
    const seen = hop.next('command', isVerb(verb), 5000);
    c.socket.write(verb === 'MAIL' ? 'MAIL FROM:<gone@example.com>\r\n' : 'RCPT TO:<left@example.net>\r\n');
    await seen;
    c.close();
    // The hop answers the abandoned command now. Then the next client comes, while a
    // pooled connection left one reply behind would still be in the pool.
    await sleep(700);
    const next = await nextClient(f, mv, hop, `after-${verb.toLowerCase()}-gone`);
    checkNothingLostNothingInjected(f, hop, [next]);
    // The abandoned transaction is ended at the hop (RSET, or the connection closed), not left open.
    const stillOpen = () => hop.openTransactions().filter((t) => t.mail === 'MAIL FROM:<gone@example.com>');
    for (const until = Date.now() + 5000; stillOpen().length && Date.now() < until; ) await sleep(50);
    f.check(stillOpen().length === 0, `the transaction of the client that left is still open at the hop: ${stillOpen().map((t) => t.id).join(', ')}`);
    await waitForMessageLines(mv, 1);
    f.check(messageLines(mv).length === 1, `only the next client's message reached DATA, so one message line: ${JSON.stringify(messageLines(mv))}`);
    checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
    f.add(await relaySettledProblems(mv, hop));
    f.assertNone(hop.describe());
  });
}

test("client leaves while the next hop's 354 to DATA is outstanding: no hang, one log line, nothing half-committed", async (t) => {
  const { hop, mv } = await relay();
  const f = new Findings();
  hop.script('DATA', { delayMs: 1000 });
  const first = messageWithCommands('gone-at-354', 64 * 1024);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'gone@example.com', ['left@example.net']);
  assert.equal(env.data?.code, 354);
  const seen = hop.next('command', isVerb('DATA'), 10_000);
  await writeAll(c, first.message);
  await writeAll(c, '.\r\n');
  await seen;
  c.close();
  await waitForMessageLines(mv, 1);
  const next = await nextClient(f, mv, hop, 'after-354-gone');
  checkNothingLostNothingInjected(f, hop, [{ token: 'gone-at-354', body: first.body }, next]);
  await waitForMessageLines(mv, 2);
  const committed = hop.copiesOf('gone-at-354').length === 1;
  t.diagnostic(committed ? 'mailveil finished the transfer: the hop committed the message' : 'mailveil dropped the transfer: nothing committed');
  checkMessageLine(f, mv, 1, committed ? 'delivered_client_gone' : 'aborted', 'the message of the client that left');
  checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

test('client leaves during pass 1 (mid-body, before its dot): nothing reaches the hop as a message or as commands', async () => {
  const { hop, mv } = await relay();
  const f = new Findings();
  const first = messageWithCommands('gone-in-pass1', 4 * MiB);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'gone@example.com', ['left@example.net']);
  assert.equal(env.data?.code, 354);
  await writeAll(c, first.message.subarray(0, 2 * MiB + 123));
  await sleep(300);
  c.close();
  await waitForMessageLines(mv, 1);
  const next = await nextClient(f, mv, hop, 'after-pass1-gone');
  checkNothingLostNothingInjected(f, hop, [{ token: 'gone-in-pass1', body: first.body }, next]);
  f.check(hop.copiesOf('gone-in-pass1').length === 0, 'a message whose dot never came was committed');
  await waitForMessageLines(mv, 2);
  checkMessageLine(f, mv, 1, 'aborted', 'the message of the client that left');
  checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

test('client leaves during pass 2 while the next hop has stopped reading (~20 MiB): nothing committed, no RSET or body command at the hop', async () => {
  const { hop, mv } = await relay({}, { next_hop_write: '2s' });
  const f = new Findings();
  hop.script('DATA', { pauseReadingAfter: 0 });
  const first = messageWithCommands('gone-stalled-pass2', 20 * MiB);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'gone@example.com', ['left@example.net']);
  assert.equal(env.data?.code, 354);
  const streaming = hop.next('data', () => true, 20_000);
  await writeAll(c, first.message);
  await writeAll(c, '.\r\n');
  await streaming;
  await sleep(500); // mailveil's writes are backing up now
  c.close();
  // mailveil must give up on the hop by itself (next_hop_write 2 s), then log the message.
  await waitForMessageLines(mv, 1, 10_000);
  f.check(linesWithRcpts(mv, 1).length === 1, 'no message line within 10 s: the transaction to the stalled hop was not ended');
  hop.resumeAll();
  await sleep(500); // the hop reads what was buffered, then sees the close
  const next = await nextClient(f, mv, hop, 'after-stalled-pass2-gone');
  checkNothingLostNothingInjected(f, hop, [{ token: 'gone-stalled-pass2', body: first.body }, next]);
  f.check(hop.copiesOf('gone-stalled-pass2').length === 0, 'the hop never read the whole message, yet committed it');
  await waitForMessageLines(mv, 2);
  checkMessageLine(f, mv, 1, 'aborted', 'the message of the client that left');
  checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

test('client leaves during pass 2 with a healthy next hop (~20 MiB, closed while streaming): the hop gets the whole message or nothing', async (t) => {
  const { hop, mv } = await relay();
  const f = new Findings();
  const first = messageWithCommands('gone-healthy-pass2', 20 * MiB);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'gone@example.com', ['left@example.net']);
  assert.equal(env.data?.code, 354);
  let closedAt: number | undefined;
  // Close the client the moment the hop has 2 MiB of the body: mailveil is mid-stream.
  const onBody = (_conn: HopConnection, tx: HopTransaction) => {
    if (closedAt === undefined && tx.dataBytes >= 2 * MiB) {
      closedAt = tx.dataBytes;
      c.close();
    }
  };
  hop.events.on('body', onBody);
  await writeAll(c, first.message);
  await writeAll(c, '.\r\n');
  await waitForMessageLines(mv, 1, 15_000);
  hop.events.off('body', onBody);
  assert.ok(closedAt !== undefined, 'the client closed while the body was streaming to the hop');
  const next = await nextClient(f, mv, hop, 'after-healthy-pass2-gone');
  checkNothingLostNothingInjected(f, hop, [{ token: 'gone-healthy-pass2', body: first.body }, next]);
  await waitForMessageLines(mv, 2);
  const committed = hop.copiesOf('gone-healthy-pass2').length === 1;
  t.diagnostic(committed ? 'mailveil finished the transfer: the hop committed the message' : 'mailveil dropped the transfer: nothing committed');
  checkMessageLine(f, mv, 1, committed ? 'delivered_client_gone' : 'aborted', 'the message of the client that left (the log says what happened at the hop)');
  checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

test("client leaves right after its dot while the hop delays its reply 2 s: logged delivered_client_gone, and the next client gets the hop's real reply", async () => {
  // Like Postfix's smtpd, this hop has the message once it has read the dot;
  // only its reply is late. Closing the connection does not undo that.
  const { hop, mv } = await relay({ commitOn: 'dot' });
  const f = new Findings();
  hop.script('.', { delayMs: 2000 });
  const first = messageWithCommands('gone-after-dot', 8 * 1024);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'gone@example.com', ['left@example.net']);
  assert.equal(env.data?.code, 354);
  const dot = hop.next('dot', () => true, 10_000);
  await writeAll(c, first.message);
  await writeAll(c, '.\r\n');
  await dot;
  c.close();
  await sleep(2300); // the hop has answered the dot by now, if anyone still listens
  const next = await nextClient(f, mv, hop, 'after-dot-gone');
  checkNothingLostNothingInjected(f, hop, [{ token: 'gone-after-dot', body: first.body }, next]);
  f.check(hop.copiesOf('gone-after-dot').length === 1, 'the hop had the whole message');
  await waitForMessageLines(mv, 2);
  checkMessageLine(f, mv, 1, 'delivered_client_gone', 'the message of the client that left (committed at the hop: a retry may duplicate, the log must say so)');
  checkMessageLine(f, mv, 2, 'delivered', "the next client's message");
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});
