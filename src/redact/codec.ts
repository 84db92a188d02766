/*
 * Decoding and re-encoding of one whole MIME part body for redaction, so a
 * redacted part leaves with its original transfer encoding and charset
 * (RFC 2045 6.7, 6.8): quoted-printable stays quoted-printable, base64 stays
 * base64 in 76-column lines, 8bit stays 8bit, UTF-16 keeps its byte order
 * and BOM. Line ends out are CRLF.
 */
import { isUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';
import libqp from 'libqp';
import libbase64 from 'libbase64';

/** Decoding is mime/transfer-decode.ts's, the one decoder for both passes; only the encoders are here. */
export { decodeWholePart as decodeTransfer } from '../mime/transfer-decode';

export function encodeTransfer(bytes: Buffer, encoding: string, trailingNewline: boolean): Buffer {
  let text: string;
  switch (encoding) {
    case 'base64':
      text = libbase64.wrap(libbase64.encode(bytes), 76);
      break;
    case 'quoted-printable':
      text = libqp.wrap(libqp.encode(bytes), 76);
      break;
    default:
      return withTrailingNewline(Buffer.from(bytes.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'), trailingNewline);
  }
  return withTrailingNewline(Buffer.from(text, 'latin1'), trailingNewline);
}

function withTrailingNewline(buf: Buffer, wanted: boolean): Buffer {
  const has = buf.length >= 2 && buf[buf.length - 2] === 0x0d && buf[buf.length - 1] === 0x0a;
  if (wanted && !has) return Buffer.concat([buf, Buffer.from('\r\n')]);
  if (!wanted && has) return buf.subarray(0, buf.length - 2);
  return buf;
}

export interface Charset {
  name: string;
  bom: boolean;
}

/** The charset to decode with: the declared one, else UTF-16 by BOM, else UTF-8 if valid, else windows-1252. */
export function resolveCharset(bytes: Buffer, declared: string | undefined): Charset {
  const bomLE = bytes[0] === 0xff && bytes[1] === 0xfe;
  const bomBE = bytes[0] === 0xfe && bytes[1] === 0xff;
  let name = (declared ?? '').toLowerCase().trim();
  // Byte-preserving decoders for the 8-bit sets, so bytes outside the
  // declared set come back out exactly as they went in.
  if (name === 'us-ascii' || name === 'ascii' || name === 'iso-8859-1' || name === 'latin1') name = 'latin1';
  if (name === 'utf-16' || name === 'utf16' || (!name && (bomLE || bomBE))) {
    // RFC 2781: no BOM means big-endian, unless the NULs say otherwise.
    name = bomLE ? 'utf-16le' : bomBE ? 'utf-16be' : nulsSayLittleEndian(bytes) ? 'utf-16le' : 'utf-16be';
  }
  if (!name) name = isUtf8(bytes) ? 'utf-8' : 'windows-1252';
  if (!iconv.encodingExists(name)) throw new Error(`unknown charset ${name}`);
  return { name, bom: bomLE || bomBE || (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) };
}

export function decodeCharset(bytes: Buffer, cs: Charset): string {
  return iconv.decode(bytes, cs.name, { stripBOM: true });
}

export function encodeCharset(text: string, cs: Charset): Buffer {
  return iconv.encode(text, cs.name, { addBOM: cs.bom });
}

function nulsSayLittleEndian(bytes: Buffer): boolean {
  let even = 0;
  let odd = 0;
  for (let i = 0; i < Math.min(bytes.length, 512); i++) if (bytes[i] === 0) (i % 2 ? odd++ : even++);
  return odd > even;
}

