/*
 * uk_nino: UK National Insurance numbers, AB 12 34 56 C.
 *
 * Rule (HMRC National Insurance Manual NIM39110, and the GOV.UK data
 * standard for NINOs): two prefix letters, six digits, a suffix A-D.
 * The first letter is not D, F, I, Q, U or V; the second is not D, F, I, O,
 * Q, U or V; the prefixes BG, GB, KN, NK, NT, TN and ZZ are never issued.
 *
 * Formats: "AB 12 34 56 C" (the printed form, spaces between pairs) and
 * "AB 123456 C" count alone in upper case; the unspaced "AB123456C", and any
 * form typed in lower case ("ab123456c"), count only with a keyword, because
 * two letters, six digits and A-D is also the shape of order, policy and
 * part numbers. No check digit exists, so this detector cannot be stronger
 * than its format.
 *
 * False positives: spaced reference codes of the same shape; temporary
 * reference numbers (TN) and administrative prefixes are excluded only as
 * far as the list above goes.
 */
import type { Detector } from './types';
import { isDigitCode } from './checksums';

/** Bit set of letters A-Z. */
function mask(letters: string): number {
  let m = 0;
  for (const l of letters) m |= 1 << (l.charCodeAt(0) - 65);
  return m;
}
const BAD_FIRST = mask('DFIQUV');
const BAD_SECOND = mask('DFIOQUV');
const BAD_PREFIX = ['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ'];

function letterOk(c: number, bad: number): boolean {
  return c >= 65 && c <= 90 && (bad & (1 << (c - 65))) === 0;
}

/** Index of each of the 9 significant characters for the accepted spacings. */
const LAYOUTS: Record<number, readonly number[]> = {
  9: [0, 1, 2, 3, 4, 5, 6, 7, 8], // AB123456C
  11: [0, 1, 3, 4, 5, 6, 7, 8, 10], // AB 123456 C
  13: [0, 1, 3, 4, 6, 7, 9, 10, 12], // AB 12 34 56 C
};

export function validateNino(s: string): boolean {
  const at = LAYOUTS[s.length];
  if (!at) return false;
  // Every other position must be a single space.
  for (let i = 0, k = 0; i < s.length; i++) {
    if (k < 9 && at[k] === i) k++;
    else if (s.charCodeAt(i) !== 32) return false;
  }
  const a = s.charCodeAt(at[0]) & ~0x20; // upper case of a letter
  const b = s.charCodeAt(at[1]) & ~0x20;
  if (!letterOk(a, BAD_FIRST) || !letterOk(b, BAD_SECOND)) return false;
  for (const p of BAD_PREFIX) if (p.charCodeAt(0) === a && p.charCodeAt(1) === b) return false;
  for (let k = 2; k < 8; k++) if (!isDigitCode(s.charCodeAt(at[k]))) return false;
  const suffix = s.charCodeAt(at[8]) & ~0x20;
  return suffix >= 65 && suffix <= 68 && sameCase(s.charCodeAt(at[0]), s.charCodeAt(at[1]), s.charCodeAt(at[8]));
}

/** The three letters are all upper or all lower case ("Ab123456c" is not how anyone writes one). */
function sameCase(a: number, b: number, c: number): boolean {
  const lower = a >= 97;
  return b >= 97 === lower && c >= 97 === lower;
}

/** Unspaced, or typed in lower case: needs a keyword. */
function ninoNeedsKeyword(m: string): boolean {
  return m.length === 9 || m.charCodeAt(0) >= 97;
}

export const ukNino: Detector = {
  name: 'uk_nino',
  description: 'UK National Insurance number (HMRC prefix rules, suffix A-D); unspaced form needs a keyword',
  pattern: '\\b(?i:[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\\d{2} ?\\d{2} ?\\d{2} ?[A-D])\\b',
  keywords: [
    'national insurance', 'national insurance number', 'ni number', 'ni no', 'nino', 'nin', 'insurance number',
    'hmrc', 'nat ins',
  ],
  within: 300,
  maxLength: 13,
  validate: validateNino,
  requiresKeyword: ninoNeedsKeyword,
  samples: {
    hit: ['AB 12 34 56 C', 'CE 123456 D', 'JG103759A', 'PW 98 76 54 B', 'jg103759a', 'ab 12 34 56 c'],
    miss: [
      'BG 12 34 56 A', 'GB 12 34 56 A', 'NK 12 34 56 A', 'TN 12 34 56 A', 'ZZ 12 34 56 A', 'DA 12 34 56 A',
      'AD 12 34 56 A', 'AO 12 34 56 A', 'QQ 12 34 56 A', 'AB 12 34 56 E', 'AB 12 34 5 C', 'AB 12 34 567 C',
      'AB 12 3456 C', 'Ab 12 34 56 c', 'AB1234567C', 'BG123456A', 'gb123456a', 'ab123456e',
    ],
    context: 'National Insurance number:',
  },
};
