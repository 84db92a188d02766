/*
 * Recall: realistic messages that carry personal data or secrets the way
 * senders actually send them, run through the shipped rules.d, must be
 * found: every value, by the rule meant for it, and nothing else that acts
 * (the negative corpus, negative-corpus.test.ts, is the other half).
 *
 * The corpus (test/fixtures/recall/*.eml) was written as an adversary would:
 * a payroll CSV in UTF-16LE with formatted and bare SSNs under an "ssn"
 * column; an order confirmation whose card numbers are split by QP soft
 * breaks in the text part and by tags, &#45;, &nbsp; and &#x20; in the HTML
 * part; IBANs in windows-1252 QP, lower case, with no-break spaces and
 * dashes; French, Spanish and Italian IDs in ISO-8859-15 in the forms people
 * type (NIR as number + key, lower-case DNI check letter); BSN, PESEL,
 * Steuer-ID in a JSON attachment (the keyword is the field name) and
 * personnummer and NINO in XML attributes; a NINO in an .ics description
 * folded over two lines and a personnummer and IBAN in a .vcf; a forwarded
 * message/rfc822 with a base64 body and an SSN in its RFC 2047 Subject; an
 * IBAN, a card and a NINO in RFC 2047 display names; a private key as a
 * .key attachment and an AWS documentation key in a JSON snippet next to a
 * (public, not counted) certificate; no-break spaces, non-breaking hyphens
 * and full-width digits pasted from a word processor; a customer export big
 * enough for the bulk rules; a card number split over two RFC 2047 encoded
 * words of a Subject; test cards of every length and grouping; IBANs of
 * seven countries in an HTML table. Every value is synthetic: published
 * test card numbers, registry example IBANs, documented example IDs.
 *
 * Per message: the exact count of every rule (EXPECTED; rules not listed
 * count 0), the same findings whatever the chunking (1, 17 bytes, whole),
 * nothing unscannable, and when the verdict is redact, none of the redacted
 * values left in any decoded view of the delivered message (REDACTION_GAPS
 * lists the known exceptions, as todo tests).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRuleSet } from '../../src/rules/load';
import type { MessageContext } from '../../src/pipeline/context';
import { scan, redacted, hitsOf } from '../helpers/dlp';
import { REPO_ROOT, TEST_DIR } from '../helpers/paths';

const RULES = loadRuleSet(join(REPO_ROOT, 'rules.d'));
const DIR = join(TEST_DIR, 'fixtures', 'recall');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.eml'))
  .sort();
const CHUNKS = [1, 17, Infinity];

/** Hits per rule of the shipped rules.d. A bulk rule (min_count > 1) counts the same matches as its monitor rule; it fires only at min_count. */
const EXPECTED: Record<string, Record<string, number>> = {
  '01-payroll-csv-utf16le.eml': { 'us-ssn': 4 },
  '02-order-qp-html-entities.eml': { 'payment-card': 6 },
  '03-iban-cp1252-qp-lowercase-nbsp.eml': { iban: 4 },
  '04-national-ids-iso8859-15.eml': { 'fr-nir': 1, 'es-dni-nie': 2, 'it-codice-fiscale': 1 },
  '05-hr-json-xml-attachments.eml': { 'nl-bsn': 1, iban: 1, 'pl-pesel': 1, 'de-steuer-id': 1, 'se-personnummer': 1, 'uk-nino': 1 },
  // The calendar UID looks like an address too; two phone numbers are below the bulk threshold.
  '06-ics-vcf-attachments.eml': { 'uk-nino': 1, 'se-personnummer': 1, iban: 1, 'contact-data': 2, 'contact-data-bulk': 2, 'phone-bulk': 2 },
  // Inside an attached message everything is attachment text: its Subject and its address fields too.
  '07-forwarded-rfc822.eml': { 'us-ssn': 2, 'payment-card': 1, 'contact-data': 2, 'contact-data-bulk': 2 },
  '08-display-names-rfc2047.eml': { iban: 1, 'payment-card-in-headers': 1, 'us-ssn-in-headers': 1, 'uk-nino': 1 },
  '09-devops-key-attachment.eml': { 'private-key': 1, 'aws-access-key': 1, 'ip-address': 1, 'ip-address-v6': 1 },
  '10-lookalike-separators-fullwidth.eml': { 'payment-card': 2, 'us-ssn': 1 },
  '11-customer-export-bulk.eml': { 'contact-data': 22, 'contact-data-bulk': 22, 'phone-bulk': 22 },
  '12-subject-rfc2047-split.eml': { 'payment-card': 1 },
  '13-test-cards-all-lengths.eml': { 'payment-card': 6 },
  '14-iban-html-table.eml': { iban: 7 },
};

