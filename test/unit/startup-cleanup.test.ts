/*
 * What serve deletes at start: only regular files whose names mailveil
 * itself makes, only in the directory it made for them, never recursing,
 * never through a symlink. Each cleanup gets a HIT (its own leftovers go)
 * and MISSes beside it (look-alikes, directories, symlinks, other names).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanStaleSpool, spoolDir, spoolFileName, SPOOL_NAME_RE } from '../../src/pipeline/spool';
import { newMessageId } from '../../src/smtp/handle-message';
import { cleanExports } from '../../src/admin/routes';
import { EXPORTS_DIR } from '../../src/state-layout';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { keysDir } from '../../src/quarantine/keys';
import { tempName } from '../../src/storage/durable';
import { snapshot } from '../helpers/tree';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-cleanup-'));
  dirs.push(d);
  return d;
}

/** Files outside state_dir that a symlink inside it points at. */
function outside(): { dir: string; file: string } {
  const dir = temp();
  const file = join(dir, 'precious');
  writeFileSync(file, 'not mailveil');
  mkdirSync(join(dir, 'cron'));
  writeFileSync(join(dir, 'cron', 'root'), '* * * * * true\n');
  return { dir, file };
}

test('spool cleanup: the names Spool writes match the pattern cleanup removes', () => {
  for (let i = 0; i < 100; i++) assert.match(spoolFileName(newMessageId()), SPOOL_NAME_RE);
  for (const miss of ['notes.spool', 'ABC.spool.bak', '.ABC.spool', 'ABC.SPOOL', 'A/B.spool', '.spool', 'ABC']) assert.doesNotMatch(miss, SPOOL_NAME_RE, miss);
});

test('spool cleanup: removes stale <id>.spool files (HIT) and nothing else (MISS)', () => {
  const state = temp();
  const ext = outside();
  const dir = spoolDir(state);
  mkdirSync(dir);
  writeFileSync(join(dir, '0LDSPOOL1.spool'), 'ciphertext');
  writeFileSync(join(dir, 'MWS7OYHN5CCECB00003.spool'), 'ciphertext');
  writeFileSync(join(dir, 'notes.txt'), 'keep');
  writeFileSync(join(dir, 'lower.spool'), 'keep');
  mkdirSync(join(dir, 'SUBDIR1.spool'));
  writeFileSync(join(dir, 'SUBDIR1.spool', 'INNER.spool'), 'keep: never recursed into');
  symlinkSync(ext.file, join(dir, 'LINK1.spool'));
  symlinkSync(join(ext.dir, 'cron'), join(dir, 'cron'));
  const extBefore = snapshot(ext.dir);

  assert.equal(cleanStaleSpool(state), 2);
  assert.deepEqual(readdirSync(dir).sort(), ['LINK1.spool', 'SUBDIR1.spool', 'cron', 'lower.spool', 'notes.txt']);
  assert.deepEqual(readdirSync(join(dir, 'SUBDIR1.spool')), ['INNER.spool']);
  assert.deepEqual(snapshot(ext.dir), extBefore, 'nothing behind a symlink is touched');
  assert.equal(cleanStaleSpool(state), 0);
});

test('spool cleanup: creates the spool dir 0700 in a fresh state dir; refuses a spool path that is a symlink or a file', () => {
  const state = temp();
  assert.equal(cleanStaleSpool(state), 0);
  assert.deepEqual(readdirSync(state), ['spool']);

  const ext = outside();
  writeFileSync(join(ext.dir, 'ABC.spool'), 'someone else\'s');
  const linked = temp();
  symlinkSync(ext.dir, join(linked, 'spool'));
  const extBefore = snapshot(ext.dir);
  assert.throws(() => cleanStaleSpool(linked), /spool is not a directory; mailveil keeps its spool there, so move it away/);
  assert.deepEqual(snapshot(ext.dir), extBefore);

  const file = temp();
  writeFileSync(join(file, 'spool'), 'x');
  assert.throws(() => cleanStaleSpool(file), /not a directory/);
});

test('exports cleanup: removes left-over archives and their temp files (HIT), nothing else (MISS)', async () => {
  const state = temp();
  const ext = outside();
  const dir = join(state, EXPORTS_DIR);
  mkdirSync(dir);
  writeFileSync(join(dir, 'sar-0123456789abcdef.tar.gz'), 'decrypted mail');
  writeFileSync(join(dir, '.sar-0123456789abcdef.tar.gz.tmp-0a1b2c3d4e5f'), 'half an archive');
  writeFileSync(join(dir, 'sar-export-20261122.tar.gz'), 'an operator\'s copy');
  writeFileSync(join(dir, 'README'), 'keep');
  mkdirSync(join(dir, 'sar-fedcba9876543210.tar.gz'));
  symlinkSync(ext.file, join(dir, 'sar-1111111111111111.tar.gz'));
  const extBefore = snapshot(ext.dir);
  assert.equal(await cleanExports(state), 2);
  assert.deepEqual(readdirSync(dir).sort(), ['README', 'sar-1111111111111111.tar.gz', 'sar-export-20261122.tar.gz', 'sar-fedcba9876543210.tar.gz']);
  assert.deepEqual(snapshot(ext.dir), extBefore);

  // No exports dir: nothing made. An exports symlink: not followed.
  const fresh = temp();
  assert.equal(await cleanExports(fresh), 0);
  assert.deepEqual(readdirSync(fresh), []);
  writeFileSync(join(ext.dir, 'sar-2222222222222222.tar.gz'), 'someone else\'s');
  symlinkSync(ext.dir, join(fresh, EXPORTS_DIR));
  assert.equal(await cleanExports(fresh), 0);
  assert.ok(existsSync(join(ext.dir, 'sar-2222222222222222.tar.gz')));
});

test('quarantine recover: removes interrupted writes named by tempName (HIT), not other dot-files, dirs or symlinks (MISS)', async () => {
  const state = temp();
  const ext = outside();
  const store = new QuarantineStore(state);
  await store.put(
    { id: 'KEEP1', receivedAt: '2026-11-22T10:00:00.000Z', size: 3, verdict: 'quarantine', rules: ['r'], reasons: [], from: 'p', rcpts: ['q'], findings: [], subjects: [] },
    (async function* () {
      yield Buffer.from('abc');
    })(),
  );
  const q = quarantineDir(state);
  const k = keysDir(state);
  writeFileSync(join(q, tempName('HALF1')), 'half');
  writeFileSync(join(k, tempName('quarantine-0123456789abcdef.key')), 'half a key');
  writeFileSync(join(q, '.tmp-notes'), 'an editor\'s file');
  writeFileSync(join(q, '.tmpfile'), 'keep');
  mkdirSync(join(q, '.tmp-DIR1-0a1b2c3d4e5f'));
  symlinkSync(ext.file, join(q, '.tmp-LINK1-0a1b2c3d4e5f'));
  const extBefore = snapshot(ext.dir);
  assert.equal(await store.recover(), 2);
  assert.deepEqual(readdirSync(q).sort(), ['.tmp-DIR1-0a1b2c3d4e5f', '.tmp-LINK1-0a1b2c3d4e5f', '.tmp-notes', '.tmpfile', 'KEEP1.mvq']);
  assert.ok(!readdirSync(k).some((n) => n.startsWith('.tmp-')));
  assert.deepEqual(snapshot(ext.dir), extBefore);
  assert.equal(await store.recover(), 0);
});
