/*
 * Golden tests for the redact stage (src/pipeline/stages/redact.ts). Each folder
 * under test/golden/redact/ holds in.eml, rules.yaml (a rule file as in
 * DESIGN.md), out.eml and verdict.json. The runner scans in.eml in 17-byte
 * chunks (pass 1 + decide), runs the redact stage over it in 3-byte chunks,
 * and compares the output byte for byte with out.eml, and
 * {verdict, rules, hits: [{rule, count, parts}]} with verdict.json.
 * UPDATE_GOLDEN=1 rewrites out.eml and verdict.json instead: only on
 * purpose, and review the diff by eye.
 *
 * Beyond the golden bytes, every case must also hold these properties:
 *   - the redacted output, scanned again, has no hit for any redact rule and
 *     is still fully decodable;
 *   - everything outside the redacted parts is byte-identical: each part with
 *     no hit (headers and body), every boundary line, preamble and epilogue,
 *     and the header fields (the Subject only changes when it had a hit);
 *   - in the redacted parts that are not base64/QP, every input line that
 *     cannot hold a value (for format=flowed: whose paragraph cannot) is
 *     still there, unchanged and in order;
 *   - neither pass depends on chunking (1-, 3-, 17-byte chunks and whole),
 *     and the output has no bare LF;
 *   - with a verdict other than redact, the output IS the input.
 * Data is synthetic: example.com/.net/.org, public test card numbers, the
 * 123-45-6789 style SSNs the detector accepts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import libmime from 'libmime';
import { decodeHTML } from 'entities';
import { scan, redacted, ruleSetFromYaml } from '../helpers/dlp';
import { TEST_DIR, REPO_ROOT } from '../helpers/paths';
import { mimeLayout, masked, fieldRange, linesOf, within, type MimeLayout } from '../helpers/mime-parts';
import type { MessageContext } from '../../src/pipeline/context';
import type { RuleSet } from '../../src/rules/types';

const CASES = join(TEST_DIR, 'golden', 'redact');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const EXPECTED_CASES = [
  'qp-soft-break',
  'base64-76-columns',
  'html-entities-and-tags',
  'alternative-both-parts',
  'mixed-with-csv-attachment-and-image',
  'nested-rfc822',
  'subject-rfc2047',
  'latin1-8bit',
  'utf16-attachment',
  'two-rules-same-part',
  'tag-only',
  'monitor-only',
  'html-attributes',
  'html-comments-conditional',
  'flowed-soft-break',
  'flowed-delsp-quoted',
];

interface VerdictFile {
  verdict: string;
  rules: string[];
  hits: { rule: string; count: number; parts: string[] }[];
}

function verdictOf(ctx: MessageContext): VerdictFile {
  const byRule = new Map<string, { count: number; parts: Set<string> }>();
  for (const f of ctx.findings) {
    const e = byRule.get(f.rule) ?? { count: 0, parts: new Set<string>() };
    e.count += f.count;
    e.parts.add(f.part);
    byRule.set(f.rule, e);
  }
  const hits = [...byRule]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([rule, e]) => ({ rule, count: e.count, parts: [...e.parts].sort() }));
  return { verdict: ctx.verdict.action, rules: ctx.verdict.rules, hits };
}

function redactRuleIds(rules: RuleSet): string[] {
  return rules.rules.filter((r) => r.action === 'redact').map((r) => r.id);
}

/** Findings the redact stage acts on: redact rules that fired. */
function redactFindings(ctx: MessageContext) {
  const ids = new Set(redactRuleIds(ctx.rules));
  return ctx.findings.filter((f) => ids.has(f.rule) && ctx.verdict.action === 'redact' && ctx.verdict.rules.includes(f.rule));
}

interface Changed {
  /** Leaves whose body the redact stage may rewrite. */
  leaves: Set<string>;
  /** Header blocks whose Subject it may rewrite. */
  subjects: Set<string>;
}

function changedParts(ctx: MessageContext, layout: MimeLayout): Changed {
  const hits = redactFindings(ctx);
  const leaves = new Set(layout.leaves.filter((l) => hits.some((f) => f.scope !== 'subject' && within(f.part, l.path))).map((l) => l.path));
  const subjects = new Set(hits.filter((f) => f.scope === 'subject').map((f) => f.part));
  return { leaves, subjects };
}

/** The message with the parts the redact stage may change replaced by a label. */
function skeleton(raw: Buffer, changed: Changed): Buffer {
  const layout = mimeLayout(raw);
  const ranges: { start: number; end: number; label: string }[] = [];
  for (const l of layout.leaves) if (changed.leaves.has(l.path)) ranges.push({ start: l.bodyStart, end: l.bodyEnd, label: `body ${l.path}` });
  for (const h of layout.headers) {
    if (!changed.subjects.has(h.path)) continue;
    const r = fieldRange(raw, h, 'subject');
    if (r) ranges.push({ ...r, label: `subject ${h.path}` });
  }
  return masked(raw, ranges);
}

/** Text of a line as a reader could see it, for "could this line hold a value?". */
function visible(line: string): string {
  return decodeHTML(line.replace(/<[^>]*>/g, ''));
}

