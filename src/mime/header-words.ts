/*
 * Header sections and their text: unfolding (RFC 5322 2.2.3), fields, and
 * RFC 2047 encoded words (B and Q, any charset iconv-lite knows, with the
 * RFC 2231 5 language suffix). Raw 8-bit header text (RFC 6532) is UTF-8 if
 * valid, else windows-1252.
 *
 * Decoding is lenient where MUAs are (an encoded word inside a quoted string
 * or glued to text is still decoded; whitespace between adjacent encoded words
 * is dropped, and adjacent words in one charset are joined as bytes first, so
 * a character split between two words decodes whole), and strict about what
 * it cannot read: an unknown charset or invalid base64 is a problem for the
 * caller to report (fail closed).
 *
 * Linear in the section, because mailsplit's own header parser is
 * super-linear on hostile input (see src/types/mailsplit.d.ts).
 */
import { Base64Decoder, hexValue } from './transfer-decode';
import { splitFields } from './header-fields';
import { Utf8OrLatin, decodeBytes } from './charset';

export interface HeaderField {
  /** Lower case, trimmed. */
  name: string;
  /** Unfolded value after the colon, leading blanks removed; latin1 ("binary") text, one char per byte. */
  value: string;
}

export interface HeaderSection {
  fields: HeaderField[];
  /** Lines that are neither a field nor a continuation (an mbox "From " first line excepted), latin1. */
  badLines: string[];
}

/** Top-level (and nested message) fields whose text is scanned, besides Subject: addresses, display names and free text. */
export const HEADER_TEXT_FIELDS = new Set([
  'from', 'sender', 'reply-to', 'to', 'cc', 'bcc',
  'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-bcc',
  'comments', 'keywords', 'organization', 'thread-topic', 'content-description',
]);

const FIELD_NAME = /^[!-9;-~]+$/;

/**
 * The fields of a header section (latin1 text, may end with the empty line).
 * Only fields for which `want(name)` is true keep their value, so a section
 * full of Received lines costs no copies.
 *
 * Where the section ends and which lines fold into which field is
 * splitFields' (header-fields.ts), the one header splitter. Its fields are
 * read again line by line here for one thing it does not judge: a line that
 * is no field (no colon, or a name with blanks or controls) is a bad line,
 * and ends the field before it, so its continuation lines are read as lines
 * of their own.
 */
export function parseHeaderSection(text: string, want: (name: string) => boolean): HeaderSection {
  const fields: HeaderField[] = [];
  const badLines: string[] = [];
  let current: HeaderField | undefined;
  let skipping = false;
  let first = true;
  for (const span of splitFields(text).fields) {
    let pos = span.start;
    while (pos < span.end) {
      const nl = text.indexOf('\n', pos);
      const lineEnd = nl < 0 ? text.length : nl;
      const next = nl < 0 ? text.length : nl + 1;
      const contentEnd = lineEnd > pos && text.charCodeAt(lineEnd - 1) === 0x0d ? lineEnd - 1 : lineEnd;
      // A lone CR at the very end: no field, and the end of the section.
      if (contentEnd === pos) return { fields, badLines };
      if (pos !== span.start && (current || skipping)) {
        if (current) current.value += text.slice(pos, contentEnd);
      } else {
        // Looked for within the line only: indexOf could run to the end of the section on every line.
        let colon = pos;
        while (colon < contentEnd && text.charCodeAt(colon) !== 0x3a) colon++;
        const name = colon < contentEnd ? text.slice(pos, colon).trim().toLowerCase() : '';
        if (name && FIELD_NAME.test(name)) {
          current = want(name) ? { name, value: text.slice(colon + 1, contentEnd).replace(/^[ \t]+/, '') } : undefined;
          skipping = !current;
          if (current) fields.push(current);
        } else {
          current = undefined;
          skipping = false;
          if (!(first && text.startsWith('From ', pos))) badLines.push(text.slice(pos, contentEnd));
        }
      }
      first = false;
      pos = next;
    }
  }
  return { fields, badLines };
}

/** Raw header bytes as text: ASCII as is, else UTF-8 if valid, else windows-1252. */
export function decodeRawHeader(latin1: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(latin1)) return latin1;
  const d = new Utf8OrLatin();
  return d.write(Buffer.from(latin1, 'latin1')) + d.end();
}

/** RFC 2047 4.2: "_" is a space, "=XX" a byte; a malformed "=" is kept, as MUAs show it. */
function decodeQ(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length);
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const hi = c === 0x3d && i + 2 < text.length ? hexValue(text.charCodeAt(i + 1)) : -1;
    const lo = hi >= 0 ? hexValue(text.charCodeAt(i + 2)) : -1;
    if (c === 0x5f) out[o++] = 0x20;
    else if (lo >= 0) {
      out[o++] = (hi << 4) | lo;
      i += 2;
    } else out[o++] = c & 0xff;
  }
  return out.subarray(0, o);
}

const ENCODED_WORD = /=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=/g;
const BLANKS = /^[ \t\r\n]*$/;

/** Decodes the encoded words and raw 8-bit text of one unfolded field value. */
export function decodeHeaderValue(value: string): { text: string; problems: Set<string> } {
  const problems = new Set<string>();
  let out = '';
  let last = 0;
  let runCharset: string | undefined;
  let runBytes: Buffer[] = [];
  const flushRun = (): void => {
    if (runCharset === undefined) return;
    const { text, problem } = decodeBytes(Buffer.concat(runBytes), runCharset);
    if (problem) problems.add(problem);
    out += text;
    runCharset = undefined;
    runBytes = [];
  };
  for (const m of value.matchAll(ENCODED_WORD)) {
    const gap = value.slice(last, m.index);
    if (runCharset === undefined || !BLANKS.test(gap)) {
      flushRun();
      out += decodeRawHeader(gap);
    }
    const charset = m[1].toLowerCase();
    let bytes: Buffer;
    if (m[2] === 'b' || m[2] === 'B') {
      const d = new Base64Decoder();
      bytes = Buffer.concat([d.write(Buffer.from(m[3], 'latin1')), d.end()]);
      if (d.problem) problems.add(d.problem);
    } else bytes = decodeQ(m[3]);
    if (runCharset !== charset) flushRun();
    runCharset = charset;
    runBytes.push(bytes);
    last = m.index + m[0].length;
  }
  flushRun();
  out += decodeRawHeader(value.slice(last));
  return { text: out, problems };
}
