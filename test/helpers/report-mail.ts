/*
 * Reads a TLS-RPT report message back for tests (RFC 8460 5.3): header
 * fields unfolded (RFC 5322 2.2.3), Content-Type parameters, the parts of
 * the top-level multipart by its boundary (RFC 2046 5.1.1), and the report
 * attachment decoded (base64, gunzip). Small and independent on purpose: it
 * is not src/tlsrpt/report-mail.ts reading its own output.
 */
import { gunzipSync } from 'node:zlib';

export interface Fields {
  /** The first field of that name, unfolded, without leading space. */
  get(name: string): string | undefined;
  all: [string, string][];
}

export interface MailPart {
  fields: Fields;
  type: string;
  params: Record<string, string>;
  body: string;
}

export interface ReportMail extends MailPart {
  parts: MailPart[];
  /** The application/tlsrpt+gzip part, decoded and gunzipped, parsed as JSON. */
  report: unknown;
  attachmentName: string | undefined;
}

function fields(block: string): Fields {
  const all: [string, string][] = [];
  for (const line of block.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`not a header field: ${JSON.stringify(line)}`);
    all.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return { all, get: (name) => all.find(([n]) => n === name.toLowerCase())?.[1] };
}

/** `type/sub; a=b; c="d"` into its type (lower case) and parameters (names lower case). */
export function contentType(v: string | undefined): { type: string; params: Record<string, string> } {
  if (!v) return { type: 'text/plain', params: {} };
  const [type, ...rest] = v.split(';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"([^"]*)"|([^\s;]+))\s*$/.exec(p);
    if (!m) throw new Error(`bad parameter ${JSON.stringify(p)} in ${JSON.stringify(v)}`);
    params[m[1].toLowerCase()] = m[2] ?? m[3];
  }
  return { type: type.trim().toLowerCase(), params };
}

function part(raw: string): MailPart {
  const cut = raw.indexOf('\r\n\r\n');
  if (cut < 0) throw new Error('no empty line after the header fields');
  const f = fields(raw.slice(0, cut));
  const ct = contentType(f.get('content-type'));
  return { fields: f, type: ct.type, params: ct.params, body: raw.slice(cut + 4) };
}

export function parseReportMail(raw: string | Buffer): ReportMail {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  if (/(^|[^\r])\n/.test(text)) throw new Error('a line does not end in CRLF');
  const top = part(text);
  const boundary = top.params.boundary;
  if (!boundary) throw new Error('no boundary');
  const quoted = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // Piece 0 is the preamble; each part's piece starts with the CRLF after its delimiter, the close delimiter's with "--".
  const pieces = top.body.split(new RegExp(`(?:^|\\r\\n)--${quoted}`)).slice(1);
  const close = pieces.findIndex((c) => c.startsWith('--'));
  if (close < 0) throw new Error('no close delimiter');
  const parts = pieces.slice(0, close).map((c) => part(c.replace(/^[ \t]*\r\n/, '')));
  const att = parts.find((p) => p.type === 'application/tlsrpt+gzip');
  let report: unknown;
  if (att) {
    if ((att.fields.get('content-transfer-encoding') ?? '').toLowerCase() !== 'base64') throw new Error('the report is not base64');
    report = JSON.parse(gunzipSync(Buffer.from(att.body.replace(/\r\n/g, ''), 'base64')).toString('utf8'));
  }
  const disposition = att ? contentType(att.fields.get('content-disposition')) : undefined;
  return { ...top, parts, report, attachmentName: disposition?.params.filename ?? att?.params.name };
}
