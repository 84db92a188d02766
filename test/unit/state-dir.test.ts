/*
 * Whose directory is state_dir (src/config/state-dir.ts): serve takes a new,
 * empty or mailveil-only directory and marks it; a directory holding other
 * files is refused, untouched, unless --init; other commands never write.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStateDir, inspectStateDir, prepareStateDir, STATE_FORMAT, STATE_MARKER } from '../../src/config/state-dir';
import { snapshot } from '../helpers/tree';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-statedir-'));
  dirs.push(d);
  return d;
}

const NOW = new Date('2026-11-23T10:00:00.000Z');

/** A directory like /var: other programs' files, one of them named like ours. */
function foreignDir(): string {
  const d = temp();
  mkdirSync(join(d, 'lib', 'dpkg'), { recursive: true });
  writeFileSync(join(d, 'lib', 'dpkg', 'status'), 'Package: base-files\n');
  mkdirSync(join(d, 'spool', 'cron'), { recursive: true });
  writeFileSync(join(d, 'spool', '0ABC123.spool'), 'not ours');
  writeFileSync(join(d, 'notes.txt'), 'hello');
  return d;
}

function marker(dir: string) {
  return JSON.parse(readFileSync(join(dir, STATE_MARKER), 'utf8'));
}

test('state dir: a new directory is created 0700 and marked (format, creation time; file 0600)', () => {
  const dir = join(temp(), 'a', 'state');
  assert.deepEqual(inspectStateDir(dir), { kind: 'missing' });
  assert.equal(prepareStateDir(dir, { now: () => NOW }), 'created');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, STATE_MARKER)).mode & 0o777, 0o600);
  assert.deepEqual(marker(dir), { kind: 'mailveil-state', format: STATE_FORMAT, created: NOW.toISOString() });
  assert.equal(inspectStateDir(dir).kind, 'marked');
});

test('state dir: an empty directory is marked; a marked one is used as it is', () => {
  const dir = temp();
  assert.deepEqual(inspectStateDir(dir), { kind: 'empty' });
  assert.equal(prepareStateDir(dir, { now: () => NOW }), 'created');
  const before = snapshot(dir);
  assert.equal(prepareStateDir(dir, { now: () => new Date() }), 'ready');
  assert.deepEqual(snapshot(dir), before, 'the marker keeps its creation time');
});

test('state dir: one written before the marker (only names mailveil makes) is adopted', () => {
  const dir = temp();
  for (const d of ['quarantine', 'keys', 'audit', 'spool', 'exports']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'pseudonym.key'), Buffer.alloc(32));
  writeFileSync(join(dir, 'admin.token'), 'x'.repeat(64));
  assert.deepEqual(inspectStateDir(dir), { kind: 'own' });
  checkStateDir(dir);
  assert.equal(prepareStateDir(dir), 'adopted');
  assert.equal(inspectStateDir(dir).kind, 'marked');
});

test('state dir: a directory holding other files is refused with one line, and nothing in it changes (HIT)', () => {
  const dir = foreignDir();
  const before = snapshot(dir);
  // spool/ is a name of ours, so it is not listed; the others make the dir foreign.
  assert.deepEqual(inspectStateDir(dir), { kind: 'foreign', names: ['lib', 'notes.txt'] });
  assert.throws(() => prepareStateDir(dir), {
    code: 'MV_STATE_DIR_FOREIGN',
    message: `state_dir ${dir} already holds files mailveil did not create (lib, notes.txt); set state_dir to a new or empty directory, or pass --init if mailveil should really use this one`,
  });
  assert.throws(() => checkStateDir(dir), {
    code: 'MV_STATE_DIR_FOREIGN',
    message: `state_dir ${dir} is not mailveil's (no state.json, and it holds lib, notes.txt); name the instance with --config FILE (or MAILVEIL_CONFIG) or --state-dir DIR`,
  });
  assert.deepEqual(snapshot(dir), before);
});

test('state dir: names of ours with the wrong type, or as symlinks, are not ours', () => {
  for (const make of [
    (d: string) => writeFileSync(join(d, 'spool'), 'a file where our dir would be'),
    (d: string) => mkdirSync(join(d, 'pseudonym.key')),
    (d: string) => symlinkSync('/var/spool', join(d, 'spool')),
    (d: string) => symlinkSync('/etc/hostname', join(d, 'admin.token')),
  ]) {
    const dir = temp();
    make(dir);
    assert.equal(inspectStateDir(dir).kind, 'foreign');
    assert.throws(() => prepareStateDir(dir), /already holds files mailveil did not create/);
  }
});

test('state dir: a long list of foreign names is cut short', () => {
  const dir = temp();
  for (const n of ['a', 'b', 'c', 'd', 'e']) writeFileSync(join(dir, n), '');
  assert.throws(() => prepareStateDir(dir), /\(a, b, c and 2 more\)/);
});

test('state dir: --init takes a directory holding other files, writes only the marker', () => {
  const dir = foreignDir();
  const before = snapshot(dir);
  assert.equal(prepareStateDir(dir, { init: true, now: () => NOW }), 'initialised');
  const after = snapshot(dir);
  assert.deepEqual(Object.keys(after).filter((k) => !(k in before)), [STATE_MARKER]);
  for (const [k, v] of Object.entries(before)) if (k !== '.') assert.deepEqual(after[k], v, k);
  assert.equal(prepareStateDir(dir), 'ready');
  checkStateDir(dir);
});

test('state dir: a state.json that is not our marker is refused, even with --init; a newer format too', () => {
  const dir = temp();
  writeFileSync(join(dir, STATE_MARKER), '{"name":"some other program"}\n');
  const before = snapshot(dir);
  for (const init of [false, true]) {
    assert.throws(() => prepareStateDir(dir, { init }), { message: `${join(dir, STATE_MARKER)} is not mailveil's state marker; move it away, or point state_dir elsewhere` });
  }
  assert.throws(() => checkStateDir(dir), /is not mailveil's state marker/);
  assert.deepEqual(snapshot(dir), before);
  writeFileSync(join(dir, STATE_MARKER), 'not json');
  assert.throws(() => prepareStateDir(dir), /is not mailveil's state marker/);
  rmSync(join(dir, STATE_MARKER));
  mkdirSync(join(dir, STATE_MARKER));
  assert.throws(() => prepareStateDir(dir, { init: true }), /state\.json is not a regular file/);
  rmSync(join(dir, STATE_MARKER), { recursive: true });
  writeFileSync(join(dir, STATE_MARKER), JSON.stringify({ kind: 'mailveil-state', format: STATE_FORMAT + 1, created: NOW.toISOString() }));
  assert.throws(() => prepareStateDir(dir), new RegExp(`has format ${STATE_FORMAT + 1}, newer than this mailveil reads \\(${STATE_FORMAT}\\)`));
});

test('state dir: a path that is a file is refused; other commands never create or mark a directory', () => {
  const dir = temp();
  const file = join(dir, 'file');
  writeFileSync(file, '');
  assert.throws(() => prepareStateDir(file), { message: `state_dir ${file} is not a directory` });
  const missing = join(dir, 'missing');
  assert.throws(() => checkStateDir(missing), { message: `state_dir ${missing} does not exist` });
  assert.deepEqual(inspectStateDir(missing), { kind: 'missing' });
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  checkStateDir(empty);
  assert.deepEqual(Object.keys(snapshot(empty)), ['.'], 'an empty dir stays empty');
});
