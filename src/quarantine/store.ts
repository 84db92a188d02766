/*
 * The quarantine store: one encrypted file per held message under
 * <state_dir>/quarantine/ (format in entry-format.ts, keys in keys.ts).
 *
 * Durability (guarantee 1): put() resolves only after the entry was written
 * to `.tmp-<id>-<random>` in the same directory, fsync'd, renamed to
 * `<id>.mvq`, and the directory fsync'd. A crash at any point leaves either
 * no `<id>.mvq` or a complete one; temp files are never listed, and
 * recover() (called once at start, before anything writes) removes them.
 *
 * Memory (guarantee 3): the message is encrypted chunk by chunk as it
 * arrives and read back in READ_CHUNK_BYTES slices; only metadata (capped at
 * MAX_META_BYTES) is ever whole in memory.
 *
 * Reading a message: GCM authenticates only at the end. readMessage()
 * withholds the last decrypted chunk until the tag checked out, so a consumer
 * never sees the end of a tampered message, but it may already have seen
 * earlier chunks; it must treat a throw (MV_QUARANTINE_CORRUPT) as "entry
 * corrupt" and discard what it got. A release that streams to the next hop
 * therefore cannot send the final dot of a tampered message (guarantee 2).
 *
 * Limits: one writer per id (ids are unique per message); recover() must not
 * run while another process writes to the same state dir, as it would remove
 * that process's in-flight temp file (its put() then fails, a 4xx, no loss).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { lstat, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { aad, entryKey, layout, MAX_HEADER_BYTES, newHeader, parseHeader, TAG_BYTES, type EntryHeader } from './entry-format';
import { ensurePrivateDir, fsyncDir, tempName } from '../storage/durable';
import { ENTRY_NAME_RE, ENTRY_SUFFIX, keysDir, quarantineDir, TEMP_NAME_RE, TEMP_PREFIX } from '../state-layout';
import { QuarantineError, isQuarantineError } from './errors';
import { KeyRing } from './keys';
import { checkEntryId, checkMeta, summarize, type QuarantineMeta, type QuarantineSummary } from './meta';

export type { QuarantineMeta, QuarantineSummary, QuarantineEntrySummary, QuarantineUnreadableEntry, QuarantineFinding, QuarantineEnvelope, SmtpParams } from './meta';

export { quarantineDir } from '../state-layout';
/** Ciphertext is gathered to this size before a write: few syscalls even for 1-byte input chunks. */
const WRITE_BATCH_BYTES = 256 * 1024;
const READ_CHUNK_BYTES = 64 * 1024;

interface OpenEntry {
  fh: FileHandle;
  header: EntryHeader;
  fileSize: number;
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}

async function readExactly(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) throw new QuarantineError('MV_QUARANTINE_CORRUPT', 'corrupt entry: truncated');
    off += bytesRead;
  }
  return buf;
}

function notFound(id: string): QuarantineError {
  return new QuarantineError('MV_QUARANTINE_NOT_FOUND', `no quarantine entry ${id}`);
}

function authFailed(what: string): QuarantineError {
  return new QuarantineError('MV_QUARANTINE_CORRUPT', `corrupt entry: ${what} failed authentication (tampered, truncated or wrong key)`);
}

export class QuarantineStore {
  readonly dir: string;
  private readonly keys: KeyRing;
  /** The clock, for retention (retention.ts) and tests; put() takes receivedAt from the caller. */
  readonly now: () => Date;

  constructor(
    readonly stateDir: string,
    opts: { now?: () => Date } = {},
  ) {
    this.dir = quarantineDir(stateDir);
    this.keys = new KeyRing(stateDir);
    this.now = opts.now ?? (() => new Date());
  }

