/*
 * Issue 8, points 5 and 9: the spool's disk use is bounded by
 * max_message_size, and a full disk while spooling is a clean 452 4.3.1.
 *  - oversize: the rest of the data is read and thrown away, the client gets
 *    552 5.3.4 after its dot (never before: SMTP clients do not read replies
 *    mid-DATA), nothing reaches the hop, and `<state_dir>/spool` never holds
 *    more than max_message_size on disk (polled every 20 ms while sending);
 *  - disk full: state_dir on a 4 MiB tmpfs; a 10 MiB message gets
 *    452 4.3.1 after its dot, no *.spool is left, the hop commits nothing,
 *    and once there is space again the next message is delivered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAfter } from '../helpers/cleanup';
import { startMailveil, type LogLine, type Mailveil } from '../helpers/mailveil';
import { sleep } from '../helpers/ports';
import { isCI, isRoot } from '../helpers/sink';
import { Findings, ScriptedHop, deliveryProblems, foreignCommands, relaySettledProblems, spoolFiles } from '../helpers/scripted-hop';
import { SMUGGLED_LINES, envelope, messageWithCommands, openSession, sendWithCommands, writeAll, type ClientReply, type RawSmtp } from '../helpers/smtp-client';

const { running, tempDir } = cleanupAfter();

const KiB = 1024;
const MiB = 1024 * KiB;
const ADDRESSES = ['sender@example.com', 'rcpt@example.net', 'next@example.com', 'next1@example.net'];

const TIMEOUTS = { next_hop_connect: '2s', next_hop_command: '5s', next_hop_write: '5s', next_hop_data: '8s', client_idle: '10s', drain: '5s' };

async function relay(limits: Record<string, string>, stateDir?: string): Promise<{ hop: ScriptedHop; mv: Mailveil }> {
  const hop = await ScriptedHop.start();
  running.push(hop);
  const dir = tempDir('mv-hard-size-');
  const config = join(dir, 'mailveil.yaml');
  writeFileSync(config, JSON.stringify({ limits, timeouts: TIMEOUTS }) + '\n');
  const mv = await startMailveil({ nextHop: hop.address, config, stateDir });
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

/**
 * Sends a whole message after DATA's 354 and returns the reply to the dot,
 * plus anything the server said before the dot was out (must be nothing).
 */
async function sendData(c: RawSmtp, message: Buffer): Promise<{ reply: ClientReply | undefined; early: string; written: number }> {
  let early = '';
  let dotOut = false;
  const onData = (d: Buffer | string) => {
    if (!dotOut) early += d.toString();
  };
  c.socket.on('data', onData);
  const written = await writeAll(c, message);
  await writeAll(c, '.\r\n');
  dotOut = true;
  c.socket.off('data', onData);
  const reply = await c.reply(20_000).catch(() => undefined);
  return { reply, early, written };
}

test('oversize (20 MiB against max_message_size 1MiB): 552 5.3.4 after the dot, nothing at the hop, spool never over 1 MiB on disk', async () => {
  const { hop, mv } = await relay({ max_message_size: '1MiB', spool_memory: '64KiB' });
  const f = new Findings();
  const big = messageWithCommands('oversize', 20 * MiB);
  let maxSize = 0;
  let maxDisk = 0;
  const poll = setInterval(() => {
    let size = 0;
    let disk = 0;
    for (const file of spoolFiles(mv.stateDir)) {
      size += file.size;
      disk += file.disk;
    }
    maxSize = Math.max(maxSize, size);
    maxDisk = Math.max(maxDisk, disk);
  }, 20);
  let r: Awaited<ReturnType<typeof sendData>>;
  const c = await openSession(mv.port);
  try {
    const env = await envelope(c, 'sender@example.com', ['rcpt@example.net']);
    assert.equal(env.data?.code, 354);
    r = await sendData(c, big.message);
  } finally {
    clearInterval(poll);
    c.close();
  }
  f.equal(r.early, '', 'said before the client had sent its dot');
  f.equal(r.written, big.message.length, 'bytes of the message read (the rest must be read and thrown away)');
  if (f.check(r.reply, 'no reply to the dot') && r.reply) {
    f.check(r.reply.code === 552 && /^5\.3\.4 /.test(r.reply.text), `expected 552 5.3.4, got ${r.reply.code} ${r.reply.text}`);
  }
  f.check(maxSize <= 1 * MiB, `the spool held up to ${maxSize} bytes (${maxDisk} on disk) for a 1 MiB limit`);
  f.check(!hop.commands().includes('DATA'), 'DATA of an oversize message reached the hop');
  const lines = await waitForMessageLines(mv, 1);
  if (f.check(lines.length === 1, `exactly one message line: ${JSON.stringify(lines)}`)) f.equal(lines[0].outcome, 'rejected', 'outcome');
  const next = await sendWithCommands(mv.port, { token: 'after-oversize', from: 'next@example.com', to: ['next1@example.net'], size: 200 * KiB });
  f.check(next.reply.code === 250, `the next message: ${next.reply.code} ${next.reply.text}`);
  f.add(deliveryProblems(hop, [{ token: 'oversize', reply: r.reply, body: big.body }, next]));
  f.check(hop.copiesOf('oversize').length === 0, 'an oversize message was committed');
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ADDRESSES });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});

