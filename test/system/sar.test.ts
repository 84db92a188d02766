/*
 * Subject access and erasure as an operator runs it: a state dir filled
 * through the store and audit-log APIs (subjects from subjectTokens, the
 * instance's own pseudonym key), then the real bin/mailveil:
 * find -> export (archive opened and checked) -> erase -> find (nothing),
 * and afterwards the state dir grepped for the address and the message
 * values. Plus the error cases. Every address and value is synthetic.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { AuditLog, ERASED, type AuditEvent } from '../../src/audit/log';
import { Pseudonymiser, PSEUDONYM_KEY_FILE } from '../../src/privacy/pseudonym';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { subjectTokens, subjectToken, readHeaderBlock } from '../../src/gdpr/subjects';
import { allFiles, chunked, filesContaining, removeTempDirs, tempDir } from '../fixtures/quarantine/sample';
import { startSink, systemSkipReason } from '../helpers/sink';
import { startMailveil } from '../helpers/mailveil';
import { sendOne, type ClientReply } from '../helpers/smtp-client';
import { waitFor } from '../helpers/ports';

const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
  removeTempDirs();
});

const JANE = 'jane.synthetic@example.com';
const JANE_CC = 'Jane.Synthetic@EXAMPLE.com'; // the same person, written differently in a Cc field
const RICK = 'rick.synthetic@example.org';
const OTTO = 'otto.synthetic@example.net';
const CARD = '4111 1111 1111 1111';
const SECRET_SUBJECT = 'Quarterly payroll for the synthetic team';

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function message(headers: string[], body: string, pad = 0): Buffer {
  return Buffer.from([...headers, `Subject: ${SECRET_SUBJECT}`, '', body, 'x'.repeat(pad), ''].join('\r\n'));
}

const M1 = message([`From: Jane <${JANE}>`, `To: Rick <${RICK}>`], `Card ${CARD}, exp 12/30.`, 300 * 1024);
const M2 = message([`From: ${RICK}`, `To: Team: ${OTTO};`, `Cc: "Synthetic, Jane" <${JANE_CC}>`], 'Nothing special.');
const M3 = message([`From: ${RICK}`, `To: ${OTTO}`], `Card ${CARD}.`);

interface Fixture {
  stateDir: string;
  jane: string;
  rick: string;
  otto: string;
  events: AuditEvent[];
}

async function put(store: QuarantineStore, keyer: Pseudonymiser, id: string, receivedAt: string, env: { from: string; rcpts: string[] }, msg: Buffer, rules = ['payment-card']) {
  const subjects = subjectTokens(keyer, env, await readHeaderBlock(chunked(msg, 4096), 1024 * 1024));
  await store.put(
    {
      id,
      receivedAt,
      size: msg.length,
      verdict: 'quarantine',
      rules,
      reasons: [],
      from: keyer.token('addr', env.from),
      rcpts: env.rcpts.map((r) => keyer.token('addr', r)),
      findings: rules.map((rule) => ({ rule, detector: 'credit_card', count: 1, part: '1', offset: 5 })),
      subjects,
    },
    chunked(msg, 65536),
  );
  return subjects;
}

/** Three held messages (Jane is in M1 as sender and M2 as Cc, not in M3) and audit events over two days. */
async function fixture(): Promise<Fixture> {
  const stateDir = tempDir('mv-sar-');
  const keyer = Pseudonymiser.fromStateDir(stateDir);
  const store = new QuarantineStore(stateDir);
  const s1 = await put(store, keyer, 'M1JANE', '2026-11-20T09:00:00.000Z', { from: JANE, rcpts: [RICK] }, M1);
  const s2 = await put(store, keyer, 'M2CC', '2026-11-21T09:00:00.000Z', { from: RICK, rcpts: [OTTO] }, M2, ['private-key']);
  const s3 = await put(store, keyer, 'M3OTHER', '2026-11-21T10:00:00.000Z', { from: RICK, rcpts: [OTTO] }, M3);
  let now = new Date('2026-11-20T09:00:01.000Z');
  const audit = new AuditLog(stateDir, { now: () => now });
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'M1JANE', subjects: s1, details: { verdict: 'quarantine', rules: ['payment-card'] } });
  now = new Date('2026-11-21T09:00:01.000Z');
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'M2CC', subjects: s2, details: { verdict: 'quarantine', rules: ['private-key'] } });
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'M3OTHER', subjects: s3, details: { verdict: 'quarantine', rules: ['payment-card'] } });
  await audit.append({ event: 'delete', actor: 'os:admin', id: 'OLDJANE', subjects: [subjectToken(keyer, JANE)!], details: {} });
  const events: AuditEvent[] = [];
  for await (const e of audit.read()) events.push(e);
  return { stateDir, jane: subjectToken(keyer, JANE)!, rick: subjectToken(keyer, RICK)!, otto: subjectToken(keyer, OTTO)!, events };
}

