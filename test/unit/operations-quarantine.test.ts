/*
 * The quarantine operations (src/operations/quarantine.ts) called directly,
 * as the CLI, the admin API and the review page call them: typed results in
 * the one entry view (operations/entry-view.ts), one audit event per write
 * naming the context's actor, and the store's own errors for an unknown or
 * malformed id (with no event written).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deleteEntry, listEntries, purgeEntries, releaseEntry, showEntry } from '../../src/operations/quarantine';
import { ReleaseError } from '../../src/operations/release';
import type { EntryDetail, EntrySummary } from '../../src/operations/entry-view';
import { isQuarantineError, type QuarantineErrorCode } from '../../src/quarantine/errors';
import { quarantineDir } from '../../src/quarantine/store';
import { loadRuleSet } from '../../src/rules/load';
import { ScriptedHop } from '../helpers/scripted-hop';
import { auditEvents, testContext, TEST_ACTOR } from '../helpers/operations';
import { ADDRESS, CARD, SMALL_MESSAGE, SUBJECT_INDEX, chunked, removeTempDirs, sampleMeta, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

const SUMMARY_KEYS = ['id', 'receivedAt', 'size', 'verdict', 'rules', 'reasons', 'from', 'rcpts', 'keyId'];
const ENVELOPE = { from: 'sender@example.net', rcpts: ['rcpt-one@example.org', 'rcpt-two@example.org'] };

async function filled() {
  const ctx = testContext(tempDir('mv-ops-q-'));
  await ctx.store.put(sampleMeta('0LDER1', SMALL_MESSAGE.length, { receivedAt: '2026-11-20T08:00:00.000Z', envelope: ENVELOPE }), chunked(SMALL_MESSAGE, 64));
  await ctx.store.put(
    sampleMeta('NEWER2', SMALL_MESSAGE.length, { receivedAt: '2026-11-22T18:14:49.123Z', rules: ['iban'], reasons: ['mime-depth'], verdict: 'unscannable' }),
    chunked(SMALL_MESSAGE, 7),
  );
  return ctx;
}

function rejectsWith(code: QuarantineErrorCode) {
  return (err: unknown) => {
    assert.ok(isQuarantineError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  };
}

test('listEntries: the entry view, newest first, in the declared field order; never findings, subjects or the envelope', async () => {
  const ctx = await filled();
  const r = await listEntries(ctx);
  assert.equal(r.unreadable, 0);
  assert.deepEqual(r.entries.map((e) => e.id), ['NEWER2', '0LDER1']);
  for (const e of r.entries) assert.deepEqual(Object.keys(e), SUMMARY_KEYS);
  const older = r.entries[1] as EntrySummary;
  assert.equal(older.size, SMALL_MESSAGE.length);
  assert.deepEqual(older.rules, ['credit-card']);
  assert.match(older.keyId, /^[0-9a-f]{16}$/);
  const text = JSON.stringify(r);
  for (const secret of [CARD, ADDRESS, SUBJECT_INDEX, ENVELOPE.from]) assert.ok(!text.includes(secret), secret);
});

test('listEntries: filters by rule and by age (against the context clock); an unreadable entry is listed and counted', async () => {
  const ctx = await filled();
  assert.deepEqual((await listEntries(ctx, { rule: 'iban' })).entries.map((e) => e.id), ['NEWER2']);
  assert.deepEqual((await listEntries(ctx, { rule: 'no-such-rule' })).entries, []);
  // now is 2026-11-24T12:00Z: 0LDER1 is 4.2 days old, NEWER2 1.7.
  assert.deepEqual((await listEntries(ctx, { olderThanMs: 3 * 86_400_000 })).entries.map((e) => e.id), ['0LDER1']);
  assert.deepEqual((await listEntries(ctx, { olderThanMs: 86_400_000 })).entries.map((e) => e.id), ['NEWER2', '0LDER1']);

  writeFileSync(join(quarantineDir(ctx.store.stateDir), 'BR0KEN3.mvq'), 'not an entry');
  const r = await listEntries(ctx);
  assert.equal(r.unreadable, 1);
  const bad = r.entries.find((e) => e.id === 'BR0KEN3');
  assert.ok(bad && bad.error !== undefined);
  assert.match(bad.error, /corrupt entry/);
  assert.deepEqual(Object.keys(bad), ['id', 'error', 'receivedAt', 'fileSize']);
  // A rule filter never matches an entry that cannot be read.
  assert.deepEqual((await listEntries(ctx, { rule: 'credit-card' })).entries.map((e) => e.id), ['0LDER1']);
});

test('showEntry: the summary plus findings and the masked header section, never the body', async () => {
  const ctx = await filled();
  let asked = 0;
  const d: EntryDetail = await showEntry(ctx, '0LDER1', () => {
    asked++;
    return undefined;
  });
  assert.deepEqual(Object.keys(d), [...SUMMARY_KEYS, 'findings', 'headers', 'masked', 'headersTruncated']);
  assert.equal(asked, 0, 'rules are only asked for when a finding sits in the header');
  assert.deepEqual(d.findings, [{ rule: 'credit-card', detector: 'credit_card', count: 1, part: '1', offset: 5 }]);
  assert.match(d.headers, /^Subject: Quarterly card details for review$/m);
  assert.equal(d.headersTruncated, false);
  assert.ok(!d.headers.includes(CARD), 'the body is never shown');

  // A finding in the top-level Subject masks it.
  await ctx.store.put(
    sampleMeta('SUBJ4', SMALL_MESSAGE.length, { findings: [{ rule: 'credit-card', detector: 'credit_card', count: 1, part: '0', offset: 0, scope: 'subject' }] }),
    chunked(SMALL_MESSAGE, 64),
  );
  const masked = await showEntry(ctx, 'SUBJ4', () => undefined);
  assert.deepEqual(masked.masked, ['Subject']);
  assert.match(masked.headers, /^Subject: \[masked: credit-card\]$/m);
});

test('showEntry: an unknown id is NOT_FOUND, a malformed one BAD_ID', async () => {
  const ctx = await filled();
  await assert.rejects(showEntry(ctx, 'NOSUCH9', () => undefined), rejectsWith('MV_QUARANTINE_NOT_FOUND'));
  await assert.rejects(showEntry(ctx, '../etc', () => undefined), rejectsWith('MV_QUARANTINE_BAD_ID'));
});

test('deleteEntry: removes the entry and writes one delete event naming the actor, the subjects and the rules', async () => {
  const ctx = await filled();
  assert.deepEqual(await deleteEntry(ctx, '0LDER1'), { id: '0LDER1', deleted: true });
  assert.deepEqual((await listEntries(ctx)).entries.map((e) => e.id), ['NEWER2']);
  const events = await auditEvents(ctx);
  assert.equal(events.length, 1);
  const e = events[0];
  assert.equal(e.event, 'delete');
  assert.equal(e.actor, TEST_ACTOR);
  assert.equal(e.id, '0LDER1');
  assert.deepEqual(e.subjects, [SUBJECT_INDEX]);
  assert.deepEqual(e.details, { rules: ['credit-card'], size: SMALL_MESSAGE.length, verdict: 'quarantine' });
});

test('deleteEntry: an unreadable entry can be deleted (the event says so); unknown and malformed ids cannot, and write no event', async () => {
  const ctx = await filled();
  writeFileSync(join(quarantineDir(ctx.store.stateDir), 'BR0KEN3.mvq'), 'not an entry');
  await deleteEntry(ctx, 'BR0KEN3');
  await assert.rejects(deleteEntry(ctx, 'NOSUCH9'), rejectsWith('MV_QUARANTINE_NOT_FOUND'));
  await assert.rejects(deleteEntry(ctx, 'lower-case'), rejectsWith('MV_QUARANTINE_BAD_ID'));
  const events = await auditEvents(ctx);
  assert.deepEqual(
    events.map((e) => [e.event, e.id, e.subjects, e.details]),
    [['delete', 'BR0KEN3', undefined, { unreadable: true }]],
  );
});

test('purgeEntries: removes what is past quarantine.retention and reports it in the public shape; one purge event', async () => {
  const ctx = await filled();
  await ctx.store.put(sampleMeta('ANC1ENT', SMALL_MESSAGE.length, { receivedAt: '2026-09-01T00:00:00.000Z' }), chunked(SMALL_MESSAGE, 64));
  const r = await purgeEntries(ctx);
  assert.deepEqual(r, {
    quarantineDeleted: 1,
    unreadableDeleted: 0,
    ids: ['ANC1ENT'],
    quarantineRemaining: 2,
    auditFilesDeleted: 0,
    auditEventsDeleted: 0,
    keysRemoved: [],
  });
  const events = await auditEvents(ctx);
  assert.deepEqual(events.map((e) => [e.event, e.actor]), [['purge', TEST_ACTOR]]);
  assert.equal((events[0].details as { quarantine_deleted: number }).quarantine_deleted, 1);
});

test('releaseEntry: delivers to the configured next hop with the original envelope, removes the entry, audits ok', async (t) => {
  const hop = await ScriptedHop.start();
  t.after(() => hop.stop());
  const ctx = await filled();
  const rules = loadRuleSet(ctx.config.rules_dir, ctx.config.local_rules_dir);
  const released = await releaseEntry({ ...ctx, config: { ...ctx.config, next_hop: { host: '127.0.0.1', port: hop.port } } }, '0LDER1', { rules, redact: false });
  assert.equal(released.id, '0LDER1');
  assert.equal(released.nextHop, hop.address);
  assert.equal(released.rcpts, 2);
  assert.equal(released.size, SMALL_MESSAGE.length);
  assert.equal(released.reply.code, 250);
  const [tx] = hop.committed();
  assert.match(tx.mail, /^MAIL FROM:<sender@example\.net>/);
  assert.equal(tx.rcpts.length, 2);
  assert.deepEqual((await listEntries(ctx)).entries.map((e) => e.id), ['NEWER2']);
  const events = await auditEvents(ctx);
  assert.deepEqual(events.map((e) => [e.event, e.actor, e.id]), [['release', TEST_ACTOR, '0LDER1']]);
  assert.equal((events[0].details as { result: string }).result, 'ok');
});

test('releaseEntry: a refusal is a ReleaseError, the entry stays, the failure is audited; an unknown id is NOT_FOUND with no event', async (t) => {
  const hop = await ScriptedHop.start();
  t.after(() => hop.stop());
  hop.script('MAIL', { reply: '550 5.7.1 Not today' });
  const base = await filled();
  const ctx = { ...base, config: { ...base.config, next_hop: { host: '127.0.0.1', port: hop.port } } };
  const rules = loadRuleSet(ctx.config.rules_dir, ctx.config.local_rules_dir);
  await assert.rejects(releaseEntry(ctx, '0LDER1', { rules, redact: false }), (err: unknown) => {
    assert.ok(err instanceof ReleaseError);
    assert.equal(err.kind, 'refused');
    assert.equal(err.reply?.code, 550);
    return true;
  });
  assert.deepEqual((await listEntries(ctx)).entries.map((e) => e.id), ['NEWER2', '0LDER1']);
  await assert.rejects(releaseEntry(ctx, 'NOSUCH9', { rules, redact: false }), rejectsWith('MV_QUARANTINE_NOT_FOUND'));
  await assert.rejects(releaseEntry(ctx, 'bad id', { rules, redact: false }), rejectsWith('MV_QUARANTINE_BAD_ID'));
  // NEWER2 has no stored envelope: refused before any connection.
  await assert.rejects(releaseEntry(ctx, 'NEWER2', { rules, redact: false }), (err: unknown) => err instanceof ReleaseError && err.kind === 'no_envelope');
  const events = await auditEvents(ctx);
  assert.deepEqual(
    events.map((e) => [e.event, e.actor, e.id, (e.details as { result: string; error: string }).result, (e.details as { error: string }).error]),
    [
      ['release', TEST_ACTOR, '0LDER1', 'failed', 'refused'],
      ['release', TEST_ACTOR, 'NEWER2', 'failed', 'no_envelope'],
    ],
  );
});
