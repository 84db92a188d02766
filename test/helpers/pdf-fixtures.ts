/*
 * Minimal PDFs written at test time: hand-built PDF 1.4 syntax, content
 * streams uncompressed unless a test asks otherwise, and a correct xref
 * table (ISO 32000-1 7.5.4: 20-byte entries). A non-embedded Helvetica
 * (one of the standard 14 fonts) is all pdfjs needs to extract text.
 *
 * Encryption is the standard security handler, revision 2 (RC4, 40-bit key;
 * ISO 32000-1 7.6.3, algorithms 2, 3 and 4): the cheapest scheme that a
 * reader must ask a password for.
 */
import { createHash } from 'node:crypto';
import { constants, deflateRawSync, deflateSync } from 'node:zlib';

/** An object's body: PDF syntax, or a stream (its dictionary gets /Length). */
export type PdfObject = string | { dict?: string; stream: Buffer | string };

export interface BuildOptions {
  /** Extra trailer entries, e.g. `/Encrypt 9 0 R /ID [...]`. */
  trailer?: string;
  /** Applied to each stream's bytes, with the object number (encryption). */
  encryptStream?: (num: number, data: Buffer) => Buffer;
}

/** Objects numbered from 1 in order; object 1 must be the Catalog. */
export function buildPdf(objects: readonly PdfObject[], opts: BuildOptions = {}): Buffer {
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let offset = parts[0].length;
  const offsets: number[] = [];
  objects.forEach((obj, i) => {
    const num = i + 1;
    offsets.push(offset);
    let body: Buffer;
    if (typeof obj === 'string') body = Buffer.from(obj, 'latin1');
    else {
      let data = typeof obj.stream === 'string' ? Buffer.from(obj.stream, 'latin1') : obj.stream;
      if (opts.encryptStream) data = opts.encryptStream(num, data);
      body = Buffer.concat([
        Buffer.from(`<< ${obj.dict ?? ''} /Length ${data.length} >>\nstream\n`, 'latin1'),
        data,
        Buffer.from('\nendstream', 'latin1'),
      ]);
    }
    const chunk = Buffer.concat([Buffer.from(`${num} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    parts.push(chunk);
    offset += chunk.length;
  });
  const xref = [`xref\n0 ${objects.length + 1}\n`, '0000000000 65535 f \n', ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`)].join('');
  const trailer = `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R ${opts.trailer ?? ''} >>\nstartxref\n${offset}\n%%EOF\n`;
  parts.push(Buffer.from(xref + trailer, 'latin1'));
  return Buffer.concat(parts);
}

/** A PDF literal string: backslash and parentheses escaped. */
export function pdfString(s: string): string {
  return '(' + s.replace(/[\\()]/g, (c) => '\\' + c) + ')';
}

/** A content stream showing each line at 12 pt, 14 pt apart, from the top left. */
export function linesContent(lines: readonly string[]): string {
  return ['BT /F1 12 Tf 72 720 Td 14 TL', ...lines.map((l, i) => (i ? 'T* ' : '') + `${pdfString(l)} Tj`), 'ET'].join('\n');
}

/**
 * A PDF with one page per content stream. Objects: 1 Catalog, 2 Pages,
 * 3 Font, then per page its Page and its content stream.
 */
export function pagesPdf(contents: readonly (string | Buffer)[], opts: { deflate?: boolean; build?: BuildOptions } = {}): Buffer {
  const kids = contents.map((_, i) => `${4 + 2 * i} 0 R`).join(' ');
  const objects: PdfObject[] = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${kids}] /Count ${contents.length} >>`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
  ];
  contents.forEach((c, i) => {
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${5 + 2 * i} 0 R >>`);
    const raw = typeof c === 'string' ? Buffer.from(c, 'latin1') : c;
    objects.push(opts.deflate ? { dict: '/Filter /FlateDecode', stream: deflateSync(raw) } : { stream: raw });
  });
  return buildPdf(objects, opts.build);
}

/** One page per entry, each page's lines as text. */
export function textPdf(...pages: (readonly string[])[]): Buffer {
  return pagesPdf(pages.map(linesContent));
}

/**
 * A page tree of `kids` leaf pages under one Pages node (/Count says so),
 * all sharing one empty content stream: a small file that claims a huge
 * document.
 */