const tmpfsSkip = !isRoot() && !isCI() ? 'needs root to mount a tmpfs as state_dir' : false;

test('disk full while spooling (state_dir on a 4 MiB tmpfs): 452 4.3.1 after the dot, no *.spool left, delivered again once there is space', { skip: tmpfsSkip }, async () => {
  const stateDir = join(tempDir('mv-hard-disk-'), 'state');
  mkdirSync(stateDir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', stateDir]);
  // Stopped last (running is stopped newest first): unmount once mailveil is gone.
  running.push({ stop: async () => execFileSync('umount', ['-l', stateDir]) });
  const { hop, mv } = await relay({ spool_memory: '64KiB' }, stateDir);
  const f = new Findings();
  // Leave about 1.5 MiB free, so the failure hits inside DATA and a 2 MiB message cannot fit until the filler goes.
  const filler = join(stateDir, 'filler');
  const st = statfsSync(stateDir);
  const free = Number(st.bavail) * Number(st.bsize);
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - 1.5 * MiB)));
  const big = messageWithCommands('disk-full', 10 * MiB);
  const c = await openSession(mv.port);
  let r: Awaited<ReturnType<typeof sendData>>;
  try {
    const env = await envelope(c, 'sender@example.com', ['rcpt@example.net']);
    assert.equal(env.data?.code, 354);
    r = await sendData(c, big.message);
  } finally {
    c.close();
  }
  f.equal(r.early, '', 'said before the client had sent its dot');
  if (f.check(r.reply, 'no reply to the dot') && r.reply) {
    f.check(r.reply.code === 452 && /^4\.3\.1 /.test(r.reply.text), `expected 452 4.3.1, got ${r.reply.code} ${r.reply.text}`);
  }
  const lines = await waitForMessageLines(mv, 1);
  if (f.check(lines.length === 1, `exactly one message line: ${JSON.stringify(lines)}`)) f.equal(lines[0].outcome, 'deferred', 'outcome');
  f.equal(spoolFiles(stateDir), [], 'spool files left after the failure');
  rmSync(filler);
  const next = await sendWithCommands(mv.port, { token: 'after-disk-full', from: 'next@example.com', to: ['next1@example.net'], size: 2 * MiB });
  f.check(next.reply.code === 250, `with space again the relay must deliver: ${next.reply.code} ${next.reply.text}`);
  f.add(deliveryProblems(hop, [{ token: 'disk-full', reply: r.reply, body: big.body }, next]));
  f.check(hop.copiesOf('disk-full').length === 0, 'the message that hit the full disk was committed');
  const foreign = foreignCommands(hop, { forbidden: SMUGGLED_LINES, addresses: ADDRESSES });
  f.check(foreign.length === 0, `commands from a body reached the next hop: ${JSON.stringify(foreign)}`);
  f.add(await relaySettledProblems(mv, hop));
  f.assertNone(hop.describe());
});
