/*
 * Streaming charset decoding (RFC 2045 5.1, RFC 2046 4.1.2) with iconv-lite:
 * bytes in, text out; multi-byte sequences split across writes are held.
 *
 * Choices, so that text cannot hide behind a label:
 *   - A byte order mark wins over the declared charset (as in WHATWG
 *     encoding sniffing): a UTF-16 BOM under charset=utf-8 is UTF-16.
 *   - us-ascii and iso-8859-1 are decoded as windows-1252 (WHATWG labels):
 *     a superset, and what senders that mislabel 8-bit text usually meant.
 *   - utf-16 without a BOM: endianness guessed from where the NUL bytes are in
 *     the first SNIFF_BYTES bytes; no evidence means big endian (RFC 2781 4.3).
 *   - No charset (or unknown-8bit): UTF-16 if a BOM or the NUL pattern says
 *     so, else UTF-8 until the first invalid sequence, then windows-1252 for
 *     the rest. The valid UTF-8 already given is kept: a prefix decodes the
 *     same either way as long as it is ASCII, and was valid UTF-8 otherwise.
 *   - An unknown charset: problem 'bad_charset' (fail closed), and the text is
 *     decoded as if no charset were given, so most of it is scanned anyway.
 * Invalid sequences in a known charset become U+FFFD, as a MUA shows them.
 */
import * as iconv from 'iconv-lite';

export interface TextDecoderLike {
  write(input: Buffer): string;
  end(): string;
}

/** Bytes looked at before guessing UTF-16 and its byte order. */
export const SNIFF_BYTES = 512;

const WINDOWS_1252_LABELS = new Set([
  'us-ascii', 'ascii', 'us', 'ansi_x3.4-1968', 'iso646-us', 'cp367', 'ibm367', 'csascii',
  'iso-8859-1', 'iso8859-1', 'iso_8859-1', 'iso_8859-1:1987', 'iso-ir-100', 'latin1', 'l1', 'cp819', 'ibm819', 'csisolatin1',
  'windows-1252', 'cp1252', 'x-cp1252',
]);
const NO_CHARSET_LABELS = new Set(['', 'unknown-8bit', 'x-unknown', 'unknown', 'default']);

class IconvText implements TextDecoderLike {
  private readonly inner: { write(b: Buffer): string; end(): string | undefined };
  constructor(encoding: string) {
    // The BOM is handled by Sniffing; iconv must not eat a second one.
    this.inner = iconv.getDecoder(encoding, { stripBOM: false });
  }
  write(input: Buffer): string {
    return this.inner.write(input);
  }
  end(): string {
    return this.inner.end() ?? '';
  }
}

const UTF7_LABELS = new Set(['utf-7', 'utf7', 'unicode-1-1-utf-7', 'unicode11utf7', 'csunicode11utf7', 'x-unicode-2-0-utf-7']);

function isBase64Char(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
}

/**
 * UTF-7 (RFC 2152), a classic way to hide text from filters. iconv-lite's
 * decoder mis-reads a "-" that ends a base64 run when it opens a new write
 * ("+ADEAMgAz" + "-45" gave "123+-45"), so while inside a run the last byte
 * is held back for the next write.
 */
class Utf7Text implements TextDecoderLike {
  private readonly inner = new IconvText('utf-7');
  private inBase64 = false;
  private held: Buffer | undefined;

  write(input: Buffer): string {
    const seen = this.held ? this.held.length : 0; // the held byte was scanned last time
    const b = this.held ? Buffer.concat([this.held, input]) : input;
    this.held = undefined;
    for (let i = seen; i < b.length; i++) {
      const c = b[i];
      if (!this.inBase64) this.inBase64 = c === 0x2b;
      else if (!isBase64Char(c)) this.inBase64 = false;
    }
    if (this.inBase64 && b.length) {
      this.held = Buffer.from(b.subarray(b.length - 1));
      return this.inner.write(b.subarray(0, b.length - 1));
    }
    return this.inner.write(b);
  }

  end(): string {
    const s = this.held ? this.inner.write(this.held) : '';
    this.held = undefined;
    return s + this.inner.end();
  }
}

/** Length of a valid UTF-8 sequence starting at `i`, 0 if invalid, -1 if cut off by the end of `b`. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0; // overlong
    else if (c === 0xed) hi = 0x9f; // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90; // overlong
    else if (c === 0xf4) hi = 0x8f; // above U+10FFFF
  } else return 0;
  for (let k = 1; k < n; k++) {
    if (i + k >= b.length) return -1;
    const d = b[i + k];
    if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return 0;
  }
  return n;
}

/** UTF-8 while the input is valid UTF-8, windows-1252 from the first invalid byte on. */
export class Utf8OrLatin implements TextDecoderLike {
  private held: Buffer | undefined;
  private latin: IconvText | undefined;

  write(input: Buffer): string {
    if (this.latin) return this.latin.write(input);
    const b = this.held ? Buffer.concat([this.held, input]) : input;
    this.held = undefined;
    let i = 0;
    while (i < b.length) {
      if (b[i] < 0x80) {
        i++;
        continue;
      }
      const n = utf8SequenceLength(b, i);
      if (n > 0) i += n;
      else if (n < 0) {
        this.held = Buffer.from(b.subarray(i));
        return b.toString('utf8', 0, i);
      } else {
        this.latin = new IconvText('windows-1252');
        return b.toString('utf8', 0, i) + this.latin.write(b.subarray(i));
      }
    }
    return b.toString('utf8');
  }