export function widePageTreePdf(kids: number): Buffer {
  // Objects: 1 Catalog, 2 Pages, 3 Font, 4 content, 5.. the pages.
  const refs: string[] = [];
  for (let i = 0; i < kids; i++) refs.push(`${5 + i} 0 R`);
  const objects: PdfObject[] = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${refs.join(' ')}] /Count ${kids} >>`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    { stream: linesContent(['page']) },
  ];
  const page = '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>';
  for (let i = 0; i < kids; i++) objects.push(page);
  return buildPdf(objects);
}

/**
 * A page tree `depth` Pages nodes deep with one page at the bottom, each
 * node's /Count 1: deep, not wide.
 */
export function deepPageTreePdf(depth: number): Buffer {
  // Objects: 1 Catalog, 2 Font, 3 content, 4 the page, 5.. the Pages chain (5 is the root).
  const objects: PdfObject[] = [
    '<< /Type /Catalog /Pages 5 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    { stream: linesContent(['deep page']) },
    `<< /Type /Page /Parent ${4 + depth} 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 2 0 R >> >> /Contents 3 0 R >>`,
  ];
  for (let d = 0; d < depth; d++) {
    const num = 5 + d;
    const kid = d === depth - 1 ? 4 : num + 1;
    const parent = d === 0 ? '' : ` /Parent ${num - 1} 0 R`;
    objects.push(`<< /Type /Pages /Kids [${kid} 0 R] /Count 1${parent} >>`);
  }
  return buildPdf(objects);
}

const PAD = Buffer.from('28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a', 'hex');

function rc4(key: Buffer, data: Buffer): Buffer {
  const s = Array.from({ length: 256 }, (_, i) => i);
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i] + key[i % key.length]) & 255;
    [s[i], s[j]] = [s[j], s[i]];
  }
  const out = Buffer.alloc(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 255;
    j = (j + s[i]) & 255;
    [s[i], s[j]] = [s[j], s[i]];
    out[n] = data[n] ^ s[(s[i] + s[j]) & 255];
  }
  return out;
}

const md5 = (...b: Buffer[]) => createHash('md5').update(Buffer.concat(b)).digest();
const padded = (pw: string) => Buffer.concat([Buffer.from(pw, 'latin1'), PAD]).subarray(0, 32);

/**
 * One page of text, RC4-40 encrypted (revision 2). A non-empty user
 * password means a reader must ask for it; an empty one with an owner
 * password is the common "restricted" PDF any reader opens.
 */
export function encryptedPdf(lines: readonly string[], userPassword: string, ownerPassword = 'owner'): Buffer {
  const id = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
  const p = -44; // print, copy... bits as most writers set them; irrelevant to the test
  const pBytes = Buffer.alloc(4);
  pBytes.writeInt32LE(p);
  const o = rc4(md5(padded(ownerPassword)).subarray(0, 5), padded(userPassword)); // algorithm 3
  const key = md5(padded(userPassword), o, pBytes, id).subarray(0, 5); // algorithm 2
  const u = rc4(key, PAD); // algorithm 4
  const objKey = (num: number) => md5(key, Buffer.from([num & 255, (num >> 8) & 255, (num >> 16) & 255, 0, 0])).subarray(0, 10);
  const objects: PdfObject[] = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [4 0 R] /Count 1 >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>',
    { stream: linesContent(lines) },
    `<< /Filter /Standard /V 1 /R 2 /O <${o.toString('hex')}> /U <${u.toString('hex')}> /P ${p} >>`,
  ];
  return buildPdf(objects, {
    trailer: `/Encrypt 6 0 R /ID [<${id.toString('hex')}> <${id.toString('hex')}>]`,
    encryptStream: (num, data) => rc4(objKey(num), data),
  });
}

/** zlib's adler32 (RFC 1950 8.2) of `data`, continuing from `adler`. */
function adler32(data: Buffer, adler = 1): number {
  let a = adler & 0xffff;
  let b = adler >>> 16;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * A FlateDecode stream (RFC 1950) that inflates to `prefix`, then `unit`
 * repeated to `mib` MiB, then `suffix`, built in milliseconds: one MiB of
 * units is compressed once with a full flush (which ends byte-aligned and
 * starts the next block with no history), and those bytes are repeated.
 * About 1 KiB of PDF per MiB inflated.
 */
export function inflatingStream(prefix: string, unit: string, mib: number, suffix: string): Buffer {
  const MiB = 1 << 20;
  const full = { finishFlush: constants.Z_FULL_FLUSH, level: 9 };
  const chunk = Buffer.alloc(MiB, unit, 'latin1');
  const block = deflateRawSync(chunk, full);
  const pre = Buffer.from(prefix, 'latin1');
  const post = Buffer.from(suffix, 'latin1');
  let adler = adler32(pre);
  const chunkAdler = adler32(chunk);
  for (let i = 0; i < mib; i++) adler = adler32Combine(adler, chunkAdler, MiB);
  adler = adler32(post, adler);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32BE(adler);
  return Buffer.concat([
    Buffer.from([0x78, 0xda]),
    deflateRawSync(pre, full),
    ...Array.from({ length: mib }, () => block),
    deflateRawSync(post),
    trailer,
  ]);
}

/** zlib's adler32_combine: the adler32 of A then B from theirs and B's length. */
function adler32Combine(adler1: number, adler2: number, len2: number): number {
  const BASE = 65521;
  const rem = len2 % BASE;
  let sum1 = adler1 & 0xffff;
  let sum2 = (rem * sum1) % BASE;
  sum1 += (adler2 & 0xffff) + BASE - 1;
  sum2 += (adler1 >>> 16) + (adler2 >>> 16) + BASE - rem;
  if (sum1 >= BASE) sum1 -= BASE;
  if (sum1 >= BASE) sum1 -= BASE;
  if (sum2 >= BASE << 1) sum2 -= BASE << 1;
  if (sum2 >= BASE) sum2 -= BASE;
  return ((sum2 << 16) | sum1) >>> 0;
}

/**
 * One page whose content stream inflates to `mib` MiB. 'spaces': blank
 * bytes around one word, so the inflated bytes (outside the V8 heap) are
 * the whole cost. 'numbers': one TJ array of `0 ` repeated, which pdfjs
 * parses into a JS array of millions of numbers (inside the V8 heap).
 */
export function inflateBombPdf(kind: 'spaces' | 'numbers', mib: number): Buffer {
  const stream =
    kind === 'spaces'
      ? inflatingStream('BT /F1 12 Tf 72 720 Td (bomb) Tj ', ' ', mib, ' ET')
      : inflatingStream('BT /F1 12 Tf 72 720 Td [', '0 ', mib, '] TJ ET');
  return buildPdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [4 0 R] /Count 1 >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>',
    { dict: '/Filter /FlateDecode', stream },
  ]);
}
