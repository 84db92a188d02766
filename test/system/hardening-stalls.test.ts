/*
 * Issue 8, points 4 and 5 (and 12 for their traces): every wait has a
 * deadline. A next hop that stops reading the body, and a client that
 * trickles DATA at 1 byte/s or goes silent inside DATA, each get a definite
 * 4xx within their configured deadline plus a little, with a log line and a
 * `mailveil_deadlines_total{deadline}` count; the hop commits nothing and
 * sees no command from a body; afterwards the relay still delivers, nothing
 * is in flight and no *.spool file is left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil, type LogLine, type Mailveil } from '../helpers/mailveil';
import { sleep } from '../helpers/ports';
import { Findings, ScriptedHop, deliveryProblems, foreignCommands, metricValue, relaySettledProblems, type SentMessage } from '../helpers/scripted-hop';
import { SMUGGLED_LINES, envelope, messageWithCommands, openSession, sendWithCommands, writeAll, type ClientReply } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

const MiB = 1024 * 1024;
const ADDRESSES = ['sender@example.com', 'rcpt@example.net', 'slow@example.com', 'next@example.com', 'next1@example.net'];
/** How much later than its deadline a reply may come (timer granularity, a loaded 2-core box). */
const SLACK_MS = 2500;

const TIMEOUTS = {
  next_hop_connect: '2s',
  next_hop_command: '5s',
  next_hop_write: '2s',
  next_hop_data: '8s',
  client_idle: '10s',
  client_min_data_rate: '500B',
  drain: '5s',
};

async function relay(timeouts: Record<string, string> = {}): Promise<{ hop: ScriptedHop; mv: Mailveil }> {
  const hop = await ScriptedHop.start();
  running.push(hop);
  const dir = tempDir('mv-hard-stall-');
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ timeouts: { ...TIMEOUTS, ...timeouts } }) + '\n');
  const mv = await startMailveil({ nextHop: hop.address, config });
  running.push(mv);
  return { hop, mv };
}

const messageLines = (mv: Mailveil): LogLine[] => mv.logs().filter((l) => l.msg === 'message');

async function waitForMessageLines(mv: Mailveil, n: number, timeoutMs = 10_000): Promise<LogLine[]> {
  const deadline = Date.now() + timeoutMs;
  while (messageLines(mv).length < n && Date.now() < deadline) await sleep(25);
  await sleep(300);
  return messageLines(mv);
}

const numericLevel = (l: LogLine) => (typeof l.level === 'number' ? l.level : ({ warn: 40, error: 50, fatal: 60 } as Record<string, number>)[String(l.level)] ?? 30);

async function checkRelayStillDelivers(f: Findings, mv: Mailveil, token: string): Promise<SentMessage> {
  const sent = await sendWithCommands(mv.port, { token, from: 'next@example.com', to: ['next1@example.net'] });
  f.check(sent.reply.code === 250, `the relay must deliver again once the fault is gone: got ${sent.reply.code} ${sent.reply.text}`);
  return sent;
}

function checkNothingLostNothingInjected(f: Findings, hop: ScriptedHop, sent: SentMessage[]): void {
  hop.resumeAll();
  f.add(deliveryProblems(hop, sent));
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ADDRESSES });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
}

async function checkDeadlineCounted(f: Findings, mv: Mailveil, deadline: string): Promise<void> {
  const n = await metricValue(mv.metricsPort, 'mailveil_deadlines_total', { deadline });
  f.check((n ?? 0) >= 1, `mailveil_deadlines_total{deadline="${deadline}"} should count it: ${n}`);
}

