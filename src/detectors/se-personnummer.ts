/*
 * se_personnummer: Swedish personal identity number (personnummer) and
 * coordination number (samordningsnummer): YYMMDD-NNNC, YYMMDD+NNNC (the '+'
 * marks a person aged 100 or more), YYYYMMDD-NNNC, YYYYMMDDNNNC, YYMMDDNNNC.
 *
 * Rule: the date is real (for a samordningsnummer the day has 60 added:
 * 61-91); C is the Luhn check digit over the 10-digit form YYMMDDNNN (the
 * century digits do not take part). The 12-digit form uses years 1800-2099
 * and never a '+'. Source: Folkbokföringslagen (1991:481) § 18 and
 * Skatteverket's descriptions of the personnummer (SKV 704) and the
 * samordningsnummer.
 *
 * Formats and keywords: with the separator (850709-9805, 19850709-9805) it
 * counts alone: a date, a dash and a Luhn digit is a specific shape. Without
 * it (8507099805, 198507099805) it needs a keyword, since 10- and 12-digit
 * runs that start with a plausible date are common (order numbers, phone
 * numbers) and Luhn lets 1 in 10 through.
 *
 * Glued tokens: a number joined by '-', '_' or '/' to a word or number
 * before it, or by '-', '_', '.' or '/' to one after it, is part of a
 * reference or a file name (INV-20231122-0042, backup_20240115-1530.tar),
 * not a personnummer: the pattern takes the neighbour in and validate
 * rejects the whole match, as us_ssn does with digit groups.
 *
 * False positives: a date followed by a dash and four digits that pass Luhn
 * standing alone ("20261122-1234"-style references or date-time stamps,
 * 1 in 10 of them).
 */
import type { Detector } from './types';
import { digitsAt, isValidDate } from './checksums';

export function validatePersonnummer(s: string): boolean {
  const n = s.length;
  if (n < 10 || n > 13) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if ((c < 48 || c > 57) && c !== 45 && c !== 43) return false; // glued to a word (see above)
  }
  let sep = 0;
  let dateEnd: number; // index just after YYMMDD / YYYYMMDD
  if (n === 11 || n === 13) {
    sep = s.charCodeAt(n - 5);
    if (sep !== 45 && sep !== 43) return false;
    dateEnd = n - 5;
  } else if (n === 10 || n === 12) dateEnd = n - 4;
  else return false;
  const long = dateEnd === 8;
  if (long && sep === 43) return false;
  const start = long ? 2 : 0; // the 10-digit form starts after the century
  const yy = digitsAt(s, start, 2);
  const mm = digitsAt(s, start + 2, 2);
  let dd = digitsAt(s, start + 4, 2);
  const serial = digitsAt(s, n - 4, 4);
  if (yy < 0 || mm < 0 || dd < 0 || serial < 0) return false;
  if (dd > 60) dd -= 60; // samordningsnummer
  let ok: boolean;
  if (long) {
    const cc = digitsAt(s, 0, 2);
    if (cc < 18 || cc > 20) return false;
    ok = isValidDate(cc * 100 + yy, mm, dd);
  } else {
    // Century unknown: 29 February is fine if some century makes it valid.
    ok = isValidDate(2000 + yy, mm, dd) || isValidDate(1900 + yy, mm, dd);
  }
  if (!ok || serial === 0) return false;
  // Luhn over the last ten digits, YYMMDDNNNC: the century takes no part.
  let sum = 0;
  let k = 0;
  for (let i = n - 1; i >= 0 && k < 10; i--) {
    let d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) continue;
    if (k & 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    k++;
  }
  return k === 10 && sum % 10 === 0;
}

export const sePersonnummer: Detector = {
  name: 'se_personnummer',
  description: 'Swedish personnummer / samordningsnummer: valid date, Luhn; unseparated form needs a keyword',
  pattern: '\\b(?:[A-Za-z0-9]{1,16}[_/\\-])?(?:18|19|20)?\\d{6}[-+]?\\d{4}(?:[_./\\-][A-Za-z0-9]{1,16})?\\b',
  keywords: [
    'personnummer', 'personnr', 'pers.nr', 'pnr', 'person nummer', 'samordningsnummer', 'personal identity number',
    'swedish id', 'födelsenummer',
  ],
  within: 300,
  // 16 + 1 glued before, 13, 1 + 16 glued after
  maxLength: 47,
  validate: validatePersonnummer,
  requiresKeyword: (m) => m.length === 10 || m.length === 12,
  samples: {
    hit: ['850709-9805', '811218-9876', '701063-2391', '121212-1212', '19850709-9805', '850709+9805', '8507099805', '198507099805'],
    miss: [
      '850709-9806', '851309-9807', '850732-9806', '850229-9806', '21850709-9805', '19850709+9805', '000000-0000',
      '850709-980', '8507099806', '85-07-09-9805', 'INV-850709-9805', 'backup_19850709-9805', '850709-9805-01',
      '19850709-9805.log', 'run/850709-9805',
    ],
    context: 'Personnummer:',
  },
};
