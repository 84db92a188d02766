/*
 * `sar export`: one .tar.gz answering a subject access request (GDPR Art. 15).
 *
 * Layout (every file mode 0600 in the archive):
 *   README.txt            what the archive holds, when and by whom it was made
 *   messages.json         per held message: id, time, size, verdict, rules, reasons, findings
 *                         (rule, detector, count, MIME part, offset; never the matched text)
 *   messages/<id>.eml     each held message, decrypted, byte for byte as received
 *   events.json           the audit events naming the subject, oldest first; other
 *                         people's pseudonyms replaced with "[other]"
 *
 * All or nothing: the archive is written to a temp file (0600) beside the
 * target, and only moved into place once every message decrypted and
 * verified (GCM tag); if the `export` audit event then cannot be written,
 * the archive is removed again. A corrupt entry, a full disk or any other
 * error leaves no file at the target. Without `force` an existing target is
 * never replaced (link(2), which fails if it exists).
 * Memory: messages stream through tar and gzip in the store's read chunks.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import type { AuditLog } from '../audit/log';
import type { QuarantineStore } from '../quarantine/store';
import { eventsForSubject, type SubjectData } from './find';
import { formatDuration } from './format';
import { SUBJECT_FIELD_LABELS } from './subjects';
import type { MvCode } from '../errors';
import { exportTempName } from '../state-layout';

export class SarError extends Error {
  readonly code: MvCode = 'MV_SAR';
}

export interface ExportOptions {
  store: QuarantineStore;
  audit: AuditLog;
  data: SubjectData;
  out: string;
  force: boolean;
  /** Audit actor ('os:<user>' or 'token:<name>'). */
  actor: string;
  now: Date;
  /** mailveil version, for README.txt. */
  version: string;
  /** quarantine.retention in ms, if configured. */
  retentionMs?: number;
}

export interface ExportResult {
  file: string;
  messages: number;
  events: number;
  /** Bytes of the archive file. */
  bytes: number;
}

function cannotWrite(out: string, err: NodeJS.ErrnoException): Error {
  // File-system trouble is the operator's to fix (a missing directory, permissions, a full disk).
  if (err.code && err.syscall) return new SarError(`cannot write ${out}: ${err.code}; no archive was written`);
  return err;
}

function alreadyExists(out: string): SarError {
  return new SarError(`${out} already exists (use --force to replace it)`);
}

const README_WIDTH = 76;

/** `text` wrapped at README_WIDTH, every line after the first indented by `indent` spaces; the first starts with `lead`. */
function wrap(lead: string, indent: number, text: string): string[] {
  const lines: string[] = [];
  let line = lead.padEnd(indent);
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > README_WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += (empty ? '' : ' ') + word;
    empty = false;
  }
  lines.push(line);
  return lines;
}

export function readmeText(o: { data: SubjectData; actor: string; now: Date; version: string; retentionMs?: number }): string {
  const { data } = o;
  const retention =
    o.retentionMs !== undefined
      ? `at most ${formatDuration(o.retentionMs)} after it was received (quarantine.retention), unless an administrator releases or deletes it sooner`
      : 'until an administrator releases, deletes or purges it';
  const n = data.messages.length;
  const e = data.events.length;
  return [
    'Subject access export (GDPR Art. 15)',
    '====================================',
    '',
    `Made at:    ${o.now.toISOString()}`,
    `Made by:    ${o.actor}, with mailveil ${o.version} ("mailveil sar export")`,
    `Reference:  ${data.subject}`,
    ...wrap(
      '',
      12,
      'A keyed pseudonym of the e-mail address searched for. The address itself is not recorded by this export. Every other address of the same person is a separate search.',
    ),
    '',
    'What this archive holds',
    '-----------------------',
    ...wrap(
      'messages/<id>.eml',
      19,
      `${n} e-mail ${n === 1 ? 'message' : 'messages'} held in quarantine by the mail filter that this address sent, received, or is named in (envelope sender or recipient, or the ${SUBJECT_FIELD_LABELS.join(', ')} header fields). Each is the complete original message exactly as it was received (decrypted and integrity-checked).`,
    ),
    ...wrap(
      'messages.json',
      19,
      'For each message: when it was received, its size, the decision taken (verdict), the data-protection rules that matched and where in the message they matched. Never the matched text.',
    ),
    ...wrap(
      'events.json',
      19,
      `${e} audit-log ${e === 1 ? 'event' : 'events'} concerning this address: the filter's decisions and administrators' actions on these messages, oldest first. Pseudonyms of other people are replaced with "[other]".`,
    ),
    '',
    'Why these messages were kept',
    '----------------------------',
    ...wrap(
      '',
      0,
      'The mail filter inspects e-mail for personal data and credentials that should not travel by e-mail (data loss prevention). ' +
        'A message that matched a rule with the action "quarantine", or that could not be inspected completely, is held encrypted (AES-256-GCM) instead of being delivered. ' +
        `It is kept ${retention}.`,
    ),
    '',
    'What this archive does not hold',
    '-------------------------------',
    '- messages that were delivered: the filter does not keep copies of them;',
    '- operational log lines, which only carry pseudonyms;',
    '- data held by other systems (mail servers, mailboxes, backups).',
    '',
  ].join('\n');
}