test('next hop stops reading the body: 451 4.4.2 within next_hop_write (2 s) + slack, logged and counted, nothing committed', async () => {
  const { hop, mv } = await relay({ next_hop_write: '2s' });
  const f = new Findings();
  hop.script('DATA', { pauseReadingAfter: 0 });
  const big = messageWithCommands('hop-stops-reading', 20 * MiB);
  const c = await openSession(mv.port);
  const env = await envelope(c, 'sender@example.com', ['rcpt@example.net']);
  assert.equal(env.data?.code, 354);
  await writeAll(c, big.message);
  await writeAll(c, '.\r\n');
  const dotAt = Date.now();
  const bound = 2000 + 4 * SLACK_MS;
  const reply: ClientReply | undefined = await c.reply(bound).catch(() => undefined);
  const elapsed = Date.now() - dotAt;
  c.close();
  if (f.check(reply, `no reply within ${bound} ms of the dot: the stalled next hop holds the transaction without bound`) && reply) {
    f.check(reply.code === 451 && /^4\.4\.2 /.test(reply.text), `expected 451 4.4.2, got ${reply.code} ${reply.text}`);
    f.check(elapsed <= 2000 + SLACK_MS, `the 451 came ${elapsed} ms after the dot; next_hop_write is 2 s`);
  }
  hop.resumeAll();
  const lines = await waitForMessageLines(mv, 1);
  if (f.check(lines.length === 1, `exactly one message line: ${JSON.stringify(lines)}`)) f.equal(lines[0].outcome, 'deferred', 'outcome');
  f.check(
    mv.logs().some((l) => numericLevel(l) >= 40 && JSON.stringify(l).includes('next_hop_write')),
    'no warning (or worse) log line names the next_hop_write deadline',
  );
  await checkDeadlineCounted(f, mv, 'next_hop_write');
  const next = await checkRelayStillDelivers(f, mv, 'after-hop-stopped-reading');
  checkNothingLostNothingInjected(f, hop, [{ token: 'hop-stops-reading', reply, body: big.body }, next]);
  f.check(hop.copiesOf('hop-stops-reading').length === 0, 'the hop committed a message it never read whole');
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

/** Opens a session up to DATA's 354 and returns it with the time the 354 arrived. */
async function inData(mv: Mailveil) {
  const c = await openSession(mv.port);
  const env = await envelope(c, 'slow@example.com', ['rcpt@example.net']);
  assert.equal(env.data?.code, 354);
  return { c, at: Date.now() };
}

test('slowloris: DATA at 1 byte/s gets 421 4.4.2 and a close within client_idle (3 s) + slack; nothing reaches the hop', async () => {
  const { hop, mv } = await relay({ client_idle: '3s', client_min_data_rate: '500B' });
  const f = new Findings();
  const { c, at } = await inData(mv);
  const text = 'Subject: slowloris\r\n\r\n' + 'x'.repeat(200);
  const bound = 3000 + 4 * SLACK_MS;
  let reply: ClientReply | undefined;
  void c.reply(bound).then((r) => (reply = r), () => undefined);
  for (let i = 0; i < text.length && !reply && !c.closed && Date.now() - at < bound; i++) {
    c.socket.write(text[i]);
    await sleep(1000);
  }
  const elapsed = Date.now() - at;
  await sleep(200);
  const closed = c.closed;
  c.close();
  if (f.check(reply && reply.code !== 0, `no reply: the session was still open ${elapsed} ms into a 1 byte/s DATA (client_idle 3 s, client_min_data_rate 500B)`) && reply) {
    f.check(reply.code === 421 && /^4\.4\.2 /.test(reply.text), `expected 421 4.4.2, got ${reply.code} ${reply.text}`);
    f.check(elapsed <= 3000 + SLACK_MS + 1000, `the 421 came ${elapsed} ms after the 354`);
    f.check(closed, 'the session was not closed after the 421');
  }
  const lines = await waitForMessageLines(mv, 1);
  if (f.check(lines.length === 1, `the message reached DATA: exactly one message line: ${JSON.stringify(lines)}`)) {
    f.check(['aborted', 'deferred'].includes(String(lines[0].outcome)), `outcome ${String(lines[0].outcome)}, expected aborted or deferred`);
  }
  await checkDeadlineCounted(f, mv, 'client_data_rate');
  const next = await checkRelayStillDelivers(f, mv, 'after-slowloris');
  checkNothingLostNothingInjected(f, hop, [next]);
  f.check(hop.committed().length === 1, `only the later message may be committed: ${hop.committed().length}`);
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

test('a client silent inside DATA gets 421 4.4.2 and a close after client_idle (3 s) + slack', async () => {
  const { hop, mv } = await relay({ client_idle: '3s', client_min_data_rate: '500B' });
  const f = new Findings();
  const { c, at } = await inData(mv);
  const bound = 3000 + 4 * SLACK_MS;
  const reply = await c.reply(bound).catch(() => undefined);
  const elapsed = Date.now() - at;
  await sleep(200);
  const closed = c.closed;
  c.close();
  if (f.check(reply && reply.code !== 0, `no reply within ${bound} ms of silence in DATA (client_idle 3 s)`) && reply) {
    f.check(reply.code === 421 && /^4\.4\.2 /.test(reply.text), `expected 421 4.4.2, got ${reply.code} ${reply.text}`);
    f.check(elapsed <= 3000 + SLACK_MS, `the 421 came ${elapsed} ms after the 354`);
    f.check(closed, 'the session was not closed after the 421');
  }
  const lines = await waitForMessageLines(mv, 1);
  if (f.check(lines.length === 1, `the message reached DATA: exactly one message line: ${JSON.stringify(lines)}`)) {
    f.check(['aborted', 'deferred'].includes(String(lines[0].outcome)), `outcome ${String(lines[0].outcome)}, expected aborted or deferred`);
  }
  await checkDeadlineCounted(f, mv, 'client_idle');
  const next = await checkRelayStillDelivers(f, mv, 'after-silent-data');
  checkNothingLostNothingInjected(f, hop, [next]);
  f.check(hop.committed().length === 1, `only the later message may be committed: ${hop.committed().length}`);
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});
