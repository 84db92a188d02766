/*
 * What the submitter did with one policy domain's report of one UTC day,
 * kept beside that day's counters so a restart never sends a report twice
 * and a failed target is retried on the next run:
 *
 *   state_dir/tlsrpt/<day>/sent-<16 hex of sha256(domain)>.json
 *   state_dir/tlsrpt/<day>/.send.lock     one submission of the day at a time
 *
 * A record says either that the domain has no usable TLS-RPT record
 * (nothing to send, not asked again), or, per rua target, its state:
 *   sent       the next hop took the message (250) / the endpoint said 2xx;
 *   failed     a temporary failure: tried again on a later run;
 *   given-up   a permanent refusal (5xx, HTTP 4xx) or MAX_ATTEMPTS reached.
 * A target is named by a hash of its URI, its scheme and its domain or
 * host: never the local part of a mailto: address (the file is as safe to
 * show as a log line).
 *
 * Written whole after each target (storage/durable.ts). A crash between a
 * delivery and its write can send that one target again on the next run:
 * at least once, never "maybe never".
 *
 * The lock is an O_EXCL file holding the pid; one left by a process that is
 * gone is taken over (pids are checked on this host only, as for a
 * quarantine release).
 */
import { createHash } from 'node:crypto';
import { lstat, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, writeFileDurably } from '../storage/durable';
import { TLSRPT_SEND_LOCK, tlsrptDayDir, tlsrptDir, tlsrptSentName } from '../state-layout';

const SENT_KIND = 'mailveil-tlsrpt-sent';
const SENT_FORMAT = 1;
/** A target is tried at most this often (a crash loop restarts the submitter, and each start runs once). */
export const MAX_ATTEMPTS = 5;
const MAX_FILE_BYTES = 64 * 1024;

export type TargetState = 'sent' | 'failed' | 'given-up';

export interface TargetRecord {
  /** 16 hex of sha256(rua URI). */
  id: string;
  target: 'mailto' | 'https';
  /** The mailto: address's domain, or the https: URL's host. */
  host: string;
  state: TargetState;
  attempts: number;
  /** ISO time of the last attempt. */
  last: string;
  /** The last answer: an SMTP reply code, `HTTP <status>`, or a failure kind. Never reply text. */
  result: string;
}

export interface SentRecord {
  kind: typeof SENT_KIND;
  format: typeof SENT_FORMAT;
  day: string;
  domain: string;
  report_id: string;
  /** `none`: the domain publishes no usable TLS-RPT record; nothing is sent for this day. */
  rua: 'found' | 'none';
  none_reason?: string;
  targets: TargetRecord[];
}

export function newSentRecord(day: string, domain: string, reportId: string): SentRecord {
  return { kind: SENT_KIND, format: SENT_FORMAT, day, domain, report_id: reportId, rua: 'found', targets: [] };
}

export function domainHash(domain: string): string {
  return createHash('sha256').update(domain).digest('hex').slice(0, 16);
}

export function targetId(uri: string): string {
  return createHash('sha256').update(uri).digest('hex').slice(0, 16);
}

/** True when nothing is left to do for this domain and day. */
export function finished(r: SentRecord): boolean {
  return r.rua === 'none' || (r.targets.length > 0 && r.targets.every((t) => t.state !== 'failed'));
}

function isSentRecord(v: unknown, day: string, domain: string): v is SentRecord {
  const r = v as SentRecord;
  return (
    typeof r === 'object' && r !== null && r.kind === SENT_KIND && r.format === SENT_FORMAT && r.day === day && r.domain === domain &&
    typeof r.report_id === 'string' && (r.rua === 'found' || r.rua === 'none') && Array.isArray(r.targets) &&
    r.targets.every((t) => typeof t?.id === 'string' && ['sent', 'failed', 'given-up'].includes(t.state) && Number.isSafeInteger(t.attempts))
  );
}

/**
 * The record of `domain` on `day`: undefined when there is none; a string
 * (why) when the file is there but is not a record, which the submitter
 * reports and treats as none.
 */
export async function readSent(stateDir: string, day: string, domain: string): Promise<SentRecord | undefined | string> {
  const path = join(tlsrptDayDir(stateDir, day), tlsrptSentName(domainHash(domain)));
  let text: string;
  try {
    const st = await lstat(path);
    if (!st.isFile()) return `${path}: not a regular file`;
    if (st.size > MAX_FILE_BYTES) return `${path}: over ${MAX_FILE_BYTES} bytes`;
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `${path}: ${(err as Error).message}`;
  }
  try {
    const v: unknown = JSON.parse(text);
    return isSentRecord(v, day, domain) ? v : `${path}: not a sent record of ${domain} on ${day}`;
  } catch {
    return `${path}: not JSON`;
  }
}

export async function writeSent(stateDir: string, r: SentRecord): Promise<void> {
  const dir = tlsrptDayDir(stateDir, r.day);
  await ensurePrivateDir(tlsrptDir(stateDir));
  await ensurePrivateDir(dir);
  await writeFileDurably(dir, tlsrptSentName(domainHash(r.domain)), JSON.stringify(r) + '\n');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the day's submission lock: a release function, or undefined when a live process holds it. */
export async function lockDay(stateDir: string, day: string): Promise<(() => Promise<void>) | undefined> {
  const dir = tlsrptDayDir(stateDir, day);
  await ensurePrivateDir(tlsrptDir(stateDir));
  await ensurePrivateDir(dir);
  const file = join(dir, TLSRPT_SEND_LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => unlink(file).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = (await readFile(file, 'utf8').catch(() => '')).trim();
    const pid = Number(text);
    if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) return undefined;
    // Empty: another process made it a moment ago and is writing its pid.
    const st = await lstat(file).catch(() => undefined);
    if (text === '' && st && Date.now() - st.mtimeMs < 60_000) return undefined;
    await unlink(file).catch(() => undefined); // left by a process that is gone
  }
  return undefined;
}
