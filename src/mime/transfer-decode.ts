/*
 * Streaming Content-Transfer-Encoding decoders (RFC 2045 6): bytes in, bytes
 * out, a few bytes of state between writes, so a part is never buffered.
 *
 * Own decoders rather than libbase64/libqp: those skip garbage silently, and
 * fail-closed (README, Guarantees, 5) needs to know when input was not valid.
 *
 * base64 policy, close to what MUAs do: whitespace and line breaks are
 * ignored; '=' ends a quantum (a later quantum is decoded too, as some
 * encoders concatenate padded blocks); missing final padding is accepted.
 * Any other character, or a lone sextet at the end of a quantum, marks the
 * part 'bad_base64' while decoding carries on with the valid characters, so
 * most of the text is still scanned.
 *
 * quoted-printable: "=XX" (either case) is a byte, "=" + optional blanks + line
 * end is a soft break (joined, so a value split by it is found whole), and a
 * malformed "=" is kept literally, as MUAs show it. An "=" at the very end of
 * a part is a soft break whose CRLF went to the boundary line.
 */

export interface ByteDecoder {
  write(input: Buffer): Buffer;
  end(): Buffer;
  /** Set once the input turned out invalid; a metric label. */
  readonly problem?: string;
}

const EMPTY = Buffer.alloc(0);

/** 7bit, 8bit, binary: nothing to undo. */
export class IdentityDecoder implements ByteDecoder {
  write(input: Buffer): Buffer {
    return input;
  }
  end(): Buffer {
    return EMPTY;
  }
}

const B64_INVALID = -1;
const B64_SKIP = -2;
const B64_PAD = -3;
const B64 = (() => {
  const t = new Int8Array(256).fill(B64_INVALID);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  for (const c of [0x09, 0x0a, 0x0d, 0x20]) t[c] = B64_SKIP;
  t[0x3d] = B64_PAD;
  return t;
})();

export class Base64Decoder implements ByteDecoder {
  problem?: string;
  private acc = 0;
  private count = 0;

  write(input: Buffer): Buffer {
    const out = Buffer.allocUnsafe(Math.ceil((input.length + 3) / 4) * 3);
    const len = input.length;
    let o = 0;
    let acc = this.acc;
    let count = this.count;
    let i = 0;
    while (i < len) {
      if (count === 0 && i + 4 <= len) {
        // The bulk: a whole quantum of four alphabet characters (any other byte has a negative entry).
        const a = B64[input[i]];
        const b = B64[input[i + 1]];
        const c = B64[input[i + 2]];
        const d = B64[input[i + 3]];
        if ((a | b | c | d) >= 0) {
          const q = (a << 18) | (b << 12) | (c << 6) | d;
          out[o] = q >> 16;
          out[o + 1] = (q >> 8) & 0xff;
          out[o + 2] = q & 0xff;
          o += 3;
          i += 4;
          continue;
        }
      }
      const v = B64[input[i++]];
      if (v >= 0) {
        acc = (acc << 6) | v;
        if (++count === 4) {
          out[o++] = (acc >> 16) & 0xff;
          out[o++] = (acc >> 8) & 0xff;
          out[o++] = acc & 0xff;
          acc = 0;
          count = 0;
        }
      } else if (v === B64_PAD) {
        this.acc = acc;
        this.count = count;
        o = this.flushQuantum(out, o);
        acc = 0;
        count = 0;
      } else if (v === B64_INVALID) {
        this.problem = 'bad_base64';
      }
    }
    this.acc = acc;
    this.count = count;
    return out.subarray(0, o);
  }

  end(): Buffer {
    const out = Buffer.allocUnsafe(3);
    return out.subarray(0, this.flushQuantum(out, 0));
  }

  /** A partial quantum of 2 or 3 sextets still carries 1 or 2 whole bytes. */
  private flushQuantum(out: Buffer, o: number): number {
    if (this.count === 1) this.problem = 'bad_base64';
    else if (this.count === 2) out[o++] = (this.acc >> 4) & 0xff;
    else if (this.count === 3) {
      out[o++] = (this.acc >> 10) & 0xff;
      out[o++] = (this.acc >> 2) & 0xff;
    }
    this.acc = 0;
    this.count = 0;
    return o;
  }
}

/** Value of an ASCII hex digit (either case), -1 if it is not one. */
export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const QP_TEXT = 0;
const QP_EQ = 1; // after "="
const QP_HEX = 2; // after "=" and one hex digit
const QP_BLANK = 3; // after "=" and blanks: a soft break if a line end follows
const QP_CR = 4; // after "=" [blanks] CR

/** Blanks between "=" and the line end are remembered up to this many; a longer run is literal text. */
const QP_MAX_BLANKS = 256;

export class QuotedPrintableDecoder implements ByteDecoder {
  private state = QP_TEXT;
  private hex = 0;
  private hexChar = 0;
  private blanks = '';

