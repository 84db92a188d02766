/*
 * The quarantine store through its API: exact round trips (small and
 * multi-MB, odd chunkings), tamper detection, permissions, no plaintext
 * anywhere under state_dir, temp-file recovery and the refusals that keep
 * callers honest. Crash and key-rotation cases live in their own files.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { keysDir } from '../../src/quarantine/keys';
import { isQuarantineError, type QuarantineErrorCode } from '../../src/quarantine/errors';
import { ADDRESS, CARD, SMALL_MESSAGE, SUBJECT, SUBJECT_INDEX, allFiles, bigMessage, chunked, filesContaining, readAll, sampleMeta, removeTempDirs, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

function stateDir(): string {
  return tempDir('mv-quar-');
}

function code(c: QuarantineErrorCode) {
  return (err: unknown) => isQuarantineError(err, c);
}

async function putSmall(store: QuarantineStore, id: string, over = {}): Promise<void> {
  await store.put(sampleMeta(id, SMALL_MESSAGE.length, over), chunked(SMALL_MESSAGE, 7));
}

test('quarantine: small message round trip in 1-, 3- and 17-byte chunks; metadata comes back equal', async () => {
  const store = new QuarantineStore(stateDir());
  for (const [i, size] of [1, 3, 17].entries()) {
    const id = `SMALL${i}`;
    const meta = sampleMeta(id, SMALL_MESSAGE.length);
    await store.put(meta, chunked(SMALL_MESSAGE, size));
    assert.deepEqual(await store.readMeta(id), meta);
    assert.deepEqual(await readAll(store.readMessage(id)), SMALL_MESSAGE);
  }
  assert.equal(await store.count(), 3);
});

test('quarantine: an 8 MiB message streams in and out byte-identical, in bounded chunks', async () => {
  const store = new QuarantineStore(stateDir());
  const data = bigMessage(8 * 1024 * 1024 + 13, 42);
  await store.put(sampleMeta('BIG1', data.length), chunked(data, 65_521));
  let largest = 0;
  const parts: Buffer[] = [];
  for await (const b of store.readMessage('BIG1')) {
    largest = Math.max(largest, b.length);
    parts.push(b);
  }
  assert.ok(largest <= 64 * 1024, `readMessage yielded a ${largest}-byte chunk`);
  assert.ok(Buffer.concat(parts).equals(data), 'message differs after the round trip');
  assert.equal((await store.readMeta('BIG1')).size, data.length);
});

test('quarantine: an empty message round trips', async () => {
  const store = new QuarantineStore(stateDir());
  await store.put(sampleMeta('EMPTY', 0), chunked(Buffer.alloc(0), 1));
  assert.equal((await readAll(store.readMessage('EMPTY'))).length, 0);
});

test('quarantine: nothing under state_dir holds the card number, the address, the Subject or a subject index in clear', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await putSmall(store, 'PLAIN1');
  const big = bigMessage(3 * 1024 * 1024, 7);
  await store.put(sampleMeta('PLAIN2', big.length), chunked(big, 4096));
  const files = allFiles(dir);
  assert.ok(files.some((f) => f.endsWith('.mvq')) && files.some((f) => f.endsWith('.key')), 'expected entries and a key under state_dir');
  for (const needle of [CARD, ADDRESS, SUBJECT, 'Quarterly card details', SUBJECT_INDEX, 'credit_card']) {
    assert.deepEqual(filesContaining(dir, needle), [], `found ${JSON.stringify(needle)} in clear`);
  }
});

test('quarantine: key dir 0700, key and current 0600, quarantine dir 0700, entries 0600', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await putSmall(store, 'PERM1');
  const mode = (p: string) => statSync(p).mode & 0o777;
  assert.equal(mode(keysDir(dir)), 0o700);
  assert.equal(mode(quarantineDir(dir)), 0o700);
  const keyFiles = readdirSync(keysDir(dir));
  assert.equal(keyFiles.filter((n) => /^quarantine-[0-9a-f]{16}\.key$/.test(n)).length, 1, keyFiles.join(' '));
  for (const n of keyFiles) assert.equal(mode(join(keysDir(dir), n)), 0o600, n);
  assert.equal(readFileSync(join(keysDir(dir), keyFiles.find((n) => n.endsWith('.key'))!)).length, 32);
  assert.equal(mode(join(quarantineDir(dir), 'PERM1.mvq')), 0o600);
});

test('quarantine: a flipped ciphertext byte makes readMessage throw, and the end of the message is never yielded', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  const data = bigMessage(300 * 1024, 3);
  await store.put(sampleMeta('TAMPER1', data.length), chunked(data, 10_000));
  const file = join(quarantineDir(dir), 'TAMPER1.mvq');
  const bytes = readFileSync(file);
  bytes[bytes.length - 16 - 1000] ^= 0x01; // inside the message ciphertext, near its end
  writeFileSync(file, bytes);
  let seen = 0;
  await assert.rejects(
    (async () => {
      for await (const b of store.readMessage('TAMPER1')) seen += b.length;
    })(),
    code('MV_QUARANTINE_CORRUPT'),
  );
  assert.ok(seen < data.length, 'the consumer saw the whole message before the tag check');
  // The metadata section is separate and still verifies.
  assert.equal((await store.readMeta('TAMPER1')).id, 'TAMPER1');
});

test('quarantine: tampered metadata, header, truncation or a renamed file fail; list() flags them and keeps going', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  for (const id of ['GOOD', 'META', 'HEAD', 'TRUNC', 'MOVED']) await putSmall(store, id);
  const path = (id: string) => join(quarantineDir(dir), `${id}.mvq`);
  const flip = (id: string, at: number) => {
    const b = readFileSync(path(id));
    b[at < 0 ? b.length + at : at] ^= 0x80;
    writeFileSync(path(id), b);
  };
  const headerLen = 6 + 16 + 16 + 12 + 12 + 4; // key id is 16 hex chars
  flip('META', headerLen + 3); // metadata ciphertext
  flip('HEAD', 6 + 16 + 2); // salt
  truncateSync(path('TRUNC'), statSync(path('TRUNC')).size - 5);
  renameSync(path('MOVED'), path('ELSEWHERE'));

  await assert.rejects(store.readMeta('META'), code('MV_QUARANTINE_CORRUPT'));
  await assert.rejects(store.readMeta('HEAD'), code('MV_QUARANTINE_CORRUPT'));
  await assert.rejects(readAll(store.readMessage('HEAD')), code('MV_QUARANTINE_CORRUPT'));
  await assert.rejects(readAll(store.readMessage('TRUNC')), code('MV_QUARANTINE_CORRUPT'));
  await assert.rejects(store.readMeta('ELSEWHERE'), code('MV_QUARANTINE_CORRUPT'));

  const list = await store.list();
  assert.equal(list.length, 5);
  const byId = new Map(list.map((s) => [s.id, s]));
  assert.equal(byId.get('GOOD')!.error, undefined);
  for (const id of ['META', 'HEAD', 'ELSEWHERE']) assert.match(byId.get(id)!.error ?? '', /corrupt entry/, id);
  // Truncating the message tag leaves the metadata intact: listed fine, caught on read.
  assert.equal(byId.get('TRUNC')!.error, undefined);

  writeFileSync(path('JUNK'), 'not an entry');
  const junk = (await store.list()).find((s) => s.id === 'JUNK');
  assert.ok(junk && junk.error !== undefined && /not a quarantine entry/.test(junk.error));
});

test('quarantine: list() is newest first, carries keyId, and leaves out findings and subjects', async () => {
  const store = new QuarantineStore(stateDir());
  await putSmall(store, 'OLD', { receivedAt: '2026-01-01T00:00:00.000Z' });
  await putSmall(store, 'NEW', { receivedAt: '2026-03-01T00:00:00.000Z', verdict: 'unscannable', rules: [], reasons: ['mime-depth'] });
  await putSmall(store, 'MID', { receivedAt: '2026-02-01T00:00:00.000Z' });
  const list = await store.list();
  assert.deepEqual(list.map((s) => s.id), ['NEW', 'MID', 'OLD']);
  const s = list[0];
  assert.ok(s.error === undefined);
  assert.match(s.keyId, /^[0-9a-f]{16}$/);
  assert.deepEqual(Object.keys(s).sort(), ['from', 'id', 'keyId', 'rcpts', 'reasons', 'receivedAt', 'rules', 'size', 'verdict']);
  assert.deepEqual(s.reasons, ['mime-depth']);
});

test('quarantine: recover() removes temp files, which list() and count() never show', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await putSmall(store, 'KEEP');
  writeFileSync(join(quarantineDir(dir), '.tmp-HALF-0a1b2c3d4e5f'), 'half-written ciphertext');
  writeFileSync(join(quarantineDir(dir), '.tmp-OTHER-ffffffffffff'), '');
  writeFileSync(join(keysDir(dir), '.tmp-quarantine-0123456789abcdef.key-aaaaaaaaaaaa'), 'x');
  assert.deepEqual((await store.list()).map((s) => s.id), ['KEEP']);
  assert.equal(await store.count(), 1);
  assert.equal(await store.recover(), 3);
  assert.equal(await store.recover(), 0);
  assert.deepEqual(readdirSync(quarantineDir(dir)), ['KEEP.mvq']);
  assert.ok(!readdirSync(keysDir(dir)).some((n) => n.startsWith('.tmp-')));
  assert.deepEqual(await readAll(store.readMessage('KEEP')), SMALL_MESSAGE);
});

test('quarantine: a failing source, a wrong size or a non-Buffer chunk leaves no entry and no temp file', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  async function* failing(): AsyncIterable<Buffer> {
    yield Buffer.alloc(300 * 1024, 0x41);
    throw new Error('client went away');
  }
  await assert.rejects(store.put(sampleMeta('FAIL1', 600 * 1024), failing()), /client went away/);
  await assert.rejects(store.put(sampleMeta('FAIL2', 10), chunked(SMALL_MESSAGE, 3)), code('MV_QUARANTINE_INVALID'));
  await assert.rejects(store.put(sampleMeta('FAIL3', SMALL_MESSAGE.length + 1), chunked(SMALL_MESSAGE, 3)), code('MV_QUARANTINE_INVALID'));
  async function* strings(): AsyncIterable<Buffer> {
    yield 'text' as unknown as Buffer;
  }
  await assert.rejects(store.put(sampleMeta('FAIL4', 4), strings()), code('MV_QUARANTINE_INVALID'));
  assert.deepEqual(readdirSync(quarantineDir(dir)), []);
  assert.equal(await store.count(), 0);
});

test('quarantine: bad ids, bad metadata and duplicate ids are refused; unknown fields are not stored', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  for (const id of ['../etc/passwd', 'abc', '', 'A'.repeat(65), 'A.B']) {
    await assert.rejects(store.put(sampleMeta(id, 1), chunked(Buffer.from('x'), 1)), code('MV_QUARANTINE_INVALID'), id);
    await assert.rejects(store.readMeta(id), code('MV_QUARANTINE_BAD_ID'), id);
    await assert.rejects(store.delete(id), code('MV_QUARANTINE_BAD_ID'), id);
  }
  await assert.rejects(store.put({ ...sampleMeta('NOSIZE', 1), size: -1 }, chunked(Buffer.from('x'), 1)), code('MV_QUARANTINE_INVALID'));
  await assert.rejects(store.put({ ...sampleMeta('NORULES', 1), rules: 'x' as unknown as string[] }, chunked(Buffer.from('x'), 1)), code('MV_QUARANTINE_INVALID'));

  const meta = sampleMeta('EXTRA', SMALL_MESSAGE.length);
  (meta.findings[0] as unknown as Record<string, unknown>).value = CARD;
  (meta as unknown as Record<string, unknown>).envelopeFrom = ADDRESS;
  await store.put(meta, chunked(SMALL_MESSAGE, 64));
  const back = await store.readMeta('EXTRA');
  assert.deepEqual(back.findings, [{ rule: 'credit-card', detector: 'credit_card', count: 1, part: '1', offset: 5 }]);
  assert.ok(!('envelopeFrom' in back));
  await assert.rejects(putSmall(store, 'EXTRA'), code('MV_QUARANTINE_EXISTS'));
});

test('quarantine: delete() removes the entry; a missing entry is NOT_FOUND everywhere', async () => {
  const store = new QuarantineStore(stateDir());
  await putSmall(store, 'DEL1');
  await store.delete('DEL1');
  assert.equal(await store.count(), 0);
  await assert.rejects(store.delete('DEL1'), code('MV_QUARANTINE_NOT_FOUND'));
  await assert.rejects(store.readMeta('DEL1'), code('MV_QUARANTINE_NOT_FOUND'));
  await assert.rejects(readAll(store.readMessage('DEL1')), code('MV_QUARANTINE_NOT_FOUND'));
});

test('quarantine: reading a state dir that does not exist lists nothing and creates nothing', async () => {
  const dir = join(stateDir(), 'absent');
  const store = new QuarantineStore(dir);
  assert.deepEqual(await store.list(), []);
  assert.equal(await store.count(), 0);
  assert.equal(await store.recover(), 0);
  assert.throws(() => statSync(dir), /ENOENT/);
});
