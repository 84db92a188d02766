/*
 * pl_pesel: Polish national identification number (PESEL), 11 digits
 * YYMMDDZZZXQ.
 *
 * Rule: YYMMDD is a real date, the century encoded in the month: 01-12
 * 1900-1999, 21-32 2000-2099, 41-52 2100-2199, 61-72 2200-2299, 81-92
 * 1800-1899; the last digit Q is the check digit: weights 1 3 7 9 1 3 7 9 1 3
 * over the first ten digits, Q = (10 - sum mod 10) mod 10. Source: Ustawa o
 * ewidencji ludności (24 września 2010), art. 15, and the Ministry of
 * Digital Affairs' description of the PESEL number.
 *
 * Keywords: always required. A PESEL is a bare 11-digit run and 1 in 10
 * passes the check; phone numbers and other identifiers of 11 digits are
 * common. With pesel nearby the precision is good.
 *
 * False positives: other 11-digit numbers in keyworded mail that happen to
 * start with a valid date (YYMMDD) and pass the check (about 1 in 10 of
 * those).
 */
import type { Detector } from './types';
import { digitsAt, isValidDate } from './checksums';

const WEIGHTS = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];

export function validatePesel(s: string): boolean {
  if (s.length !== 11) return false;
  let sum = 0;
  for (let i = 0; i < 11; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
    if (i < 10) sum += (c - 48) * WEIGHTS[i];
  }
  if ((10 - (sum % 10)) % 10 !== s.charCodeAt(10) - 48) return false;
  const yy = digitsAt(s, 0, 2);
  const mm = digitsAt(s, 2, 2);
  const dd = digitsAt(s, 4, 2);
  const block = Math.floor(mm / 20); // 0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800
  const month = mm % 20;
  const century = block === 4 ? 1800 : 1900 + 100 * block;
  return isValidDate(century + yy, month, dd);
}

export const plPesel: Detector = {
  name: 'pl_pesel',
  description: 'Polish PESEL: 11 digits, date with century in the month, 1-3-7-9 check digit; needs a keyword',
  pattern: '\\b\\d{11}\\b',
  keywords: ['pesel', 'numer pesel', 'nr pesel', 'numer ewidencyjny', 'nr ewidencyjny'],
  within: 300,
  maxLength: 11,
  validate: validatePesel,
  requiresKeyword: () => true,
  samples: {
    hit: ['85070912347', '02231505675', '92123143214'],
    miss: ['85070912348', '00022956783', '85130111110', '01023012346', '8507091234', '850709123470', '8507091234X', '85 07 09 12347'],
    context: 'PESEL:',
  },
};
