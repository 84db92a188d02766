/*
 * Issue 8, point 4: SIGTERM never creates duplicates. With a drain deadline
 * of 1 s and a next hop that takes 3 s to answer each final dot, the
 * sessions whose dot has gone downstream wait for that answer and pass it
 * on (250, the hop's own reply, not 421), the hop commits each message
 * exactly once, a session that has not sent DATA yet gets 421 4.3.2, every
 * message gets its `"msg":"message"` line, and the process exits 0 with no
 * *.spool file left. (mailveil_messages_in_flight is read while the three
 * wait, since after the drain there is no process left to ask.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil } from '../helpers/mailveil';
import { sleep } from '../helpers/ports';
import { Findings, ScriptedHop, deliveryProblems, foreignCommands, metricValue, spoolFiles } from '../helpers/scripted-hop';
import { SMUGGLED_LINES, envelope, messageWithCommands, openSession, writeAll, type ClientReply } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

test('SIGTERM with a slow next hop: committed sessions get the hop\'s 250 (no 421, no duplicate), uncommitted ones 421 4.3.2, exit 0', async () => {
  // Postfix-like: the hop holds a message once it has read the dot.
  const hop = await ScriptedHop.start({ commitOn: 'dot' });
  running.push(hop);
  hop.script('.', { delayMs: 3000 }, { times: Infinity });
  const dir = tempDir('mv-hard-drain-');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir);
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(
    config,
    JSON.stringify({ timeouts: { next_hop_connect: '2s', next_hop_command: '5s', next_hop_write: '5s', next_hop_data: '10s', client_idle: '30s', drain: '1s' } }) + '\n',
  );
  const mv = await startMailveil({ nextHop: hop.address, config, stateDir });
  running.push(mv);

  // Three messages, with 1, 2 and 3 recipients so their log lines can be told apart.
  const rcptsOf = (i: number) => Array.from({ length: i }, (_, k) => `r${i}-${k}@example.net`);
  const tokens = [1, 2, 3].map((i) => `drain-${i}`);
  const bodies = new Map<string, Buffer>();
  const replies = new Map<string, Promise<ClientReply>>();
  for (const [n, token] of tokens.entries()) {
    const m = messageWithCommands(token, 32 * 1024);
    bodies.set(token, m.body);
    const c = await openSession(mv.port);
    const env = await envelope(c, 'sender@example.com', rcptsOf(n + 1));
    assert.equal(env.data?.code, 354);
    await writeAll(c, m.message);
    await writeAll(c, '.\r\n');
    replies.set(token, c.reply(20_000));
  }
  // Every dot has reached the hop; its replies are 3 s away.
  await hop.waitFor(() => hop.transactionLog.filter((t) => t.raw !== undefined).length >= 3, 'three final dots', 10_000);

  // A session inside its envelope (no DATA yet), and one that only said EHLO.
  const pending = await openSession(mv.port);
  assert.equal((await pending.cmd('MAIL FROM:<sender@example.com>')).code, 250);
  assert.equal((await pending.cmd('RCPT TO:<rcpt@example.net>')).code, 250);
  const idle = await openSession(mv.port);
  const pendingReply = pending.reply(15_000);
  const idleReply = idle.reply(15_000);

  // While the three wait for the hop, they are in flight (checked after the drain, with the rest).
  const inFlight = await metricValue(mv.metricsPort, 'mailveil_messages_in_flight').catch(() => undefined);

  const termAt = Date.now();
  const exit = mv.stop('SIGTERM', 20_000);
  const got = new Map<string, ClientReply>();
  for (const t of tokens) got.set(t, await replies.get(t)!.catch((e: Error) => ({ code: 0, text: e.message })));
  const p = await pendingReply.catch((e: Error) => ({ code: 0, text: e.message }));
  const i = await idleReply.catch((e: Error) => ({ code: 0, text: e.message }));
  const code = await exit;
  const took = Date.now() - termAt;

  const f = new Findings();
  for (const t of tokens) {
    const r = got.get(t)!;
    f.check(r.code === 250, `${t}: its dot had gone to the hop, so it must wait for the hop's answer (250): got ${r.code} ${r.text}`);
  }
  f.add(deliveryProblems(hop, tokens.map((t) => ({ token: t, reply: got.get(t), body: bodies.get(t) }))));
  for (const t of tokens) f.check(hop.copiesOf(t).length === 1, `${t}: committed ${hop.copiesOf(t).length} times, expected once`);
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ['sender@example.com', 'rcpt@example.net', ...[1, 2, 3].flatMap(rcptsOf)] });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
  f.check(p.code === 421 && /^4\.3\.2 /.test(p.text), `the session without DATA: expected 421 4.3.2, got ${p.code} ${p.text}`);
  f.check(i.code === 421 && /^4\.3\.2 /.test(i.text), `the idle session: expected 421 4.3.2, got ${i.code} ${i.text}`);
  f.equal(code, 0, 'exit code after the drain');
  f.check(took >= 1500, `the drain did not wait for the hop's answers (exit after ${took} ms)`);
  const lines = mv.logs().filter((l) => l.msg === 'message');
  for (const n of [1, 2, 3]) {
    const mine = lines.filter((l) => l.rcpt_count === n);
    if (f.check(mine.length === 1, `the message with ${n} recipient(s): expected exactly one message line, got ${mine.length}`)) f.equal(mine[0].outcome, 'delivered', `outcome of the message with ${n} recipient(s)`);
  }
  f.check(lines.length === 3, `exactly three message lines: ${JSON.stringify(lines)}`);
  await sleep(100);
  f.equal(spoolFiles(stateDir), [], 'spool files left after the drain');
  // The process is gone, so the gauge cannot be read back at 0 here; it must have seen the three.
  f.equal(inFlight, 3, 'mailveil_messages_in_flight while the three waited for the hop');
  pending.close();
  idle.close();
  f.assertNone(hop.describe());
});