const PRECEDENCE = ['reject', 'tempfail', 'quarantine', 'redact', 'tag', 'monitor'];

function counts(ctx: MessageContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of RULES.rules) {
    const n = hitsOf(ctx, r.id);
    if (n) out[r.id] = n;
  }
  return out;
}

test('the recall corpus has a message for every acting rule of the shipped rules.d', () => {
  assert.deepEqual(Object.keys(EXPECTED).sort(), FILES, 'EXPECTED and test/fixtures/recall/ disagree');
  const covered = new Set(Object.values(EXPECTED).flatMap((e) => Object.keys(e)));
  for (const r of RULES.rules) assert.ok(covered.has(r.id), `no recall message for rule ${r.id}`);
});

const tally = { values: 0, found: 0, messages: 0 };

for (const file of FILES) {
  test(`recall corpus: ${file}`, async () => {
    const raw = readFileSync(join(DIR, file));
    assert.ok(!/(?<!\r)\n/.test(raw.toString('latin1')), `${file}: fixtures are CRLF`);
    const want = EXPECTED[file] ?? {};
    const fired = RULES.rules.filter((r) => (want[r.id] ?? 0) >= (r.min_count ?? 1));
    const action = PRECEDENCE.find((a) => fired.some((r) => r.action === a)) ?? 'pass';
    let first: MessageContext | undefined;
    for (const chunk of CHUNKS) {
      const ctx = await scan(raw, RULES, chunk === Infinity ? raw.length : chunk);
      assert.deepEqual(counts(ctx), want, `${file} (${chunk}-byte chunks): hits per rule`);
      assert.deepEqual(ctx.unscannable, [], `${file} (${chunk}-byte chunks): unscannable`);
      assert.deepEqual([...ctx.verdict.rules].sort(), fired.map((r) => r.id).sort(), `${file}: rules in the verdict`);
      assert.equal(ctx.verdict.action, action, `${file}: verdict`);
      if (first) assert.deepEqual(ctx.findings, first.findings, `${file}: findings depend on chunking (${chunk})`);
      else first = ctx;
    }
    const ctx = first!;
    for (const r of fired) {
      if (r.action === 'monitor' || (r.min_count ?? 1) > 1) continue;
      tally.values += want[r.id];
      tally.found += hitsOf(ctx, r.id);
    }
    tally.messages++;
  });
}

/** Redact-verdict messages that the redact stage cannot deliver redacted yet (it fails closed: RedactionError, and the relay quarantines). */
/** Messages pass 2 cannot deliver redacted (they fail closed, to quarantine), with why. None today. */
const REDACTION_GAPS: Record<string, string> = {};

for (const file of FILES) {
  const want = EXPECTED[file] ?? {};
  if (!RULES.rules.some((r) => r.action === 'redact' && (want[r.id] ?? 0) >= (r.min_count ?? 1))) continue;
  test(`recall corpus: ${file} is delivered with every value redacted`, { todo: REDACTION_GAPS[file] }, async () => {
    const raw = readFileSync(join(DIR, file));
    const ctx = await scan(raw, RULES);
    if (ctx.verdict.action !== 'redact') return; // a stronger verdict (quarantine) holds the message instead
    const out = await redacted(raw, ctx, 3);
    const again = await scan(out, RULES);
    for (const r of RULES.rules.filter((d) => d.action === 'redact')) assert.equal(hitsOf(again, r.id), 0, `${file}: ${r.id} survived redaction`);
    assert.deepEqual(again.unscannable, [], `${file}: the redacted message is not decodable`);
  });
}

test('recall figure on the recall corpus', () => {
  // Printed for the record (node --test shows "# " lines as diagnostics).
  console.log(`# recall corpus: ${tally.messages} messages, ${tally.found} of ${tally.values} values found by the acting rules meant for them`);
  assert.equal(tally.found, tally.values);
});
