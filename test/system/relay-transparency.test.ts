/*
 * Guarantee 4 over real SMTP: the envelope reaches the next hop as the
 * client sent it (parameters and XFORWARD included), bare LFs and CRs can
 * never end DATA or smuggle a second message, and the body arrives intact.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { RawSmtp, sendOne, transaction, message } from '../helpers/smtp-client';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const skip = systemSkipReason(['smtp-sink']);
let sink: Sink;
let mv: Mailveil;

before(async () => {
  if (skip) return;
  sink = await startSink();
  mv = await startMailveil({ nextHop: sink.address });
});
after(async () => {
  await mv?.stop().catch(() => undefined);
  await sink?.stop().catch(() => undefined);
});

async function newestAfter(count: number) {
  const all = await sink.waitForMessages(count + 1);
  return all[all.length - 1];
}

test('MAIL and RCPT parameters are forwarded as received', { skip }, async () => {
  const before = sink.messages().length;
  const r = await sendOne(mv.port, {
    from: 'sender@example.com',
    to: ['one@example.net', 'two@example.net'],
    mailParams: 'SIZE=300 BODY=8BITMIME ENVID=env+2Bid-1 RET=HDRS',
    rcptParams: 'NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;one+2Btag@example.net',
    body: message('params', 'Body.\r\n'),
  });
  assert.equal(r.final?.code, 250);
  const m = await newestAfter(before);
  // smtp-sink does not offer SIZE, so SIZE is left out, as Postfix would.
  assert.equal(m.mailFrom, '<sender@example.com> BODY=8BITMIME RET=HDRS ENVID=env+2Bid-1');
  assert.deepEqual(m.rcptTo, [
    '<one@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;one+2Btag@example.net',
    '<two@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;one+2Btag@example.net',
  ]);
});

test('XFORWARD from Postfix is passed on to the next hop', { skip }, async () => {
  // smtp-sink does not record XFORWARD, so the next hop here is a recording smtp-server.
  const seen: Map<string, unknown>[] = [];
  const hop = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    useXForward: true,
    logger: false,
    onData(stream, session, cb) {
      seen.push(new Map((session as unknown as { xForward: Map<string, unknown> }).xForward));
      stream.resume();
      stream.on('end', () => cb());
    },
  });
  await new Promise<void>((res) => hop.listen(0, '127.0.0.1', () => res()));
  const port = (hop.server.address() as AddressInfo).port;
  const mv2 = await startMailveil({ nextHop: `127.0.0.1:${port}` });
  try {
    const r = await sendOne(mv2.port, {
      preamble: ['XFORWARD NAME=client.example.org ADDR=192.0.2.55 PORT=40000 PROTO=ESMTP HELO=client-helo.example.org SOURCE=REMOTE'],
      from: 'sender@example.com',
      to: ['rcpt@example.net'],
      body: message('xforward', 'Body.\r\n'),
    });
    assert.equal(r.final?.code, 250);
    const r2 = await sendOne(mv2.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message('direct', 'Body.\r\n') });
    assert.equal(r2.final?.code, 250);
  } finally {
    await mv2.stop();
    await new Promise<void>((res) => hop.close(() => res()));
  }
  assert.equal(seen[0].get('ADDR'), '192.0.2.55');
  assert.equal(seen[0].get('NAME'), 'client.example.org');
  assert.equal(seen[0].get('HELO'), 'client-helo.example.org');
  assert.equal(seen[0].get('PROTO'), 'ESMTP');
  assert.equal(seen[0].get('PORT'), 40000);
  assert.equal(seen[0].get('SOURCE'), 'REMOTE');
  // Without XFORWARD from our client, our client itself is the original client.
  assert.equal(seen[1].get('ADDR'), '127.0.0.1');
  assert.equal(seen[1].get('HELO'), 'client.example.org');
});

/** The `event: message` log line and the `verdict` audit event of the message a 250 names. */
async function traces(r: Awaited<ReturnType<typeof sendOne>>) {
  const id = /queued as (\S+?);/.exec(r.final?.text ?? '')?.[1];
  assert.ok(id, `no message id in ${r.final?.code} ${r.final?.text}`);
  const line = await mv.waitForLog((l) => l.event === 'message' && l.id === id, `the message line of ${id}`);
  const dir = join(mv.stateDir, 'audit');
  const events = readdirSync(dir).flatMap((f) =>
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string; id?: string; details?: Record<string, unknown> }),
  );
  const audit = events.find((e) => e.event === 'verdict' && e.id === id);
  assert.ok(audit, `no verdict audit event for ${id}`);
  return { line, audit };
}