async function untar(file: string): Promise<Map<string, { data: Buffer; mode: number }>> {
  const ex = tar.extract();
  const out = new Map<string, { data: Buffer; mode: number }>();
  const reading = (async () => {
    for await (const entry of ex) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      out.set(entry.header.name, { data: Buffer.concat(parts), mode: entry.header.mode ?? 0 });
    }
  })();
  ex.end(gunzipSync(readFileSync(file)));
  await reading;
  return out;
}

function auditEvents(stateDir: string): AuditEvent[] {
  const dir = join(stateDir, 'audit');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent));
}

/** Every spelling of the synthetic people and values that must never be on disk in clear. */
const SECRETS = [JANE, JANE_CC, JANE.toLowerCase(), 'jane.synthetic', RICK, OTTO, CARD, SECRET_SUBJECT];

function assertNothingInClear(stateDir: string, extra: string[] = []) {
  for (const s of [...SECRETS, ...extra]) assert.deepEqual(filesContaining(stateDir, s), [], `${JSON.stringify(s)} found in clear`);
}

test('sar round trip: find -> export -> erase -> find returns nothing; nothing in clear on disk', async () => {
  const f = await fixture();
  assertNothingInClear(f.stateDir);

  // find, text: the two messages Jane is in (sender of M1, Cc of M2, in another spelling), newest first, and her events.
  let r = run('sar', 'find', JANE, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const lines = r.out.trimEnd().split('\n');
  assert.equal(lines[0], `subject ${f.jane}`);
  assert.equal(lines[1], 'quarantine: 2 messages');
  assert.match(lines[2], /^ {2}M2CC {2}2026-11-21T09:00:00Z {2}\d+ B {2}quarantine {2}rules=private-key$/);
  assert.match(lines[3], /^ {2}M1JANE {2}2026-11-20T09:00:00Z {2}300 KiB {2}quarantine {2}rules=payment-card$/);
  assert.equal(lines[4], 'audit log: 3 events');
  assert.match(lines[5], /^ {2}2026-11-20T09:00:01.000Z {2}verdict {2}actor=smtp {2}id=M1JANE {2}\{"verdict":"quarantine","rules":\["payment-card"\]\}$/);
  assert.match(lines[6], /verdict {2}actor=smtp {2}id=M2CC/);
  assert.match(lines[7], /delete {2}actor=os:admin {2}id=OLDJANE$/);
  assert.equal(lines.length, 8);
  assert.ok(!r.out.includes(JANE) && !r.out.includes(CARD));

  // Any spelling of the address finds the same person.
  const again = run('sar', 'find', `Jane Synthetic <${JANE_CC}>`, '--state-dir', f.stateDir);
  assert.equal(again.out, r.out);

  // find --json.
  r = run('sar', 'find', JANE, '--json', '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  const found = JSON.parse(r.out);
  assert.equal(found.subject, f.jane);
  assert.deepEqual(found.messages.map((m: { id: string }) => m.id), ['M2CC', 'M1JANE']);
  assert.deepEqual(found.messages[1], {
    id: 'M1JANE',
    receivedAt: '2026-11-20T09:00:00.000Z',
    size: M1.length,
    verdict: 'quarantine',
    rules: ['payment-card'],
    reasons: [],
    findings: [{ rule: 'payment-card', detector: 'credit_card', count: 1, part: '1', offset: 5 }],
  });
  const janeEvents = f.events.filter((e) => e.subjects?.includes(f.jane));
  assert.deepEqual(found.events, janeEvents);
  assert.deepEqual(found.unreadable, []);

  // export: one .tar.gz, 0600, with the decrypted originals and her events.
  const outDir = tempDir('mv-sar-out-');
  const archive = join(outDir, 'jane.tar.gz');
  r = run('sar', 'export', JANE, '--out', archive, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^exported 2 messages and 3 audit events to ${archive.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(.+\\)\\n$`));
  assert.equal(statSync(archive).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(outDir), ['jane.tar.gz'], 'no temp file left beside the archive');
  const files = await untar(archive);
  assert.deepEqual([...files.keys()], ['README.txt', 'messages.json', 'messages/M2CC.eml', 'messages/M1JANE.eml', 'events.json']);
  for (const { mode } of files.values()) assert.equal(mode, 0o600);
  assert.deepEqual(files.get('messages/M1JANE.eml')!.data, M1);
  assert.deepEqual(files.get('messages/M2CC.eml')!.data, M2);
  assert.deepEqual(JSON.parse(files.get('messages.json')!.data.toString()), found.messages);
  const handedOver = JSON.parse(files.get('events.json')!.data.toString()) as AuditEvent[];
  assert.deepEqual(
    handedOver,
    janeEvents.map((e) => ({ ...e, subjects: e.subjects!.map((s) => (s === f.jane ? s : '[other]')) })),
  );
  assert.ok(!JSON.stringify(handedOver).includes(f.rick), "other people's pseudonyms are not handed over");
  const readme = files.get('README.txt')!.data.toString();
  assert.match(readme, /GDPR Art\. 15/);
  assert.match(readme, /Made at: {4}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/);
  assert.match(readme, /Made by: {4}os:\S+, with mailveil \d+\.\d+\.\d+/);
  assert.match(readme, new RegExp(`Reference: {2}${f.jane}`));
  assert.match(readme, /messages\/<id>\.eml {2}2 e-mail message/);
  assert.match(readme, /events\.json {8}3 audit-log event/);
  assert.ok(!readme.includes(JANE) && !readme.includes('jane.synthetic'));

  // The export is audited with counts and Jane's token, never her address.
  const exportEvent = auditEvents(f.stateDir).find((e) => e.event === 'export')!;
  assert.match(exportEvent.actor, /^os:/);
  assert.deepEqual(exportEvent.subjects, [f.jane]);
  assert.deepEqual(exportEvent.details, { messages: 2, events: 3, bytes: statSync(archive).size });

  // An existing --out is never replaced without --force.
  r = run('sar', 'export', JANE, '--out', archive, '--state-dir', f.stateDir);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mailveil: ${archive} already exists (use --force to replace it)\n`);
  writeFileSync(archive, 'placeholder');
  r = run('sar', 'export', JANE, '--out', archive, '--force', '--json', '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  const forced = JSON.parse(r.out);
  assert.equal(forced.file, archive);
  assert.equal(forced.messages, 2);
  assert.equal(forced.events, 4, 'the first export is now one of her events');
  assert.equal(statSync(archive).mode & 0o777, 0o600);
  assert.deepEqual((await untar(archive)).get('messages/M1JANE.eml')!.data, M1);

  // erase: both messages deleted, her token erased from every event that named it.
  r = run('sar', 'erase', JANE, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'erased: 2 quarantined messages deleted, 5 audit events anonymised\n');
  assert.deepEqual(readdirSync(quarantineDir(f.stateDir)).sort(), ['M3OTHER.mvq']);

  // find now returns nothing, in text and JSON.
  r = run('sar', 'find', JANE, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'nothing found for that address\n');
  r = run('sar', 'find', JANE_CC, '--json', '--state-dir', f.stateDir);
  assert.deepEqual(JSON.parse(r.out), { subject: f.jane, messages: [], events: [], unreadable: [] });

  // Other people keep their data: Rick's M3 and his events, with Jane's place marked as erased.
  r = run('sar', 'find', RICK, '--json', '--state-dir', f.stateDir);
  const rick = JSON.parse(r.out);
  assert.deepEqual(rick.messages.map((m: { id: string }) => m.id), ['M3OTHER']);
  assert.deepEqual(rick.events.map((e: AuditEvent) => e.id), ['M1JANE', 'M2CC', 'M3OTHER']);
  assert.ok(rick.events[0].subjects.includes(ERASED));

  // The erase record names no subject; it holds counts only.
  const all = auditEvents(f.stateDir);
  const erase = all.find((e) => e.event === 'erase')!;
  assert.equal(erase.subjects, undefined);
  assert.deepEqual(erase.details, { messages: 2, events: 5, unreadable: 0 });
  assert.match(erase.actor, /^os:/);
  assert.equal(all.filter((e) => e.event === 'export').length, 2);

  // Nothing in clear anywhere under state_dir, and not even Jane's token is left.
  assertNothingInClear(f.stateDir, [f.jane]);
});

test('sar erase --json prints the counts; a second erase finds nothing more', async () => {
  const f = await fixture();
  let r = run('sar', 'erase', JANE, '--json', '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { messages: 2, events: 3, unreadable: [] });
  r = run('sar', 'erase', JANE, '--json', '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { messages: 0, events: 0, unreadable: [] });
  assert.equal(auditEvents(f.stateDir).filter((e) => e.event === 'erase').length, 2, 'every erase request is recorded');
});

test('no matches: exit 0 and "nothing found"; export writes no archive', async () => {
  const f = await fixture();
  const nobody = 'nobody.synthetic@example.com';
  let r = run('sar', 'find', nobody, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'nothing found for that address\n');
  const out = join(tempDir('mv-sar-out-'), 'nobody.tar.gz');
  r = run('sar', 'export', nobody, '--out', out, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'nothing found for that address; no archive written\n');
  assert.ok(!existsSync(out));
  const rec = auditEvents(f.stateDir).find((e) => e.event === 'export')!;
  assert.equal(rec.subjects, undefined);
  assert.deepEqual(rec.details, { messages: 0, events: 0, archive: false });
  r = run('sar', 'erase', nobody, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'erased: 0 quarantined messages deleted, 0 audit events anonymised\n');
  assert.equal(readdirSync(quarantineDir(f.stateDir)).length, 3);
});

test('a state dir without a pseudonym key has nothing indexed: nothing found, and no key is made', () => {
  const stateDir = tempDir('mv-sar-');
  const r = run('sar', 'find', JANE, '--state-dir', stateDir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'nothing found for that address\n');
  assert.ok(!existsSync(join(stateDir, PSEUDONYM_KEY_FILE)));
  assert.deepEqual(allFiles(stateDir), []);
});

test('bad address syntax: exit 1 with one line that does not repeat the input', () => {
  const stateDir = tempDir('mv-sar-');
  for (const bad of ['jane.synthetic', 'jane.synthetic@', 'a@example.com, b@example.com', 'jane.synthetic@exa mple.com']) {
    for (const cmd of ['find', 'erase']) {
      const r = run('sar', cmd, bad, '--state-dir', stateDir);
      assert.equal(r.code, 1, `${cmd} ${bad}`);
      assert.equal(r.err, 'mailveil: ADDRESS is not one valid e-mail address (expected local@domain, e.g. jane.doe@example.com)\n');
      assert.equal(r.out, '');
    }
  }
});

test('missing state dir: exit 1; missing --out: usage error, exit 2', () => {
  const missing = join(tempDir('mv-sar-'), 'no-such-dir');
  for (const args of [['find', JANE], ['erase', JANE], ['export', JANE, '--out', join(tempDir('mv-sar-out-'), 'x.tar.gz')]]) {
    const r = run('sar', ...args, '--state-dir', missing);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.err, `mailveil: state_dir ${missing} does not exist\n`);
  }
  assert.ok(!existsSync(missing), 'nothing is created');
  const r = run('sar', 'export', JANE, '--state-dir', tempDir('mv-sar-'));
  assert.equal(r.code, 2);
  assert.match(r.err, /--out/);
});

test('a corrupt entry fails the export with a clear error and leaves no file', async () => {
  const f = await fixture();
  // Flip one byte inside M1's message ciphertext (the middle of the file).
  const file = join(quarantineDir(f.stateDir), 'M1JANE.mvq');
  const bytes = readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  writeFileSync(file, bytes);
  const outDir = tempDir('mv-sar-out-');
  const out = join(outDir, 'jane.tar.gz');
  const r = run('sar', 'export', JANE, '--out', out, '--state-dir', f.stateDir);
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: quarantine entry M1JANE cannot be exported: corrupt entry: message failed authentication .*; no archive was written\n$/);
  assert.deepEqual(readdirSync(outDir), [], 'neither the archive nor a temp file');
  assert.equal(auditEvents(f.stateDir).filter((e) => e.event === 'export').length, 0, 'a failed export is not recorded as one');
});

test('an unreadable entry is reported: find warns, export refuses, erase leaves it and says so', async () => {
  const f = await fixture();
  const file = join(quarantineDir(f.stateDir), 'M3OTHER.mvq');
  const bytes = readFileSync(file);
  bytes[70] ^= 0x01; // inside the metadata ciphertext (header is 66 bytes with a 16-char key id)
  writeFileSync(file, bytes);
  let r = run('sar', 'find', JANE, '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /quarantine: 2 messages/);
  assert.equal(r.err, 'mailveil: 1 quarantine entry could not be read and was not searched: M3OTHER\n');
  const out = join(tempDir('mv-sar-out-'), 'jane.tar.gz');
  r = run('sar', 'export', JANE, '--out', out, '--state-dir', f.stateDir);
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: 1 quarantine entry cannot be read \(M3OTHER\), so the export could be incomplete; .*no archive was written\n$/);
  assert.ok(!existsSync(out));
  r = run('sar', 'erase', JANE, '--json', '--state-dir', f.stateDir);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { messages: 2, events: 3, unreadable: ['M3OTHER'] });
  assert.match(r.err, /M3OTHER/);
  assert.ok(existsSync(file));
});

test('state_dir from --config; --help on every sar command', async () => {
  const f = await fixture();
  const cfg = join(tempDir('mv-sar-'), 'mailveil.yaml');
  writeFileSync(cfg, `state_dir: ${JSON.stringify(f.stateDir)}\n`);
  const r = run('sar', 'find', JANE, '--config', cfg);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /quarantine: 2 messages/);
  for (const args of [['sar', '--help'], ['sar', 'find', '--help'], ['sar', 'export', '--help'], ['sar', 'erase', '--help']]) {
    const h = run(...args);
    assert.equal(h.code, 0, args.join(' '));
    assert.match(h.out, /Usage: mailveil sar/);
  }
});

test('end to end: a message held through SMTP is found by each of its addresses, exported and erased', { skip: systemSkipReason(['smtp-sink']) }, async () => {
  const rulesDir = tempDir('mv-sar-rules-');
  writeFileSync(join(rulesDir, '10-hold.yaml'), "rules:\n  - id: t-hold\n    pattern: '\\bHOLDSAR-[0-9]{4}\\b'\n    action: quarantine\n");
  const stateDir = tempDir('mv-sar-state-');
  const sink = await startSink();
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address, rulesDir, stateDir });
  running.push(mv);
  const value = 'HOLDSAR-4242';
  const cc = 'carla.synthetic@example.org'; // only in a header field, never in the envelope
  const body =
    `From: Jane <${JANE}>\r\nTo: Rick <${RICK}>\r\nCc: Team: "Synthetic, Carla" <${cc}>;\r\nSubject: ${SECRET_SUBJECT}\r\n` +
    `Message-ID: <sar-e2e@mail.example.com>\r\n\r\nThe reference is ${value}.\r\n`;
  const r = await sendOne(mv.port, { from: JANE, to: [RICK], body });
  const final = r.final as ClientReply;
  const m = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/.exec(final?.text ?? '');
  assert.ok(m, JSON.stringify(r));
  const id = m[1];
  const found = await waitFor(
    () => {
      const f = run('sar', 'find', cc, '--json', '--state-dir', stateDir);
      const data = JSON.parse(f.out);
      return data.messages.length === 1 && data.events.length >= 1 ? data : undefined;
    },
    { timeoutMs: 10_000, what: 'the held message and its verdict event under the Cc address' },
  );
  assert.equal(found.messages[0].id, id);
  assert.deepEqual(found.messages[0].rules, ['t-hold']);
  assert.ok(found.events.some((e: AuditEvent) => e.event === 'verdict' && e.id === id));
  for (const who of [JANE, RICK, `<${JANE.toUpperCase()}>`]) {
    const f = JSON.parse(run('sar', 'find', who, '--json', '--state-dir', stateDir).out);
    assert.deepEqual(f.messages.map((x: { id: string }) => x.id), [id], who);
  }

  const archive = join(tempDir('mv-sar-out-'), 'carla.tar.gz');
  let c = run('sar', 'export', cc, '--out', archive, '--state-dir', stateDir);
  assert.equal(c.code, 0, c.err);
  const files = await untar(archive);
  // The test client ends DATA with CRLF "." CRLF after the body: that first CRLF is message content.
  assert.equal(files.get(`messages/${id}.eml`)!.data.toString(), body + '\r\n');

  // Erasing the recipient deletes the message; Carla keeps only the audit trail of it, without Rick.
  c = run('sar', 'erase', RICK, '--json', '--state-dir', stateDir);
  assert.equal(c.code, 0, c.err);
  assert.equal(JSON.parse(c.out).messages, 1);
  assert.equal(run('sar', 'find', RICK, '--state-dir', stateDir).out, 'nothing found for that address\n');
  const carla = JSON.parse(run('sar', 'find', cc, '--json', '--state-dir', stateDir).out);
  assert.deepEqual(carla.messages, []);
  assert.ok(carla.events.length >= 1);
  c = run('sar', 'erase', cc, '--state-dir', stateDir);
  assert.equal(c.code, 0, c.err);
  assert.equal(run('sar', 'find', cc, '--state-dir', stateDir).out, 'nothing found for that address\n');
  assertNothingInClear(stateDir, [cc, value, 'carla.synthetic']);
});