  /** Stores the original message durably and encrypted; resolves only after: write to a temp file, fsync file, rename into place, fsync the directory. */
  async put(meta: QuarantineMeta, message: AsyncIterable<Buffer>): Promise<void> {
    const m = checkMeta(meta, 'put');
    const final = this.entryPath(m.id);
    await ensurePrivateDir(this.dir);
    if (await exists(final)) throw new QuarantineError('MV_QUARANTINE_EXISTS', `quarantine entry ${m.id} already exists`);
    const { id: keyId, key } = await this.keys.current();
    const json = Buffer.from(JSON.stringify(m), 'utf8');
    const header = newHeader(keyId, json.length);
    const ek = entryKey(key, header.salt);

    const tmp = join(this.dir, tempName(m.id));
    const fh = await open(tmp, 'wx', 0o600);
    try {
      const mc = createCipheriv('aes-256-gcm', ek, header.metaIv);
      mc.setAAD(aad('meta', m.id, header));
      const metaCt = Buffer.concat([mc.update(json), mc.final()]);
      await writeFully(fh, Buffer.concat([header.raw, metaCt, mc.getAuthTag()]));

      const c = createCipheriv('aes-256-gcm', ek, header.messageIv);
      c.setAAD(aad('message', m.id, header));
      let size = 0;
      let batch: Buffer[] = [];
      let batched = 0;
      for await (const chunk of message) {
        if (!Buffer.isBuffer(chunk)) throw new QuarantineError('MV_QUARANTINE_INVALID', 'quarantine message chunks must be Buffers');
        size += chunk.length;
        // Checked as bytes arrive, so a runaway source stops at meta.size instead of filling the disk.
        if (size > m.size) throw new QuarantineError('MV_QUARANTINE_INVALID', `quarantine message is longer than meta.size (${m.size})`);
        const ct = c.update(chunk);
        batch.push(ct);
        batched += ct.length;
        if (batched >= WRITE_BATCH_BYTES) {
          await writeFully(fh, Buffer.concat(batch, batched));
          batch = [];
          batched = 0;
        }
      }
      if (size !== m.size) throw new QuarantineError('MV_QUARANTINE_INVALID', `quarantine message is ${size} bytes, meta.size says ${m.size}`);
      batch.push(c.final(), c.getAuthTag());
      await writeFully(fh, Buffer.concat(batch));
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    try {
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(this.dir);
  }

  /** Newest first (by receivedAt). Decrypts metadata only; an unreadable entry is listed with `error` set. */
  async list(): Promise<QuarantineSummary[]> {
    const out: QuarantineSummary[] = [];
    for (const id of await this.ids()) {
      const s = await this.summary(id);
      if (s) out.push(s);
    }
    return out.sort((a, b) => (a.receivedAt === b.receivedAt ? (a.id < b.id ? 1 : -1) : Date.parse(b.receivedAt) - Date.parse(a.receivedAt)));
  }

  /** Entries on disk, readable or not, without opening any. */
  async count(): Promise<number> {
    return (await this.ids()).length;
  }

  async readMeta(id: string): Promise<QuarantineMeta> {
    return (await this.readMetaAndKey(id)).meta;
  }

  /**
   * The original message, streamed and decrypted. Throws MV_QUARANTINE_CORRUPT
   * before yielding the last chunk if the tag does not verify; earlier chunks
   * may already have been yielded (see the file comment). Lazy: nothing is
   * opened, and no error (not even NOT_FOUND) is raised, until iteration starts.
   */
  async *readMessage(id: string): AsyncIterable<Buffer> {
    const { fh, header, fileSize } = await this.openEntry(id);
    try {
      const l = layout(header, fileSize);
      const key = entryKey(await this.keys.get(header.keyId), header.salt);
      const d = createDecipheriv('aes-256-gcm', key, header.messageIv);
      d.setAAD(aad('message', id, header));
      d.setAuthTag(await readExactly(fh, TAG_BYTES, l.messageEnd));
      let held: Buffer | undefined;
      for (let pos = l.messageStart; pos < l.messageEnd; ) {
        const ct = await readExactly(fh, Math.min(READ_CHUNK_BYTES, l.messageEnd - pos), pos);
        pos += ct.length;
        const plain = d.update(ct);
        if (held?.length) yield held;
        held = plain;
      }
      let last: Buffer;
      try {
        last = d.final();
      } catch {
        throw authFailed('message');
      }
      if (held?.length) yield held;
      if (last.length) yield last;
    } finally {
      await fh.close();
    }
  }

  async delete(id: string): Promise<void> {
    const file = this.entryPath(id);
    try {
      await unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(id);
      throw err;
    }
    await fsyncDir(this.dir);
  }

  /** The key id in the plaintext header of an entry (no decryption); NOT_FOUND / CORRUPT as readMeta. */
  async keyIdOf(id: string): Promise<string> {
    const { fh, header } = await this.openEntry(id);
    await fh.close();
    return header.keyId;
  }

  /**
   * Every key id an entry names, including writes in progress (temp files
   * whose header is already on disk): what a key cleanup must keep.
   */
  async keyIdsInUse(): Promise<Set<string>> {
    const used = new Set<string>();
    for (const name of await readdirOrEmpty(this.dir)) {
      if (!ENTRY_NAME_RE.test(name) && !name.startsWith(TEMP_PREFIX)) continue;
      let fh: FileHandle;
      try {
        fh = await open(join(this.dir, name), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      try {
        const size = (await fh.stat()).size;
        const head = Buffer.alloc(Math.min(MAX_HEADER_BYTES, size));
        await fh.read(head, 0, head.length, 0);
        used.add(parseHeader(head).keyId);
      } catch {
        // No header yet (a write just started) or a corrupt one: nothing to keep for it.
      } finally {
        await fh.close();
      }
    }
    return used;
  }

  /**
   * Removes leftovers of interrupted writes (temp files) — call at start.
   * Returns how many. Only regular files named exactly as tempName() names
   * them are removed; anything else someone put there is not ours.
   */
  async recover(): Promise<number> {
    let n = 0;
    for (const dir of [this.dir, keysDir(this.stateDir)]) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!TEMP_NAME_RE.test(name)) continue;
        const file = join(dir, name);
        try {
          if (!(await lstat(file)).isFile()) continue;
          await unlink(file);
          n++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
    return n;
  }

  private entryPath(id: string): string {
    return join(this.dir, checkEntryId(id) + ENTRY_SUFFIX);
  }

  private async ids(): Promise<string[]> {
    return (await readdirOrEmpty(this.dir)).flatMap((n) => ENTRY_NAME_RE.exec(n)?.[1] ?? []);
  }

  private async openEntry(id: string): Promise<OpenEntry> {
    let fh: FileHandle;
    try {
      fh = await open(this.entryPath(id), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(id);
      throw err;
    }
    try {
      const fileSize = (await fh.stat()).size;
      const head = await readExactly(fh, Math.min(MAX_HEADER_BYTES, fileSize), 0);
      return { fh, header: parseHeader(head), fileSize };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private async readMetaAndKey(id: string): Promise<{ meta: QuarantineMeta; keyId: string }> {
    const { fh, header, fileSize } = await this.openEntry(id);
    try {
      const l = layout(header, fileSize);
      const sealed = await readExactly(fh, header.metaLength + TAG_BYTES, l.metaStart);
      const key = entryKey(await this.keys.get(header.keyId), header.salt);
      const d = createDecipheriv('aes-256-gcm', key, header.metaIv);
      d.setAAD(aad('meta', id, header));
      d.setAuthTag(sealed.subarray(header.metaLength));
      let json: Buffer;
      try {
        json = Buffer.concat([d.update(sealed.subarray(0, header.metaLength)), d.final()]);
      } catch {
        throw authFailed('metadata');
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(json.toString('utf8'));
      } catch {
        throw new QuarantineError('MV_QUARANTINE_CORRUPT', 'corrupt entry: metadata is not JSON');
      }
      const meta = checkMeta(parsed, 'read');
      // The AAD already binds the id; this catches a writer that stored the wrong one.
      if (meta.id !== id) throw new QuarantineError('MV_QUARANTINE_CORRUPT', `corrupt entry: metadata names id ${meta.id}`);
      return { meta, keyId: header.keyId };
    } finally {
      await fh.close();
    }
  }

  /** The summary of one entry; undefined if it vanished meanwhile (a concurrent delete). */
  private async summary(id: string): Promise<QuarantineSummary | undefined> {
    try {
      const { meta, keyId } = await this.readMetaAndKey(id);
      return summarize(meta, keyId);
    } catch (err) {
      if (isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) return undefined;
      const st = await stat(this.entryPath(id)).catch(() => undefined);
      if (!st) return undefined;
      return {
        id,
        error: isQuarantineError(err) ? err.message : `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${(err as Error).message}`,
        receivedAt: st.mtime.toISOString(),
        fileSize: st.size,
        keyId: await this.headerKeyId(id),
      };
    }
  }

  private async headerKeyId(id: string): Promise<string | undefined> {
    try {
      return await this.keyIdOf(id);
    } catch {
      return undefined;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
