/*
 * phone_number: telephone numbers, international and common national forms.
 *
 * Rule: international numbers (E.164, ITU-T) start with '+' (or '(+CC)'),
 * then an assigned country code (ITU-T E.164 Annex / list of assigned
 * codes: 1, 7, 20, 27, 30-34, 36, 39, 40, 41, 43-49, 51-58, 60-66, 81, 82,
 * 84, 86, 90-95, 98, or a 3-digit code in 21x-26x, 29x, 35x, 37x, 38x, 42x,
 * 50x, 59x, 67x-69x, 80x, 85x, 87x, 88x, 96x, 97x, 99x) and 7-15 digits in
 * all, in groups separated by single spaces, dots, dashes or slashes, with
 * optional parentheses and a "(0)" trunk prefix that is not counted.
 * National forms: North American (NANP) (202) 555-0143 / 202-555-0143 /
 * 202.555.0143 with area code and exchange not starting with 0 or 1; and
 * trunk-prefix numbers such as 020 7946 0958, 030 12345678, 01 23 45 67 89,
 * (030) 1234567 with 7-12 digits, or 00-prefixed international numbers.
 *
 * Keywords: '+' numbers count alone. National forms count only with a
 * keyword (phone, tel, mobile, fax, ...) within 100 characters: without the
 * '+', a grouped digit run is too often an order number, an amount or a
 * reference. Date shapes (05/11/2026, 2026-11-22), times and dotted
 * versions are rejected or never matched; plain undelimited runs without a
 * leading 0 are never matched.
 *
 * False positives: "+" followed by grouped digits in arithmetic or sports
 * scores ("+44 20 79 46"), or a keyworded reference number starting with 0.
 * Boundaries can be generous: a short trailing group after a number
 * ("+44 20 7946 0958 22") is taken as part of it while the total stays
 * within 15 digits.
 */
import type { Detector } from './types';
import { isDigitCode } from './checksums';

/** Two-digit country codes; 1 and 7 are one digit. */
const CC2 = new Set([20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98]);
/** Leading two digits of the three-digit country codes. */
const CC3 = new Set([21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 80, 85, 87, 88, 96, 97, 99]);

function countryCodeOk(first: number, second: number): boolean {
  if (first === 1 || first === 7) return true;
  if (second < 0) return false;
  const two = first * 10 + second;
  return CC2.has(two) || CC3.has(two);
}

export function validatePhone(s: string): boolean {
  if (s.length > 80) return false;
  let digits = 0;
  let first = -1;
  let second = -1;
  // Digit groups, for the date-shape test: count and the lengths of the first three.
  let groups = 0;
  let run = 0;
  let g0 = 0, g1 = 0, g2 = 0;
  let dateSep = false;
  let nanpArea = -1;
  let nanpExchange = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) {
      if (digits === 0) first = c - 48;
      else if (digits === 1) second = c - 48;
      if (digits === 0) nanpArea = c - 48;
      if (digits === 3) nanpExchange = c - 48;
      digits++;
      run++;
      continue;
    }
    if (run) {
      if (groups === 0) g0 = run;
      else if (groups === 1) g1 = run;
      else if (groups === 2) g2 = run;
      groups++;
      run = 0;
    }
    if (c === 47 || c === 45 || c === 46) dateSep = true;
  }
  if (run) {
    if (groups === 0) g0 = run;
    else if (groups === 1) g1 = run;
    else if (groups === 2) g2 = run;
    groups++;
  }
  const c0 = s.charCodeAt(0);
  const plus = c0 === 43 || (c0 === 40 && s.charCodeAt(1) === 43);
  if (plus) {
    if (s.includes('(0)')) digits--;
    return digits >= 7 && digits <= 15 && countryCodeOk(first, second);
  }
  // National forms.
  if (dateSep && groups === 3 && ((g0 <= 2 && g1 <= 2 && g2 === 4) || (g0 === 4 && g1 <= 2 && g2 <= 2) || (g0 === 2 && g1 === 2 && g2 === 2))) return false;
  if (first === 0) {
    if (second === 0) {
      // 00 + country code: international dialling from Europe.
      return digits >= 9 && digits <= 17 && countryCodeOk(nthAfterZeros(s, 0), nthAfterZeros(s, 1));
    }
    return digits >= 7 && digits <= 12;
  }
  // NANP: NXX-NXX-XXXX.
  return digits === 10 && nanpArea >= 2 && nanpExchange >= 2;
}

/** The k-th digit after a leading "00". */
function nthAfterZeros(s: string, k: number): number {
  let seen = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isDigitCode(c)) continue;
    if (seen++ < 2) continue;
    if (k-- === 0) return c - 48;
  }
  return -1;
}

const SEP = '[ .\\-/]';
const INTERNATIONAL = `\\B(?:\\(\\+[1-9]\\d{0,2}\\)|\\+[1-9])(?:${SEP}?\\(?\\d\\)?){5,15}\\b`;
const NANP = '\\B\\(\\d{3}\\) ?\\d{3}[ .\\-]\\d{4}\\b|\\b\\d{3}[ .\\-]\\d{3}[ .\\-]\\d{4}\\b';
const TRUNK = '\\b0\\d{1,4}(?:[ \\-/]?\\d{2,4}){1,5}\\b|\\B\\(0\\d{1,4}\\) ?\\d{2,4}(?:[ \\-]?\\d{2,4}){0,4}\\b';

export const phoneNumber: Detector = {
  name: 'phone_number',
  description: 'Telephone number: +CC international (E.164) alone; national formats with a keyword',
  pattern: `${INTERNATIONAL}|${NANP}|${TRUNK}`,
  keywords: [
    'phone', 'telephone', 'tel', 'mobile', 'mob', 'cell', 'cellphone', 'fax', 'call', 'ph', 'whatsapp', 'sms',
    'contact', 'telefon', 'telefoon', 'téléphone', 'teléfono', 'telefono', 'handy', 'mobil', 'portable',
    'móvil', 'cellulare', 'tél',
  ],
  within: 100,
  // "(+123)" and 15 digit groups of up to 4 characters each ("-(9)")
  maxLength: 66,
  validate: validatePhone,
  requiresKeyword: (m) => !(m.charCodeAt(0) === 43 || (m.charCodeAt(0) === 40 && m.charCodeAt(1) === 43)),
  samples: {
    hit: [
      '+44 20 7946 0958', '+442079460958', '+1 202-555-0143', '+33 1 99 00 12 34', '+49 30 12345678', '+44 (0)20 7946 0958',
      '(+44) 20 7946 0958', '+49 30/1234567', '(202) 555-0143', '202-555-0143', '020 7946 0958', '030 12345678',
      '01 99 00 12 34', '0171 1234567', '(030) 1234567', '0044 20 7946 0958',
    ],
    miss: [
      '2026-11-22', '2026/11/22', '12:30:45', '1.2.3.4.5', '+1 555 01', '+28 123 4567', '+83 123 4567',
      '05/11/2026', '22.11.2026', '123-456-7890', '555-012-3456', '0123', '+1234567890123456',
      '978-3-16-148410-0', '10.0.19045.3803', '1234567890', '0028 123 4567',
    ],
    context: 'Phone:',
  },
};
