/*
 * TLS-RPT counters in state_dir (RFC 8460 4.1: one report per policy domain
 * per UTC day). Delivery code calls record() once per outbound SMTP session;
 * `mailveil tlsrpt report` calls readDay().
 *
 *   state_dir/tlsrpt/<YYYY-MM-DD>/counts-<16 hex>.json
 *
 * Many sessions a second: record() only counts in memory (counts.ts). A
 * timer (every flushIntervalMs, default 30 s, unref'd) and close() write the
 * days that changed, each as a whole file through storage/durable.ts (temp,
 * fsync, rename, fsync dir). A reader sees a writer's previous flush or its
 * latest, never a torn file. A crash (or kill -9) loses at most the sessions
 * of the last flush interval, per process: these are statistics. close(),
 * which serve's drain should call, loses nothing.
 *
 * No locks: every writer has files of its own. The 16 hex of a file name are
 * random per (process, day in memory), so worker processes, a restarted
 * process and a day let go from memory and counted again all write separate
 * files; readDay() merges every file of the day. A file that does not
 * check out is skipped with a warning and never stops a report.
 *
 * Memory: today and yesterday stay in memory; an older day is let go once
 * it is flushed (a late record for it starts a new file). Each day is
 * bounded by counts.ts's limits.
 *
 * Retention: purge() removes day folders older than RETENTION_DAYS (the
 * layout's names only: counts files, the submitter's sent records and lock,
 * and temp files, then the folder if it is empty), and temp files over an hour old that a crash left in younger
 * days. serve calls it from its hourly timer.
 */
import { randomBytes } from 'node:crypto';
import { lstat, open, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ensurePrivateDir, fsyncDir, writeFileDurably } from '../storage/durable';
import { TEMP_NAME_RE, TLSRPT_COUNTS_RE, TLSRPT_DAY_RE, TLSRPT_SEND_LOCK, TLSRPT_SENT_RE, tlsrptCountsName, tlsrptDayDir, tlsrptDir } from '../state-layout';
import { DayCounts, normalise, parseCounts, parseDay, utcDay } from './counts';
import type { TlsRptRecord } from './types';

export const DEFAULT_FLUSH_INTERVAL_MS = 30_000;
export const RETENTION_DAYS = 30;
/** A counts file is at most a few MiB (counts.ts limits); bigger is not ours. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Files merged for one day: workers × restarts; more is skipped with a warning. */
export const MAX_FILES_PER_DAY = 10_000;
/** A temp file older than this in a live day folder is a crashed write. */
const STALE_TEMP_MS = 3_600_000;
const DAY_MS = 86_400_000;

export interface TlsRptStoreOptions {
  now?: () => Date;
  flushIntervalMs?: number;
  /** A timer flush that failed (it is retried at the next one). Default: process.emitWarning. */
  onError?: (err: unknown) => void;
}

interface MemDay {
  counts: DayCounts;
  file: string;
  /** Bumped by every record(); compared with the version last written. */
  version: number;
  written: number;
}

export class TlsRptStore {
  readonly dir: string;
  private readonly now: () => Date;
  private readonly interval: number;
  private readonly onError: (err: unknown) => void;
  private readonly days = new Map<string, MemDay>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** Sessions recorded after close(), not counted. */
  lateRecords = 0;

  constructor(readonly stateDir: string, opts: TlsRptStoreOptions = {}) {
    this.dir = tlsrptDir(stateDir);
    this.now = opts.now ?? (() => new Date());
    this.interval = opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.onError = opts.onError ?? ((err) => process.emitWarning(`tlsrpt: flush failed: ${describe(err)}`));
  }

  /**
   * Counts one session. Synchronous and cheap; never touches the disk.
   * Throws a TypeError for invalid input (a bug in the caller), never for
   * I/O. After close() a session is not counted (lateRecords, onError once).
   */
  record(r: TlsRptRecord): void {
    const n = normalise(r, this.now());
    if (this.closed) {
      // A delivery that finished after the drain closed the store: not counted,
      // but never an error on the delivery path. Reported once.
      if (this.lateRecords++ === 0) this.onError(new Error('tlsrpt: record() after close(): not counted'));
      return;
    }
    let d = this.days.get(n.day);
    if (!d) {
      d = { counts: new DayCounts(n.day), file: tlsrptCountsName(randomBytes(8).toString('hex')), version: 0, written: 0 };
      this.days.set(n.day, d);
    }
    d.counts.add(n.domain, n.policy, n.failure);
    d.version++;
    if (!this.timer && this.interval > 0) {
      this.timer = setInterval(() => this.flush().catch(this.onError), this.interval);
      this.timer.unref();
    }
  }

