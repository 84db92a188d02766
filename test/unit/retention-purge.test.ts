/*
 * Retention under an injected clock (quarantine/retention.ts): entries older
 * than quarantine.retention go, younger ones stay; audit days older than
 * audit.retention go; retired keys go once no entry needs them; and every
 * purge is one audited event with the counts. Also the config side:
 * defaults 30d / 180d, durations, and a too-short retention refused.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, type AuditEvent } from '../../src/audit/log';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { purgeExpired } from '../../src/quarantine/retention';
import { keysDir, listKeyIds, rotateKey, KEY_RETIRE_GRACE_MS, CURRENT_KEY_FILE } from '../../src/quarantine/keys';
import { loadConfig } from '../../src/config/load';
import { SMALL_MESSAGE, chunked, removeTempDirs, sampleMeta, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-22T12:00:00.000Z');

async function all(it: AsyncIterable<AuditEvent>): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

async function put(store: QuarantineStore, id: string, receivedAt: number): Promise<void> {
  await store.put(sampleMeta(id, SMALL_MESSAGE.length, { receivedAt: new Date(receivedAt).toISOString() }), chunked(SMALL_MESSAGE, 17));
}

test('retention: entries older than quarantine.retention are purged, younger kept; the purge is audited with counts and ids', async () => {
  const dir = tempDir('mv-ret-');
  let now = NOW;
  const clock = () => new Date(now);
  const store = new QuarantineStore(dir, { now: clock });
  const audit = new AuditLog(dir, { now: clock });
  await put(store, 'OLD1', NOW - 31 * DAY);
  await put(store, 'OLD2', NOW - 30 * DAY - 1);
  await put(store, 'EDGE', NOW - 30 * DAY + 1000);
  await put(store, 'NEW1', NOW - 1 * DAY);

  const r = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'os:tester', now: clock });
  assert.deepEqual(r.quarantine.ids.sort(), ['OLD1', 'OLD2']);
  assert.equal(r.quarantine.deleted, 2);
  assert.equal(r.remaining, 2);
  assert.deepEqual((await store.list()).map((e) => e.id).sort(), ['EDGE', 'NEW1']);

  const events = await all(audit.read());
  assert.equal(events.length, 1);
  const e = events[0];
  assert.equal(e.event, 'purge');
  assert.equal(e.actor, 'os:tester');
  assert.equal(e.ts, new Date(NOW).toISOString());
  assert.equal(e.details?.quarantine_deleted, 2);
  assert.equal(e.details?.quarantine_remaining, 2);
  assert.equal(e.details?.audit_files_deleted, 0);
  assert.deepEqual((e.details?.ids as string[]).sort(), ['OLD1', 'OLD2']);

  // Two seconds later the edge entry has crossed the line; nothing else has.
  now += 2000;
  const r2 = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock });
  assert.deepEqual(r2.quarantine.ids, ['EDGE']);
  assert.deepEqual((await store.list()).map((e) => e.id), ['NEW1']);
  // A purge that removes nothing is still audited (evidence that retention runs).
  const r3 = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock });
  assert.equal(r3.quarantine.deleted, 0);
  const purges = (await all(audit.read())).filter((x) => x.event === 'purge');
  assert.deepEqual(purges.map((p) => [p.actor, p.details?.quarantine_deleted]), [['os:tester', 2], ['mailveil', 1], ['mailveil', 0]]);
});

test('retention: audit days older than audit.retention are purged and counted in the purge event', async () => {
  const dir = tempDir('mv-ret-');
  let now = NOW - 200 * DAY;
  const clock = () => new Date(now);
  const store = new QuarantineStore(dir, { now: clock });
  const audit = new AuditLog(dir, { now: clock });
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'V1' });
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'V2' });
  now = NOW - 100 * DAY;
  await audit.append({ event: 'verdict', actor: 'smtp', id: 'V3' });
  now = NOW;
  const r = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock });
  assert.deepEqual(r.audit, { files: 1, events: 2 });
  const events = await all(audit.read());
  assert.deepEqual(events.map((e) => e.id ?? e.event), ['V3', 'purge']);
  assert.equal(events[1].details?.audit_files_deleted, 1);
  assert.equal(events[1].details?.audit_events_deleted, 2);
});

test('retention: an unreadable entry is aged by its file time and purged too, counted as unreadable', async () => {
  const dir = tempDir('mv-ret-');
  const clock = () => new Date(NOW);
  const store = new QuarantineStore(dir, { now: clock });
  const audit = new AuditLog(dir, { now: clock });
  await put(store, 'BROKEN', NOW - 40 * DAY);
  await put(store, 'BROKEN2', NOW - 40 * DAY);
  const file = join(quarantineDir(dir), 'BROKEN.mvq');
  const bytes = readFileSync(file);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(file, bytes);
  const file2 = join(quarantineDir(dir), 'BROKEN2.mvq');
  writeFileSync(file2, Buffer.from('garbage'));
  const old = new Date(NOW - 40 * DAY);
  utimesSync(file2, old, old); // BROKEN keeps a fresh mtime: young by its file time
  const r = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock });
  // BROKEN's metadata still decrypts (only the message tag is bad): aged by receivedAt.
  assert.deepEqual(r.quarantine.ids.sort(), ['BROKEN', 'BROKEN2']);
  assert.equal(r.quarantine.unreadable, 1);
  assert.equal(await store.count(), 0);
});

test('retention: a retired key is removed only once no entry names it and the grace has passed; the current key never', async () => {
  const dir = tempDir('mv-ret-');
  let now = Date.now();
  const clock = () => new Date(now);
  const store = new QuarantineStore(dir, { now: clock });
  const audit = new AuditLog(dir, { now: clock });
  await put(store, 'UNDERA', now - 10 * DAY);
  const [keyA] = await listKeyIds(dir);
  const keyB = await rotateKey(dir);
  await put(store, 'UNDERB', now - 1 * DAY);
  const opts = { store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock };

  // Within the grace after the rotation: nothing is removed even though nothing is expired either.
  let r = await purgeExpired(opts);
  assert.deepEqual(r.keys.removed, []);
  // After the grace, A is still named by UNDERA: kept.
  now += KEY_RETIRE_GRACE_MS + 1000;
  r = await purgeExpired(opts);
  assert.deepEqual(r.keys.removed, []);
  assert.deepEqual(await listKeyIds(dir), [keyA, keyB].sort());
  // UNDERA expires: the same purge removes it and then key A.
  now += 21 * DAY;
  r = await purgeExpired(opts);
  assert.deepEqual(r.quarantine.ids, ['UNDERA']);
  assert.deepEqual(r.keys.removed, [keyA]);
  assert.deepEqual(await listKeyIds(dir), [keyB]);
  const last = (await all(audit.read())).pop()!;
  assert.equal(last.details?.keys_removed, 1);
  // Everything expires: the current key stays.
  now += 60 * DAY;
  r = await purgeExpired(opts);
  assert.deepEqual(r.keys.removed, []);
  assert.deepEqual(await listKeyIds(dir), [keyB]);
  assert.equal(readFileSync(join(keysDir(dir), CURRENT_KEY_FILE), 'utf8').trim(), keyB);
});

test('retention: a write in progress (temp file with a header) keeps its key', async () => {
  const dir = tempDir('mv-ret-');
  let now = Date.now();
  const clock = () => new Date(now);
  const store = new QuarantineStore(dir, { now: clock });
  const audit = new AuditLog(dir, { now: clock });
  await put(store, 'GONE', now - 40 * DAY);
  const [keyA] = await listKeyIds(dir);
  // Simulate an in-flight write under key A: copy the entry's bytes to a temp name.
  writeFileSync(join(quarantineDir(dir), '.tmp-INFLIGHT-abc'), readFileSync(join(quarantineDir(dir), 'GONE.mvq')));
  await rotateKey(dir);
  now += KEY_RETIRE_GRACE_MS + 1000;
  const r = await purgeExpired({ store, audit, quarantineRetention: 30 * DAY, auditRetention: 180 * DAY, actor: 'mailveil', now: clock });
  assert.deepEqual(r.quarantine.ids, ['GONE']);
  assert.deepEqual(r.keys.removed, []);
  assert.ok((await listKeyIds(dir)).includes(keyA));
});

test('retention config: defaults 30d and 180d, durations parsed, under 1m refused with file and key', () => {
  const dir = tempDir('mv-ret-');
  const c = loadConfig(undefined, { state_dir: dir });
  assert.equal(c.quarantine.retention, 30 * DAY);
  assert.equal(c.audit.retention, 180 * DAY);
  const file = join(dir, 'mailveil.yaml');
  writeFileSync(file, 'quarantine: { retention: 7d }\naudit: { retention: 12h }\n');
  const c2 = loadConfig(file);
  assert.equal(c2.quarantine.retention, 7 * DAY);
  assert.equal(c2.audit.retention, 12 * 3_600_000);
  writeFileSync(file, 'quarantine: { retention: 30s }\n');
  assert.throws(() => loadConfig(file), (err: Error) => err.message === `${file}: quarantine.retention: must be at least 1m`);
  writeFileSync(file, 'audit: { retention: soon }\n');
  assert.throws(() => loadConfig(file), /audit\.retention: must be a duration/);
  writeFileSync(file, 'audit: { keep: 1d }\n');
  assert.throws(() => loadConfig(file), /audit\.keep: unknown key/);
});
