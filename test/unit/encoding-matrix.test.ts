/*
 * Recall under evasion: every built-in detector's sample value, in every
 * encoding a sender could hide it in, must be found in pass 1; and once the
 * redact stage has run, a fresh scan of the delivered message (every decoded
 * view: text, HTML, attachments, Subject) must find it no more.
 *
 * The encodings: 7bit; quoted-printable with a soft break inside the value;
 * base64; ISO-8859-1, ISO-8859-15 (QP) and windows-1252; UTF-16LE/BE with and
 * without a BOM, as body and as attachment; look-alike separators (no-break
 * space, non-breaking hyphen); HTML with numeric and with named character
 * references and an inline tag inside the value; multipart/alternative;
 * csv, json, xml, ics, vcf and md attachments; nested message/rfc822; RFC
 * 2047 Subjects (B and Q). The first HIT sample of each detector goes through
 * all of them; every HIT sample goes through the ones that take a value
 * apart the most (ALL_SAMPLES).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import iconv from 'iconv-lite';
import { DETECTORS } from '../../src/detectors';
import { everyDetectorRedacts, scan, redacted, hitsOf } from '../helpers/dlp';

const RULES = everyDetectorRedacts();
const CRLF = '\r\n';
const b64 = (b: Buffer) => b.toString('base64').replace(/.{76}/g, (l) => l + CRLF);
const head = (extra: string) => `From: Sender <sender@example.com>${CRLF}To: <rcpt@example.net>${CRLF}Subject: matrix${CRLF}MIME-Version: 1.0${CRLF}${extra}`;

/** QP by hand, with a soft line break forced into the middle of the value. */
function qpWithSoftBreak(text: string, value: string): string {
  const at = text.indexOf(value) + Math.floor(value.length / 2);
  const enc = (s: string) => [...Buffer.from(s, 'utf8')].map((c) => (c === 0x3d || c > 126 ? '=' + c.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(c))).join('');
  return enc(text.slice(0, at)) + '=' + CRLF + enc(text.slice(at));
}

/** The value's separators written as look-alikes: no-break spaces, non-breaking hyphens (src/detectors/fold.ts folds them back). */
const lookAlike = (v: string) => v.replace(/ /g, '\u00a0').replace(/-/g, '\u2011');

/** HTML5 named references for the value's punctuation (&hyphen; is U+2010, &nbsp; U+00A0). */
const named = (v: string) =>
  v.replace(/[-  .@:+()/]/g, (c) => ({ '-': '&hyphen;', ' ': '&nbsp;', '.': '&period;', '@': '&commat;', ':': '&colon;', '+': '&plus;', '(': '&lpar;', ')': '&rpar;', '/': '&sol;' })[c]!);

/** A multipart/mixed message whose second part is an attachment `name` of type `type`, base64. */
const attached = (type: string, name: string, content: Buffer) =>
  head(`Content-Type: multipart/mixed; boundary="MIX"${CRLF}${CRLF}--MIX${CRLF}Content-Type: text/plain${CRLF}${CRLF}Attached.${CRLF}--MIX${CRLF}Content-Type: ${type}; name="${name}"${CRLF}Content-Disposition: attachment; filename="${name}"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(content)}${CRLF}--MIX--${CRLF}`);

/** iCalendar / vCard TEXT escaping (RFC 5545 3.3.11, RFC 6350 3.4). */
const icsText = (s: string) => s.replace(/\\/g, '\\\\').replace(/[,;]/g, '\\$&').replace(/\r?\n/g, '\\n');

/** QP over bytes, with a soft line break forced into the middle of the value's bytes. */
function qpBytesWithSoftBreak(bytes: Buffer, value: string): string {
  const at = bytes.indexOf(Buffer.from(value, 'latin1')) + Math.floor(value.length / 2);
  return [...bytes].map((c, i) => (i === at ? '=' + CRLF : '') + (c === 0x3d || c > 126 ? '=' + c.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(c))).join('');
}

/** HTML where the value's non-alphanumerics are entities and an inline tag splits it. */
function htmlOf(sentence: string, value: string): string {
  const mid = Math.floor(value.length / 2);
  const ent = (s: string) => s.replace(/[^A-Za-z0-9]/g, (c) => `&#${c.charCodeAt(0)};`);
  const v = `${ent(value.slice(0, mid))}<span>${ent(value.slice(mid))}</span>`;
  return `<html><body><p>${sentence.replace(value, v)}</p></body></html>`;
}