  end(): string {
    if (this.held) {
      // A sequence cut off by the end of the part was never valid UTF-8.
      this.latin = new IconvText('windows-1252');
      const s = this.latin.write(this.held);
      this.held = undefined;
      return s + this.latin.end();
    }
    return this.latin ? this.latin.end() : '';
  }
}

type ByteOrder = 'utf-16le' | 'utf-16be';

function bomOf(head: Buffer): { encoding: 'utf-8' | ByteOrder; length: number } | undefined {
  if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: 'utf-8', length: 3 };
  if (head.length >= 2 && head[0] === 0xff && head[1] === 0xfe) return { encoding: 'utf-16le', length: 2 };
  if (head.length >= 2 && head[0] === 0xfe && head[1] === 0xff) return { encoding: 'utf-16be', length: 2 };
  return undefined;
}

/**
 * Byte order from NULs: Latin-script UTF-16 has a NUL in every other byte.
 * `strict` asks for clear evidence (a quarter of the pairs, and the other
 * parity mostly free of NULs), used when nobody said the text is UTF-16.
 */
function guessByteOrder(head: Buffer, strict: boolean): ByteOrder | undefined {
  let even = 0;
  let odd = 0;
  const pairs = head.length >> 1;
  for (let i = 0; i < pairs * 2; i += 2) {
    if (head[i] === 0) even++;
    if (head[i + 1] === 0) odd++;
  }
  if (strict) {
    if (pairs === 0) return undefined;
    if (odd * 4 >= pairs && even * 4 <= odd) return 'utf-16le';
    if (even * 4 >= pairs && odd * 4 <= even) return 'utf-16be';
    return undefined;
  }
  if (odd > even) return 'utf-16le';
  if (even > odd) return 'utf-16be';
  return undefined;
}

/** Holds the first `need` bytes, then lets `choose` pick the real decoder (and how many BOM bytes to drop). */
class Sniffing implements TextDecoderLike {
  private head: Buffer[] = [];
  private headLength = 0;
  private inner: TextDecoderLike | undefined;

  constructor(
    private readonly need: number,
    private readonly choose: (head: Buffer) => TextDecoderLike,
  ) {}

  write(input: Buffer): string {
    if (this.inner) return this.inner.write(input);
    this.head.push(input);
    this.headLength += input.length;
    return this.headLength >= this.need ? this.decide() : '';
  }

  end(): string {
    const s = this.inner ? '' : this.decide();
    return s + this.inner!.end();
  }

  private decide(): string {
    // One write is the usual case (a whole part): no copy of it.
    const head = this.head.length === 1 ? this.head[0] : Buffer.concat(this.head, this.headLength);
    this.head = [];
    const bom = bomOf(head);
    this.inner = bom ? (bom.encoding === 'utf-8' ? new Utf8OrLatin() : new IconvText(bom.encoding)) : this.choose(head);
    return this.inner.write(bom ? head.subarray(bom.length) : head);
  }
}

function sniffed(): TextDecoderLike {
  return new Sniffing(SNIFF_BYTES, (head) => {
    const order = guessByteOrder(head, true);
    return order ? new IconvText(order) : new Utf8OrLatin();
  });
}

/** A charset label as found in a parameter or an encoded word: quotes, blanks and an RFC 2231 language suffix removed. */
export function normaliseCharset(label: string | undefined): string {
  let s = (label ?? '').trim().toLowerCase();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).trim();
  const star = s.indexOf('*');
  return star >= 0 ? s.slice(0, star) : s;
}

/** A streaming decoder for a declared charset (undefined: none declared). */
export function charsetDecoder(declared: string | undefined): { decoder: TextDecoderLike; problem?: string } {
  const label = normaliseCharset(declared);
  if (NO_CHARSET_LABELS.has(label)) return { decoder: sniffed() };
  if (label === 'utf-16' || label === 'utf16') {
    return { decoder: new Sniffing(SNIFF_BYTES, (head) => new IconvText(guessByteOrder(head, false) ?? 'utf-16be')) };
  }
  if (label === 'utf-8' || label === 'utf8') return { decoder: new Sniffing(3, () => new IconvText('utf-8')) };
  if (UTF7_LABELS.has(label)) return { decoder: new Sniffing(3, () => new Utf7Text()) };
  if (WINDOWS_1252_LABELS.has(label)) return { decoder: new Sniffing(3, () => new IconvText('windows-1252')) };
  if (iconv.encodingExists(label)) return { decoder: new Sniffing(3, () => new IconvText(label)) };
  return { decoder: sniffed(), problem: 'bad_charset' };
}

/** One-shot decoding, for header fields and encoded words. */
export function decodeBytes(bytes: Buffer, declared: string | undefined): { text: string; problem?: string } {
  const { decoder, problem } = charsetDecoder(declared);
  return { text: decoder.write(bytes) + decoder.end(), problem };
}
