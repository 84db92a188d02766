/*
 * The audit log (src/audit/log.ts): append and read back, one file per UTC
 * day under an injected clock, erasure of a subject's pseudonym, purge of
 * whole days, permissions, concurrency within one process, and nothing
 * shaped like an address ever written.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, ERASED, auditDir, type AuditEvent } from '../../src/audit/log';
import { osActor } from '../../src/audit/actor';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-audit-'));
  dirs.push(d);
  return d;
}

/** A clock the test moves by hand. */
function clock(start: string) {
  let t = Date.parse(start);
  return { now: () => new Date(t), set: (iso: string) => (t = Date.parse(iso)), advance: (ms: number) => (t += ms) };
}

async function all(it: AsyncIterable<AuditEvent>): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const DAY = 86_400_000;
const ALICE = 'a11ce0000000aaaa';
const BOB = 'b0b0000000000bbb';

test('audit: append then read gives the events back oldest first, with ts from the clock and only the known fields', async () => {
  const dir = stateDir();
  const c = clock('2026-11-22T10:00:00.000Z');
  const log = new AuditLog(dir, { now: c.now });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'MSG1', subjects: [ALICE, BOB], details: { verdict: 'quarantine', rules: ['r1'] } });
  c.advance(1000);
  await log.append({ event: 'release', actor: 'os:alice', id: 'MSG1', details: { result: 'ok' }, ...({ value: 'leak' } as object) });
  const events = await all(log.read());
  assert.deepEqual(events, [
    { ts: '2026-11-22T10:00:00.000Z', event: 'verdict', actor: 'smtp', id: 'MSG1', subjects: [ALICE, BOB], details: { verdict: 'quarantine', rules: ['r1'] } },
    { ts: '2026-11-22T10:00:01.000Z', event: 'release', actor: 'os:alice', id: 'MSG1', details: { result: 'ok' } },
  ]);
  assert.deepEqual(await all(log.read({ subject: BOB })), [events[0]]);
  assert.deepEqual(await all(log.read({ subject: 'nobody' })), []);
  // A fresh instance (another process) reads the same.
  assert.deepEqual(await all(new AuditLog(dir).read()), events);
});

test('audit: one JSON-lines file per UTC day, named by the event date; read spans days in order', async () => {
  const dir = stateDir();
  const c = clock('2026-11-20T23:59:59.500Z');
  const log = new AuditLog(dir, { now: c.now });
  await log.append({ event: 'delete', actor: 'os:x', id: 'A' });
  c.advance(1000); // crosses midnight UTC
  await log.append({ event: 'delete', actor: 'os:x', id: 'B' });
  c.set('2026-11-23T08:00:00.000Z');
  await log.append({ event: 'delete', actor: 'os:x', id: 'C' });
  assert.deepEqual(readdirSync(auditDir(dir)).sort(), ['audit-2026-11-20.jsonl', 'audit-2026-11-21.jsonl', 'audit-2026-11-23.jsonl']);
  for (const f of readdirSync(auditDir(dir))) {
    const lines = readFileSync(join(auditDir(dir), f), 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'each line ends with LF');
    for (const l of lines) assert.equal(typeof JSON.parse(l).ts, 'string');
  }
  assert.deepEqual((await all(log.read())).map((e) => e.id), ['A', 'B', 'C']);
});

test('audit: dir 0700, day files 0600 even under a permissive umask; a widened file is tightened by the next writer', async () => {
  const dir = stateDir();
  const old = process.umask(0o000);
  try {
    const log = new AuditLog(dir, { now: () => new Date('2026-11-22T00:00:00Z') });
    await log.append({ event: 'key_rotate', actor: 'os:x' });
    assert.equal(statSync(auditDir(dir)).mode & 0o777, 0o700);
    const file = join(auditDir(dir), 'audit-2026-11-22.jsonl');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const { chmodSync } = await import('node:fs');
    chmodSync(file, 0o644); // e.g. restored from a backup
    await new AuditLog(dir, { now: () => new Date('2026-11-22T00:00:00Z') }).append({ event: 'key_rotate', actor: 'os:x' });
    assert.equal(statSync(file).mode & 0o777, 0o600);
  } finally {
    process.umask(old);
  }
});

test('audit: an event carrying an address (subjects, id, details, actor) is refused and nothing is written', async () => {
  const dir = stateDir();
  const log = new AuditLog(dir);
  const bad: Parameters<AuditLog['append']>[0][] = [
    { event: 'verdict', actor: 'smtp', subjects: ['someone@example.com'] },
    { event: 'verdict', actor: 'smtp', details: { from: 'x', nested: { list: ['a', 'Bob <bob@example.org>'] } } },
    { event: 'delete', actor: 'os:eve@example.com' },
    { event: 'delete', actor: 'os:x', id: 'user@example.net' },
  ];
  for (const e of bad) await assert.rejects(log.append(e), (err: Error & { code?: string }) => err.code === 'MV_AUDIT' && !err.message.includes('@'));
  await assert.rejects(log.append({ event: 'bogus' as never, actor: 'os:x' }), /unknown audit event/);
  await assert.rejects(log.append({ event: 'delete', actor: '' }), /actor/);
  assert.deepEqual(await all(log.read()), []);
  // A later good event still goes through (the queue is not wedged by a refusal).
  await log.append({ event: 'delete', actor: 'os:x', id: 'OK1' });
  assert.equal((await all(log.read())).length, 1);
});