type Pack = ReturnType<typeof tar.pack>;

function addBuffer(pack: Pack, name: string, data: Buffer, mtime: Date): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ name, size: data.length, mode: 0o600, mtime }, data, (err) => (err ? reject(err) : resolve()));
  });
}

/** One entry from a stream; the entry's callback reports its end (or "Size mismatch", or the pack's failure). */
async function addStream(pack: Pack, name: string, size: number, mtime: Date, source: AsyncIterable<Buffer>): Promise<void> {
  let settle!: (err?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  done.catch(() => undefined); // awaited below; a failure before that is rethrown from the loop
  const entry = pack.entry({ name, size, mode: 0o600, mtime }, (err) => settle(err));
  entry.on('error', () => undefined); // reported through the callback
  try {
    for await (const chunk of source) {
      if (!entry.write(chunk)) await Promise.race([once(entry, 'drain'), done]);
    }
  } catch (err) {
    entry.destroy(err as Error);
    throw err;
  }
  (entry as unknown as { end(): void }).end(); // a streamx Writable: end() takes no chunk here
  await done;
}

/** Writes the archive to `tmp` (created 0600, must not exist) and fsyncs it. */
async function writeArchive(o: ExportOptions, tmp: string): Promise<void> {
  const { data, store, now } = o;
  const pack = tar.pack();
  pack.on('error', () => undefined); // reported through `written` and the entry callbacks
  const file = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
  const written = pipeline(
    (async function* () {
      for await (const chunk of pack) yield chunk as Buffer;
    })(),
    createGzip(),
    file,
  );
  // Surface a write error (disk full) at once instead of after all entries.
  let failed: unknown;
  written.catch((err) => {
    failed = err;
    pack.destroy(err);
  });
  try {
    await addBuffer(pack, 'README.txt', Buffer.from(readmeText(o), 'utf8'), now);
    await addBuffer(pack, 'messages.json', Buffer.from(JSON.stringify(data.messages, null, 2) + '\n', 'utf8'), now);
    for (const m of data.messages) {
      try {
        await addStream(pack, `messages/${m.id}.eml`, m.size, new Date(m.receivedAt), store.readMessage(m.id));
      } catch (err) {
        if (failed) throw failed;
        throw new SarError(`quarantine entry ${m.id} cannot be exported: ${(err as Error).message}; no archive was written`);
      }
    }
    const events = eventsForSubject(data.events, data.subject);
    await addBuffer(pack, 'events.json', Buffer.from(JSON.stringify(events, null, 2) + '\n', 'utf8'), now);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  await written;
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes the archive and records an `export` audit event (counts, and the
 * subject's token so the export is part of their own trail; never the
 * address). All or nothing, see the file comment.
 */
export async function exportSubject(o: ExportOptions): Promise<ExportResult> {
  const out = resolve(o.out);
  const existing = await stat(out).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw cannotWrite(out, err);
  });
  if (existing?.isDirectory()) throw new SarError(`${o.out} is a directory; --out names the archive file to write`);
  if (existing && !o.force) throw alreadyExists(o.out);
  const tmp = join(dirname(out), exportTempName(basename(out), randomBytes(6).toString('hex')));
  try {
    try {
      await writeArchive(o, tmp);
    } catch (err) {
      throw err instanceof SarError ? err : cannotWrite(o.out, err as NodeJS.ErrnoException);
    }
    const bytes = (await stat(tmp)).size;
    if (o.force) await rename(tmp, out);
    else {
      try {
        await link(tmp, out);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(o.out);
        throw cannotWrite(o.out, err as NodeJS.ErrnoException);
      }
      await unlink(tmp);
    }
    try {
      await o.audit.append({
        event: 'export',
        actor: o.actor,
        subjects: [o.data.subject],
        details: { messages: o.data.messages.length, events: o.data.events.length, bytes },
      });
    } catch (err) {
      // An archive that was not audited must not exist.
      await unlink(out).catch(() => undefined);
      throw err;
    }
    return { file: o.out, messages: o.data.messages.length, events: o.data.events.length, bytes };
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
