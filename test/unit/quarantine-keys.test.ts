/*
 * Quarantine data keys: made on first use only, rotation keeps old entries
 * readable (issue 4 builds `mailveil keys rotate` on rotateKey), each entry
 * names its key, and a missing key is reported per entry, not as a crash.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QuarantineStore } from '../../src/quarantine/store';
import { CURRENT_KEY_FILE, keysDir, listKeyIds, rotateKey } from '../../src/quarantine/keys';
import { isQuarantineError } from '../../src/quarantine/errors';
import { SMALL_MESSAGE, bigMessage, chunked, readAll, sampleMeta, removeTempDirs, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

function stateDir(): string {
  return tempDir('mv-qkeys-');
}

function currentId(dir: string): string {
  return readFileSync(join(keysDir(dir), CURRENT_KEY_FILE), 'utf8').trim();
}

test('keys: nothing is made before the first put; the first put makes one key and points current at it', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await store.list();
  assert.equal(existsSync(keysDir(dir)), false);
  await store.put(sampleMeta('FIRST', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 5));
  const ids = await listKeyIds(dir);
  assert.equal(ids.length, 1);
  assert.equal(currentId(dir), ids[0]);
  assert.equal((await store.list())[0].keyId, ids[0]);
});

test('keys: an entry written under key A stays readable after key B becomes current, from a running and a fresh store', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  const a = bigMessage(1024 * 1024 + 5, 11);
  await store.put(sampleMeta('UNDERA', a.length), chunked(a, 8192));
  const keyA = currentId(dir);

  const keyB = await rotateKey(dir);
  assert.notEqual(keyB, keyA);
  assert.equal(currentId(dir), keyB);
  assert.equal(statSync(join(keysDir(dir), `quarantine-${keyB}.key`)).mode & 0o777, 0o600);

  // The running store picks up the rotation without a restart.
  await store.put(sampleMeta('UNDERB', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 3));
  for (const s of [store, new QuarantineStore(dir)]) {
    const keyOf = new Map((await s.list()).map((e) => [e.id, e.keyId]));
    assert.equal(keyOf.get('UNDERA'), keyA);
    assert.equal(keyOf.get('UNDERB'), keyB);
    assert.ok((await readAll(s.readMessage('UNDERA'))).equals(a));
    assert.deepEqual(await readAll(s.readMessage('UNDERB')), SMALL_MESSAGE);
  }
  assert.deepEqual(await listKeyIds(dir), [keyA, keyB].sort());
});

test('keys: an entry whose key file is gone is listed with an error; the others still read', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await store.put(sampleMeta('ORPHAN', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 9));
  const keyA = currentId(dir);
  await rotateKey(dir);
  await store.put(sampleMeta('FINE', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 9));
  rmSync(join(keysDir(dir), `quarantine-${keyA}.key`));

  const fresh = new QuarantineStore(dir);
  const list = await fresh.list();
  const orphan = list.find((e) => e.id === 'ORPHAN')!;
  assert.ok(orphan.error !== undefined);
  assert.match(orphan.error, new RegExp(`key ${keyA} not found`));
  assert.equal(orphan.keyId, keyA);
  assert.equal(list.find((e) => e.id === 'FINE')!.error, undefined);
  await assert.rejects(fresh.readMeta('ORPHAN'), (e: unknown) => isQuarantineError(e, 'MV_QUARANTINE_KEY_MISSING'));
});

test('keys: a key file left group/world-readable is tightened back to 0600 on load', async () => {
  const dir = stateDir();
  await new QuarantineStore(dir).put(sampleMeta('WIDE', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 9));
  const file = join(keysDir(dir), `quarantine-${currentId(dir)}.key`);
  chmodSync(file, 0o644);
  await new QuarantineStore(dir).readMeta('WIDE');
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('keys: a corrupt current pointer fails put() loudly instead of minting a key', async () => {
  const dir = stateDir();
  const store = new QuarantineStore(dir);
  await store.put(sampleMeta('BEFORE', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 9));
  writeFileSync(join(keysDir(dir), CURRENT_KEY_FILE), 'garbage\n');
  await assert.rejects(
    store.put(sampleMeta('AFTER', SMALL_MESSAGE.length), chunked(SMALL_MESSAGE, 9)),
    (e: unknown) => isQuarantineError(e, 'MV_QUARANTINE_KEY_INVALID'),
  );
  assert.equal((await listKeyIds(dir)).length, 1);
});
