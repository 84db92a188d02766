/*
 * Finds the empty line that ends a header section (RFC 5322 2.1), however
 * the input is chunked: each byte is looked at once, and a few bits of state
 * carry over between chunks. Line ends may be CRLF or bare LF. Here, below
 * everything that reads a header section (the pipeline's header stage, the
 * quarantine's header view, the SAR subject index), so there is one of it.
 */

const LF = 0x0a;
const CR = 0x0d;

/** Incremental search for the empty line that ends a header section. */
export class HeaderEndFinder {
  private atLineStart = true;
  private crAtLineStart = false;

  /** Index in `chunk` just past the empty line, or -1 if it is not in this chunk. */
  feed(chunk: Buffer): number {
    let i = 0;
    while (i < chunk.length) {
      if (this.atLineStart) {
        const b = chunk[i];
        if (b === LF) return i + 1;
        if (b === CR && !this.crAtLineStart) {
          this.crAtLineStart = true;
          i++;
          continue;
        }
        this.atLineStart = false;
        this.crAtLineStart = false;
      }
      const nl = chunk.indexOf(LF, i);
      if (nl < 0) return -1;
      this.atLineStart = true;
      i = nl + 1;
    }
    return -1;
  }
}
