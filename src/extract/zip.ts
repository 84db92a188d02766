/*
 * One ZIP archive (APPNOTE.TXT 6.3) read from memory through yauzl, under
 * the limits of limits.ts. Nothing is ever written to disk.
 *
 *   - The central directory is read first (lazy entries): the entry count is
 *     checked before any entry (`entries`), and every entry counts towards
 *     maxTotalEntries across nested archives.
 *   - An entry with general purpose bit 0 set is encrypted (traditional
 *     PKWARE or AES, method 99): `encrypted`, and the other entries are read.
 *   - A compression method other than stored and deflate cannot be read:
 *     `corrupt` for that entry.
 *   - Sizes: an entry's declared size is checked before it is inflated
 *     (`expanded_size`, `ratio`), and the bytes that really come out are
 *     counted again as they come, per entry and per archive. yauzl's
 *     validateEntrySizes makes an entry that inflates to more or fewer bytes
 *     than it declares an error: `corrupt`.
 *   - A ratio hit stops the whole attachment, as amavisd-new treats an
 *     archive bomb: it is unscannable anyway, and reading its other copies
 *     would only spend the time budget.
 *   - File names are not decoded by yauzl (decodeStrings: false), so a name
 *     such as "../x" is just a path here, not an error that would hide the
 *     rest of the archive: nothing is written anywhere. UTF-8 when flag bit 11
 *     says so, else Latin-1 (close enough to CP437 for a path in a report).
 */
import { inflateRawSync } from 'node:zlib';
import * as yauzl from 'yauzl';
import { ExtractStop, type ExtractContext } from './context';

export interface ZipEntry {
  name: string;
  raw: yauzl.Entry;
}

/**
 * Entries this small (both sizes) are inflated in one synchronous call
 * instead of through a stream: opening a zlib stream per entry costs more
 * than inflating a small entry, and an archive of thousands of small files
 * must stay fast. The checks are the same: output capped at the declared
 * size, a different size is `corrupt`.
 */
const SMALL_ENTRY_BYTES = 64 * 1024;

const UTF8_NAME_FLAG = 0x800;
const ENCRYPTED_FLAG = 0x1;

function entryName(e: yauzl.Entry): string {
  const raw = e.fileName as unknown as Buffer | string;
  if (typeof raw === 'string') return raw;
  return raw.toString((e.generalPurposeBitFlag & UTF8_NAME_FLAG) !== 0 ? 'utf8' : 'latin1');
}

function openBuffer(buf: Buffer): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(
      buf,
      { lazyEntries: true, validateEntrySizes: true, autoClose: false, decodeStrings: false, strictFileNames: false },
      (err, zip) => (err !== null ? reject(err) : resolve(zip)),
    );
  });
}

function openStream(zip: yauzl.ZipFile, e: yauzl.Entry): Promise<NodeJS.ReadableStream & { destroy(): void }> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(e, (err, stream) => (err !== null ? reject(err) : resolve(stream)));
  });
}

export function isDirectory(e: ZipEntry): boolean {
  return e.name.endsWith('/');
}

export class ZipArchive {
  /** Bytes inflated from this archive's entries so far, for maxArchiveRatio. */
  private inflated = 0;

  private constructor(
    private readonly ctx: ExtractContext,
    private readonly zip: yauzl.ZipFile,
    private readonly buf: Buffer,
    readonly entries: readonly ZipEntry[],
  ) {}