test("Postfix's queue id (XFORWARD IDENT) is in the message log line and the verdict audit event", { skip }, async () => {
  const send = (ident?: string) =>
    sendOne(mv.port, {
      preamble: ident === undefined ? [] : [`XFORWARD ADDR=192.0.2.56 IDENT=${ident}`],
      from: 'sender@example.com',
      to: ['rcpt@example.net'],
      body: message('queue-id', 'Body.\r\n'),
    });
  const r = await send('ABC123DEF');
  assert.equal(r.final?.code, 250);
  const { line, audit } = await traces(r);
  assert.equal(line.queue_id, 'ABC123DEF');
  assert.equal(audit.details?.queue_id, 'ABC123DEF');
  // A long queue id (enable_long_queue_ids) has letters of both cases.
  const long = await traces(await send('4VqZ1m2xYzz6wQd'));
  assert.equal(long.line.queue_id, '4VqZ1m2xYzz6wQd');
  // A value without a queue id's syntax, [UNAVAILABLE], or no XFORWARD at all: the field is left out.
  for (const ident of ['ABC.123', 'ABC+2D123', '[UNAVAILABLE]', 'A'.repeat(65), undefined]) {
    const t = await traces(await send(ident));
    assert.ok(!('queue_id' in t.line), `queue_id logged for IDENT=${ident}: ${t.line.queue_id}`);
    assert.ok(!('queue_id' in (t.audit.details ?? {})), `queue_id audited for IDENT=${ident}`);
  }
});

for (const [name, sep] of [
  ['\\n.\\n', '\n.\n'],
  ['\\n.\\r\\n', '\n.\r\n'],
  ['\\r\\n.\\n', '\r\n.\n'],
  ['\\r.\\r', '\r.\r'],
] as const) {
  test(`SMTP smuggling with ${name} reaches the sink as exactly one message`, { skip }, async () => {
    const before = sink.messages().length;
    const countBefore = sink.counters().mesg;
    const smuggled = `Subject: smuggle\r\n\r\nfirst part${sep}MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n`;
    const { client } = await RawSmtp.open(mv.port);
    await client.cmd('EHLO client.example.org');
    const r = await transaction(client, { from: 'sender@example.com', to: ['rcpt@example.net'], body: smuggled });
    assert.equal(r.final?.code, 250);
    // Nothing after the real end of data is taken as a command either.
    assert.equal((await client.cmd('NOOP')).code, 250);
    client.socket.end('QUIT\r\n');
    const m = await newestAfter(before);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(sink.counters().mesg - countBefore, 1, 'exactly one message reached the sink');
    assert.equal(sink.messages().length - before, 1);
    assert.match(m.body, /first part\n\.\nMAIL FROM:<evil@example\.org>\nRCPT TO:<victim@example\.net>\nDATA\nSubject: smuggled\n\nsecond/);
    assert.deepEqual(m.rcptTo, ['<rcpt@example.net>']);
  });
}

test('several transactions on one session, and RSET in between, all land once', { skip }, async () => {
  const before = sink.messages().length;
  const { client } = await RawSmtp.open(mv.port);
  await client.cmd('EHLO client.example.org');
  for (let i = 0; i < 3; i++) {
    const r = await transaction(client, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message(`seq${i}`, `n=${i}\r\n`) });
    assert.equal(r.final?.code, 250);
  }
  assert.equal((await client.cmd('MAIL FROM:<sender@example.com>')).code, 250);
  assert.equal((await client.cmd('RCPT TO:<abandoned@example.net>')).code, 250);
  assert.equal((await client.cmd('RSET')).code, 250);
  const r = await transaction(client, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message('after-rset', 'x\r\n') });
  assert.equal(r.final?.code, 250);
  client.socket.end('QUIT\r\n');
  const all = await sink.waitForMessages(before + 4);
  const mine = all.slice(before);
  assert.equal(mine.length, 4);
  assert.ok(mine.every((m) => m.rcptTo[0] === '<rcpt@example.net>'), 'the abandoned recipient never got a message');
});

test('8-bit and SMTPUTF8 content arrives byte for byte', { skip }, async () => {
  const before = sink.messages().length;
  const body = Buffer.from('Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln – ✓\r\n.leading dot\r\n', 'utf8');
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], mailParams: 'BODY=8BITMIME', body });
  assert.equal(r.final?.code, 250);
  const m = await newestAfter(before);
  assert.ok(m.bytes.includes(Buffer.from('Grüße aus Köln – ✓\n.leading dot\n', 'utf8')));
});
