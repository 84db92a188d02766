/*
 * The audit log: append-only JSON lines, one file per UTC day,
 * <state_dir>/audit/audit-YYYY-MM-DD.jsonl (dir 0700, files 0600).
 *
 * What an event holds: time, event name, actor ('smtp', 'os:<user>' or
 * 'token:<name>'), the message / quarantine id, keyed pseudonyms of the people
 * involved ("subjects") and details (counts, rule ids, verdicts, reply
 * classes). Never an address or a matched value (guarantee 6): append()
 * refuses any string that looks like an address, so a caller bug fails loudly
 * instead of writing personal data to disk in clear.
 *
 * Durability:
 *  - append() writes its line with a single write() on a file opened with
 *    O_APPEND, so concurrent writers (serve and a CLI command) never
 *    interleave within a line. Lines appended while a write is in progress
 *    are queued and go out together in the next write (group commit), so
 *    a busy relay pays one open/write/close per batch, not per message. Admin events (every event but 'verdict') are
 *    fsync'd before append() resolves, so a command that reports success has
 *    its audit record on disk; a new day file also has its directory fsync'd.
 *    Verdict events are not fsync'd (one per message, and the message itself
 *    is durable elsewhere); a crash may lose the last few.
 *  - eraseSubject() rewrites each day file that names the subject: temp file,
 *    fsync, rename, fsync dir (GDPR Art. 17 on the log itself).
 *  - purge() unlinks whole day files older than the retention.
 *
 * Limits: within one AuditLog, writes are serialised. Across processes, an
 * erase re-checks the day file's size just before its rename and starts over
 * if it grew, so an append from another process is not lost unless it lands
 * in the microseconds between that check and the rename; erasure is a rare
 * admin action and this window is accepted. A torn last line (crash during a
 * verdict append) is skipped by read() and kept verbatim by rewrites.
 */
import { createReadStream } from 'node:fs';
import { chmod, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensurePrivateDir, fsyncDir, tempName } from '../storage/durable';
import type { MvCode } from '../errors';
import { AUDIT_FILE_RE, auditDir, auditFileName } from '../state-layout';

export type AuditEventName = 'verdict' | 'release' | 'delete' | 'purge' | 'erase' | 'key_rotate' | 'auth_failed' | 'export';

export const AUDIT_EVENTS: readonly AuditEventName[] = ['verdict', 'release', 'delete', 'purge', 'erase', 'key_rotate', 'auth_failed', 'export'];

export interface AuditEvent {
  ts: string; // ISO time
  event: AuditEventName;
  actor: string; // 'smtp' for verdicts, else 'os:<username>' or 'token:<name>'
  id?: string; // message / quarantine id
  subjects?: string[]; // keyed pseudonyms of the people involved (never addresses)
  details?: Record<string, unknown>; // counts, rule ids, verdict, reply class... never values or addresses
}

/** What replaces an erased subject's pseudonym in every event. */
export const ERASED = '[erased]';
export { auditDir } from '../state-layout';
const DAY_MS = 86_400_000;
/** Anything shaped like local@domain: never allowed in an audit event. */
const ADDRESS_LIKE = /[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+/;
/** Lines queued while a write is in progress go out together, up to this many bytes per write. */
const MAX_BATCH_BYTES = 256 * 1024;
/** Bounds the recursion of the address check over `details`. */
const MAX_DETAILS_DEPTH = 8;

export class AuditError extends Error {
  readonly code: MvCode = 'MV_AUDIT';
}

function containsAddress(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return ADDRESS_LIKE.test(v);
  if (depth > MAX_DETAILS_DEPTH || typeof v !== 'object' || v === null) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (containsAddress(x, depth + 1)) return true;
  return false;
}

function parseLine(line: string): AuditEvent | undefined {
  if (!line) return undefined;
  try {
    const e = JSON.parse(line) as AuditEvent;
    return typeof e === 'object' && e !== null && typeof e.ts === 'string' && typeof e.event === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}

async function* lines(file: string): AsyncIterable<string> {
  const input = createReadStream(file, { encoding: 'utf8' });
  const rl = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of rl) yield line;
  } finally {
    rl.close();
    input.destroy();
  }
}

export class AuditLog {
  readonly dir: string;
  private readonly now: () => Date;
  private chain: Promise<unknown> = Promise.resolve();
  private pending: { day: string; line: Buffer; sync: boolean; resolve(): void; reject(err: unknown): void }[] = [];
  private flushQueued = false;
  private dirReady = false;
  /** Day files whose mode this instance already checked (one fstat per file, not per event). */
  private checked = new Set<string>();

  constructor(
    readonly stateDir: string,
    opts: { now?: () => Date } = {},
  ) {
    this.dir = auditDir(stateDir);
    this.now = opts.now ?? (() => new Date());
  }

