/*
 * Last pass-2 stage: makes the message safe to put on the wire after DATA
 * (RFC 5321 4.1.1.4, 4.5.2).
 *  - Every bare LF and bare CR becomes CRLF, so no lone LF or CR can reach a
 *    next hop that might read it as a line end ("SMTP smuggling": a "\n.\n"
 *    inside the data can never become an end of data downstream).
 *  - A line starting with "." gets a second "." (dot-stuffing).
 *  - The last line is terminated, so the "." the client sends after us is
 *    always on a line of its own.
 * State carries across chunks: a CR at the end of one chunk and an LF at the
 * start of the next are one CRLF. Output size is at most 2x input.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Rewriter } from '../stage';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BUF = Buffer.from('.');

export class SmtpEncoder extends Transform {
  private atLineStart = true;
  private pendingCR = false;
  bytesOut = 0;

  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // Well-formed input (CRLF lines, no leading dots) passes as the same
    // buffer: output is cut only where a byte must be added or replaced.
    const out: Buffer[] = [];
    const n = chunk.length;
    let i = 0;
    let spanStart = 0;
    // Next CR / LF positions, found lazily so each byte is scanned once.
    let nextCR = -2;
    let nextLF = -2;
    if (this.pendingCR && n > 0) {
      this.pendingCR = false;
      out.push(CRLF);
      this.atLineStart = true;
      if (chunk[0] === LF) i = spanStart = 1;
    }
    while (i < n) {
      if (this.atLineStart && chunk[i] === DOT) {
        if (i > spanStart) out.push(chunk.subarray(spanStart, i));
        out.push(DOT_BUF);
        spanStart = i;
      }
      this.atLineStart = false;
      if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i);
      if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i);
      const eol = nextCR < 0 ? nextLF : nextLF < 0 ? nextCR : Math.min(nextCR, nextLF);
      if (eol < 0) break;
      this.atLineStart = true;
      if (chunk[eol] === CR && chunk[eol + 1] === LF) {
        i = eol + 2; // a proper CRLF stays inside the span
        continue;
      }
      if (eol > spanStart) out.push(chunk.subarray(spanStart, eol));
      if (chunk[eol] === CR && eol + 1 === n) {
        // Maybe the first half of a CRLF split across chunks: decide on the next chunk.
        this.pendingCR = true;
        this.atLineStart = false;
        spanStart = i = n;
        break;
      }
      out.push(CRLF); // a bare LF or bare CR
      spanStart = i = eol + 1;
    }
    if (spanStart < n) out.push(spanStart === 0 ? chunk : chunk.subarray(spanStart));
    const buf = out.length === 1 ? out[0] : Buffer.concat(out);
    this.bytesOut += buf.length;
    cb(null, buf);
  }

  _flush(cb: TransformCallback): void {
    if (this.pendingCR || !this.atLineStart) {
      this.bytesOut += 2;
      this.push(CRLF);
    }
    this.pendingCR = false;
    this.atLineStart = true;
    cb();
  }
}

export const smtpEncode: Rewriter = {
  name: 'smtp-encode',
  kind: 'rewriter',
  create: () => new SmtpEncoder(),
};