test('audit: eraseSubject replaces the pseudonym in every event on every day, counts them, and leaves other events byte-identical', async () => {
  const dir = stateDir();
  const c = clock('2026-11-20T12:00:00.000Z');
  const log = new AuditLog(dir, { now: c.now });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'M1', subjects: [ALICE, BOB], details: { verdict: 'pass' } });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'M2', subjects: [BOB] });
  c.advance(DAY);
  await log.append({ event: 'release', actor: 'os:x', id: 'M1', subjects: [ALICE] });
  c.advance(DAY);
  await log.append({ event: 'delete', actor: 'os:x', id: 'M3' });
  const day3 = join(auditDir(dir), 'audit-2026-11-22.jsonl');
  const day3Before = readFileSync(day3);
  const ino3 = statSync(day3).ino;

  assert.equal(await log.eraseSubject(ALICE), 2);
  const events = await all(log.read());
  assert.deepEqual(events.map((e) => e.subjects), [[ERASED, BOB], [BOB], [ERASED], undefined]);
  assert.deepEqual(await all(log.read({ subject: ALICE })), []);
  assert.equal((await all(log.read({ subject: BOB }))).length, 2);
  // The day without the subject was not rewritten.
  assert.ok(readFileSync(day3).equals(day3Before));
  assert.equal(statSync(day3).ino, ino3);
  // Rewritten files keep 0600, no temp file is left, and erasing again changes nothing.
  for (const f of readdirSync(auditDir(dir))) {
    assert.ok(!f.startsWith('.tmp-'), f);
    assert.equal(statSync(join(auditDir(dir), f)).mode & 0o777, 0o600);
  }
  assert.equal(await log.eraseSubject(ALICE), 0);
  assert.equal(await log.eraseSubject(ERASED), 0);
  // The pseudonym is gone from the bytes on disk.
  for (const f of readdirSync(auditDir(dir))) assert.ok(!readFileSync(join(auditDir(dir), f), 'utf8').includes(ALICE));
});

test('audit: erase keeps a torn last line verbatim and read() skips it', async () => {
  const dir = stateDir();
  const log = new AuditLog(dir, { now: () => new Date('2026-11-22T01:00:00Z') });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'M1', subjects: [ALICE] });
  const file = join(auditDir(dir), 'audit-2026-11-22.jsonl');
  appendFileSync(file, '{"ts":"2026-11-22T01:00:01.000Z","event":"verd');
  assert.equal((await all(log.read())).length, 1);
  assert.equal(await log.eraseSubject(ALICE), 1);
  const text = readFileSync(file, 'utf8');
  assert.ok(text.includes('"event":"verd'));
  assert.ok(text.includes(ERASED));
});

test('audit: purge deletes whole days older than maxAge (a day goes once its last moment is past), counts files and events, keeps younger', async () => {
  const dir = stateDir();
  const c = clock('2026-10-01T05:00:00.000Z');
  const log = new AuditLog(dir, { now: c.now });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'OLD1' });
  await log.append({ event: 'verdict', actor: 'smtp', id: 'OLD2' });
  c.set('2026-10-02T23:00:00.000Z');
  await log.append({ event: 'verdict', actor: 'smtp', id: 'EDGE' });
  c.set('2026-11-22T12:00:00.000Z');
  await log.append({ event: 'verdict', actor: 'smtp', id: 'NEW' });

  // Cutoff 2026-10-02T12:00Z: 10-01 ended before it, 10-02 has not.
  c.set('2026-11-22T12:00:00.000Z');
  const maxAge = Date.parse('2026-11-22T12:00:00Z') - Date.parse('2026-10-02T12:00:00Z');
  assert.deepEqual(await log.purge(maxAge), { files: 1, events: 2 });
  assert.deepEqual((await all(log.read())).map((e) => e.id), ['EDGE', 'NEW']);
  assert.deepEqual(await log.purge(maxAge), { files: 0, events: 0 });
  c.advance(DAY);
  assert.deepEqual(await log.purge(maxAge), { files: 1, events: 1 });
  assert.deepEqual((await all(log.read())).map((e) => e.id), ['NEW']);
  // An empty or missing log purges to nothing.
  assert.deepEqual(await new AuditLog(stateDir()).purge(1), { files: 0, events: 0 });
});

test('audit: concurrent appends from one instance and a second instance all land, each on its own whole line', async () => {
  const dir = stateDir();
  const a = new AuditLog(dir);
  const b = new AuditLog(dir);
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) jobs.push((i % 2 ? a : b).append({ event: 'verdict', actor: 'smtp', id: `M${i}`, details: { pad: 'x'.repeat(i * 7) } }));
  await Promise.all(jobs);
  const events = await all(a.read());
  assert.equal(events.length, 200);
  assert.deepEqual(new Set(events.map((e) => e.id)).size, 200);
});

test('audit: erase while appends keep coming in the same process loses no event', async () => {
  const dir = stateDir();
  const log = new AuditLog(dir);
  for (let i = 0; i < 50; i++) await log.append({ event: 'verdict', actor: 'smtp', id: `A${i}`, subjects: [ALICE] });
  const jobs: Promise<unknown>[] = [log.eraseSubject(ALICE)];
  for (let i = 0; i < 50; i++) jobs.push(log.append({ event: 'verdict', actor: 'smtp', id: `B${i}`, subjects: [BOB] }));
  await Promise.all(jobs);
  const events = await all(log.read());
  assert.equal(events.length, 100);
  assert.equal(events.filter((e) => e.subjects?.includes(ALICE)).length, 0);
});

test('audit: the OS actor names the user running the command', () => {
  assert.match(osActor(), /^os:\S+$/);
});

test('audit: read() skips files that are not day files', async () => {
  const dir = stateDir();
  const log = new AuditLog(dir, { now: () => new Date('2026-11-22T00:00:00Z') });
  await log.append({ event: 'export', actor: 'token:dpo' });
  writeFileSync(join(auditDir(dir), 'notes.txt'), '{"ts":"x","event":"verdict","actor":"smtp"}\n');
  assert.equal((await all(log.read())).length, 1);
});
