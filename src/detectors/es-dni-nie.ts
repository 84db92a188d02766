/*
 * es_dni_nie: Spanish national identity numbers: DNI (8 digits + letter,
 * also the NIF of a resident) and NIE (foreigners: X, Y or Z + 7 digits +
 * letter).
 *
 * Rule: the check letter is "TRWAGMYFPDXBNJZSQVHLCKE"[number mod 23]; for an
 * NIE, X, Y and Z stand for a leading 0, 1 and 2. Source: Real Decreto
 * 1553/2005 (DNI) and the Ministerio del Interior's published algorithm
 * ("Cálculo del dígito de control del NIF/NIE"); Orden INT/2058/2008 for
 * the NIE letter prefixes.
 *
 * Formats: 12345678Z, 12345678-Z, 12345678 Z, 12.345.678-Z (thousands dots,
 * as some forms print it), X1234567L, X-1234567-L. Upper case counts alone:
 * eight digits with a check letter is a specific shape and a wrong guess
 * passes only 1 time in 23. A lower-case letter (12345678z, x1234567l), as
 * people type it, counts only with a keyword (dni, nie, nif...) nearby.
 *
 * False positives: product or ticket codes of exactly 8 digits + letter
 * (1 in 23 pass); company CIFs (letter first, then digits) are not matched.
 */
import type { Detector } from './types';
import { isDigitCode } from './checksums';

const LETTERS = 'TRWAGMYFPDXBNJZSQVHLCKE';

export function validateDniNie(s: string): boolean {
  if (s.length < 9 || s.length > 12) return false;
  let n = 0;
  let digits = 0;
  let i = 0;
  const first = s.charCodeAt(0) & ~0x20; // upper case of a letter
  const nie = first === 88 || first === 89 || first === 90;
  if (nie) {
    n = first - 88; // X=0, Y=1, Z=2
    i = 1;
    if (s.charCodeAt(1) === 45) i = 2;
  }
  const want = nie ? 7 : 8;
  // 12.345.678: dots after the 2nd and 5th digit of a DNI only, both or neither.
  const dotted = !nie && s.charCodeAt(2) === 46;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) {
      n = n * 10 + (c - 48);
      digits++;
    } else if (c === 46 && dotted && (digits === 2 || digits === 5)) continue;
    else break;
  }
  if (digits !== want || n === 0) return false;
  if (dotted && (s.charCodeAt(2) !== 46 || s.charCodeAt(6) !== 46)) return false;
  const sep = s.charCodeAt(i);
  if (sep === 45 || sep === 32) i++;
  if (i !== s.length - 1) return false;
  // A dash after the prefix letter needs a dash before the check letter too.
  if (nie && (s.charCodeAt(1) === 45) !== (sep === 45)) return false;
  return (s.charCodeAt(i) & ~0x20) === LETTERS.charCodeAt(n % 23);
}

/** Any ASCII lower-case letter in s. */
function hasLower(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) return true;
  }
  return false;
}

export const esDniNie: Detector = {
  name: 'es_dni_nie',
  description: 'Spanish DNI/NIF (8 digits) or NIE (X/Y/Z + 7 digits) with the mod-23 check letter',
  pattern: '\\b(?:\\d{8}|\\d{2}\\.\\d{3}\\.\\d{3}|[XYZxyz]-?\\d{7})[ -]?[TRWAGMYFPDXBNJZSQVHLCKEtrwagmyfpdxbnjzsqvhlcke]\\b',
  keywords: [
    'dni', 'nie', 'nif', 'documento nacional de identidad', 'número de identidad', 'numero de identidad',
    'identidad de extranjero', 'número de identificación fiscal', 'numero de identificacion fiscal', 'extranjero',
  ],
  within: 300,
  maxLength: 12,
  validate: validateDniNie,
  requiresKeyword: hasLower,
  samples: {
    hit: ['12345678Z', '12345678-Z', 'X1234567L', 'Y-7654321-G', 'Z9876543A', '12345678 Z', '12.345.678-Z', '12345678z', 'x1234567l'],
    miss: [
      '12345678A', '1234567Z', '123456789Z', 'X1234567A', 'W1234567L', '12345678I', '12345678a', 'X-1234567L',
      'X12345678Z', '12345678--Z', '00000000T', '12.345678-Z', '1.2345.678-Z', '123.456.78-Z', '12.345.678-A',
    ],
    context: 'DNI:',
  },
};
