/*
 * The TLS-RPT counters in state_dir (src/tlsrpt/store.ts): counted in
 * memory, flushed whole per writer file, read back merged. Restarts and
 * several worker processes are several writers; a corrupt file is skipped
 * with a warning; old days are purged; memory and files stay bounded.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_FAILURE_ROWS } from '../../src/tlsrpt/counts';
import { buildReport } from '../../src/tlsrpt/report';
import { purgeDays, readDay, TlsRptStore } from '../../src/tlsrpt/store';
import type { TlsRptRecord } from '../../src/tlsrpt/types';
import { tlsrptDayDir, TLSRPT_COUNTS_RE } from '../../src/state-layout';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-'));
  dirs.push(d);
  return d;
}

const DAY = '2026-01-31';
const NOW = new Date(`${DAY}T12:00:00Z`);
const STS = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: mx.a.example', 'max_age: 86400'], mxHosts: ['mx.a.example'] };
const ok: TlsRptRecord = { policyDomain: 'a.example', policy: STS, result: 'success' };
const expired: TlsRptRecord = { policyDomain: 'a.example', policy: STS, result: { type: 'certificate-expired', sendingMtaIp: '192.0.2.10', receivingMxHostname: 'mx.a.example', receivingIp: '203.0.113.5' } };
const ID = { organization: 'o', contact: 'c@o.example', reporter: 'o.example' };

function summary(counts: Awaited<ReturnType<typeof readDay>>['counts'], domain = 'a.example') {
  return buildReport(counts, domain, ID)?.policies.map((p) => p.summary);
}

test('record counts in memory only; flush writes it, 0600 in a 0700 folder; the counts survive a restart', async () => {
  const s = stateDir();
  const late: unknown[] = [];
  const store = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0, onError: (e) => late.push(e) });
  for (let i = 0; i < 5; i++) store.record(ok);
  store.record(expired);
  assert.equal((await readDay(s, DAY)).files, 0, 'nothing on disk before a flush');
  await store.flush();
  const dir = tlsrptDayDir(s, DAY);
  const names = readdirSync(dir);
  assert.equal(names.length, 1);
  assert.match(names[0], TLSRPT_COUNTS_RE);
  assert.equal(statSync(join(dir, names[0])).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(s, 'tlsrpt')).mode & 0o777, 0o700);

  // More sessions, flushed again: the same file is rewritten whole (no second file).
  store.record(ok);
  await store.close();
  assert.deepEqual(readdirSync(dir), names);
  // A delivery finishing after the drain closed the store: not counted, reported once, never thrown.
  store.record(ok);
  store.record(ok);
  assert.equal(store.lateRecords, 2);
  assert.equal(late.length, 1);
  assert.match(String(late[0]), /after close/);

  // "Restart": a new store writes its own file; the reader merges both.
  const again = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  again.record(ok);
  again.record(expired);
  await again.close();
  assert.equal(readdirSync(dir).length, 2);
  const read = await readDay(s, DAY);
  assert.equal(read.files, 2);
  assert.deepEqual(read.warnings, []);
  assert.deepEqual(summary(read.counts), [{ 'total-successful-session-count': 7, 'total-failure-session-count': 2 }]);
  assert.deepEqual(buildReport(read.counts, 'a.example', ID)!.policies[0]['failure-details'], [
    { 'result-type': 'certificate-expired', 'sending-mta-ip': '192.0.2.10', 'receiving-mx-hostname': 'mx.a.example', 'receiving-ip': '203.0.113.5', 'failed-session-count': 2 },
  ]);
});

test('the timer flushes on its own; a failed flush is reported and retried, never thrown at record()', async () => {
  const s = stateDir();
  const errors: unknown[] = [];
  const store = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 20, onError: (e) => errors.push(e) });
  store.record(ok);
  for (let i = 0; i < 100 && (await readDay(s, DAY)).files === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await readDay(s, DAY)).files, 1);
  // Make the day folder unwritable: flushes fail, record() does not.
  const dir = tlsrptDayDir(s, DAY);
  rmSync(dir, { recursive: true });
  writeFileSync(dir, 'not a folder');
  store.record(ok);
  for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(errors.length > 0, 'the failed flush was reported');
  rmSync(dir);
  await store.close();
  assert.deepEqual(summary((await readDay(s, DAY)).counts), [{ 'total-successful-session-count': 2, 'total-failure-session-count': 0 }], 'the retry wrote everything');
});

test('two worker processes write two files of the same day; the report merges them', async () => {
  const s = stateDir();
  const w1 = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  const w2 = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  w1.record(ok);
  w1.record({ ...ok, policyDomain: 'b.example' });
  w2.record(ok);
  w2.record(expired);
  // Interleaved flushes: no file is shared, so neither overwrites the other.
  await Promise.all([w1.close(), w2.close()]);
  const read = await readDay(s, DAY);
  assert.equal(read.files, 2);
  assert.deepEqual(summary(read.counts), [{ 'total-successful-session-count': 2, 'total-failure-session-count': 1 }]);
  assert.deepEqual(summary(read.counts, 'b.example'), [{ 'total-successful-session-count': 1, 'total-failure-session-count': 0 }]);
});

test(`failure details are capped at ${MAX_FAILURE_ROWS} per domain and day, in a writer and across merged writers`, async () => {
  const s = stateDir();
  const fail = (i: number): TlsRptRecord => ({ ...expired, result: { type: 'validation-failure', receivingMxHostname: `mx${i}.a.example`, receivingIp: '203.0.113.5' } });
  const w1 = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  const w2 = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  for (let i = 0; i < MAX_FAILURE_ROWS + 30; i++) w1.record(fail(i));
  for (let i = 1000; i < 1060; i++) w2.record(fail(i));
  await w1.close();
  await w2.close();
  const file1 = JSON.parse(readFileSync(join(tlsrptDayDir(s, DAY), readdirSync(tlsrptDayDir(s, DAY))[0]), 'utf8'));
  assert.ok(file1.domains[0].policies[0].failures.length <= MAX_FAILURE_ROWS);
  const r = buildReport((await readDay(s, DAY)).counts, 'a.example', ID)!;
  const details = r.policies[0]['failure-details']!;
  assert.equal(details.length, MAX_FAILURE_ROWS + 1, `${MAX_FAILURE_ROWS} detailed rows and one aggregate`);
  assert.deepEqual(details.at(-1), { 'result-type': 'validation-failure', 'failed-session-count': 90 });
  assert.equal(r.policies[0].summary['total-failure-session-count'], MAX_FAILURE_ROWS + 90);
});

test('a corrupt, truncated, foreign or misplaced file is skipped with a warning naming it; the rest is reported', async () => {
  const s = stateDir();
  const store = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  store.record(ok);
  await store.close();
  const dir = tlsrptDayDir(s, DAY);
  const good = readFileSync(join(dir, readdirSync(dir)[0]), 'utf8');
  const bad: Record<string, string> = {
    'counts-0000000000000001.json': good.slice(0, good.length / 2),
    'counts-0000000000000002.json': '{"kind":"something-else"}',
    'counts-0000000000000003.json': good.replace(DAY, '2026-01-30'),
    'counts-0000000000000004.json': good.replace('"successful":1', '"successful":-5'),
    'counts-0000000000000005.json': good.replace('"sts"', '"dane"'),
    'counts-0000000000000006.json': good.replace('a.example', 'user@a.example'),
  };
  for (const [n, t] of Object.entries(bad)) writeFileSync(join(dir, n), t);
  mkdirSync(join(dir, 'counts-0000000000000007.json'));
  symlinkSync(join(dir, readdirSync(dir).find((n) => !bad[n] && !n.endsWith('7.json'))!), join(dir, 'counts-0000000000000008.json'));
  writeFileSync(join(dir, 'notes.txt'), 'not ours, not read');
  const read = await readDay(s, DAY);
  assert.equal(read.files, 1);
  assert.equal(read.warnings.length, 8, read.warnings.join('\n'));
  for (const w of read.warnings) assert.match(w, new RegExp(`^${dir}/counts-000000000000000\\d\\.json: .+; skipped$`));
  assert.match(read.warnings.find((w) => w.includes('1.json'))!, /not JSON/);
  assert.match(read.warnings.find((w) => w.includes('3.json'))!, /holds day 2026-01-30/);
  assert.deepEqual(summary(read.counts), [{ 'total-successful-session-count': 1, 'total-failure-session-count': 0 }]);
  // A day nobody wrote is no data, not an error.
  assert.equal((await readDay(s, '2020-01-01')).files, 0);
});

test('purge removes day folders past retention (only their counts and temp files), and stale temp files', async () => {
  const s = stateDir();
  const mk = (day: string, names: string[]) => {
    const dir = tlsrptDayDir(s, day);
    mkdirSync(dir, { recursive: true });
    for (const n of names) writeFileSync(join(dir, n), '{}');
    return dir;
  };
  const old = mk('2025-12-01', ['counts-00000000000000aa.json', '.tmp-counts-00000000000000aa.json-0123456789ab']);
  const oldForeign = mk('2025-12-02', ['counts-00000000000000bb.json', 'keep-me.txt']);
  const recent = mk('2026-01-30', ['counts-00000000000000cc.json', '.tmp-counts-00000000000000cc.json-0123456789ab', '.tmp-counts-00000000000000dd.json-0123456789ab']);
  // One temp file is from a crash two hours ago; the other may be a live write.
  const twoHoursAgo = new Date(NOW.getTime() - 7_200_000);
  utimesSync(join(recent, '.tmp-counts-00000000000000cc.json-0123456789ab'), twoHoursAgo, twoHoursAgo);
  writeFileSync(join(s, 'tlsrpt', 'not-a-day'), 'x');
  writeFileSync(join(s, 'tlsrpt', '2025-11-01'), 'a file named like a day');

  const store = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  assert.deepEqual(await store.purge(30), ['2025-12-01']);
  assert.equal(readdirSync(join(s, 'tlsrpt')).includes('2025-12-01'), false);
  void old;
  assert.deepEqual(readdirSync(oldForeign), ['keep-me.txt'], 'an old folder holding a foreign name keeps it, and stays');
  assert.deepEqual(readdirSync(recent).sort(), ['.tmp-counts-00000000000000dd.json-0123456789ab', 'counts-00000000000000cc.json']);
  assert.deepEqual(readdirSync(join(s, 'tlsrpt')).sort(), ['2025-11-01', '2025-12-02', '2026-01-30', 'not-a-day']);
  assert.deepEqual(await purgeDays(stateDir(), 30, NOW), [], 'no tlsrpt folder: nothing to do');
  await assert.rejects(purgeDays(s, 0, NOW), /keepDays/);
});

test('memory: a day two days old is let go once flushed; a late record for it starts a new file, merged on read', async () => {
  const s = stateDir();
  let now = NOW;
  const store = new TlsRptStore(s, { now: () => now, flushIntervalMs: 0 });
  store.record(ok);
  await store.flush();
  now = new Date(NOW.getTime() + 2 * 86_400_000);
  store.record(ok); // today: 2026-02-02
  await store.flush(); // 2026-01-31 is clean and older than yesterday: dropped from memory
  store.record({ ...ok, day: DAY });
  await store.close();
  assert.equal(readdirSync(tlsrptDayDir(s, DAY)).length, 2);
  assert.deepEqual(summary((await readDay(s, DAY)).counts), [{ 'total-successful-session-count': 2, 'total-failure-session-count': 0 }]);
});

test('many sessions a second: 200,000 record() calls stay in memory and flush as one small file', async () => {
  const s = stateDir();
  const store = new TlsRptStore(s, { now: () => NOW, flushIntervalMs: 0 });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 200_000; i++) store.record(i % 10 ? ok : expired);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await store.close();
  const dir = tlsrptDayDir(s, DAY);
  assert.ok(statSync(join(dir, readdirSync(dir)[0])).size < 4096);
  assert.deepEqual(summary((await readDay(s, DAY)).counts), [{ 'total-successful-session-count': 180_000, 'total-failure-session-count': 20_000 }]);
  assert.ok(ms < 10_000, `record() took ${ms} ms for 2e5 sessions`);
});
