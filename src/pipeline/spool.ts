/*
 * Pass 1 sink: keeps the original message for pass 2. Up to `memoryLimit`
 * bytes stay in memory; past that the whole message goes to a temp file, so
 * memory per message is bounded whatever its size (guarantee 3).
 *
 * The temp file is encrypted with AES-256-GCM under a key that exists only in
 * this process's memory: a crash leaves ciphertext nobody can read, and a
 * tampered file fails the tag check before pass 2 could send the final dot.
 * Stale files are removed at start (cleanStaleSpool): only regular files
 * named like ours (<id>.spool), only in state_dir/spool, never recursing.
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, mkdirSync, readdirSync, unlinkSync, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { SPOOL_NAME_RE, spoolDir, spoolFileName } from '../state-layout';

// The names are the state_dir layout's; re-exported for this file's users.
export { SPOOL_NAME_RE, spoolDir, spoolFileName } from '../state-layout';

/**
 * Removes spool files a previous process left behind; they cannot be
 * decrypted anyway. Anything else in the spool dir (another name, a
 * directory, a symlink) is left alone: it is not ours to delete. A spool
 * path that is not a real directory is refused rather than followed.
 */
export function cleanStaleSpool(stateDir: string): number {
  const dir = spoolDir(stateDir);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} is not a directory; mailveil keeps its spool there, so move it away`);
  let n = 0;
  for (const name of readdirSync(dir)) {
    if (!SPOOL_NAME_RE.test(name)) continue;
    const file = join(dir, name);
    try {
      // lstat: a symlink named like a spool file is not one of ours.
      if (!lstatSync(file).isFile()) continue;
      unlinkSync(file);
      n++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return n;
}

export class Spool extends Writable {
  size = 0;
  private memory: Buffer[] = [];
  private file?: { path: string; out: WriteStream; cipher: CipherGCM; key: Buffer; iv: Buffer; tag?: Buffer };

  constructor(
    private readonly dir: string,
    private readonly id: string,
    private readonly memoryLimit: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  /** True once the message went to disk. */
  get spilled(): boolean {
    return this.file !== undefined;
  }

  _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (!this.file && this.size <= this.memoryLimit) {
      this.memory.push(chunk);
      return cb();
    }
    if (!this.file) this.spill();
    const f = this.file!;
    if (f.cipher.write(chunk)) cb();
    else f.cipher.once('drain', () => cb());
  }

  _final(cb: (err?: Error | null) => void): void {
    const f = this.file;
    if (!f) return cb();
    f.out.once('finish', () => {
      f.tag = f.cipher.getAuthTag();
      cb();
    });
    f.cipher.end();
  }

  _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.file?.cipher.destroy();
    this.file?.out.destroy();
    cb(err);
  }

  /** The original message, from memory or decrypted from disk. */
  read(): Readable {
    const f = this.file;
    if (!f) return Readable.from(this.memory, { objectMode: false });
    if (!f.tag) throw new Error('spool read before it was complete');
    const tag = f.tag;
    return Readable.from(
      (async function* () {
        const decipher = createDecipheriv('aes-256-gcm', f.key, f.iv);
        decipher.setAuthTag(tag);
        for await (const chunk of createReadStream(f.path, { highWaterMark: 64 * 1024 })) {
          yield decipher.update(chunk as Buffer);
        }
        const last = decipher.final(); // throws if the file was altered
        if (last.length) yield last;
      })(),
      { objectMode: false },
    );
  }

  async dispose(): Promise<void> {
    this.memory = [];
    const f = this.file;
    if (!f) return;
    f.out.destroy();
    await unlink(f.path).catch(() => undefined);
  }

  private spill(): void {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    // Re-created here too, so a spool dir removed under a running process
    // (a tmp cleaner, an operator) costs one mkdir instead of failing mail.
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, spoolFileName(this.id));
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    out.on('error', (err) => this.destroy(err));
    cipher.pipe(out);
    this.file = { path, out, cipher, key, iv };
    for (const b of this.memory) cipher.write(b);
    this.memory = [];
  }
}
