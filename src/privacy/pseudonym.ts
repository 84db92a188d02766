/*
 * Keyed pseudonyms (HMAC-SHA256) for addresses, IPs and internal host names.
 * The same input always gives the same pseudonym under one key, so an operator
 * can correlate log lines and Received hops without ever seeing the value.
 * The key is 32 random bytes in <state_dir>/pseudonym.key, mode 0600, made on
 * first start. Losing the key breaks correlation, never delivery.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { accessError } from '../access-error';
import { pseudonymKeyFile } from '../state-layout';

export { PSEUDONYM_KEY_FILE } from '../state-layout';
const KEY_BYTES = 32;

export class Pseudonymiser {
  constructor(private readonly key: Buffer) {
    if (key.length < 16) throw new Error('pseudonym key is too short');
  }

  /**
   * Loads the key from state_dir, creating it (0600) on first start. A
   * permission, space or missing-directory problem is an AccessError naming
   * the path (one line from the CLI).
   */
  static fromStateDir(stateDir: string): Pseudonymiser {
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw accessError(err, 'create', stateDir);
    }
    const file = pseudonymKeyFile(stateDir);
    let existing: Buffer | undefined;
    try {
      existing = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw accessError(err, 'read', file);
    }
    if (existing) {
      try {
        if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      } catch (err) {
        throw accessError(err, 'change mode of', file);
      }
      return new Pseudonymiser(existing);
    }
    const key = randomBytes(KEY_BYTES);
    // 'wx' so two processes starting at once cannot both write a key.
    try {
      writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      try {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return new Pseudonymiser(readFileSync(file));
      } catch (again) {
        throw accessError(again, 'read', file);
      }
      throw accessError(err, 'write', file);
    }
    return new Pseudonymiser(key);
  }

  /**
   * A stable hex pseudonym. `kind` separates namespaces so an IP and a host
   * name that happen to be equal strings do not share a pseudonym.
   */
  token(kind: string, value: string, hexChars = 16): string {
    return createHmac('sha256', this.key)
      .update(kind)
      .update('\0')
      .update(value.trim().toLowerCase())
      .digest('hex')
      .slice(0, hexChars);
  }
}
