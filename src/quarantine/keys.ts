/*
 * Data keys for the quarantine's encryption at rest (AES-256-GCM).
 *
 * Layout under <state_dir>/keys/ (dir 0700, files 0600):
 *   quarantine-<keyid>.key   32 random bytes, raw; <keyid> is 16 hex chars
 *   current                  "<keyid>\n": the key new entries are written with
 *
 * Every entry names its key id in its plaintext header, and any key file
 * present can decrypt, so rotation (issue 4, `mailveil keys rotate`) is just
 * rotateKey(): a new key file, then `current` switched by an atomic rename.
 * Old keys stay until no entry names them (see retiring keys below); deleting one then is crypto-
 * shredding of whatever copies of old entries backups still hold.
 *
 * Both files are written durably (temp, fsync, rename, fsync dir) before any
 * entry uses them: an entry acknowledged as stored whose key was lost in a
 * crash would be unreadable, which breaks guarantee 1 as surely as losing it.
 * Two processes making the first key at once each write their own key file;
 * one wins `current`, and both keys stay usable, so the race is harmless.
 *
 * Retiring keys (removeUnusedKeys, run by every purge, never by rotate): a
 * key file is deleted once it is not current, no entry or in-flight write
 * names it, and `current` was last switched at least KEY_RETIRE_GRACE_MS ago.
 * The grace covers a writer that read `current` just before a rotation and
 * has not written its entry's header yet.
 *
 * Limits: keys are held in memory unwrapped (no KMS/HSM; the state dir's
 * permissions are the protection, as for pseudonym.key).
 */
import { randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { accessError } from '../access-error';
import { ensurePrivateDir, fsyncDir, writeFileDurably } from '../storage/durable';
import { CURRENT_KEY_FILE, KEY_FILE_RE, keyFileName, keysDir } from '../state-layout';
import { QuarantineError } from './errors';

export { CURRENT_KEY_FILE, keysDir } from '../state-layout';
export const KEY_BYTES = 32;
const KEY_ID_RE = /^[0-9a-f]{16}$/;

export interface DataKey {
  id: string;
  key: Buffer;
}

export function isKeyId(id: string): boolean {
  return KEY_ID_RE.test(id);
}

/** Writes a new key file (not yet current) and returns its id. */
async function createKey(dir: string): Promise<string> {
  const id = randomBytes(8).toString('hex');
  await writeFileDurably(dir, keyFileName(id), randomBytes(KEY_BYTES));
  return id;
}

/**
 * Makes a new key and makes it current; entries written before keep naming
 * their old key and stay readable (`mailveil keys rotate`). Returns the new
 * key id.
 */
export async function rotateKey(stateDir: string): Promise<string> {
  const dir = keysDir(stateDir);
  try {
    await ensurePrivateDir(dir);
  } catch (err) {
    throw accessError(err, 'create', dir);
  }
  try {
    const id = await createKey(dir);
    await writeFileDurably(dir, CURRENT_KEY_FILE, id + '\n');
    return id;
  } catch (err) {
    throw accessError(err, 'write', dir);
  }
}

/** Key ids of every key file present, e.g. to find keys no entry needs any more. */
export async function listKeyIds(stateDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(keysDir(stateDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw accessError(err, 'list', keysDir(stateDir));
  }
  return names.flatMap((n) => KEY_FILE_RE.exec(n)?.[1] ?? []).sort();
}

/** A key stops being current and stays at least this long before a purge may delete it. */
export const KEY_RETIRE_GRACE_MS = 60 * 60 * 1000;

/** The id `current` names, or undefined before the first key exists. */
export async function currentKeyId(stateDir: string): Promise<string | undefined> {
  const file = join(keysDir(stateDir), CURRENT_KEY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw accessError(err, 'read', file);
  }
  const id = text.trim();
  if (!isKeyId(id)) throw new QuarantineError('MV_QUARANTINE_KEY_INVALID', `${file} does not hold a key id`);
  return id;
}

/**
 * Deletes the key files that are not current and not in `inUse` (the key ids
 * every entry, complete or being written, names), unless `current` changed
 * less than `graceMs` before `now`. Returns the ids removed.
 */
export async function removeUnusedKeys(stateDir: string, inUse: ReadonlySet<string>, now: Date, graceMs = KEY_RETIRE_GRACE_MS): Promise<string[]> {
  const dir = keysDir(stateDir);
  const current = await currentKeyId(stateDir);
  if (current === undefined) return [];
  const switched = (await stat(join(dir, CURRENT_KEY_FILE))).mtimeMs;
  if (now.getTime() - switched < graceMs) return [];
  const removed: string[] = [];
  for (const id of await listKeyIds(stateDir)) {
    if (id === current || inUse.has(id)) continue;
    try {
      await unlink(join(dir, keyFileName(id)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    removed.push(id);
  }
  if (removed.length) await fsyncDir(dir);
  return removed;
}

/** The keys of one state dir: loads lazily by id, caches, never writes except on first use. */
export class KeyRing {
  private readonly cache = new Map<string, Buffer>();
  private readonly dir: string;

  constructor(private readonly stateDir: string) {
    this.dir = keysDir(stateDir);
  }

  /**
   * The key for new entries. `current` is re-read on every call (one small
   * read per quarantined message) so a rotation by another process takes
   * effect without a restart. The first call in a fresh state dir makes it.
   */
  async current(): Promise<DataKey> {
    let id = await this.readCurrentId();
    if (id === undefined) id = await rotateKey(this.stateDir);
    return { id, key: await this.get(id) };
  }

  /** The key with this id, for decryption; MV_QUARANTINE_KEY_MISSING if no file has it. */
  async get(id: string): Promise<Buffer> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    if (!isKeyId(id)) throw new QuarantineError('MV_QUARANTINE_KEY_INVALID', `invalid key id ${JSON.stringify(id)}`);
    const file = join(this.dir, keyFileName(id));
    let key: Buffer;
    try {
      key = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new QuarantineError('MV_QUARANTINE_KEY_MISSING', `quarantine key ${id} not found in ${this.dir}`);
      throw accessError(err, 'read', file);
    }
    if (key.length !== KEY_BYTES) throw new QuarantineError('MV_QUARANTINE_KEY_INVALID', `quarantine key ${id} has ${key.length} bytes, expected ${KEY_BYTES}`);
    // Same repair as pseudonym.key: a copy or restore may have widened it.
    try {
      if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
    } catch (err) {
      throw accessError(err, 'change mode of', file);
    }
    this.cache.set(id, key);
    return key;
  }

  private readCurrentId(): Promise<string | undefined> {
    return currentKeyId(this.stateDir);
  }
}
