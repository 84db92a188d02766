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
 * Formats: 12345678Z, 12345678-Z, 12345678 Z, X1234567L, X-1234567-L. Upper
 * case only. Counts alone: eight digits with a check letter is a specific
 * shape and a wrong guess passes only 1 time in 23.
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
  const first = s.charCodeAt(0);
  if (first === 88 || first === 89 || first === 90) {
    n = first - 88; // X=0, Y=1, Z=2
    i = 1;
    if (s.charCodeAt(1) === 45) i = 2;
  }
  const want = i === 0 ? 8 : 7;
  for (; i < s.length && isDigitCode(s.charCodeAt(i)); i++) {
    n = n * 10 + (s.charCodeAt(i) - 48);
    digits++;
  }
  if (digits !== want || n === 0) return false;
  const sep = s.charCodeAt(i);
  if (sep === 45 || sep === 32) i++;
  if (i !== s.length - 1) return false;
  // A dash after the prefix letter needs a dash before the check letter too.
  if (first >= 88 && first <= 90 && (s.charCodeAt(1) === 45) !== (sep === 45)) return false;
  return s.charCodeAt(i) === LETTERS.charCodeAt(n % 23);
}

export const esDniNie: Detector = {
  name: 'es_dni_nie',
  description: 'Spanish DNI/NIF (8 digits) or NIE (X/Y/Z + 7 digits) with the mod-23 check letter',
  pattern: '\\b(?:\\d{8}|[XYZ]-?\\d{7})[ -]?[TRWAGMYFPDXBNJZSQVHLCKE]\\b',
  keywords: [
    'dni', 'nie', 'nif', 'documento nacional de identidad', 'número de identidad', 'numero de identidad',
    'identidad de extranjero', 'número de identificación fiscal', 'numero de identificacion fiscal', 'extranjero',
  ],
  within: 300,
  maxLength: 12,
  validate: validateDniNie,
  samples: {
    hit: ['12345678Z', '12345678-Z', 'X1234567L', 'Y-7654321-G', 'Z9876543A', '12345678 Z'],
    miss: [
      '12345678A', '1234567Z', '123456789Z', 'X1234567A', 'W1234567L', '12345678I', '12345678z', 'X-1234567L',
      'X12345678Z', '12345678--Z', '00000000T',
    ],
  },
};
