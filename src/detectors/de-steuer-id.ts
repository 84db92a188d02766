/*
 * de_steuer_id: German tax identification number (steuerliche
 * Identifikationsnummer, IdNr, "Steuer-ID"), 11 digits.
 *
 * Rule: the first digit is not 0; among the first ten digits exactly one
 * digit occurs twice or three times and every other digit at most once (so
 * 8 or 9 distinct digits), and a digit that occurs three times does not
 * stand three times in a row; the eleventh digit is the ISO/IEC 7064
 * MOD 11,10 check digit over the first ten. Source: § 139b AO and the
 * Bundeszentralamt für Steuern's specification of the IdNr (check digit
 * procedure and the digit-repetition rule as changed for numbers issued
 * from 2016 on).
 *
 * Formats: 12345678903 and 12 345 678 903 (the grouping on BZSt letters).
 *
 * Keywords: always required. An 11-digit run is also a phone number, a
 * customer number or a PESEL, and the check digit lets 1 in 10 through; only
 * the repetition rule is specific. With steuer-id / identifikationsnummer /
 * idnr nearby the precision is good.
 *
 * False positives: other 11-digit numbers quoted in the same keyworded mail
 * (the Steuernummer 12/345/67890 is a different, non-matching format).
 */
import type { Detector } from './types';
import { digitCountOrFail, iso7064Mod11_10, isDigitCode } from './checksums';

/** Scratch digit counts (validate is synchronous, so one buffer serves every call). */
const COUNTS = new Uint8Array(10);

export function validateSteuerId(s: string): boolean {
  if (s.length === 14) {
    // 12 345 678 903
    if (s.charCodeAt(2) !== 32 || s.charCodeAt(6) !== 32 || s.charCodeAt(10) !== 32) return false;
  } else if (s.length !== 11) return false;
  if (digitCountOrFail(s) !== 11 || s.charCodeAt(0) === 48) return false;
  // Count each digit among the first ten; note a run of three equal digits.
  const counts = COUNTS.fill(0);
  let seen = 0;
  let prev = -1;
  let runLen = 0;
  let tripleRun = false;
  for (let i = 0; i < s.length && seen < 10; i++) {
    const c = s.charCodeAt(i);
    if (!isDigitCode(c)) continue;
    const d = c - 48;
    counts[d]++;
    runLen = d === prev ? runLen + 1 : 1;
    if (runLen >= 3) tripleRun = true;
    prev = d;
    seen++;
  }
  let repeated = 0;
  for (let d = 0; d < 10; d++) {
    if (counts[d] > 3) return false;
    if (counts[d] > 1) repeated++;
  }
  if (repeated !== 1 || tripleRun) return false;
  return iso7064Mod11_10(s);
}

export const deSteuerId: Detector = {
  name: 'de_steuer_id',
  description: 'German Steuer-ID (IdNr): 11 digits, digit-repetition rule, ISO 7064 MOD 11,10; needs a keyword',
  // Only the two formats validate accepts: a looser pattern (any of the three spaces optional) woke this rule up on every table of numbers.
  pattern: '\\b[1-9]\\d(?:\\d{9}|(?: \\d{3}){3})\\b',
  keywords: [
    'steuer-id', 'steuerid', 'steuer id', 'steuer-identifikationsnummer', 'steueridentifikationsnummer',
    'steuerliche identifikationsnummer', 'identifikationsnummer', 'idnr', 'id-nr', 'id-nr.', 'tin', 'tax id',
    'steuernummer', 'persönliche identifikationsnummer',
  ],
  within: 300,
  maxLength: 14,
  validate: validateSteuerId,
  requiresKeyword: () => true,
  samples: {
    hit: ['86095742719', '57382914658', '41424356781', '11234567890', '57 382 914 658'],
    miss: [
      '86095742718', '65381927401', '37190284657', '44412356784', '41424345457', '05738291460', '5738291465',
      '573829146580', '57 382914 658', '57-382-914-658',
    ],
    context: 'Steuer-ID:',
  },
};