  write(input: Buffer): Buffer {
    // Every output byte stands for an input byte, so output never exceeds this
    // write's input plus what the last write held back ("=" and its blanks).
    const out = Buffer.allocUnsafe(input.length + QP_MAX_BLANKS + 3);
    let o = 0;
    for (let i = 0; i < input.length; i++) {
      if (this.state === QP_TEXT) {
        // The bulk: a run of literal bytes up to the next "=", copied at once.
        let eq = input.indexOf(0x3d, i);
        if (eq < 0) eq = input.length;
        if (eq > i) o += input.copy(out, o, i, eq);
        if (eq === input.length) break;
        this.state = QP_EQ;
        i = eq;
        continue;
      }
      const c = input[i];
      switch (this.state) {
        case QP_EQ: {
          const h = hexValue(c);
          if (h >= 0) {
            this.hex = h;
            this.hexChar = c;
            this.state = QP_HEX;
          } else if (c === 0x0d) this.state = QP_CR;
          else if (c === 0x0a) this.state = QP_TEXT;
          else if (c === 0x20 || c === 0x09) {
            this.blanks = String.fromCharCode(c);
            this.state = QP_BLANK;
          } else {
            out[o++] = 0x3d;
            this.state = QP_TEXT;
            i--; // the byte after a malformed "=" is ordinary text
          }
          break;
        }
        case QP_HEX: {
          const h = hexValue(c);
          if (h >= 0) {
            out[o++] = (this.hex << 4) | h;
            this.state = QP_TEXT;
          } else {
            out[o++] = 0x3d;
            out[o++] = this.hexChar;
            this.state = QP_TEXT;
            i--;
          }
          break;
        }
        case QP_BLANK:
          if (c === 0x20 || c === 0x09) {
            if (this.blanks.length < QP_MAX_BLANKS) this.blanks += String.fromCharCode(c);
            else {
              o = this.literalBlanks(out, o);
              i--;
            }
          } else if (c === 0x0d) this.state = QP_CR;
          else if (c === 0x0a) this.state = QP_TEXT;
          else {
            o = this.literalBlanks(out, o);
            i--;
          }
          break;
        case QP_CR:
          // "=" CR without LF: still a soft break (lenient), the byte is text.
          this.state = QP_TEXT;
          if (c !== 0x0a) i--;
          break;
      }
    }
    return out.subarray(0, o);
  }

  end(): Buffer {
    // A trailing "=" [blanks] [CR] is a soft break; only a half escape is text.
    const held = this.state === QP_HEX ? Buffer.from([0x3d, this.hexChar]) : EMPTY;
    this.state = QP_TEXT;
    return held;
  }

  /** "=" and blanks not followed by a line end: not a soft break, so the text as written. */
  private literalBlanks(out: Buffer, o: number): number {
    out[o++] = 0x3d;
    for (let k = 0; k < this.blanks.length; k++) out[o++] = this.blanks.charCodeAt(k);
    this.blanks = '';
    this.state = QP_TEXT;
    return o;
  }
}

/** The decoder for a Content-Transfer-Encoding value; unknown encodings are decoded as 8bit and reported, since the raw bytes are still the best text we have. */
export function transferDecoder(encoding: string | undefined): { decoder: ByteDecoder; problem?: string } {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'base64':
      return { decoder: new Base64Decoder() };
    case 'quoted-printable':
      return { decoder: new QuotedPrintableDecoder() };
    case '':
    case '7bit':
    case '8bit':
    case 'binary':
      return { decoder: new IdentityDecoder() };
    default:
      return { decoder: new IdentityDecoder(), problem: 'bad_transfer_encoding' };
  }
}

/**
 * A whole part body at once, for the redactor, which re-encodes what it
 * decodes. Only "base64" and "quoted-printable" (as the redactor names them)
 * are decoded; any other body is returned as it is.
 *
 * quoted-printable goes through the same decoder as above, after two passes
 * that need the whole part, as the redactor has always read it (libqp's
 * decode, before this was one decoder): blanks that end a line are dropped
 * (RFC 2045 6.7 rule 3: transport added them), and soft breaks are joined
 * before any escape is read, so an escape a soft break cut in two ("=4=\n1")
 * is one byte. An "=" the join leaves before a line end is text, and is
 * escaped so the decoder does not take it for a soft break.
 */
export function decodeWholePart(raw: Buffer, encoding: string): Buffer {
  let decoder: ByteDecoder;
  let input = raw;
  if (encoding === 'base64') decoder = new Base64Decoder();
  else if (encoding === 'quoted-printable') {
    decoder = new QuotedPrintableDecoder();
    const text = raw
      .toString('latin1')
      // The group before the blanks keeps this linear: a bare /[ \t]+$/ rescans every run from each of its blanks.
      .replace(/(^|[^ \t])[ \t]+(?=[\n\r]|$)/g, '$1')
      .replace(/=(?:\r?\n|$)/g, '')
      // What is left is text: an "=" still before blanks and a line end (or the end) is no soft break now.
      .replace(/=(?=[ \t]*(?:[\r\n]|$))/g, '=3D');
    input = Buffer.from(text, 'latin1');
  } else return raw;
  const head = decoder.write(input);
  const tail = decoder.end();
  return tail.length ? Buffer.concat([head, tail]) : head;
}
