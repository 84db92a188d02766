/* The one-line messages for permission, space and missing-directory errors (src/access-error.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessError, accessError, describeAccess } from '../../src/access-error';

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path, errno: -1 });
}

test('each cause names the path, the code, its meaning and the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-access-'));
  const file = join(dir, 'pseudonym.key');
  const cases: [string, string][] = [
    ['EACCES', `cannot write ${file}: EACCES (permission denied); run mailveil as the user that owns state_dir, or fix its ownership`],
    ['EPERM', `cannot write ${file}: EPERM (operation not permitted); run mailveil as the user that owns state_dir, or fix its ownership`],
    ['EROFS', `cannot write ${file}: EROFS (read-only file system); state_dir must be on a writable file system; set state_dir elsewhere`],
    ['ENOSPC', `cannot write ${file}: ENOSPC (no space left on device); free space on that file system, or move state_dir to a larger one`],
  ];
  for (const [code, want] of cases) {
    const e = accessError(fsError(code, 'open', file), 'write', file);
    assert.ok(e instanceof AccessError, code);
    assert.equal(e.message, want);
    assert.equal(e.path, file);
    assert.equal(e.errno, code);
  }
});

test('ENOENT names the missing parent directory', () => {
  const gone = join(mkdtempSync(join(tmpdir(), 'mv-access-')), 'gone');
  const file = join(gone, 'keys', 'current');
  assert.equal(
    (accessError(fsError('ENOENT', 'open', file), 'write', file) as AccessError).message,
    `cannot write ${file}: ENOENT (no such file or directory); ${join(gone, 'keys')} does not exist; create it, or set state_dir to an existing directory`,
  );
});

test('an fs error seen only by main: the verb comes from the syscall, the advice is not about state_dir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-access-'));
  assert.equal(
    describeAccess(fsError('EACCES', 'scandir', dir)),
    `cannot list ${dir}: EACCES (permission denied); run mailveil as a user that may use it, or fix its ownership or mode`,
  );
});

test('anything else is left alone, so a bug keeps its stack', () => {
  const other = fsError('EISDIR', 'read', '/x');
  assert.equal(accessError(other, 'read', '/x'), other);
  assert.equal(describeAccess(new Error('boom')), undefined);
  assert.equal(describeAccess(fsError('EACCES', 'connect', undefined as unknown as string)), undefined, 'no path: not a file problem');
});
