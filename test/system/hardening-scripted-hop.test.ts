/*
 * The scripted next hop the hardening tests and the fuzzer rely on
 * (test/helpers/scripted-hop.ts), checked on its own with a raw client: if
 * it miscounted a commit or took a body line for a command, every
 * hardening test built on it would prove nothing.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from '../helpers/ports';
import { ScriptedHop, unstuff, wireBody } from '../helpers/scripted-hop';
import { RawSmtp, writeAll } from '../helpers/smtp-client';

const hops: ScriptedHop[] = [];
after(async () => {
  for (const h of hops) await h.stop();
});
async function hop(opts: Parameters<typeof ScriptedHop.start>[0] = {}) {
  const h = await ScriptedHop.start(opts);
  hops.push(h);
  return h;
}

test('EHLO advertises the Postfix set; a transaction is committed once, raw and dot-stuffed, split at any byte', async () => {
  const h = await hop();
  const { client: c, greeting } = await RawSmtp.open(h.port);
  assert.equal(greeting.code, 220);
  const ehlo = await c.cmd('EHLO relay.test');
  for (const kw of ['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT']) assert.match(ehlo.text, new RegExp(`^${kw}`, 'm'));
  assert.equal((await c.cmd('XFORWARD ADDR=192.0.2.1')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<a@example.com>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const msg = 'Subject: t1\r\n\r\nline\r\n..dot\r\nbare\nlf\n.\nstill body\r\n.\r';
  // One byte at a time: the final dot is found across chunk boundaries, "\n.\n" and ".\r" are not an end.
  for (const ch of msg + '\n') {
    c.socket.write(ch);
    await sleep(1);
  }
  const r = await c.reply();
  assert.equal(r.code, 250);
  const [t] = h.committed();
  assert.equal(t.raw!.toString('latin1'), 'Subject: t1\r\n\r\nline\r\n..dot\r\nbare\nlf\n.\nstill body\r\n');
  assert.equal(unstuff(wireBody(t.raw!)).toString('latin1'), 'line\r\n.dot\r\nbare\nlf\n.\nstill body\r\n');
  assert.deepEqual(t.xforward, ['XFORWARD ADDR=192.0.2.1']);
  assert.deepEqual(h.commands(), ['EHLO relay.test', 'XFORWARD ADDR=192.0.2.1', 'MAIL FROM:<a@example.com>', 'RCPT TO:<b@example.net>', 'DATA']);
  c.close();
});

test('pipelined commands after the dot are commands; a close before the dot commits nothing', async () => {
  const h = await hop();
  const { client: c } = await RawSmtp.open(h.port);
  await c.cmd('EHLO relay.test');
  c.socket.write('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: t2\r\n\r\nx\r\n.\r\nRSET\r\nMAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.net>\r\nDATA\r\nSubject: t3\r\n\r\nhalf');
  for (let i = 0; i < 8; i++) await c.reply();
  c.close();
  await h.waitFor(() => h.connections[0].closed && h.transactionLog.length === 2 && h.transactionLog[1].state === 'aborted', 'the cut transaction aborted');
  assert.equal(h.committed().length, 1);
  assert.equal(h.copiesOf('t2').length, 1);
  assert.equal(h.copiesOf('t3').length, 0);
  assert.equal(h.transactionLog[1].partial!.toString('latin1'), 'Subject: t3\r\n\r\nhalf');
  assert.ok(h.commands().includes('RSET'));
});

test('scripted delay, reply, stall and order errors', async () => {
  const h = await hop();
  const { client: c } = await RawSmtp.open(h.port);
  assert.equal((await c.cmd('MAIL FROM:<a@example.com>')).code, 503, 'MAIL before EHLO');
  await c.cmd('EHLO relay.test');
  h.script('MAIL', { delayMs: 300 }).script('RCPT', { reply: '450 4.2.0 busy' });
  const t0 = Date.now();
  assert.equal((await c.cmd('MAIL FROM:<a@example.com>')).code, 250);
  assert.ok(Date.now() - t0 >= 280);
  assert.equal((await c.cmd('MAIL FROM:<a@example.com>')).code, 503, 'nested MAIL');
  assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 450);
  assert.equal((await c.cmd('DATA')).code, 554, 'DATA without a recipient');
  assert.equal(h.protocolErrors().length, 3);
  h.script('NOOP', { stall: true });
  c.socket.write('NOOP\r\nRSET\r\n');
  await assert.rejects(c.reply(500));
  c.close();
});

test("commitOn 'dot' counts a message whose delayed reply found the connection gone; 'reply' does not", async () => {
  for (const commitOn of ['dot', 'reply'] as const) {
    const h = await hop({ commitOn });
    h.script('.', { delayMs: 300 });
    const { client: c } = await RawSmtp.open(h.port);
    await c.cmd('EHLO relay.test');
    await c.cmd('MAIL FROM:<a@example.com>');
    await c.cmd('RCPT TO:<b@example.net>');
    await c.cmd('DATA');
    await writeAll(c, 'Subject: t4\r\n\r\nx\r\n.\r\n');
    await h.next('dot');
    c.close();
    await sleep(500);
    assert.equal(h.copiesOf('t4').length, commitOn === 'dot' ? 1 : 0, commitOn);
    assert.equal(h.transactionLog[0].dotReplied, false);
  }
});

test('pauseReadingAfter makes the writer back up until resume()', async () => {
  const h = await hop();
  h.script('DATA', { pauseReadingAfter: 0 });
  const { client: c } = await RawSmtp.open(h.port);
  await c.cmd('EHLO relay.test');
  await c.cmd('MAIL FROM:<a@example.com>');
  await c.cmd('RCPT TO:<b@example.net>');
  await c.cmd('DATA');
  const big = Buffer.alloc(24 * 1024 * 1024, 'a');
  const writing = writeAll(c, big, 1500);
  const n = await writing;
  assert.ok(n < big.length, `the writer backed up (${n} of ${big.length} bytes handed over)`);
  h.resumeAll();
  c.close();
});
