/*
 * The local rules layer (local_rules_dir, `serve --local-rules DIR`) in a
 * running mailveil in front of smtp-sink, with the shipped rules.d as the
 * shipped layer:
 *  - a local rule with a shipped rule's id replaces it (us-ssn: redact ->
 *    tag), and `id` + `enabled: false` switches a shipped rule off (iban);
 *    the verdict header and the delivered body show both;
 *  - SIGHUP (and the watch on the local dir) reload both layers atomically:
 *    a broken local file refuses the whole new set, even the good edit made
 *    beside it, the last good set stays live, and
 *    mailveil_rules_reload_total{result="error"} counts each refusal; once
 *    the file is fixed, SIGHUP brings the new set in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { sendOne, message } from '../helpers/smtp-client';
import { waitFor } from '../helpers/ports';
import { cleanupAfter } from '../helpers/cleanup';

const skip = systemSkipReason(['smtp-sink']);
const { running, tempDir } = cleanupAfter();

const SSN = '536-90-4399';
const IBAN = 'DE89 3704 0044 0532 0130 00';
const BODY = `SSN: ${SSN}\r\nIBAN ${IBAN}\r\n`;

/** us-ssn ships as redact: tag it instead. iban ships as tag: switch it off. */
const OVERRIDES = ['rules:', '  - id: us-ssn', '    detector: us_ssn', '    action: tag', '  - id: iban', '    enabled: false', ''].join('\n');

async function pair(localDir: string): Promise<{ sink: Sink; mv: Mailveil }> {
  const sink = await startSink({ dump: true });
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address, extraArgs: ['--local-rules', localDir] });
  running.push(mv);
  return { sink, mv };
}

async function metric(mv: Mailveil, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${mv.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Sends one message and returns what the sink got (the n-th message, 1-based). */
async function deliver(mv: Mailveil, sink: Sink, n: number, subject: string) {
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: ['rcpt@example.net'], body: message(subject, BODY) });
  assert.equal(r.final?.code, 250, r.final?.text);
  const got = (await sink.waitForMessages(n))[n - 1];
  assert.match(got.body, new RegExp(`IBAN ${IBAN}`), 'tag and pass leave the body as it was');
  return got;
}

const reloadErrors = (mv: Mailveil) => mv.logs().filter((l) => l.event === 'rules_reload' && l.result === 'error');

test('serve --local-rules: a local rule replaces the shipped rule of its id, enabled: false switches one off', { skip }, async () => {
  const local = tempDir('mv-local-rules-');
  writeFileSync(join(local, '50-site.yaml'), OVERRIDES);
  const { sink, mv } = await pair(local);
  const got = await deliver(mv, sink, 1, 'override');
  // Shipped, this message is `redact; rules=us-ssn,iban` with the SSN replaced.
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['tag; rules=us-ssn']);
  assert.match(got.body, new RegExp(`SSN: ${SSN}`), 'us-ssn is tag now: the value is not redacted');
  const line = mv.logs().find((l) => l.msg === 'message');
  assert.equal(line?.verdict, 'tag');
  assert.deepEqual(line?.rules, ['us-ssn']);
});

test('SIGHUP with a broken local file: the new set is refused whole, the last good one stays live, the error is counted', { skip }, async () => {
  const local = tempDir('mv-local-rules-');
  writeFileSync(join(local, '50-site.yaml'), OVERRIDES);
  const { sink, mv } = await pair(local);
  assert.deepEqual((await deliver(mv, sink, 1, 'before')).header('X-Mailveil-Verdict'), ['tag; rules=us-ssn']);

  // A broken file, and beside it a good edit (us-ssn off) that must not go live alone.
  writeFileSync(join(local, '60-broken.yaml'), 'rules:\n  - id: Staff_ID\n    pattern: "EMP-[0-9]{6}"\n    action: tag\n');
  writeFileSync(join(local, '50-site.yaml'), ['rules:', '  - id: us-ssn', '    enabled: false', '  - id: iban', '    enabled: false', ''].join('\n'));
  process.kill(mv.pid, 'SIGHUP');
  await mv.waitForLog((l) => l.event === 'rules_reload' && l.trigger === 'SIGHUP' && l.result === 'error', 'the SIGHUP reload refused');
  const bad = reloadErrors(mv);
  assert.ok(bad.every((l) => (l.errors as string[]).some((e) => /60-broken\.yaml:2:9: id must match \[a-z0-9-\]\+/.test(e))), JSON.stringify(bad));
  // The watch on the local dir may have tried too: every refusal is counted, none went live.
  await waitFor(async () => (await metric(mv, 'mailveil_rules_reload_total{result="error"}')) === reloadErrors(mv).length || undefined, { timeoutMs: 5_000, what: 'the error count to match the refusals' });
  assert.ok(reloadErrors(mv).length >= 1);
  assert.equal(mv.logs().filter((l) => l.event === 'rules_reload' && l.result === 'ok').length, 0, 'no reload took');
  const during = await deliver(mv, sink, 2, 'during');
  assert.deepEqual(during.header('X-Mailveil-Verdict'), ['tag; rules=us-ssn'], 'the last good set (us-ssn as tag) is still the live one');

  // Fixed: the next SIGHUP takes both edits at once.
  rmSync(join(local, '60-broken.yaml'));
  await new Promise((r) => setTimeout(r, 400)); // let a watch-triggered reload settle first
  process.kill(mv.pid, 'SIGHUP');
  await mv.waitForLog((l) => l.event === 'rules_reload' && l.trigger === 'SIGHUP' && l.result === 'ok', 'the SIGHUP reload taken');
  const after = await deliver(mv, sink, 3, 'after');
  assert.deepEqual(after.header('X-Mailveil-Verdict'), ['pass; rules='], 'us-ssn and iban both off now');
  assert.match(after.body, new RegExp(`SSN: ${SSN}`));
});
