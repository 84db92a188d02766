/*
 * format=flowed decoding (RFC 3676 4.1-4.5), streaming over decoded text.
 * A line ending in a space is soft: a reader joins it with the next one, and
 * with DelSp=yes also deletes that space. Scanning must see the joined text,
 * or "123-45- CRLF 6789" with DelSp=yes would hide "123-45-6789".
 * Kept simple on purpose: the space-stuffing space and, after a soft break,
 * the quote marks of the continuation line are removed; the signature
 * separator "-- " stays a hard break. Quote depth is not tracked otherwise.
 */

export class FlowedText {
  /** A space, or a space and CR, waiting to see whether a LF follows. */
  private held = '';
  private lineLength = 0;
  private lineHead = '';
  private afterSoftBreak = false;
  private atLineStart = true;

  constructor(private readonly delSp: boolean) {}

  write(s: string): string {
    let out = '';
    let runStart = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (this.atLineStart && (c === 0x3e || c === 0x20)) {
        // Quote marks only on a continuation line, then one stuffing space.
        if (c === 0x3e && this.afterSoftBreak) {
          out += s.slice(runStart, i);
          runStart = i + 1;
          continue;
        }
        if (c === 0x20) {
          out += s.slice(runStart, i);
          runStart = i + 1;
          this.atLineStart = false;
          continue;
        }
      }
      this.atLineStart = false;
      if (c === 0x20) {
        // A space with more text after it on the line is plain text: it stays in the run (slicing at every space made a string per word).
        const next = i + 1 < s.length ? s.charCodeAt(i + 1) : -1;
        if (!this.held && next >= 0 && next !== 0x20 && next !== 0x0d && next !== 0x0a) {
          this.note(c);
          continue;
        }
        out += s.slice(runStart, i) + this.held;
        this.held = ' ';
        runStart = i + 1;
        this.note(c);
        continue;
      }
      if (c === 0x0d) {
        out += s.slice(runStart, i);
        if (this.held === ' ') this.held = ' \r';
        else {
          out += this.held;
          this.held = '\r';
        }
        runStart = i + 1;
        continue;
      }
      if (c === 0x0a) {
        out += s.slice(runStart, i);
        const soft = this.held.startsWith(' ') && !(this.lineLength === 3 && this.lineHead === '-- ');
        if (soft) out += this.delSp ? '' : ' ';
        else out += this.held + '\n';
        this.held = '';
        runStart = i + 1;
        this.afterSoftBreak = soft;
        this.atLineStart = true;
        this.lineLength = 0;
        this.lineHead = '';
        continue;
      }
      if (this.held) {
        out += s.slice(runStart, i) + this.held;
        this.held = '';
        runStart = i;
      }
      this.note(c);
    }
    return out + s.slice(runStart);
  }

  end(): string {
    const s = this.held;
    this.held = '';
    return s;
  }

  /** Enough of the line to recognise the "-- " signature separator. */
  private note(c: number): void {
    this.lineLength++;
    if (this.lineHead.length < 3) this.lineHead += String.fromCharCode(c);
  }
}
