/*
 * A small, independent MIME structure reader for tests: where each part's
 * header and body bytes are in a raw message, numbered with the same
 * IMAP-style paths as the extractor (src/mime/types.ts): "0" the top-level
 * header fields, "1" a single-part body, "1", "2", "2.1"... the parts of a
 * multipart, and inside a message/rfc822 part "2": "2.0" its header fields,
 * "2.1"... its parts. It follows delimiter lines only (RFC 2046 5.1.1) and
 * knows nothing of encodings beyond "do not descend into a base64 or
 * quoted-printable message/rfc822". Meant for well-formed fixtures, so a
 * golden test can check that bytes outside the redacted parts did not move;
 * it is deliberately not the code under test.
 */

export interface HeaderBlock {
  /** "0" or "<message part>.0" */
  path: string;
  start: number;
  /** End of the header fields, before the empty line. */
  end: number;
}

export interface Leaf {
  path: string;
  /** The part's own header fields (empty range for the body of a message without MIME headers of its own). */
  headerStart: number;
  headerEnd: number;
  /** Body bytes, without the line end that belongs to the next delimiter. */
  bodyStart: number;
  bodyEnd: number;
  contentType: string;
  encoding: string;
}

export interface MimeLayout {
  headers: HeaderBlock[];
  leaves: Leaf[];
}

interface Fields {
  contentType: string;
  boundary?: string;
  encoding: string;
}

/** Unfolded header fields of s[start, end): name (lower case) -> first value. */
function readFields(s: string, start: number, end: number): Fields {
  const text = s.slice(start, end).replace(/\r?\n[ \t]/g, ' ');
  const map = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!map.has(name)) map.set(name, line.slice(colon + 1).trim());
  }
  const ct = map.get('content-type') ?? 'text/plain';
  const contentType = ct.split(';')[0].trim().toLowerCase() || 'text/plain';
  const b = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(ct);
  return { contentType, boundary: b ? (b[1] ?? b[2]) : undefined, encoding: (map.get('content-transfer-encoding') ?? '7bit').toLowerCase() };
}

/** Offset of the empty line ending the header section at `start`, and where the body begins. */
function headerEnd(s: string, start: number, end: number): { fields: number; body: number } {
  if (s.startsWith('\r\n', start)) return { fields: start, body: start + 2 };
  if (s.startsWith('\n', start)) return { fields: start, body: start + 1 };
  const crlf = s.indexOf('\r\n\r\n', start);
  const lf = s.indexOf('\n\n', start);
  const candidates = [crlf >= 0 && crlf < end ? { fields: crlf + 2, body: crlf + 4 } : undefined, lf >= 0 && lf < end ? { fields: lf + 1, body: lf + 2 } : undefined].filter(
    (x): x is { fields: number; body: number } => x !== undefined,
  );
  if (!candidates.length) return { fields: end, body: end };
  return candidates.reduce((a, b) => (a.fields <= b.fields ? a : b));
}

function lines(s: string, start: number, end: number): { start: number; end: number; next: number }[] {
  const out: { start: number; end: number; next: number }[] = [];
  let at = start;
  while (at < end) {
    const lf = s.indexOf('\n', at);
    const next = lf < 0 || lf >= end ? end : lf + 1;
    let e = next;
    if (e > at && s[e - 1] === '\n') e--;
    if (e > at && s[e - 1] === '\r') e--;
    out.push({ start: at, end: e, next });
    at = next;
  }
  return out;
}

/** Start of the line end just before `pos` (the line end belongs to the delimiter that follows). */
function beforeLineEnd(s: string, from: number, pos: number): number {
  if (pos - 2 >= from && s[pos - 2] === '\r' && s[pos - 1] === '\n') return pos - 2;
  if (pos - 1 >= from && s[pos - 1] === '\n') return pos - 1;
  return pos;
}

function walk(s: string, out: MimeLayout, start: number, end: number, path: string, message: boolean): void {
  const h = headerEnd(s, start, end);
  const f = readFields(s, start, h.fields);
  const prefix = path;
  if (message) out.headers.push({ path: prefix ? `${prefix}.0` : '0', start, end: h.fields });
  const leafPath = message ? (prefix ? `${prefix}.1` : '1') : path;
  if (f.contentType.startsWith('multipart/') && f.boundary) {
    const delim = '--' + f.boundary;
    let partStart = -1;
    let n = 0;
    for (const l of lines(s, h.body, end)) {
      const line = s.slice(l.start, l.end);
      if (!line.startsWith(delim)) continue;
      const rest = line.slice(delim.length);
      const close = rest.startsWith('--');
      if (!close && rest.trim() !== '') continue;
      if (partStart >= 0) {
        n++;
        walk(s, out, partStart, beforeLineEnd(s, partStart, l.start), prefix ? `${prefix}.${n}` : String(n), false);
      }
      if (close) return;
      partStart = l.next;
    }
    // No closing delimiter: the last part runs to the end.
    if (partStart >= 0) walk(s, out, partStart, end, prefix ? `${prefix}.${n + 1}` : String(n + 1), false);
    return;
  }
  if (!message && f.contentType === 'message/rfc822' && ['7bit', '8bit', 'binary'].includes(f.encoding)) {
    walk(s, out, h.body, end, path, true);
    return;
  }
  out.leaves.push({ path: leafPath, headerStart: start, headerEnd: h.fields, bodyStart: h.body, bodyEnd: end, contentType: f.contentType, encoding: f.encoding });
}

/** Where every part is in `raw`. */
export function mimeLayout(raw: Buffer): MimeLayout {
  const out: MimeLayout = { headers: [], leaves: [] };
  walk(raw.toString('latin1'), out, 0, raw.length, '', true);
  return out;
}

/** Is `path` the part `ancestor` or inside it? */
export function within(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(ancestor + '.');
}

/** Byte range [start, end) of a header field (with its folded lines, without the final line end) in a header block, or undefined. */
export function fieldRange(raw: Buffer, block: HeaderBlock, name: string): { start: number; end: number } | undefined {
  const s = raw.toString('latin1');
  const ls = lines(s, block.start, block.end);
  for (let i = 0; i < ls.length; i++) {
    if (!s.slice(ls[i].start, ls[i].end).toLowerCase().startsWith(name.toLowerCase() + ':')) continue;
    let j = i;
    while (j + 1 < ls.length && /^[ \t]/.test(s.slice(ls[j + 1].start, ls[j + 1].end))) j++;
    return { start: ls[i].start, end: ls[j].end };
  }
  return undefined;
}

/** `raw` with each range replaced by its label; ranges must not overlap. */
export function masked(raw: Buffer, ranges: { start: number; end: number; label: string }[]): Buffer {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: Buffer[] = [];
  let at = 0;
  for (const r of sorted) {
    if (r.start < at) throw new Error(`overlapping mask ranges at ${r.start}`);
    out.push(raw.subarray(at, r.start), Buffer.from(`<<${r.label}>>`, 'latin1'));
    at = r.end;
  }
  out.push(raw.subarray(at));
  return Buffer.concat(out);
}

/** Lines of `raw` (without line ends) with the offset each starts at. */
export function linesOf(raw: Buffer): { text: string; start: number; end: number }[] {
  const s = raw.toString('latin1');
  return lines(s, 0, s.length).map((l) => ({ text: s.slice(l.start, l.end), start: l.start, end: l.end }));
}