  /** Writes every day that changed since its last write; one flush at a time. */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.flushOnce());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer and writes what is left; later record() calls are not counted. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Removes days older than `keepDays` (and stale temp files); returns the days removed. */
  purge(keepDays = RETENTION_DAYS): Promise<string[]> {
    return purgeDays(this.stateDir, keepDays, this.now());
  }

  private async flushOnce(): Promise<void> {
    for (const d of [...this.days.values()]) {
      if (d.version === d.written) continue;
      const version = d.version;
      // Serialised now, so sessions counted during the write mark the day dirty again.
      const text = JSON.stringify(d.counts) + '\n';
      const dayDir = tlsrptDayDir(this.stateDir, d.counts.day);
      await ensurePrivateDir(this.dir);
      await ensurePrivateDir(dayDir);
      await writeFileDurably(dayDir, d.file, text);
      d.written = version;
    }
    const yesterday = utcDay(new Date(this.now().getTime() - DAY_MS));
    for (const [day, d] of this.days) if (day < yesterday && d.version === d.written) this.days.delete(day);
  }
}

export interface DayRead {
  counts: DayCounts;
  /** Files read and merged. */
  files: number;
  /** One line per file skipped, naming it and why. */
  warnings: string[];
}

/** Every writer's counts for `day`, merged. A missing folder is a day without data. */
export async function readDay(stateDir: string, day: string): Promise<DayRead> {
  if (parseDay(day) === undefined) throw new TypeError(`tlsrpt: invalid day ${JSON.stringify(day)}`);
  const dir = tlsrptDayDir(stateDir, day);
  const counts = new DayCounts(day);
  const warnings: string[] = [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => TLSRPT_COUNTS_RE.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { counts, files: 0, warnings };
    throw err;
  }
  if (names.length > MAX_FILES_PER_DAY) {
    warnings.push(`${dir}: ${names.length} counts files, only the first ${MAX_FILES_PER_DAY} are read`);
    names = names.slice(0, MAX_FILES_PER_DAY);
  }
  let files = 0;
  for (const name of names) {
    const path = join(dir, name);
    const r = await readCountsFile(path, day);
    if (typeof r === 'string') {
      warnings.push(`${path}: ${r}; skipped`);
      continue;
    }
    counts.merge(r);
    files++;
  }
  return { counts, files, warnings };
}

async function readCountsFile(path: string, day: string): Promise<DayCounts | string> {
  let text: string;
  try {
    // O_NOFOLLOW-like: a symlink is never ours.
    if (!(await lstat(path)).isFile()) return 'not a regular file';
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (st.size > MAX_FILE_BYTES) return `over ${MAX_FILE_BYTES} bytes`;
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return describe(err);
  }
  return parseCounts(text, day);
}

/**
 * Removes day folders before `now - keepDays` and older temp files in the
 * others. Only the layout's names are removed, only regular files, never
 * through a symlink; a folder that still holds anything else stays.
 */
export async function purgeDays(stateDir: string, keepDays: number, now: Date): Promise<string[]> {
  if (!Number.isInteger(keepDays) || keepDays < 1) throw new TypeError(`tlsrpt: keepDays must be a whole number of days >= 1, not ${keepDays}`);
  const top = tlsrptDir(stateDir);
  let days: string[];
  try {
    days = (await readdir(top)).filter((n) => TLSRPT_DAY_RE.test(n) && parseDay(n) !== undefined).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const oldest = utcDay(new Date(now.getTime() - keepDays * DAY_MS));
  const removed: string[] = [];
  for (const day of days) {
    const dir = join(top, day);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const expired = day < oldest;
    let removedHere = 0;
    for (const name of await readdir(dir)) {
      const ours = (expired && (TLSRPT_COUNTS_RE.test(name) || TLSRPT_SENT_RE.test(name) || name === TLSRPT_SEND_LOCK)) || TEMP_NAME_RE.test(name);
      if (!ours) continue;
      const f = await lstat(join(dir, name)).catch(() => undefined);
      if (!f?.isFile()) continue;
      if (!expired && now.getTime() - f.mtimeMs < STALE_TEMP_MS) continue;
      await unlink(join(dir, name)).catch(() => undefined);
      removedHere++;
    }
    if (removedHere > 0) await fsyncDir(dir);
    if (expired) {
      try {
        await rmdir(dir);
        removed.push(day);
      } catch {
        // Not empty: it holds a name that is not ours; leave it.
      }
    }
  }
  if (removed.length > 0) await fsyncDir(top);
  return removed;
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? `${e.code} (${e.message})` : String(e?.message ?? err);
}
