/*
 * The process as an operator runs it: bounded memory on a 25 MB message,
 * SIGTERM during a transfer loses nothing and exits 0, SIGHUP and edits
 * under rules_dir reload atomically, metrics move, and logs hold no address
 * in clear.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { RawSmtp, sendOne, transaction, message } from '../helpers/smtp-client';
import { REPO_ROOT } from '../helpers/paths';
import { isPortClosed } from '../helpers/ports';

const skip = systemSkipReason(['smtp-sink']);
const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
});

async function pair(opts: { rulesDir?: string; sinkDump?: boolean } = {}): Promise<{ sink: Sink; mv: Mailveil }> {
  const sink = await startSink({ dump: opts.sinkDump ?? true });
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address, rulesDir: opts.rulesDir });
  running.push(mv);
  return { sink, mv };
}

async function metric(mv: Mailveil, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${mv.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{') && l.includes(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function sendLarge(mv: Mailveil, bytes: number): Promise<number> {
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2) + '\r\n';
  const chunk = line.repeat(Math.ceil((1024 * 1024) / line.length));
  const { client } = await RawSmtp.open(mv.port);
  await client.cmd('EHLO client.example.org');
  assert.equal((await client.cmd('MAIL FROM:<sender@example.com>')).code, 250);
  assert.equal((await client.cmd('RCPT TO:<rcpt@example.net>')).code, 250);
  assert.equal((await client.cmd('DATA')).code, 354);
  await client.write(message('big', ''));
  for (let sent = 0; sent < bytes; sent += chunk.length) await client.write(chunk);
  await client.write('\r\n.\r\n');
  const final = await client.reply(120_000);
  client.socket.end('QUIT\r\n');
  assert.equal(final.code, 250, final.text);
  return final.code;
}

test('a 100 MB message is relayed whole while peak RSS stays where a 50 MB one left it', { skip }, async () => {
  const cfg = join(mkdtempSync(join(tmpdir(), 'mv-cfg-')), 'mailveil.yaml');
  writeFileSync(cfg, 'limits: { max_message_size: 120MiB }\n');
  const sink = await startSink({ dump: false });
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address, config: cfg });
  running.push(mv);
  // A 250 from mailveil means the sink answered 250 to the final dot.
  // The first message is the warm-up: Node 24's collector lets dead buffers
  // pile up longer than Node 20's before it runs, and 50 MiB gets past that.
  await sendLarge(mv, 50 * 1024 * 1024);
  const at50 = (mv.peakRssKb() ?? 0) / 1024;
  const logs = mv.logs().filter((l) => l.msg === 'message');
  assert.ok((logs[0].size as number) > 50 * 1024 * 1024);
  // Twice the size must not mean more memory: the spool holds the message
  // on disk, so past the heap's own warm-up the peak stays where it was.
  await sendLarge(mv, 100 * 1024 * 1024);
  const at100 = (mv.peakRssKb() ?? 0) / 1024;
  console.log(`# relay peak RSS: ${at50.toFixed(1)} MiB after a 50 MiB message, ${at100.toFixed(1)} MiB after a 100 MiB one`);
  assert.ok(at100 - at50 < 24, `peak RSS grew by ${(at100 - at50).toFixed(1)} MiB from a 50 to a 100 MiB message`);
  assert.ok(at100 < 220, `peak RSS ${at100.toFixed(1)} MiB`);
});

test('SIGTERM during a transfer: the message finishes, new connections are refused, exit code 0', { skip }, async () => {
  const { sink, mv } = await pair();
  const { client } = await RawSmtp.open(mv.port);
  await client.cmd('EHLO client.example.org');
  assert.equal((await client.cmd('MAIL FROM:<sender@example.com>')).code, 250);
  assert.equal((await client.cmd('RCPT TO:<rcpt@example.net>')).code, 250);
  assert.equal((await client.cmd('DATA')).code, 354);
  await client.write(message('drain', 'first half\r\n'));
  const idle = (await RawSmtp.open(mv.port)).client;
  const stopped = mv.stop('SIGTERM', 20_000);
  await mv.waitForLog((l) => l.event === 'drain');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(await isPortClosed(mv.port), 'the listener is closed once draining starts');
  // An idle session is told to go away with 421; the busy one keeps going.
  assert.equal((await idle.reply()).code, 421);
  await client.write('second half\r\n.\r\n');
  const final = await client.reply();
  assert.equal(final.code, 250, final.text);
  assert.equal(await stopped, 0);
  const [m] = await sink.waitForMessages(1);
  assert.match(m.body, /first half\nsecond half/);
  assert.equal(sink.messages().length, 1);
});

test('SIGHUP and edits under rules_dir reload; a broken set is refused and the last good one stays live', { skip }, async () => {
  const rulesDir = mkdtempSync(join(tmpdir(), 'mv-rules-'));
  cpSync(join(REPO_ROOT, 'rules.d'), rulesDir, { recursive: true });
  const { sink, mv } = await pair({ rulesDir });
  writeFileSync(join(rulesDir, '50-local.yaml'), 'headers:\n  remove: [X-Secret-Project]\n');
  await mv.waitForLog((l) => l.event === 'rules_reload' && l.result === 'ok' && l.trigger === 'watch');
  writeFileSync(join(rulesDir, '60-broken.yaml'), 'headers:\n  received: shred\n');
  const bad = await mv.waitForLog((l) => l.event === 'rules_reload' && l.result === 'error');
  assert.match(String((bad.errors as string[])[0]), /60-broken\.yaml:2:13: received must be one of/);
  assert.equal(await metric(mv, 'mailveil_rules_reload_total{result="error"}'), 1);
  // The good set with the local rule is still the live one.
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message('reload', 'x\r\n', 'X-Secret-Project: Falcon\r\n') });
  assert.equal(r.final?.code, 250);
  const [m] = await sink.waitForMessages(1);
  assert.deepEqual(m.header('X-Secret-Project'), []);
  process.kill(mv.pid, 'SIGHUP');
  await mv.waitForLog((l) => l.event === 'rules_reload' && l.trigger === 'SIGHUP');
});

test('metrics move, and the per-message log line carries pseudonyms only', { skip }, async () => {
  const { mv } = await pair();
  for (let i = 0; i < 3; i++) {
    const r = await sendOne(mv.port, {
      from: 'alice.private@example.com',
      to: ['bob.private@example.net'],
      preamble: ['XFORWARD ADDR=198.51.100.77 NAME=host.example.org'],
      body: message('Secret subject line', 'body\r\n'),
    });
    assert.equal(r.final?.code, 250);
  }
  assert.equal(await metric(mv, 'mailveil_messages_total{verdict="pass"}'), 3);
  assert.ok((await metric(mv, 'mailveil_bytes_total{direction="in"}')) > 0);
  assert.ok((await metric(mv, 'mailveil_bytes_total{direction="out"}')) > 0);
  assert.equal(await metric(mv, 'mailveil_next_hop_replies_total{class="2xx"}'), 3);
  const text = await (await fetch(`http://127.0.0.1:${mv.metricsPort}/metrics`)).text();
  assert.match(text, /mailveil_stage_duration_seconds_bucket\{le="[^"]+",stage="smtp-encode"\}/);
  assert.match(text, /process_resident_memory_bytes/);
  assert.equal((await fetch(`http://127.0.0.1:${mv.metricsPort}/healthz`)).status, 200);
  const ready = await fetch(`http://127.0.0.1:${mv.metricsPort}/readyz`);
  assert.equal(ready.status, 200);
  // `rules` counts rules wherever it appears; the startup line names the files `rule_files`.
  const readyBody = (await ready.json()) as Record<string, unknown>;
  const started = mv.logs().find((l) => l.msg === 'listening');
  assert.ok(started, 'no listening line');
  assert.equal(typeof started.rule_files, 'number');
  assert.ok((started.rules as number) > (started.rule_files as number), 'the shipped set has more rules than files');
  assert.equal(started.rules, readyBody.rules, 'the startup line and /readyz count the same rules');
  const lines = mv.logs().filter((l) => l.msg === 'message');
  assert.equal(lines.length, 3);
  for (const key of ['id', 'client', 'from', 'rcpt_count', 'size', 'verdict', 'rules', 'next_hop_reply', 'duration_ms']) {
    assert.ok(key in lines[0], `log line lacks ${key}`);
  }
  assert.equal(lines[0].from, lines[1].from, 'the same sender gets the same pseudonym');
  const all = JSON.stringify(mv.logs()) + mv.stderr() + text;
  for (const clear of ['alice.private', 'bob.private', 'example.com', 'example.net', '198.51.100.77', 'host.example.org', 'Secret subject']) {
    assert.ok(!all.includes(clear), `"${clear}" appears in clear in logs or metrics`);
  }
  const key = join(mv.stateDir, 'pseudonym.key');
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.equal(readFileSync(key).length, 32);
});
