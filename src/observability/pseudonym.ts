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

export const PSEUDONYM_KEY_FILE = 'pseudonym.key';
const KEY_BYTES = 32;

export class Pseudonymiser {
  constructor(private readonly key: Buffer) {
    if (key.length < 16) throw new Error('pseudonym key is too short');
  }

  /** Loads the key from state_dir, creating it (0600) on first start. */
  static fromStateDir(stateDir: string): Pseudonymiser {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = join(stateDir, PSEUDONYM_KEY_FILE);
    try {
      const key = readFileSync(file);
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return new Pseudonymiser(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const key = randomBytes(KEY_BYTES);
    // 'wx' so two processes starting at once cannot both write a key.
    try {
      writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return new Pseudonymiser(readFileSync(file));
      throw err;
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
