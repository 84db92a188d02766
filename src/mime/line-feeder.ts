/*
 * Cuts a byte stream into pieces that end at a line feed before mailsplit
 * sees them. Why: mailsplit keeps a partial line by Buffer.concat on every
 * chunk (quadratic when a long line arrives in small chunks, and unbounded),
 * and its history of CRLF bugs is at chunk boundaries that fall inside a line.
 * Fed whole lines, it never holds a partial one.
 *
 * A line longer than MAX_LINE bytes is split at exactly MAX_LINE bytes, so the
 * result does not depend on how the input was chunked. The split inserts
 * SPLIT ("\r\n "): a line starting with a space can never be taken for a
 * boundary, is a fold inside a header, and is ignored inside base64. In any
 * other content it changes the text, so the caller marks the piece `split`
 * and decides whether that makes the part unscannable.
 * Memory: at most MAX_LINE bytes held.
 *
 * cutAfterEmptyLines worked around a mailsplit bug: a body that is one empty
 * line, followed by a boundary in the same chunk, comes out with its CRLF
 * (which belongs to the boundary), while the same bytes split across chunks
 * come out empty. Ending a write after every empty line made it always the
 * latter. The message parser no longer writes chunks to mailsplit (it drives
 * processLine line by line, see message-parser.ts), so it no longer needs it.
 *
 * push() finds the lines that outgrow MAX_LINE without looking at every line:
 * from a line start, any line feed within the room left means every line up
 * to the last such line feed fits, so it skips there with one lastIndexOf.
 */

export const MAX_LINE = 64 * 1024;
export const SPLIT = Buffer.from('\r\n ');

export interface Piece {
  data: Buffer;
  /** The piece ends with an inserted SPLIT. */
  split: boolean;
}

export class LineFeeder {
  private held: Buffer[] = [];
  private heldLength = 0;
  /** Bytes since the last line feed (or split). */
  private lineLength = 0;

  constructor(private readonly maxLine = MAX_LINE) {}

  push(chunk: Buffer): Piece[] {
    const pieces: Piece[] = [];
    let pieceStart = 0; // chunk bytes before this are in a piece already
    let pos = 0;
    while (pos < chunk.length) {
      const room = this.maxLine - this.lineLength;
      // Every line that ends at or before pos + room fits: skip to the last such line end in one step.
      const lf = chunk.lastIndexOf(0x0a, Math.min(pos + room, chunk.length - 1));
      if (lf >= pos) {
        this.lineLength = 0;
        pos = lf + 1;
        continue;
      }
      if (chunk.length - pos <= room) {
        this.lineLength += chunk.length - pos;
        break;
      }
      // The line outgrows MAX_LINE: first the whole lines before it, alone,
      // so the parser's state when the split is seen is the long line's own.
      // A line that began in an earlier chunk (held) or at a split starts at pieceStart.
      const lineStart = this.lineLength === 0 ? pos : pieceStart;
      if (lineStart > pieceStart) {
        pieces.push({ data: this.take(chunk, pieceStart, lineStart), split: false });
        pieceStart = lineStart;
      }
      const cut = pos + room;
      pieces.push({ data: Buffer.concat([this.take(chunk, pieceStart, cut), SPLIT]), split: true });
      pieceStart = cut;
      pos = cut;
      this.lineLength = SPLIT.length - 2; // the space after CRLF starts the next line
    }
    // Whole lines go now; a partial last line waits for its line feed.
    const completeEnd = this.completeEnd(chunk, pieceStart);
    if (completeEnd > pieceStart) {
      pieces.push({ data: this.take(chunk, pieceStart, completeEnd), split: false });
      pieceStart = completeEnd;
    }
    if (pieceStart < chunk.length) {
      this.held.push(chunk.subarray(pieceStart));
      this.heldLength += chunk.length - pieceStart;
    }
    return pieces;
  }

  /** What is left: a last line without a line feed. */
  end(): Piece[] {
    if (!this.heldLength) return [];
    const data = Buffer.concat(this.held, this.heldLength);
    this.held = [];
    this.heldLength = 0;
    this.lineLength = 0;
    return [{ data, split: false }];
  }

  /** End of the last line feed in chunk at or after `from`, or `from` if there is none. */
  private completeEnd(chunk: Buffer, from: number): number {
    const lf = chunk.lastIndexOf(0x0a);
    return lf >= from ? lf + 1 : from;
  }

  /** Held bytes plus chunk[from, to), as one buffer; the held bytes are used up. */
  private take(chunk: Buffer, from: number, to: number): Buffer {
    const part = chunk.subarray(from, to);
    if (!this.heldLength) return part;
    const data = Buffer.concat([...this.held, part], this.heldLength + part.length);
    this.held = [];
    this.heldLength = 0;
    return data;
  }
}

/** `data` cut after every empty line ("\n" or "\r\n"); whole lines in, whole lines out. */
export function cutAfterEmptyLines(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  let lineStart = 0;
  for (let lf = data.indexOf(0x0a); lf >= 0; lf = data.indexOf(0x0a, lineStart)) {
    const empty = lf === lineStart || (lf === lineStart + 1 && data[lineStart] === 0x0d);
    lineStart = lf + 1;
    if (empty && lineStart < data.length) {
      out.push(data.subarray(start, lineStart));
      start = lineStart;
    }
  }
  out.push(data.subarray(start));
  return out;
}
