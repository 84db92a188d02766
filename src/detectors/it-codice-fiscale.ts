/*
 * it_codice_fiscale: Italian tax code of a person, 16 characters:
 * surname (3 letters) name (3) year (2) month letter (1) day (2)
 * municipality code (letter + 3) check letter (1), e.g. RSSMRA85T10A562S.
 *
 * Rule: the month letter is one of ABCDEHLMPRST; the day is 01-31 (men) or
 * 41-71 (women: day + 40); the check letter is the sum of the odd-position
 * values (from the odd table below) and the even-position values (A/0 = 0
 * ... Z = 25) mod 26, as a letter. "Omocodia": when two people would get the
 * same code, digits in the numeric positions are replaced by LMNPQRSTUV
 * (0-9); those are accepted and decoded for the day check. Source: Decreto
 * del Ministero delle Finanze 23 dicembre 1976 (Sistemi di codificazione
 * dei soggetti da iscrivere nell'anagrafe tributaria), Agenzia delle Entrate.
 *
 * Counts alone in upper or lower case: the 16-character letter/digit layout
 * plus a check letter (1 in 26) is specific. Keywords are there for rules
 * that want them.
 *
 * False positives: very rare; a random 16-character token of exactly this
 * letter/digit layout. The company codice fiscale (11 digits, = partita
 * IVA) is not covered.
 */
import type { Detector } from './types';

/** Values of odd positions (1st, 3rd, ...) for 0-9 and A-Z; digits share the values of A-J. */
const ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
/** Positions (0-based) that hold digits, or their omocodia letters. */
const NUMERIC = [6, 7, 9, 10, 12, 13, 14];
/** Month letters A-T as a bit set over A-Z. */
const MONTHS = [...'ABCDEHLMPRST'].reduce((m, l) => m | (1 << (l.charCodeAt(0) - 65)), 0);
/** Omocodia: digit value of each letter A-Z (L=0 ... V=9), -1 where none. */
const OMOCODIA: number[] = new Array(26).fill(-1);
[...'LMNPQRSTUV'].forEach((l, d) => (OMOCODIA[l.charCodeAt(0) - 65] = d));

/** 0-25 for A-Z (either case), 0-9 for digits, -1 otherwise. */
function value(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 97;
  return -1;
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Digit value of a numeric position: the digit, or the omocodia letter's digit; -1 otherwise. */
function numericDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const up = c >= 97 && c <= 122 ? c - 32 : c;
  return up >= 65 && up <= 90 ? OMOCODIA[up - 65] : -1;
}

export function validateCodiceFiscale(s: string): boolean {
  if (s.length !== 16) return false;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < 15; i++) {
    const c = s.charCodeAt(i);
    const numeric = i === NUMERIC[n];
    if (numeric) {
      n++;
      if (numericDigit(c) < 0) return false;
    } else if (!isLetter(c)) return false;
    const v = value(c);
    // Positions are counted from 1: index 0 is the first (odd) position.
    sum += i % 2 === 0 ? ODD[v] : v;
  }
  const month = value(s.charCodeAt(8));
  if ((MONTHS & (1 << month)) === 0) return false;
  const day = numericDigit(s.charCodeAt(9)) * 10 + numericDigit(s.charCodeAt(10));
  if (!((day >= 1 && day <= 31) || (day >= 41 && day <= 71))) return false;
  const check = s.charCodeAt(15);
  return isLetter(check) && value(check) === sum % 26;
}

export const itCodiceFiscale: Detector = {
  name: 'it_codice_fiscale',
  description: 'Italian codice fiscale (persons): layout, month letter, day, omocodia, check letter',
  pattern:
    '\\b(?i:[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])\\b',
  keywords: ['codice fiscale', 'cod. fisc.', 'c.f.', 'cf', 'tessera sanitaria', 'codice fiscale personale', 'tax code'],
  within: 300,
  maxLength: 16,
  validate: validateCodiceFiscale,
  samples: {
    hit: ['RSSMRA85T10A562S', 'rssmra85t10a562s', 'BNCLRA90A41H501F', 'VRDGPP80B12F205C', 'RSSMRA85T10A56NH'],
    miss: [
      'RSSMRA85T10A562T', 'RSSMRA85Z10A562S', 'RSSMRA85T32A562Y', 'RSSMRA85T72A562C', 'RSSMRA85T00A562R',
      'RSSMRA85T10A562', 'RSSMRA85T10A562SX', 'RSSMR485T10A562S', 'RSSMRA85T10A56WH',
    ],
  },
};
