/*
 * The admin API's bearer token: <state_dir>/admin.token, 32 random bytes as
 * hex, created mode 0600 on first start (O_EXCL, so an existing token is
 * never replaced; an operator may put their own there). A token file that
 * group or others can read is tightened to 0600 (its content is kept).
 *
 * Comparison is constant-time: both sides are hashed with SHA-256 and the
 * digests compared with timingSafeEqual, so neither the content nor the
 * length of the expected token leaks through timing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { accessError } from '../access-error';
import type { MvCode } from '../errors';
import { adminTokenFile } from '../state-layout';

/** The token's name in audit events (actor `token:admin`). */
export const ADMIN_TOKEN_NAME = 'admin';
/** A hand-written token shorter than this is refused at start. */
export const MIN_TOKEN_LENGTH = 16;

export class AdminTokenError extends Error {
  readonly code: MvCode = 'MV_ADMIN_TOKEN';
}

export interface AdminToken {
  /** SHA-256 of the token, the only form kept in memory for comparison. */
  digest: Buffer;
  file: string;
  created: boolean;
  /** The file was readable by group/others and was set to 0600. */
  tightened: boolean;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** Reads <state_dir>/admin.token, creating it (0600) if missing. */
export async function ensureAdminToken(stateDir: string): Promise<AdminToken> {
  const file = adminTokenFile(stateDir);
  let created = false;
  try {
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(randomBytes(32).toString('hex') + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      const e = accessError(err, 'create', file);
      throw e !== err ? e : new AdminTokenError(`${file}: cannot create: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  let tightened = false;
  const st = await stat(file).catch((err) => Promise.reject(accessError(err, 'inspect', file)));
  if (!st.isFile()) throw new AdminTokenError(`${file}: not a regular file`);
  if (st.mode & 0o077) {
    await chmod(file, 0o600).catch((err) => Promise.reject(accessError(err, 'change mode of', file)));
    tightened = true;
  }
  const token = (await readFile(file, 'utf8').catch((err) => Promise.reject(accessError(err, 'read', file)))).trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new AdminTokenError(`${file}: the admin token must be one line of at least ${MIN_TOKEN_LENGTH} characters without spaces (delete the file to have a new one made)`);
  }
  return { digest: sha256(token), file, created, tightened };
}

/** Constant-time check of an `Authorization` header value against the token. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  // Compare something in every case, so a missing header costs the same as a wrong one.
  const given = sha256(m ? m[1] : '');
  return timingSafeEqual(given, expected) && m !== null;
}
