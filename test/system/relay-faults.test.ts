/*
 * Guarantee 1 over real SMTP: a running mailveil in front of smtp-sink, with
 * smtp-sink's fault flags playing every way a next hop can fail. For each
 * row the client's reply is asserted, and so is what the sink accepted:
 * every message is either accepted exactly once (client saw 250) or left
 * with the client (4xx/5xx). Nothing is lost, nothing is acknowledged early.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { freePort } from '../helpers/ports';
import { sendOne, message, RawSmtp } from '../helpers/smtp-client';

const skip = systemSkipReason(['smtp-sink']);
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

function configFile(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'mv-cfg-')), 'mailveil.yaml');
  writeFileSync(f, text);
  return f;
}

async function pair(sinkFlags: string[], config?: string): Promise<{ sink: Sink; mv: Mailveil }> {
  const sink = await startSink({ flags: sinkFlags });
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address, config: config && configFile(config) });
  running.push(mv);
  return { sink, mv };
}

const send = (mv: Mailveil, subject = 'fault') =>
  sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message(subject, 'Hello.\r\n') });

test('next hop accepts: 250 only after its 250, exactly one copy at the sink, verdict header added', { skip }, async () => {
  const { sink, mv } = await pair([]);
  const r = await send(mv, 'accepted');
  assert.equal(r.final?.code, 250);
  assert.match(r.final!.text, /^2\.0\.0 Ok: queued as [0-9A-Z]+; next hop said: 250/);
  const [m] = await sink.waitForMessages(1);
  assert.equal(sink.messages().length, 1);
  assert.match(m.header('X-Mailveil-Verdict')[0], /^pass; rules=$/);
  assert.match(m.body, /Hello\./);
  const line = await mv.waitForLog((l) => l.msg === 'message');
  assert.equal(line.next_hop_reply, '250 2.0.0');
  assert.equal(line.verdict, 'pass');
});

test('next hop not listening: 451 4.4.1 at MAIL, the client keeps the message', { skip }, async () => {
  const mv = await startMailveil({ nextHop: `127.0.0.1:${await freePort()}` });
  running.push(mv);
  const r = await send(mv);
  assert.equal(r.mail.code, 451);
  assert.match(r.mail.text, /^4\.4\.1 /);
});

const FINAL_DOT_FAULTS: [string, string[], number, RegExp][] = [
  ['4xx to the final dot', ['-r', '.'], 451, /^4\.\d+\.\d+ Next hop deferred the message: 4\d\d/],
  // smtp-sink's hard reject is "500 5.3.0 Error: command failed": it must arrive as exactly that.
  ['5xx to the final dot is passed back unchanged', ['-f', '.'], 500, /^5\.3\.0 Error: command failed$/],
  ['dropped connection at the final dot', ['-q', '.'], 451, /^4\.4\.2 /],
  ['421 at the final dot', ['-Q', '.'], 451, /^4\.\d+\.\d+ /],
  ['premature 550 after DATA', ['-A', '0'], 550, /^5\./],
];

for (const [name, flags, code, text] of FINAL_DOT_FAULTS) {
  test(`next hop fault: ${name} -> ${code}`, { skip }, async () => {
    const { sink, mv } = await pair(flags);
    const r = await send(mv);
    const reply = r.final ?? r.data!;
    assert.equal(reply.code, code, JSON.stringify(r));
    assert.match(reply.text, text);
    if (flags[0] === '-f') {
      const hop = (await mv.waitForLog((l) => l.msg === 'message')).next_hop_reply as string;
      assert.equal(hop, '500 5.3.0');
    }
    // smtp-sink counts a transaction whatever its reply; none was accepted with 250.
    assert.ok(sink.counters().mesg <= 1);
  });
}

test('next hop times out after the final dot: 451 4.4.2, not 250', { skip }, async () => {
  const { mv } = await pair(['-W', '.:5'], 'timeouts: { next_hop_data: 1s }\n');
  const r = await send(mv);
  assert.equal(r.final?.code, 451);
  assert.match(r.final!.text, /^4\.4\.2 /);
});

test('next hop refuses MAIL with 4xx, RCPT with 5xx: the client sees those answers at that command', { skip }, async () => {
  const { mv: mv1 } = await pair(['-r', 'MAIL']);
  const a = await send(mv1);
  assert.equal(Math.floor(a.mail.code / 100), 4);
  const { sink, mv: mv2 } = await pair(['-f', 'RCPT']);
  const b = await send(mv2);
  assert.equal(b.mail.code, 250);
  assert.equal(Math.floor(b.rcpt[0].code / 100), 5, 'the next hop refused the recipient, so must we');
  assert.equal(b.final, undefined);
  assert.equal(sink.counters().mesg, 0);
});

test('SIZE is enforced during DATA with 552 5.3.4, and nothing reaches the next hop', { skip }, async () => {
  const { sink, mv } = await pair([], 'limits: { max_message_size: 20KiB }\n');
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message('big', ('y'.repeat(998) + '\r\n').repeat(40)) });
  assert.equal(r.final?.code, 552);
  assert.match(r.final!.text, /^5\.3\.4 /);
  assert.equal(sink.counters().mesg, 0);
  // A declared SIZE over the limit is refused at MAIL already.
  const r2 = await sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: 'x', mailParams: 'SIZE=999999999' });
  assert.equal(r2.mail.code, 552);
});

test('a client outside `clients` gets 554 5.7.1 at connect', { skip }, async () => {
  const { mv } = await pair([], 'clients: [192.0.2.0/24]\n');
  const { client, greeting } = await RawSmtp.open(mv.port);
  client.close();
  assert.equal(greeting.code, 554);
  assert.match(greeting.text, /^5\.7\.1 /);
});
