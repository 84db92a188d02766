/*
 * A Transform that holds back the header section of a message (RFC 5322 2.1:
 * everything up to the first empty line), hands it to `rewrite` once, then
 * passes the body through untouched. The held bytes are bounded by `limit`;
 * past it the stream fails, because a header we cannot see whole is a header
 * we cannot anonymise (fail closed). A message with no empty line is all
 * header. Line ends may be CRLF or bare LF; the SMTP encoder makes them CRLF.
 * Each byte is looked at once, however the input is chunked.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { MvCode } from '../errors';
import { HeaderEndFinder } from '../mime/header-end';

export { HeaderEndFinder } from '../mime/header-end';

export class HeaderTooLargeError extends Error {
  readonly code: MvCode = 'MV_HEADER_TOO_LARGE';
}

export class HeaderBlockTransform extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private done = false;
  private readonly finder = new HeaderEndFinder();

  constructor(
    private readonly limit: number,
    private readonly rewrite: (header: Buffer) => Buffer,
  ) {
    super();
  }

  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb(null, chunk);
    const end = this.finder.feed(chunk);
    const headerPart = end < 0 ? chunk : chunk.subarray(0, end);
    this.held.push(headerPart);
    this.heldBytes += headerPart.length;
    if (this.heldBytes > this.limit) return cb(new HeaderTooLargeError(`header section exceeds ${this.limit} bytes`));
    if (end < 0) return cb();
    try {
      this.flushHeader();
    } catch (err) {
      return cb(err as Error);
    }
    if (end < chunk.length) this.push(chunk.subarray(end));
    cb();
  }

  _flush(cb: TransformCallback): void {
    try {
      if (!this.done) this.flushHeader();
    } catch (err) {
      return cb(err as Error);
    }
    cb();
  }

  private flushHeader(): void {
    this.done = true;
    const header = Buffer.concat(this.held, this.heldBytes);
    this.held = [];
    this.push(this.rewrite(header));
  }
}
