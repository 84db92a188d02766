/*
 * The durable-write primitives the quarantine, its keys and the audit log
 * rely on for guarantee 1 (here, not under quarantine/, so the audit log can
 * take them without importing the quarantine that imports it): a file counts as stored only after it was written to a temp
 * name in the same directory, fsync'd, renamed into place, and the directory
 * itself fsync'd (otherwise the rename can be lost on power failure even
 * though the data blocks survived). POSIX only: fsync on a directory opened
 * read-only works on Linux and the BSDs; elsewhere it may throw EISDIR/EPERM,
 * which we ignore only on win32 where there is no equivalent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink, chmod, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { tempFileName } from '../state-layout';

/** A temp name of the layout's form, which QuarantineStore.recover() knows to remove. */
export function tempName(base: string): string {
  return tempFileName(base, randomBytes(6).toString('hex'));
}

/**
 * Makes the directory (and parents) with mode 0700, tightening an existing
 * one. A directory it creates is made durable too (each new level's parent
 * fsync'd), or a first entry could survive a power failure in a directory
 * whose own name did not.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (first !== undefined) {
    const top = resolve(first);
    for (let p = resolve(dir); ; p = dirname(p)) {
      await fsyncDir(dirname(p));
      if (p === top || dirname(p) === p) break;
    }
  }
  // mkdir's mode is filtered by the umask and ignored for an existing dir.
  if (((await stat(dir)).mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

/** Makes a completed rename (or unlink) in `dir` survive a power failure. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    if (process.platform !== 'win32') throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Writes a small file durably (temp, fsync, rename, fsync dir), mode 0600.
 * The rename replaces an existing target atomically: readers see the old
 * content or the new one, never a mix (how keys/current is switched).
 */
export async function writeFileDurably(dir: string, name: string, data: Buffer | string): Promise<void> {
  const tmp = join(dir, tempName(name));
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, join(dir, name));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}