  /**
   * Reads the central directory. Throws ExtractStop: `corrupt` (not a ZIP,
   * or a broken directory) and `entries` with scope 'archive', or
   * `entries` with scope 'all' once the attachment's entry budget is spent.
   */
  static async open(ctx: ExtractContext, buf: Buffer): Promise<ZipArchive> {
    let zip: yauzl.ZipFile;
    try {
      zip = await openBuffer(buf);
    } catch {
      throw new ExtractStop('corrupt', 'archive');
    }
    try {
      if (zip.entryCount > ctx.limits.maxEntries) throw new ExtractStop('entries', 'archive');
      const entries = await new Promise<ZipEntry[]>((resolve, reject) => {
        const list: ZipEntry[] = [];
        zip.on('entry', (e: yauzl.Entry) => {
          try {
            if (++ctx.totalEntries > ctx.limits.maxTotalEntries) throw new ExtractStop('entries', 'all');
            ctx.checkAlive();
            list.push({ name: entryName(e), raw: e });
            zip.readEntry();
          } catch (err) {
            reject(err);
          }
        });
        zip.on('end', () => resolve(list));
        zip.on('error', () => reject(new ExtractStop('corrupt', 'archive')));
        zip.readEntry();
      });
      return new ZipArchive(ctx, zip, buf, entries);
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  find(name: string): ZipEntry | undefined {
    return this.entries.find((e) => e.name === name);
  }

  close(): void {
    this.zip.close();
  }

  /**
   * Inflates one entry, giving its bytes chunk by chunk to `onChunk`, which
   * may throw (an XML limit) to stop. Throws ExtractStop for a limit, an
   * encrypted or unreadable entry; any other error means `corrupt`.
   */
  async read(entry: ZipEntry, onChunk: (chunk: Buffer) => void): Promise<void> {
    const { ctx } = this;
    const { limits } = ctx;
    const e = entry.raw;
    if ((e.generalPurposeBitFlag & ENCRYPTED_FLAG) !== 0) throw new ExtractStop('encrypted', 'part');
    if (e.compressionMethod !== 0 && e.compressionMethod !== 8) throw new ExtractStop('corrupt', 'part');
    if (ctx.expandedBytes + e.uncompressedSize > limits.maxExpandedBytes) throw new ExtractStop('expanded_size', 'all');
    const compressed = Math.max(1, e.compressedSize);
    if (e.uncompressedSize > limits.ratioFloorBytes && e.uncompressedSize / compressed > limits.maxEntryRatio) {
      throw new ExtractStop('ratio', 'all');
    }
    ctx.checkAlive();
    if (e.uncompressedSize <= SMALL_ENTRY_BYTES && e.compressedSize <= SMALL_ENTRY_BYTES) {
      const data = this.inflateSmall(e);
      this.inflated += data.length;
      ctx.addInflated(data.length);
      if (this.inflated > limits.ratioFloorBytes && this.inflated / this.buf.length > limits.maxArchiveRatio) {
        throw new ExtractStop('ratio', 'all');
      }
      if (data.length > 0) onChunk(data);
      return;
    }
    let stream: NodeJS.ReadableStream & { destroy(): void };
    try {
      stream = await openStream(this.zip, e);
    } catch {
      throw new ExtractStop('corrupt', 'part');
    }
    let n = 0;
    let inCallback = false;
    try {
      for await (const c of stream) {
        const chunk = c as Buffer;
        ctx.checkAlive();
        n += chunk.length;
        this.inflated += chunk.length;
        ctx.addInflated(chunk.length);
        if (n > limits.ratioFloorBytes && n / compressed > limits.maxEntryRatio) throw new ExtractStop('ratio', 'all');
        if (this.inflated > limits.ratioFloorBytes && this.inflated / this.buf.length > limits.maxArchiveRatio) {
          throw new ExtractStop('ratio', 'all');
        }
        inCallback = true;
        onChunk(chunk);
        inCallback = false;
      }
    } catch (err) {
      stream.destroy();
      // A stop, or whatever the caller's callback threw, goes on as it is; a stream error is a corrupt entry.
      if (err instanceof ExtractStop || inCallback) throw err;
      throw new ExtractStop('corrupt', 'part');
    }
  }

  /** A small entry's bytes, inflated at once; exactly its declared size, or `corrupt`. */
  private inflateSmall(e: yauzl.Entry): Buffer {
    const local = e.relativeOffsetOfLocalHeader;
    if (local + 30 > this.buf.length || this.buf.readUInt32LE(local) !== 0x04034b50) throw new ExtractStop('corrupt', 'part');
    const start = local + 30 + this.buf.readUInt16LE(local + 26) + this.buf.readUInt16LE(local + 28);
    if (start + e.compressedSize > this.buf.length) throw new ExtractStop('corrupt', 'part');
    const raw = this.buf.subarray(start, start + e.compressedSize);
    let data: Buffer;
    if (e.compressionMethod === 0) data = raw;
    else {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.uncompressedSize) });
      } catch {
        throw new ExtractStop('corrupt', 'part');
      }
    }
    if (data.length !== e.uncompressedSize) throw new ExtractStop('corrupt', 'part');
    return data;
  }

  /** The first bytes of an entry (at least `max` unless it is shorter), to sniff what it is before inflating all of it. */
  async readHead(entry: ZipEntry, max: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    const enough = new Error('enough');
    try {
      await this.read(entry, (c) => {
        chunks.push(c);
        n += c.length;
        if (n >= max) throw enough;
      });
    } catch (err) {
      if (err !== enough) throw err;
    }
    return Buffer.concat(chunks);
  }

  /** Inflates one entry whole (a nested archive, a text file), under the same limits as read(). */
  async readAll(entry: ZipEntry): Promise<Buffer> {
    const chunks: Buffer[] = [];
    await this.read(entry, (c) => chunks.push(c));
    return Buffer.concat(chunks);
  }
}

/** True when the bytes start like a ZIP archive (a local file header, or the end record of an empty one). */
export function looksLikeZip(buf: Buffer): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && ((buf[2] === 3 && buf[3] === 4) || (buf[2] === 5 && buf[3] === 6));
}
