/*
 * Subject access (operations/subject-access.ts) called directly: the address
 * is normalised once (subjectAddress), found through its token only, the
 * export outcome is typed (unreadable / empty / exported), and export and
 * erase write their audit events under the context's actor.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pseudonymiser } from '../../src/privacy/pseudonym';
import { listEntries } from '../../src/operations/quarantine';
import { eraseSubjectData, exportSubjectData, findSubjectData, subjectAddress, type SubjectAddress } from '../../src/operations/subject-access';
import { quarantineDir } from '../../src/quarantine/store';
import { subjectToken } from '../../src/gdpr/subjects';
import { auditEvents, testContext, TEST_ACTOR } from '../helpers/operations';
import { SMALL_MESSAGE, chunked, removeTempDirs, sampleMeta, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

const JANE = 'Jane.Doe@Example.COM';

function addr(raw: string): SubjectAddress {
  const a = subjectAddress(raw);
  assert.ok(a !== undefined, raw);
  return a;
}

/** A state dir with a pseudonym key and two entries: one concerning Jane, one not. */
async function instance() {
  const ctx = testContext(tempDir('mv-ops-sar-'));
  const keyer = Pseudonymiser.fromStateDir(ctx.config.state_dir);
  const jane = subjectToken(keyer, JANE)!;
  await ctx.store.put(sampleMeta('JANE1', SMALL_MESSAGE.length, { subjects: [jane, 'someone-else'] }), chunked(SMALL_MESSAGE, 64));
  await ctx.store.put(sampleMeta('OTHER2', SMALL_MESSAGE.length, { subjects: ['someone-else'] }), chunked(SMALL_MESSAGE, 64));
  return { ctx, jane };
}

test('subjectAddress: normalises a valid address, refuses anything else', () => {
  assert.equal(subjectAddress(JANE), 'jane.doe@example.com');
  for (const bad of ['', 'jane', 'a@b@c', 'jane doe@example.com', 'x@example.com, y@example.com']) assert.equal(subjectAddress(bad), undefined, bad);
});

test('findSubjectData: the subject token, its messages (no pseudonyms) and events; nothing when the state dir has no key', async () => {
  const { ctx, jane } = await instance();
  const d = await findSubjectData(ctx, addr(JANE));
  assert.equal(d.subject, jane);
  assert.deepEqual(d.messages.map((m) => m.id), ['JANE1']);
  assert.deepEqual(Object.keys(d.messages[0]), ['id', 'receivedAt', 'size', 'verdict', 'rules', 'reasons', 'findings']);
  assert.deepEqual(d.events, []);
  assert.deepEqual(d.unreadable, []);
  assert.deepEqual((await findSubjectData(ctx, addr('nobody@example.com'))).messages, []);

  const empty = testContext(tempDir('mv-ops-sar-'));
  assert.deepEqual(await findSubjectData(empty, addr(JANE)), { subject: '', messages: [], events: [], unreadable: [] });
  assert.ok(!existsSync(join(empty.config.state_dir, 'pseudonym.key')), 'a search never makes a key');
});

test('exportSubjectData: writes the archive where asked (0600) and audits it under the actor; the clock dates it', async () => {
  const { ctx, jane } = await instance();
  const out = join(ctx.config.state_dir, 'jane.tar.gz');
  let asked = 0;
  const r = await exportSubjectData(ctx, addr(JANE), {
    out: () => {
      asked++;
      return out;
    },
    force: false,
  });
  assert.equal(r.kind, 'exported');
  assert.equal(asked, 1);
  if (r.kind !== 'exported') return;
  assert.equal(r.result.file, out);
  assert.equal(r.result.messages, 1);
  assert.equal(r.result.bytes, statSync(out).size);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.equal(r.madeAt.getTime(), ctx.now().getTime());
  const events = await auditEvents(ctx);
  assert.deepEqual(events.map((e) => [e.event, e.actor, e.subjects]), [['export', TEST_ACTOR, [jane]]]);
});

test('exportSubjectData: nothing found is `empty`, still audited (no subject named), and no destination is asked for', async () => {
  const { ctx } = await instance();
  const r = await exportSubjectData(ctx, addr('nobody@example.com'), {
    out: () => assert.fail('no archive to write'),
    force: false,
  });
  assert.deepEqual(r, { kind: 'empty' });
  const events = await auditEvents(ctx);
  assert.deepEqual(events.map((e) => [e.event, e.actor, e.subjects, e.details]), [['export', TEST_ACTOR, undefined, { messages: 0, events: 0, archive: false }]]);
});

test('exportSubjectData: an unreadable entry makes it `unreadable`: no archive, no event', async () => {
  const { ctx } = await instance();
  writeFileSync(join(quarantineDir(ctx.config.state_dir), 'BR0KEN3.mvq'), 'not an entry');
  const r = await exportSubjectData(ctx, addr(JANE), { out: () => assert.fail('no archive to write'), force: false });
  assert.deepEqual(r, { kind: 'unreadable', unreadable: ['BR0KEN3'] });
  assert.deepEqual(await auditEvents(ctx), []);
});

test("eraseSubjectData: deletes the subject's messages, erases the token from the log, one erase event with counts only", async () => {
  const { ctx, jane } = await instance();
  await exportSubjectData(ctx, addr(JANE), { out: () => join(ctx.config.state_dir, 'x.tar.gz'), force: false });
  const r = await eraseSubjectData(ctx, addr(JANE));
  assert.deepEqual(r, { messages: 1, events: 1, unreadable: [] });
  assert.deepEqual((await listEntries(ctx)).entries.map((e) => e.id), ['OTHER2']);
  const events = await auditEvents(ctx);
  assert.deepEqual(
    events.map((e) => [e.event, e.actor]),
    [
      ['export', TEST_ACTOR],
      ['erase', TEST_ACTOR],
    ],
  );
  assert.ok(!JSON.stringify(events).includes(jane), 'the token is gone from the log');
  assert.equal(events[1].subjects, undefined);
  assert.deepEqual(events[1].details, { messages: 1, events: 1, unreadable: 0 });
});
