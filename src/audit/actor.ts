/*
 * Who an audit event names as its actor: 'smtp' for verdicts reached on the
 * SMTP path, 'os:<username>' for a CLI command (the OS account that ran it),
 * 'token:<name>' for the admin API (the token's name, never its secret).
 */
import { userInfo } from 'node:os';

export const SMTP_ACTOR = 'smtp';

/** The OS user running this process, as an actor; falls back to the uid when there is no passwd entry (containers). */
export function osActor(): string {
  try {
    return `os:${userInfo().username}`;
  } catch {
    return `os:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

export function tokenActor(name: string): string {
  return `token:${name}`;
}
