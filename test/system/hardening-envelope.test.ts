/*
 * Issue 8, point 6: a bare CR inside a MAIL or RCPT line is a syntax error
 * (501 5.5.2), not a line end and not a tail to drop silently. The line
 * `MAIL FROM:<a@example.com>\rRCPT TO:<b@example.net>` must not become a
 * MAIL at the next hop, nor smuggle its RCPT there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { ScriptedHop, deliveryProblems, relaySettledProblems } from '../helpers/scripted-hop';
import { messageWithCommands, openSession, writeAll } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

async function relay(): Promise<{ hop: ScriptedHop; mv: Mailveil }> {
  const hop = await ScriptedHop.start();
  running.push(hop);
  const config = join(tempDir('mv-hard-env-'), 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ timeouts: { next_hop_connect: '2s', next_hop_command: '5s', next_hop_data: '8s', client_idle: '10s', drain: '5s' } }) + '\n');
  const mv = await startMailveil({ nextHop: hop.address, config });
  running.push(mv);
  return { hop, mv };
}

test('a bare CR in MAIL or RCPT gets 501 5.5.2, nothing of it reaches the hop, and the session still works', async () => {
  const { hop, mv } = await relay();
  const c = await openSession(mv.port);
  const mail = await c.cmd('MAIL FROM:<a@example.com>\rRCPT TO:<b@example.net>');
  assert.equal(mail.code, 501, `MAIL with a bare CR: ${mail.code} ${mail.text}`);
  assert.match(mail.text, /^5\.5\.2 /);
  assert.equal((await c.cmd('MAIL FROM:<a@example.com>')).code, 250, 'a clean MAIL afterwards is fine');
  const rcpt = await c.cmd('RCPT TO:<b@example.net>\rRCPT TO:<c@example.net>');
  assert.equal(rcpt.code, 501, `RCPT with a bare CR: ${rcpt.code} ${rcpt.text}`);
  assert.match(rcpt.text, /^5\.5\.2 /);
  const cmds = hop.commands();
  assert.ok(!cmds.some((l) => /[\r]/.test(l)), `a CR reached the hop: ${JSON.stringify(cmds)}`);
  assert.ok(!cmds.some((l) => /^RCPT/i.test(l)), `no RCPT may reach the hop from a refused line: ${JSON.stringify(cmds)}`);
  assert.equal(cmds.filter((l) => /^MAIL/i.test(l)).length, 1, `only the clean MAIL reached the hop: ${JSON.stringify(cmds)}`);
  // The transaction goes on with a clean RCPT, and is delivered whole.
  assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  const m = messageWithCommands('after-bare-cr', 4096);
  await writeAll(c, m.message);
  await writeAll(c, '.\r\n');
  const reply = await c.reply(15_000);
  c.socket.end('QUIT\r\n');
  assert.equal(reply.code, 250, `${reply.code} ${reply.text}`);
  assert.deepEqual(deliveryProblems(hop, [{ token: 'after-bare-cr', reply, body: m.body }]), [], hop.describe());
  assert.deepEqual(hop.copiesOf('after-bare-cr')[0].rcpts, ['RCPT TO:<b@example.net>']);
  assert.deepEqual(await relaySettledProblems(mv, hop), [], hop.describe());
});