type Encoding = [name: string, build: (sentence: string, value: string) => string];

const ENCODINGS: Encoding[] = [
  ['7bit text/plain', (s) => head(`Content-Type: text/plain; charset=us-ascii${CRLF}${CRLF}${s}${CRLF}`)],
  ['quoted-printable with a soft break inside the value', (s, v) => head(`Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${qpWithSoftBreak(s, v)}${CRLF}`)],
  ['base64 text/plain', (s) => head(`Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(Buffer.from(s))}${CRLF}`)],
  ['ISO-8859-1', (s) => head(`Content-Type: text/plain; charset=iso-8859-1${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}Gr\u00fc\u00dfe. ${s}${CRLF}`)],
  ['windows-1252 base64', (s) => head(`Content-Type: text/plain; charset=windows-1252${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(iconv.encode(`\u20ac 5. ${s}`, 'windows-1252'))}${CRLF}`)],
  ['HTML with entities and an inline tag', (s, v) => head(`Content-Type: text/html; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${qpWithSoftBreak(htmlOf(s, v), 'span')}${CRLF}`)],
  ['multipart/alternative (value only in the HTML part)', (s, v) =>
    head(`Content-Type: multipart/alternative; boundary="ALT"${CRLF}${CRLF}--ALT${CRLF}Content-Type: text/plain${CRLF}${CRLF}See the HTML part.${CRLF}--ALT${CRLF}Content-Type: text/html; charset=utf-8${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(Buffer.from(htmlOf(s, v)))}${CRLF}--ALT--${CRLF}`)],
  ['UTF-16LE attachment with BOM', (s) =>
    head(`Content-Type: multipart/mixed; boundary="MIX"${CRLF}${CRLF}--MIX${CRLF}Content-Type: text/plain${CRLF}${CRLF}Attached.${CRLF}--MIX${CRLF}Content-Type: text/plain; charset=utf-16${CRLF}Content-Disposition: attachment; filename="notes.txt"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(Buffer.concat([Buffer.from([0xff, 0xfe]), iconv.encode(s, 'utf-16le')]))}${CRLF}--MIX--${CRLF}`)],
  ['UTF-16BE attachment without BOM', (s) =>
    head(`Content-Type: multipart/mixed; boundary="MIX"${CRLF}${CRLF}--MIX${CRLF}Content-Type: text/plain${CRLF}${CRLF}Attached.${CRLF}--MIX${CRLF}Content-Type: text/plain; charset=utf-16be${CRLF}Content-Disposition: attachment; filename="notes.txt"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(iconv.encode(s, 'utf-16be'))}${CRLF}--MIX--${CRLF}`)],
  ['csv attachment', (s) =>
    head(`Content-Type: multipart/mixed; boundary="MIX"${CRLF}${CRLF}--MIX${CRLF}Content-Type: text/plain${CRLF}${CRLF}See the export.${CRLF}--MIX${CRLF}Content-Type: application/octet-stream${CRLF}Content-Disposition: attachment; filename="export.csv"${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(Buffer.from('id,note' + CRLF + '1,"' + s + '"' + CRLF))}${CRLF}--MIX--${CRLF}`)],
  ['nested message/rfc822', (s) =>
    head(`Content-Type: multipart/mixed; boundary="MIX"${CRLF}${CRLF}--MIX${CRLF}Content-Type: text/plain${CRLF}${CRLF}Forwarded.${CRLF}--MIX${CRLF}Content-Type: message/rfc822${CRLF}${CRLF}From: <inner@example.org>${CRLF}Subject: inner${CRLF}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${s}${CRLF}--MIX--${CRLF}`)],
  ['ISO-8859-15 quoted-printable', (s, v) => head(`Content-Type: text/plain; charset=iso-8859-15${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}${qpBytesWithSoftBreak(iconv.encode(`Pr\u00e9avis \u20ac 5. ${s}`, 'iso-8859-15'), v)}${CRLF}`)],
  ['UTF-16LE body without BOM', (s) => head(`Content-Type: text/plain; charset=utf-16le${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(iconv.encode(s, 'utf-16le'))}${CRLF}`)],
  ['UTF-16BE body with BOM', (s) => head(`Content-Type: text/plain; charset=utf-16be${CRLF}Content-Transfer-Encoding: base64${CRLF}${CRLF}${b64(Buffer.concat([Buffer.from([0xfe, 0xff]), iconv.encode(s, 'utf-16be')]))}${CRLF}`)],
  ['look-alike separators (no-break space, non-breaking hyphen)', (s, v) => head(`Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}${s.replace(v, lookAlike(v))}${CRLF}`)],
  ['HTML named character references', (s, v) => head(`Content-Type: text/html; charset=utf-8${CRLF}${CRLF}<div>${s.replace(v, named(v))}</div>${CRLF}`)],
  ['json attachment', (s) => attached('application/json', 'record.json', Buffer.from(JSON.stringify({ id: 7, note: s }, null, 2)))],
  ['xml attachment (attribute and element)', (s) => attached('application/xml', 'record.xml', Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<record note="${s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/\r?\n/g, '&#10;')}"/>\n`))],
  ['ics attachment', (s) => attached('text/calendar; charset=utf-8', 'invite.ics', Buffer.from(`BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1@example.com\r\nDESCRIPTION:${icsText(s)}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`))],
  ['vcf attachment', (s) => attached('text/vcard; charset=utf-8', 'contact.vcf', Buffer.from(`BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Pat Example\r\nNOTE:${icsText(s)}\r\nEND:VCARD\r\n`))],
  ['md attachment as octet-stream', (s) => attached('application/octet-stream', 'notes.md', Buffer.from(`# Notes\n\n- ${s}\n`))],
  ['RFC 2047 Subject (B)', (s) => `From: <sender@example.com>${CRLF}To: <rcpt@example.net>${CRLF}Subject: =?UTF-8?B?${Buffer.from(s).toString('base64')}?=${CRLF}${CRLF}Body without it.${CRLF}`],
  ['RFC 2047 Subject (Q)', (s) => `From: <sender@example.com>${CRLF}To: <rcpt@example.net>${CRLF}Subject: =?ISO-8859-1?Q?${[...iconv.encode(s, 'latin1')].map((c) => (c === 0x20 ? '_' : /[A-Za-z0-9]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : '=' + c.toString(16).toUpperCase().padStart(2, '0'))).join('')}?=${CRLF}${CRLF}Body without it.${CRLF}`],
];

// A Subject holds one line of text: multi-line values (PEM) are only tested in bodies.
const subjectOk = (v: string) => !/[\r\n]/.test(v) && v.length < 200;

/** Found in pass 1, redacted in pass 2, and gone from every decoded view of what is delivered. */
async function foundAndRedacted(name: string, value: string, encodings: readonly Encoding[]): Promise<void> {
  const det = DETECTORS.get(name)!;
  // The context keyword only where this value needs one: the rest must count alone, as in real mail.
  const context = det.requiresKeyword?.(value) ? `${det.samples.context} ` : '';
  const sentence = `${context}Please note: ${value} (for the file).`;
  const rule = `r-${name.replace(/_/g, '-')}`;
  for (const [enc, build] of encodings) {
    if (enc.startsWith('RFC 2047') && !subjectOk(sentence)) continue;
    const raw = Buffer.from(build(sentence, value), 'utf8');
    const ctx = await scan(raw, RULES, 17);
    assert.ok(hitsOf(ctx, rule) >= 1, `${name} ${JSON.stringify(value)} not found in ${enc}`);
    assert.equal(ctx.verdict.action, 'redact', `${name} ${JSON.stringify(value)} in ${enc}: verdict ${ctx.verdict.action} ${ctx.unscannable}`);
    const out = await redacted(raw, ctx, 3).catch((e: Error) => {
      throw new Error(`${name} ${JSON.stringify(value)} in ${enc}: ${e.message}`);
    });
    const again = await scan(out, RULES);
    assert.equal(hitsOf(again, rule), 0, `${name} ${JSON.stringify(value)} survived redaction in ${enc}:\n${out.toString('latin1')}`);
    assert.deepEqual(again.unscannable, [], `${name} ${JSON.stringify(value)} in ${enc}: the redacted message is not decodable`);
  }
}

for (const [name, det] of DETECTORS) {
  test(`encoding matrix: ${name}`, () => foundAndRedacted(name, det.samples.hit[0], ENCODINGS));
}

/** The encodings that take a value apart the most: every HIT sample goes through these. */
const ALL_SAMPLES = ENCODINGS.filter(([enc]) => /^(quoted-printable|HTML|look-alike|UTF-16LE attachment)/.test(enc));

for (const [name, det] of DETECTORS) {
  test(`encoding matrix, every HIT sample: ${name}`, async () => {
    for (const value of det.samples.hit) await foundAndRedacted(name, value, ALL_SAMPLES);
  });
}
