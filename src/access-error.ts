/*
 * File-system errors the operator fixes, not mailveil: no permission
 * (EACCES, EPERM), a read-only file system (EROFS), a full disk or quota
 * (ENOSPC, EDQUOT), a missing file or parent directory (ENOENT). Each
 * becomes one line that names what mailveil was doing, the path, the cause
 * and the fix:
 *
 *   cannot write /var/lib/mailveil/pseudonym.key: EACCES (permission denied); run mailveil as the user that owns state_dir, or fix its ownership
 *
 * The places that touch state_dir wrap their errors with accessError();
 * cli/main.ts turns any other such error that still carries a path (a
 * Node fs error) into the same line, so a permission problem anywhere is
 * exit 1 with one line, never "internal error" and a stack trace.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MvCode } from './errors';

/** What mailveil was doing to the path: the verb of the message. */
export type AccessOp = 'read' | 'write' | 'create' | 'list' | 'remove' | 'open' | 'rename' | 'change mode of' | 'inspect';

/** Where the path lives, which decides the advice. */
export type AccessScope = 'state_dir' | 'file';

const CAUSES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
};

/** The verb for a Node fs error's `syscall`, when the caller did not name one. */
const SYSCALL_OPS: Record<string, AccessOp> = {
  open: 'open',
  read: 'read',
  write: 'write',
  mkdir: 'create',
  mkdtemp: 'create',
  scandir: 'list',
  opendir: 'list',
  unlink: 'remove',
  rmdir: 'remove',
  rm: 'remove',
  rename: 'rename',
  chmod: 'change mode of',
  fchmod: 'change mode of',
  stat: 'inspect',
  lstat: 'inspect',
  access: 'inspect',
  fsync: 'write',
  copyfile: 'write',
};

export class AccessError extends Error {
  readonly code: MvCode = 'MV_ACCESS';
  constructor(
    message: string,
    readonly path: string,
    readonly errno: string,
  ) {
    super(message);
  }
}

type FsError = NodeJS.ErrnoException & { path?: string };

/** True for an error this module describes: one of CAUSES' codes. */
export function isAccessCode(err: unknown): boolean {
  const code = (err as FsError | null)?.code;
  return typeof code === 'string' && Object.hasOwn(CAUSES, code);
}

function advice(code: string, path: string, scope: AccessScope): string {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return scope === 'state_dir'
        ? 'run mailveil as the user that owns state_dir, or fix its ownership'
        : 'run mailveil as a user that may use it, or fix its ownership or mode';
    case 'EROFS':
      return scope === 'state_dir' ? 'state_dir must be on a writable file system; set state_dir elsewhere' : 'choose a path on a writable file system';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'free space on that file system, or move state_dir to a larger one';
    default: {
      const parent = dirname(path);
      if (!existsSync(parent)) return `${parent} does not exist; create it${scope === 'state_dir' ? ', or set state_dir to an existing directory' : ''}`;
      return scope === 'state_dir' ? 'it was removed while mailveil used it; restore it, or restart mailveil' : 'check the path';
    }
  }
}

/**
 * The one-line message for an fs error, or undefined when it is not one of
 * the causes above (a bug or something unexpected: keep its stack).
 */
export function describeAccess(err: unknown, op?: AccessOp, path?: string, scope: AccessScope = 'file'): string | undefined {
  if (!isAccessCode(err)) return undefined;
  const e = err as FsError;
  const where = path ?? e.path;
  if (typeof where !== 'string') return undefined;
  const verb = op ?? SYSCALL_OPS[e.syscall ?? ''] ?? 'use';
  const code = e.code!;
  return `cannot ${verb} ${where}: ${code} (${CAUSES[code]}); ${advice(code, where, scope)}`;
}

/**
 * `err` as an AccessError when it is a permission, space or missing-parent
 * problem with `path`; otherwise `err` itself, unchanged. For `throw
 * accessError(err, 'write', file, 'state_dir')` in a catch block.
 */
export function accessError(err: unknown, op: AccessOp, path: string, scope: AccessScope = 'state_dir'): unknown {
  if (err instanceof AccessError) return err;
  const message = describeAccess(err, op, path, scope);
  return message === undefined ? err : new AccessError(message, path, (err as FsError).code!);
}