  append(e: Omit<AuditEvent, 'ts'>): Promise<void> {
    const ts = this.now().toISOString();
    if (!AUDIT_EVENTS.includes(e.event)) return Promise.reject(new AuditError(`unknown audit event ${JSON.stringify(e.event)}`));
    if (typeof e.actor !== 'string' || !e.actor) return Promise.reject(new AuditError('audit event without an actor'));
    if (containsAddress([e.actor, e.id, e.subjects, e.details])) return Promise.reject(new AuditError(`audit event ${e.event} carries something shaped like an address; refused`));
    // Field by field, so an extra property a caller added never reaches disk.
    const rec: AuditEvent = { ts, event: e.event, actor: e.actor };
    if (e.id !== undefined) rec.id = e.id;
    if (e.subjects !== undefined) rec.subjects = [...e.subjects];
    if (e.details !== undefined) rec.details = e.details;
    const line = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    const sync = e.event !== 'verdict';
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ day: ts.slice(0, 10), line, sync, resolve, reject });
      if (!this.flushQueued) {
        this.flushQueued = true;
        void this.serial(() => this.flush());
      }
    });
  }

  /** Writes every queued line: one write (and at most one fsync) per day file, in order. */
  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pending.splice(0);
    for (let i = 0; i < batch.length; ) {
      let j = i + 1;
      let bytes = batch[i].line.length;
      while (j < batch.length && batch[j].day === batch[i].day && bytes + batch[j].line.length <= MAX_BATCH_BYTES) bytes += batch[j++].line.length;
      const group = batch.slice(i, j);
      try {
        await this.write(
          group[0].day,
          Buffer.concat(group.map((g) => g.line), bytes),
          group.some((g) => g.sync),
        );
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err);
      }
      i = j;
    }
  }

  /** Every event, oldest first (optionally only those naming a subject). */
  async *read(filter: { subject?: string } = {}): AsyncIterable<AuditEvent> {
    for (const { name } of await this.days()) {
      try {
        for await (const line of lines(join(this.dir, name))) {
          const e = parseLine(line);
          if (!e) continue;
          if (filter.subject !== undefined && !(Array.isArray(e.subjects) && e.subjects.includes(filter.subject))) continue;
          yield e;
        }
      } catch (err) {
        // A day purged while we were listing: it simply has no events left.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /** Replaces `subject` with an erasure marker in every event; returns how many events changed. */
  eraseSubject(subject: string): Promise<number> {
    return this.serial(async () => {
      if (!subject || subject === ERASED) return 0;
      let changed = 0;
      for (const { name } of await this.days()) changed += await this.rewriteDay(name, subject);
      return changed;
    });
  }

  /** Deletes whole days older than `maxAgeMs`; returns the number of events removed. */
  purge(maxAgeMs: number): Promise<{ files: number; events: number }> {
    return this.serial(async () => {
      const cutoff = this.now().getTime() - maxAgeMs;
      let files = 0;
      let events = 0;
      for (const { name, day } of await this.days()) {
        // A day goes only once its last millisecond is older than the cutoff.
        if (Date.parse(day + 'T00:00:00.000Z') + DAY_MS > cutoff) continue;
        const file = join(this.dir, name);
        let n = 0;
        try {
          for await (const line of lines(file)) if (line) n++;
          await unlink(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        files++;
        events += n;
      }
      if (files) await fsyncDir(this.dir);
      return { files, events };
    });
  }

  /** Day files present, oldest first. */
  async days(): Promise<{ name: string; day: string }[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .flatMap((name) => {
        const m = AUDIT_FILE_RE.exec(name);
        return m ? [{ name, day: m[1] }] : [];
      })
      .sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async write(day: string, line: Buffer, sync: boolean): Promise<void> {
    if (!this.dirReady) {
      await ensurePrivateDir(this.dir);
      this.dirReady = true;
    }
    const file = join(this.dir, auditFileName(day));
    let created = false;
    let fh;
    try {
      fh = await open(file, 'ax', 0o600);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      fh = await open(file, 'a', 0o600);
    }
    try {
      if (!created && !this.checked.has(file) && ((await fh.stat()).mode & 0o077) !== 0) await fh.chmod(0o600);
      this.checked.add(file);
      if (this.checked.size > 8) this.checked = new Set([file]);
      // One write() of the whole line: O_APPEND keeps concurrent lines whole.
      const { bytesWritten } = await fh.write(line, 0, line.length);
      if (bytesWritten !== line.length) throw new AuditError(`short write to ${file}`);
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
    if (created) await fsyncDir(this.dir);
  }

  /** Rewrites one day without `subject`; returns the events changed (0: file untouched). */
  private async rewriteDay(name: string, subject: string): Promise<number> {
    const file = join(this.dir, name);
    for (;;) {
      let before;
      try {
        before = await stat(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw err;
      }
      const tmp = join(this.dir, tempName(name));
      const out = await open(tmp, 'wx', 0o600);
      let changed = 0;
      try {
        let batch: string[] = [];
        let batched = 0;
        const flush = async () => {
          if (!batch.length) return;
          await out.write(batch.join(''));
          batch = [];
          batched = 0;
        };
        // Read only what existed at the stat: the size check below detects more.
        const input = createReadStream(file, { encoding: 'utf8', start: 0, end: Math.max(0, before.size - 1) });
        const rl = createInterface({ input, crlfDelay: Infinity });
        try {
          if (before.size > 0) {
            for await (const line of rl) {
              let text = line;
              const e = parseLine(line);
              if (e && Array.isArray(e.subjects) && e.subjects.includes(subject)) {
                e.subjects = e.subjects.map((s) => (s === subject ? ERASED : s));
                text = JSON.stringify(e);
                changed++;
              }
              batch.push(text + '\n');
              batched += text.length;
              if (batched >= 256 * 1024) await flush();
            }
          }
        } finally {
          rl.close();
          input.destroy();
        }
        await flush();
        if (changed === 0) {
          await out.close();
          await unlink(tmp);
          return 0;
        }
        await out.sync();
        await out.close();
        const now = await stat(file).catch(() => undefined);
        if (!now || now.size !== before.size || now.ino !== before.ino) {
          await unlink(tmp);
          if (!now) return 0;
          continue; // another process appended meanwhile: start over
        }
        await chmod(tmp, 0o600);
        await rename(tmp, file);
      } catch (err) {
        await out.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      await fsyncDir(this.dir);
      return changed;
    }
  }
}
