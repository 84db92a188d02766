/*
 * The report as a mail message (RFC 8460 section 5.3) and its file name
 * (section 5.1), for a `mailto:` rua:
 *
 *   From: <contact or postmaster@hostname>
 *   To: <the rua address>
 *   Subject: Report Domain: <policy domain> Submitter: <submitter> Report-ID: <<report-id>>
 *   TLS-Report-Domain: <policy domain>
 *   TLS-Report-Submitter: <submitter>
 *   TLS-Required: No                       (RFC 8689 5: a report about broken TLS must still arrive)
 *   Auto-Submitted: auto-generated         (RFC 3834: no auto-replies to it)
 *   Content-Type: multipart/report; report-type="tlsrpt"; boundary=...
 *     text/plain      a few lines for a human
 *     application/tlsrpt+gzip; name=<file>   base64, Content-Disposition: attachment
 *
 * The file name is `submitter!policy-domain!begin!end!unique-id.json.gz`
 * (begin and end in seconds since the epoch, the report's date-range;
 * unique-id letters and digits, from the report-id, so a message sent again
 * names the same file).
 *
 * Everything here is ASCII with CRLF line ends, lines under 998 octets
 * (headers folded at 78 where they can be), and no line starts with "."
 * (base64 has no dot; folded lines start with a space), so the message can
 * go after DATA as it is.
 */
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Rfc8460Report } from './report';

export const REPORT_MEDIA_TYPE = 'application/tlsrpt+gzip';
const BASE64_LINE = 76;
const FOLD_AT = 78;

/** The report as it is submitted, both ways: gzip of its JSON. */
export function gzipReport(report: Rfc8460Report): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report), 'utf8'));
}

/** seconds since the epoch of the report's date-range. */
function epoch(iso: string): number {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new TypeError(`tlsrpt: bad date-time ${JSON.stringify(iso)}`);
  return Math.floor(ms / 1000);
}

/** 16 hex of sha256(report-id): 1*(ALPHA / DIGIT), the same for the same report. */
export function uniqueId(reportId: string): string {
  return createHash('sha256').update(reportId).digest('hex').slice(0, 16);
}

/** Section 5.1: `submitter!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz`. */
export function reportFileName(report: Rfc8460Report, submitter: string): string {
  const domain = report.policies[0]?.policy['policy-domain'];
  if (!domain) throw new TypeError('tlsrpt: a report without a policy');
  const range = report['date-range'];
  return `${submitter}!${domain}!${epoch(range['start-datetime'])}!${epoch(range['end-datetime'])}!${uniqueId(report['report-id'])}.json.gz`;
}

export interface ReportMailInput {
  report: Rfc8460Report;
  /** Gzipped report (gzipReport). */
  gz: Buffer;
  /** Our domain (TLS-Report-Submitter, the file name's first field). */
  submitter: string;
  from: string;
  to: string;
  date: Date;
  /** Defaults to random. */
  boundary?: string;
  messageId?: string;
}

/** Folds a header at spaces so no line passes FOLD_AT where a space allows it (RFC 5322 2.2.3). */
export function foldHeader(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > FOLD_AT && line.trim() !== `${name}:`) {
      lines.push(line);
      line = ` ${w}`;
    } else line += ` ${w}`;
  }
  lines.push(line);
  return lines.join('\r\n');
}

function base64Lines(data: Buffer): string {
  const b64 = data.toString('base64');
  const out: string[] = [];
  for (let i = 0; i < b64.length; i += BASE64_LINE) out.push(b64.slice(i, i + BASE64_LINE));
  return out.join('\r\n');
}

/** The RFC 5322 date of `d`, in UTC. */
function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** The whole message, CRLF line ends, ready for DATA. */
export function composeReportMail(m: ReportMailInput): Buffer {
  const domain = m.report.policies[0]?.policy['policy-domain'];
  if (!domain) throw new TypeError('tlsrpt: a report without a policy');
  for (const [what, v] of [['from', m.from], ['to', m.to], ['submitter', m.submitter]] as const) {
    if (!/^[\x21-\x7e]+$/.test(v)) throw new TypeError(`tlsrpt: ${what} must be printable ASCII without spaces`);
  }
  const id = m.report['report-id'];
  const file = reportFileName(m.report, m.submitter);
  const boundary = m.boundary ?? `=_mailveil-tlsrpt-${randomBytes(12).toString('hex')}`;
  const messageId = m.messageId ?? `<tlsrpt.${uniqueId(id)}.${randomBytes(6).toString('hex')}@${m.submitter}>`;
  const range = m.report['date-range'];
  const text = [
    'This is an aggregate TLS report (SMTP TLS Reporting, RFC 8460) from',
    `${m.submitter}, sent because the TLS-RPT record of ${domain}`,
    'names this address in its "rua" field. The report is attached as gzipped JSON.',
    '',
    `Policy domain: ${domain}`,
    `Submitter: ${m.submitter}`,
    `Report-ID: ${id}`,
    `Period: ${range['start-datetime']} to ${range['end-datetime']}`,
  ];
  const head = [
    `From: <${m.from}>`,
    `To: <${m.to}>`,
    foldHeader('Subject', `Report Domain: ${domain} Submitter: ${m.submitter} Report-ID: <${id}>`),
    `Date: ${rfc5322Date(m.date)}`,
    `Message-ID: ${messageId}`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${m.submitter}`,
    'TLS-Required: No',
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="${boundary}"`,
  ];
  const lines = [
    ...head,
    '',
    'This is a multi-part message in MIME format.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset="us-ascii"',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...text,
    '',
    `--${boundary}`,
    `Content-Type: ${REPORT_MEDIA_TYPE};\r\n name="${file}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment;\r\n filename="${file}"`,
    '',
    base64Lines(m.gz),
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'ascii');
}
