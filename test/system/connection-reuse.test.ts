/*
 * Next-hop connection reuse: client sessions that come and go share pooled
 * next-hop connections, and a pooled connection the next hop closed while it
 * sat idle is replaced transparently instead of failing a message.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { sendOne, message } from '../helpers/smtp-client';

const skip = systemSkipReason(['smtp-sink']);
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

const send = (mv: Mailveil, i: number) =>
  sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message(`reuse${i}`, `n=${i}\r\n`) });

test('sequential client sessions reuse one next-hop connection', { skip }, async () => {
  const sink = await startSink({ dump: false });
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address });
  running.push(mv);
  for (let i = 0; i < 5; i++) assert.equal((await send(mv, i)).final?.code, 250);
  await sink.waitForMessages(5);
  assert.equal(sink.counters().sess, 1, `next-hop sessions: ${JSON.stringify(sink.counters())}`);
});

test('a pooled connection that died while idle is replaced; the message still goes through once', { skip }, async () => {
  let sink: Sink = await startSink();
  const port = sink.port;
  const mv = await startMailveil({ nextHop: sink.address });
  running.push(mv);
  assert.equal((await send(mv, 1)).final?.code, 250);
  await sink.stop();
  sink = await startSink({ port });
  running.push(sink);
  const r = await send(mv, 2);
  assert.equal(r.mail.code, 250);
  assert.equal(r.final?.code, 250);
  const msgs = await sink.waitForMessages(1);
  assert.equal(msgs.length, 1);
});