/** The part's format=flowed parameters (RFC 3676), read from its own header bytes, or undefined. */
function flowedOf(raw: Buffer, leaf: { headerStart: number; headerEnd: number }): { delSp: boolean } | undefined {
  const head = raw.subarray(leaf.headerStart, leaf.headerEnd).toString('latin1').replace(/\r?\n[ \t]/g, ' ');
  if (!/^content-type:[^\r\n]*;\s*format\s*=\s*"?flowed/im.test(head)) return undefined;
  return { delSp: /^content-type:[^\r\n]*;\s*delsp\s*=\s*"?yes/im.test(head) };
}

/**
 * For a format=flowed body: each line's unwrapped paragraph, by the line's
 * start offset. A value may run across a soft break, so whether a line
 * could hold one is a question about its paragraph.
 */
function flowedParagraphs(raw: Buffer, start: number, end: number, delSp: boolean): Map<number, string> {
  const out = new Map<number, string>();
  let starts: number[] = [];
  let text = '';
  for (const line of linesOf(raw).filter((l) => l.start >= start && l.start < end)) {
    const body = starts.length ? line.text.replace(/^>* ?/, '') : line.text.replace(/^ /, '');
    const soft = line.text.endsWith(' ') && line.text !== '-- ';
    text += soft && delSp ? body.slice(0, -1) : body;
    starts.push(line.start);
    if (soft) continue;
    for (const s of starts) out.set(s, text);
    [starts, text] = [[], ''];
  }
  for (const s of starts) out.set(s, text);
  return out;
}

/**
 * Input lines that must come out unchanged and in order: all of them except
 * the Subject of a header block with a hit, the lines of changed base64/QP
 * parts (re-encoded as a whole), and the lines of other changed parts on
 * which a redact rule's pattern matches at all (for format=flowed: on the
 * line's unwrapped paragraph).
 */
function assertLinesKept(name: string, raw: Buffer, out: Buffer, ctx: MessageContext, changed: Changed): void {
  const layout = mimeLayout(raw);
  const patterns = ctx.rules.compiled.rules.filter((r) => r.def.action === 'redact').map((r) => r.re);
  const mayHold = (text: string) =>
    patterns.some((re) => {
      re.lastIndex = 0;
      const hit = re.test(visible(text)) || re.test(text);
      re.lastIndex = 0;
      return hit;
    });
  const skip: { start: number; end: number; encoded: boolean; paragraphs?: Map<number, string> }[] = [];
  for (const l of layout.leaves) {
    if (!changed.leaves.has(l.path)) continue;
    const flowed = flowedOf(raw, l);
    const paragraphs = flowed && flowedParagraphs(raw, l.bodyStart, l.bodyEnd, flowed.delSp);
    skip.push({ start: l.bodyStart, end: l.bodyEnd, encoded: l.encoding === 'base64' || l.encoding === 'quoted-printable', paragraphs });
  }
  for (const h of layout.headers) {
    const r = changed.subjects.has(h.path) ? fieldRange(raw, h, 'subject') : undefined;
    if (r) skip.push({ ...r, encoded: true });
  }
  const outLines = linesOf(out).map((l) => l.text);
  let at = 0;
  for (const line of linesOf(raw)) {
    const region = skip.find((r) => line.start >= r.start && line.start < r.end);
    if (region && (region.encoded || mayHold(region.paragraphs?.get(line.start) ?? line.text))) continue;
    const found = outLines.indexOf(line.text, at);
    assert.ok(found >= 0, `${name}: input line ${JSON.stringify(line.text)} is missing from the output (or out of order)`);
    at = found + 1;
  }
}

function leafBody(raw: Buffer, path: string): Buffer {
  const leaf = mimeLayout(raw).leaves.find((l) => l.path === path);
  assert.ok(leaf, `no part ${path}`);
  return raw.subarray(leaf.bodyStart, leaf.bodyEnd);
}

function leafBytes(raw: Buffer, path: string): Buffer {
  const leaf = mimeLayout(raw).leaves.find((l) => l.path === path);
  assert.ok(leaf, `no part ${path}`);
  return raw.subarray(leaf.headerStart, leaf.bodyEnd);
}

/** Quoted-printable decoding by hand (RFC 2045 6.7), independent of the code under test. */
const qpDecode = (b: Buffer) =>
  Buffer.from(b.toString('latin1').replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
const b64decode = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');

function assertBase64Lines(name: string, body: Buffer): void {
  const text = body.toString('latin1');
  assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), `${name}: base64 body has a bare CR or LF`);
  for (const line of text.split('\r\n')) {
    assert.ok(line.length <= 76, `${name}: base64 line of ${line.length} columns: ${line}`);
    assert.match(line, /^[A-Za-z0-9+/]*=*$/, `${name}: not a base64 line: ${line}`);
  }
}

/** RFC 3676 unwrapping written for the tests: paragraphs joined, quote marks of continuation lines and one stuffing space dropped. */
function unwrapFlowed(body: string, delSp: boolean): string {
  const out: string[] = [];
  let para = '';
  let continued = false;
  for (const line of body.split('\r\n')) {
    const text = continued ? line.replace(/^>* ?/, '') : line.replace(/^ /, '');
    const soft = line.endsWith(' ') && line !== '-- ';
    para += soft && delSp ? text.slice(0, -1) : text;
    continued = soft;
    if (soft) continue;
    out.push(para);
    para = '';
  }
  return out.join('\n') + para;
}

/** Each tag, in order, with its attribute values blanked out; plain comments left out (their text is checked on its own). */
function tagShapes(html: string): string[] {
  return (html.match(/<[^>]*>/g) ?? []).filter((t) => !t.startsWith('<!-- ')).map((t) => t.replace(/=\s*("[^"]*"|'[^']*'|[^\s>]+)/g, '=…'));
}

/** What each case is about, beyond the shared properties. */
const CHECKS: Record<string, (input: Buffer, out: Buffer) => void> = {
  'qp-soft-break': (input, out) => {
    const body = leafBody(out, '1');
    for (const line of body.toString('latin1').split('\r\n')) assert.ok(line.length <= 76, `QP line longer than 76: ${line}`);
    const text = qpDecode(body).toString('utf8');
    assert.match(text, /account to \[CARD\] \(expiry 12\/29\)/);
    assert.match(text, /Hello René,/);
    assert.match(text, /the amount is € 49\.90 and the formula a=b\+c is unchanged/);
    assert.match(text, /invoice \(no\. 4111-2026-000187\)/, 'a near miss beside the value is untouched');
    assert.ok(!input.equals(out));
  },
  'base64-76-columns': (_input, out) => {
    const body = leafBody(out, '1');
    assertBase64Lines('base64-76-columns', body);
    // The last line ends in CRLF too: the part ends where the message does.
    assert.ok(out.subarray(-2).equals(Buffer.from('\r\n')), 'the message no longer ends in CRLF');
    const text = b64decode(body).toString('utf8');
    assert.match(text, /Card: \[CARD\], valid through 08\/28/);
    assert.match(text, /PO-77120934/);
  },
  'html-entities-and-tags': (input, out) => {
    const tags = (b: Buffer) => b.toString('utf8').match(/<[^>]*>/g) ?? [];
    assert.deepEqual(tags(out), tags(input), 'every tag, in order, with its attributes, must be intact');
    const text = out.toString('utf8');
    assert.match(text, /Paid with card <b>\[CARD\]<\/b><span style="color:#c00"><\/span> &ndash; thank you\./);
    assert.match(text, /SSN&nbsp;\[SSN\]<i><\/i> \(as on your W-9\)/);
    assert.match(text, /<td>4111-2026-000187<\/td>/, 'the order number near miss is untouched');
  },
  'alternative-both-parts': (_input, out) => {
    const plain = leafBody(out, '1').toString('utf8');
    const html = qpDecode(leafBody(out, '2')).toString('utf8');
    assert.match(plain, /SSN is \[SSN\]\./);
    assert.match(html, /SSN is <b>\[SSN\]<\/b>\./);
    // A monitor rule counts and never rewrites.
    assert.match(plain, /hr-help@example\.com/);
    assert.match(html, /href="mailto:hr-help@example\.com">hr-help@example\.com<\/a>/);
  },
  'mixed-with-csv-attachment-and-image': (input, out) => {
    assert.ok(leafBytes(out, '3').equals(leafBytes(input, '3')), 'the image part must be byte-identical');
    assert.ok(leafBytes(out, '1').equals(leafBytes(input, '1')), 'the text part must be byte-identical');
    const body = leafBody(out, '2');
    assertBase64Lines('csv', body);
    const csv = b64decode(body).toString('utf8');
    assert.match(csv, /^100234517,ACME GmbH,\[CARD\],129\.00\r$/m);
    assert.match(csv, /^4111111111111112,Example Ltd/m, 'a Luhn-failing number is not a card');
    assert.match(csv, /^5555555555554440,Example Ltd/m, 'a Luhn-failing number is not a card');
  },
  'nested-rfc822': (input, out) => {
    assert.ok(leafBytes(out, '2.2').equals(leafBytes(input, '2.2')), 'the inner attachment must be byte-identical');
    assert.ok(leafBytes(out, '1').equals(leafBytes(input, '1')), 'the outer text part must be byte-identical');
    const inner = leafBody(out, '2.1').toString('latin1');
    assert.match(inner, /please charge my new Amex \[CARD\] from now on\./);
    assert.match(inner, /Customer number 37828224 stays the same\./);
  },
  'subject-rfc2047': (input, out) => {
    const h = mimeLayout(out).headers[0];
    const r = fieldRange(out, h, 'subject')!;
    const field = out.subarray(r.start, r.end).toString('latin1');
    assert.match(field, /^Subject: [\x20-\x7e\r\n\t]*$/, `the Subject must be 7-bit: ${field}`);
    assert.match(field, /=\?utf-8\?[QB]\?/i, 'non-ASCII text goes back as RFC 2047 encoded words');
    for (const line of field.split('\r\n')) assert.ok(line.length <= 78, `Subject line longer than 78: ${line}`);
    const value = libmime.decodeWords(field.slice('Subject:'.length).replace(/\r\n[ \t]/g, ' ').trim());
    assert.equal(value, 'Rückerstattung auf Karte [CARD] bitte prüfen');
    assert.ok(leafBody(out, '1').equals(leafBody(input, '1')), 'the body had no hit and must be byte-identical');
  },
  'latin1-8bit': (_input, out) => {
    const body = leafBody(out, '1');
    assert.ok(body.includes(Buffer.from([0xe9])), 'é stays the single byte 0xE9');
    assert.ok(!body.includes(Buffer.from([0xc3, 0xa9])), 'é must not turn into UTF-8');
    const text = iconv.decode(body, 'latin1');
    assert.match(text, /Bonjour René,/);
    assert.match(text, /de l'employé est \[SSN\]\. Merci/);
    assert.match(text, /Équipe paie/);
  },
  'utf16-attachment': (input, out) => {
    assert.ok(leafBytes(out, '1').equals(leafBytes(input, '1')));
    const body = leafBody(out, '2');
    assertBase64Lines('utf16', body);
    const bytes = b64decode(body);
    assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe], 'the UTF-16LE BOM is kept');
    const text = iconv.decode(bytes.subarray(2), 'utf-16le');
    assert.match(text, /Social security number: \[SSN\]\r\n/);
    assert.match(text, /Département: Qualité/);
  },
  'two-rules-same-part': (_input, out) => {
    const text = leafBody(out, '1').toString('latin1');
    assert.equal(text.match(/\[SSN\]/g)?.length, 2);
    assert.equal(text.match(/\[CARD\]/g)?.length, 2);
    assert.match(text, /Reference: 123-45-67890 \(not an SSN\), order 4111111111111112 \(not a card\)/);
  },
  'html-attributes': (input, out) => {
    const body = leafBody(out, '1');
    for (const line of body.toString('latin1').split('\r\n')) assert.ok(line.length <= 76, `QP line longer than 76: ${line}`);
    const html = qpDecode(body).toString('utf8');
    assert.deepEqual(tagShapes(html), tagShapes(qpDecode(leafBody(input, '1')).toString('utf8')), 'every tag, in order, with the same attributes');
    // Each quote style stays valid: double, single, none; references inside a value are removed with it.
    assert.match(html, /<p class="intro" title="Card \[CARD\]">Paid with card \[CARD\]\.<\/p>/);
    assert.match(html, /<img src="cid:logo@example\.com" alt='Card \[CARD\]' width="120">/);
    assert.match(html, /href="https:\/\/pay\.example\.com\/receipt\?card=\[CARD\]&amp;ref=R-2026-0187" title='SSN \[SSN\] on file'/);
    assert.match(html, /<input type=hidden name=ssn value=\[SSN\]><input type=submit value=Confirm>/);
    assert.match(html, /data-customer="\{&quot;ssn&quot;:&quot;\[SSN\]&quot;,&quot;name&quot;:&quot;René &amp; Co&quot;\}">Hello René,/);
    assert.match(html, /<p title="Order 4111-2026-000187">Order 4111-2026-000187 ships today\.<\/p>/, 'the near miss in an attribute is untouched');
  },
  'html-comments-conditional': (input, out) => {
    assert.ok(leafBytes(out, '1').equals(leafBytes(input, '1')), 'the text/plain part had no hit and must be byte-identical');
    const html = leafBody(out, '2').toString('utf8');
    const before = leafBody(input, '2').toString('utf8');
    assert.deepEqual(tagShapes(html), tagShapes(before), 'every tag and conditional comment marker, in order');
    for (const marker of ['<!--[if mso]>', '<![endif]-->', '<!--[if !mso]><!-->', '<!--<![endif]-->', '<![if !mso]>', '<![endif]>']) {
      assert.equal(html.split(marker).length, before.split(marker).length, `conditional comment marker ${marker}`);
    }
    assert.match(html, /\/\* template rendered for card \[CARD\] \*\/\r\np \{ margin: 0 0 8px 0; \}/, 'inside <style>');
    assert.match(html, /<!-- customer record: SSN \[SSN\], card \[CARD\] -->/, 'inside a comment');
    assert.match(html, /<td title="Card \[CARD\]">Card \[CARD\] \(Outlook\)<\/td>/, 'inside <!--[if mso]>, as HTML');
    assert.match(html, /<div class="card">Card \[CARD\] \(other clients\)<\/div>/);
    assert.match(html, /<!\[if !mso\]><p>SSN \[SSN\] \(downlevel-revealed\)<\/p><!\[endif\]>/);
    assert.match(html, /"paymentMethodId": "\[CARD\]", "orderNumber": "4111-2026-000187"/, 'inside <script>; the near miss stays');
    assert.match(html, /<p>Order 4111-2026-000187 ships today\.<\/p>/);
  },
  'flowed-soft-break': (input, out) => {
    const body = leafBody(out, '1').toString('utf8');
    for (const line of body.split('\r\n')) assert.ok(Buffer.byteLength(line) <= 998, `line longer than 998 octets: ${line}`);
    // Read as flowed text, the output is the input with the values replaced: soft breaks stayed soft.
    const expected = unwrapFlowed(leafBody(input, '1').toString('utf8'), false)
      .replace('4111 1111 1111 1111', '[CARD]')
      .replace('5555 5555 5555 4444', '[CARD]')
      .replace('123-45-6789', '[SSN]');
    assert.equal(unwrapFlowed(body, false), expected);
    assert.match(body, /\r\nplease charge the renewal to my new card \[CARD\] from now on, and keep the order number \r\n4111-2026-000187 for your /);
    assert.match(body, /\r\n> Your card \[CARD\] expires soon\. Please send the new one\. For the \r\n> tax form, your SSN \[SSN\] is what we have on \r\n> file\.\r\n>\r\n>> Renewals/);
    assert.match(body, /\r\n From next month on, the invoices go to my new address\.\r\n/, 'space-stuffing kept');
    assert.match(body, /\r\n-- \r\nRené\r\n$/, 'signature kept');
  },
  'flowed-delsp-quoted': (input, out) => {
    const body = leafBody(out, '1');
    for (const line of body.toString('latin1').split('\r\n')) assert.ok(line.length <= 76, `QP line longer than 76: ${line}`);
    const text = qpDecode(body).toString('utf8');
    const expected = unwrapFlowed(qpDecode(leafBody(input, '1')).toString('utf8'), true)
      .replace('4111111111111111', '[CARD]')
      .replace('123-45-6789', '[SSN]')
      .replace('5555555555554444', '[CARD]');
    assert.equal(unwrapFlowed(text, true), expected);
    assert.match(text, /^Thanks, the number is \[CARD\], and my SSN is \[SSN\]\. Grüße, René\r\n/);
    assert.match(text, /\r\n> \[CARD\] by phone, not by mail\. \r\n> Reference 4111-2026-000187\.\r\n$/, 'quote marks and the last soft break kept');
  },
  'tag-only': (input, out) => assert.ok(out.equals(input), 'tag never rewrites the message'),
  'monitor-only': (input, out) => assert.ok(out.equals(input), 'monitor never rewrites the message'),
};

const cases = existsSync(CASES)
  ? readdirSync(CASES, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort()
  : [];

test('every planned golden redaction case is there', () => {
  for (const name of EXPECTED_CASES) assert.ok(cases.includes(name), `missing case ${name}`);
  for (const name of cases) assert.ok(name in CHECKS, `case ${name} has no case-specific check`);
});

test('the byte-identity check notices a change outside the redacted parts', async () => {
  const dir = join(CASES, 'mixed-with-csv-attachment-and-image');
  const input = readFileSync(join(dir, 'in.eml'));
  const ctx = await scan(input, ruleSetFromYaml(readFileSync(join(dir, 'rules.yaml'), 'utf8')));
  const out = await redacted(input, ctx);
  const changed = changedParts(ctx, mimeLayout(input));
  assert.deepEqual([...changed.leaves], ['2']);
  assert.equal(skeleton(out, changed).toString('latin1'), skeleton(input, changed).toString('latin1'));
  // One byte of the image, one of a boundary line: both must show.
  for (const needle of ['iVBORw0KGgo', '--b1_mixed--']) {
    const bad = Buffer.from(out);
    bad[bad.indexOf(needle) + 3] ^= 0x20;
    assert.notEqual(skeleton(bad, changed).toString('latin1'), skeleton(input, changed).toString('latin1'), needle);
  }
});

for (const name of cases) {
  test(`golden redact/${name}`, async () => {
    const dir = join(CASES, name);
    const input = readFileSync(join(dir, 'in.eml'));
    const rules = ruleSetFromYaml(readFileSync(join(dir, 'rules.yaml'), 'utf8'));
    const ctx = await scan(input, rules, 17);
    assert.deepEqual(ctx.unscannable, [], `${name}: the input must be fully scannable`);
    const out = await redacted(input, ctx, 3);
    // Neither pass may depend on how the input is cut (CONVENTIONS.md: 1-, 3- and 17-byte chunks, and whole).
    for (const size of [1, 3, 65536]) {
      assert.deepEqual(verdictOf(await scan(input, rules, size)), verdictOf(ctx), `${name}: pass 1 differs with ${size}-byte chunks`);
    }
    for (const size of [1, 17, 65536]) {
      assert.equal((await redacted(input, ctx, size)).toString('latin1'), out.toString('latin1'), `${name}: redaction differs with ${size}-byte chunks`);
    }
    const verdict = verdictOf(ctx);

    if (UPDATE) {
      // The properties below are still checked: a regenerated case must hold them too.
      writeFileSync(join(dir, 'out.eml'), out);
      writeFileSync(join(dir, 'verdict.json'), JSON.stringify(verdict, null, 2) + '\n');
    }
    assert.ok(existsSync(join(dir, 'out.eml')), `${name}: out.eml missing; run with UPDATE_GOLDEN=1 and review it`);
    const want = readFileSync(join(dir, 'out.eml'));
    // Text first for a readable diff, then bytes for the line ends.
    assert.equal(out.toString('latin1'), want.toString('latin1'), `${name}: output differs from out.eml`);
    assert.ok(out.equals(want), `${name}: output differs from out.eml`);
    assert.deepEqual(verdict, JSON.parse(readFileSync(join(dir, 'verdict.json'), 'utf8')), `${name}: verdict differs from verdict.json`);

    // The redacted message, scanned again: nothing left for a redact rule, still decodable.
    const again = await scan(out, rules, 17);
    for (const id of redactRuleIds(rules)) {
      assert.equal(again.findings.filter((f) => f.rule === id).length, 0, `${name}: rule ${id} still hits after redaction`);
    }
    assert.deepEqual(again.unscannable, [], `${name}: the redacted message is not decodable`);

    if (ctx.verdict.action !== 'redact') assert.ok(out.equals(input), `${name}: verdict ${ctx.verdict.action} must deliver the input unchanged`);

    // Outside the redacted parts, not a byte moved.
    const changed = changedParts(ctx, mimeLayout(input));
    assert.equal(skeleton(out, changed).toString('latin1'), skeleton(input, changed).toString('latin1'), `${name}: bytes outside the redacted parts changed`);
    assertLinesKept(name, input, out, ctx, changed);
    if (!/(?<!\r)\n/.test(input.toString('latin1'))) assert.ok(!/(?<!\r)\n/.test(out.toString('latin1')), `${name}: the output has a bare LF`);

    CHECKS[name](input, out);
  });
}

/*
 * Bugs found while writing the cases above, each fixed since and kept as a
 * regression test; the titles say what used to happen.
 */
describe('redaction: regressions', () => {
  const CARD_RULES = 'rules:\n  - id: payment-card\n    detector: credit_card\n    action: redact\n    replacement: "[CARD]"\n';
  const SSN_RULES = 'rules:\n  - id: us-ssn\n    detector: us_ssn\n    action: redact\n    replacement: "[SSN]"\n';
  const msg = (head: string[], body: string | Buffer): Buffer =>
    Buffer.concat([Buffer.from(['From: <sender@example.com>', 'To: <rcpt@example.net>', 'Subject: test', 'MIME-Version: 1.0', ...head, '', ''].join('\r\n'), 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')]);

  /** The redacted message, or undefined when the stage refused it (RedactionError: fail closed, to quarantine). */
  async function redactedOrRefused(raw: Buffer, ctx: MessageContext): Promise<Buffer | undefined> {
    try {
      return await redacted(raw, ctx, 3);
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'MV_REDACT');
      return undefined;
    }
  }

  /** Scans, redacts, and checks that no value of a redact rule is left in the output. */
  async function redactsCleanly(raw: Buffer, yaml: string): Promise<Buffer> {
    const rules = ruleSetFromYaml(yaml);
    const ctx = await scan(raw, rules, 17);
    assert.equal(ctx.verdict.action, 'redact', `pass 1 should find the value: ${JSON.stringify(ctx.findings)}`);
    const out = await redacted(raw, ctx, 3);
    const again = await scan(out, rules);
    assert.equal(again.findings.length, 0, `a value survived redaction: ${JSON.stringify(again.findings)}\n${out.toString('latin1')}`);
    return out;
  }

  test(
    'a value in an HTML attribute (title, alt, href) next to one in the text could not be redacted (RedactionError: quarantined, never delivered)',
    async () => {
      const out = await redactsCleanly(msg(['Content-Type: text/html; charset=utf-8'], '<p title="4111 1111 1111 1111">Card 4111 1111 1111 1111</p>\r\n'), CARD_RULES);
      assert.match(out.toString('latin1'), /<p title="\[CARD\]">Card \[CARD\]<\/p>/);
    },
  );

  test(
    'a value inside an Outlook conditional comment (<!--[if mso]>) could not be redacted (RedactionError: quarantined, never delivered)',
    async () => {
      const html = '<p>Card 4111 1111 1111 1111</p><!--[if mso]><p>Card 5555 5555 5555 4444</p><![endif]-->\r\n';
      const out = await redactsCleanly(msg(['Content-Type: text/html; charset=utf-8'], html), CARD_RULES);
      assert.match(out.toString('latin1'), /<p>Card \[CARD\]<\/p><!--\[if mso\]><p>Card \[CARD\]<\/p><!\[endif\]-->/);
    },
  );

  test(
    'a malformed <style start tag (<style<p>) hides the rest of the HTML from the redactor: a later value is delivered',
    async () => {
      await redactsCleanly(msg(['Content-Type: text/html; charset=utf-8'], '<p>4111 1111 1111 1111</p><style<p>x</p><p>5555 5555 5555 4444</p>\r\n'), CARD_RULES);
    },
  );

  test(
    'a value whose groups are separated by &nbsp; cannot be redacted (RedactionError: the message can never be delivered)',
    async () => {
      await redactsCleanly(msg(['Content-Type: text/html; charset=utf-8'], '<p>Card 4111&nbsp;1111&nbsp;1111&nbsp;1111</p>\r\n'), CARD_RULES);
    },
  );

  /** A multipart/mixed message: a text part, then an attached message with `disposition`, these header lines and this body. */
  const forwarded = (disposition: string, head: string[], body: string): Buffer =>
    msg(
      ['Content-Type: multipart/mixed; boundary="o"'],
      ['--o', 'Content-Type: text/plain', '', 'Forwarded below.', '--o', 'Content-Type: message/rfc822', `Content-Disposition: ${disposition}`, '', ...head, 'Content-Type: text/plain', '', body, '--o--', ''].join('\r\n'),
    );

  test(
    'a message/rfc822 part with Content-Disposition: inline cannot be redacted (RedactionError)',
    async () => {
      const out = await redactsCleanly(forwarded('inline', ['From: <customer@example.org>', 'Subject: card'], 'Please charge 3782 822463 10005.'), CARD_RULES);
      assert.match(out.toString('latin1'), /Please charge \[CARD\]\./);
    },
  );

  test(
    'a value in the Subject of an attached message was filed as a body part and could not be redacted (RedactionError)',
    async () => {
      const raw = forwarded('attachment; filename="fwd.eml"', ['From: <customer@example.org>', 'Subject: SSN 123-45-6789 as asked'], 'See subject.');
      const out = await redactsCleanly(raw, SSN_RULES);
      assert.match(out.toString('latin1'), /\r\nSubject: SSN \[SSN\] as asked\r\n/);
    },
  );

  test('a value in another header field of an attached message (a display name) is not rewritten: the stage fails closed', async () => {
    const raw = forwarded('attachment', ['From: "SSN 123-45-6789" <customer@example.org>', 'Subject: hello'], 'See sender.');
    const ctx = await scan(raw, ruleSetFromYaml(SSN_RULES));
    assert.equal(ctx.verdict.action, 'redact');
    assert.equal(await redactedOrRefused(raw, ctx), undefined);
  });

  test('a value in a multipart preamble or epilogue was never scanned and left in clear; now it is found, and, not being rewritable there, fails closed', async () => {
    for (const [preamble, epilogue] of [['SSN 123-45-6789', ''], ['', 'SSN 123-45-6789\r\n']]) {
      const raw = msg(['Content-Type: multipart/mixed; boundary="b"'], `${preamble}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n${epilogue}`);
      const ctx = await scan(raw, ruleSetFromYaml(SSN_RULES), 17);
      assert.equal(ctx.verdict.action, 'redact', JSON.stringify({ preamble, epilogue }));
      assert.equal(await redactedOrRefused(raw, ctx), undefined);
    }
  });

  test(
    'a text/plain; format=flowed value split by a soft line break cannot be redacted (RedactionError)',
    async () => {
      const out = await redactsCleanly(msg(['Content-Type: text/plain; charset=utf-8; format=flowed'], 'Card 4111 1111 \r\n1111 1111 thanks\r\n'), CARD_RULES);
      assert.match(out.toString('latin1'), /\r\n\r\nCard \[CARD\] thanks\r\n$/);
    },
  );

  test(
    'charset=utf-16 without a BOM cannot be redacted (RedactionError)',
    async () => {
      const b64 = iconv.encode('SSN 123-45-6789 here\r\n', 'utf-16be').toString('base64');
      const out = await redactsCleanly(msg(['Content-Type: text/plain; charset=utf-16', 'Content-Transfer-Encoding: base64'], b64 + '\r\n'), SSN_RULES);
      const body = b64decode(out.subarray(out.indexOf('\r\n\r\n') + 4));
      assert.equal(iconv.decode(body, 'utf-16be'), 'SSN [SSN] here\r\n');
    },
  );

  test(
    'base64 with padding in the middle (chunks encoded one by one) loses everything after the first "=" when redacted',
    async () => {
      const b64 = Buffer.from('SSN 123-45-6789 first line\r\n').toString('base64') + '\r\n' + Buffer.from('second part: the rest of the report.\r\n').toString('base64') + '\r\n';
      const out = await redactsCleanly(msg(['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64'], b64), SSN_RULES);
      const text = out
        .subarray(out.indexOf('\r\n\r\n') + 4)
        .toString('latin1')
        .split(/\r\n/)
        .filter(Boolean)
        .map((l) => Buffer.from(l, 'base64').toString('utf8'))
        .join('');
      assert.match(text, /second part: the rest of the report\./);
    },
  );

  test(
    'a raw UTF-8 Subject (RFC 6532) comes out as mojibake after redaction',
    async () => {
      const raw = Buffer.from('From: <sender@example.com>\r\nSubject: Café SSN 123-45-6789\r\nContent-Type: text/plain\r\n\r\nhi\r\n', 'utf8');
      const out = await redactsCleanly(raw, SSN_RULES);
      const r = fieldRange(out, mimeLayout(out).headers[0], 'subject')!;
      const value = libmime.decodeWords(out.subarray(r.start + 'Subject:'.length, r.end).toString('utf8').replace(/\r\n[ \t]/g, ' ').trim());
      assert.equal(value, 'Café SSN [SSN]');
    },
  );

  test(
    'bytes outside the declared charset in a redacted part are changed (us-ascii part with 0xE9 gets 0xFF)',
    async () => {
      const raw = msg(['Content-Type: text/plain; charset=us-ascii', 'Content-Transfer-Encoding: 8bit'], Buffer.concat([Buffer.from('Caf'), Buffer.from([0xe9]), Buffer.from(' SSN 123-45-6789\r\n')]));
      const out = await redactsCleanly(raw, SSN_RULES);
      assert.ok(out.includes(Buffer.concat([Buffer.from('Caf'), Buffer.from([0xe9]), Buffer.from(' SSN [SSN]\r\n')])), out.toString('latin1'));
    },
  );

  test(
    'a delimiter line with transport padding ("--b " or "--b\\t", RFC 2046 5.1.1) hides the next part from the redactor: its value is delivered, with no error',
    async () => {
      for (const pad of [' ', '\t']) {
        const body = ['--b', 'Content-Type: text/plain', '', 'hello', '--b' + pad, 'Content-Type: text/plain', '', 'card 3782 822463 10005', '--b--', ''].join('\r\n');
        const raw = msg(['Content-Type: multipart/mixed; boundary="b"'], body);
        const rules = ruleSetFromYaml(CARD_RULES);
        const ctx = await scan(raw, rules, 17);
        assert.equal(ctx.verdict.action, 'redact');
        const out = await redactedOrRefused(raw, ctx);
        if (!out) continue;
        assert.doesNotMatch(out.toString('latin1'), /3782 822463 10005/, `padding ${JSON.stringify(pad)}`);
      }
    },
  );

  test(
    'a part that pass 1 and the redactor number differently is delivered unredacted, with no error',
    async () => {
      const body = [
        '--OUT',
        'Content-Type: multipart/alternative; boundary="IN"',
        '',
        '--IN',
        'Content-Type: text/plain',
        '',
        'hello',
        '--OUT',
        'Content-Type: text/plain',
        '',
        'SSN 123-45-6789 A',
        '--IN',
        'Content-Type: text/plain',
        '',
        'SSN 123-45-6789 B',
        '--IN--',
        '--OUT',
        'Content-Type: text/plain',
        '',
        'SSN 123-45-6789 C',
        '--OUT--',
        '',
      ].join('\r\n');
      const raw = msg(['Content-Type: multipart/mixed; boundary="OUT"'], body);
      // Either every value goes, or the stage refuses (RedactionError: fail closed); never a quiet leak.
      const rules = ruleSetFromYaml(SSN_RULES);
      const ctx = await scan(raw, rules, 17);
      assert.equal(ctx.verdict.action, 'redact');
      let out: Buffer;
      try {
        out = await redacted(raw, ctx, 3);
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'MV_REDACT');
        return;
      }
      assert.doesNotMatch(out.toString('latin1'), /123-45-6789/);
    },
  );

  test(
    'a bare CR before a delimiter line makes mailsplit number the parts differently from pass 1: a value is delivered, with no error',
    async () => {
      // Pass 1 reads "\r*--b" as preamble, mailsplit under the redactor as a delimiter: its parts 1 and 2 are pass 1's preamble and 1.
      const body = ['preamble', '\r*--b', 'Content-Type: text/plain', '', 'SSN 123-45-6789 A', '--b', 'Content-Type: text/plain', '', 'SSN 123-45-6789 B', '--b', 'Content-Type: text/html', '', '<p>SSN 123-45-6789 C</p>', '--b--', ''].join('\r\n');
      const raw = msg(['Content-Type: multipart/alternative; boundary="b"'], body);
      const rules = ruleSetFromYaml(SSN_RULES);
      const ctx = await scan(raw, rules, 17);
      assert.equal(ctx.verdict.action, 'redact');
      // Either every value pass 1 saw goes, or the stage refuses (the whole-message check in src/redact/verify.ts).
      const out = await redactedOrRefused(raw, ctx);
      if (!out) return;
      assert.deepEqual((await scan(out, rules)).findings, []);
    },
  );

  test(
    'an unterminated HTML comment in a part to redact loops forever and exhausts the heap (the relay process dies)',
    () => {
      // Run in a child with a small heap: in this process it would take the test runner down.
      const script = `
        const h = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'test', 'helpers', 'dlp.js'))});
        const rules = h.ruleSetFromYaml(${JSON.stringify(CARD_RULES)});
        const raw = Buffer.from('From: <a@example.com>\\r\\nSubject: x\\r\\nContent-Type: text/html\\r\\n\\r\\n<p>Card 4111 1111 1111 1111</p><!-- unterminated\\r\\n');
        h.scan(raw, rules).then((ctx) => h.redacted(raw, ctx)).then(
          (out) => { console.log(out.toString('latin1').includes('<p>Card [CARD]</p><!-- unterminated') ? 'redacted' : 'wrong output'); process.exit(0); },
          (e) => { console.log('stream error ' + e.code); process.exit(0); });`;
      const r = spawnSync(process.execPath, ['--max-old-space-size=64', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `the process died (signal ${r.signal}): ${r.stderr.split('\n').filter((l) => /FATAL|Error/.test(l)).slice(0, 3).join('\n')}`);
      assert.equal(r.stdout.trim(), 'redacted');
    },
  );

  test(
    'a RedactionError from the Subject is an unhandled promise rejection that kills the process, not a stream error',
    () => {
      // Two Subject fields: pass 1 scans both, redactSubject only the first, and throws.
      // Run in a child: in this process the rejection would crash the test runner.
      const script = `
        const h = require(${JSON.stringify(join(REPO_ROOT, 'dist', 'test', 'helpers', 'dlp.js'))});
        const rules = h.ruleSetFromYaml(${JSON.stringify(SSN_RULES)});
        const raw = Buffer.from('From: <a@example.com>\\r\\nSubject: hello\\r\\nSubject: SSN 123-45-6789\\r\\nContent-Type: text/plain\\r\\n\\r\\nhi\\r\\n');
        h.scan(raw, rules).then((ctx) => h.redacted(raw, ctx)).then(
          () => { console.log('delivered'); process.exit(0); },
          (e) => { console.log('stream error ' + e.code); process.exit(0); });
        setTimeout(() => { console.log('hang'); process.exit(0); }, 5000).unref();`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `the process died: ${r.stderr.split('\n').slice(0, 6).join('\n')}`);
      assert.equal(r.stdout.trim(), 'stream error MV_REDACT');
    },
  );
});
