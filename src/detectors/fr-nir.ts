/*
 * fr_nir: French social security number (NIR, "numéro INSEE"), 13 characters
 * plus a 2-digit key: S AA MM DD CCC OOO KK.
 *
 * Rule: sex/status S in 1, 2 (3, 4, 7, 8 for provisional and foreign-born
 * registrations); month MM 01-12, or 20-42 / 50-99 (INSEE's codes for an
 * unknown month); department DD 01-99, 2A or 2B (Corsica); commune CCC and
 * order OOO not 000; key KK = 97 - (the 13-digit number mod 97), where for
 * Corsica 2A counts as 19 and 2B as 18. Source: INSEE, "Répertoire national
 * d'identification des personnes physiques" (RNIPP) and décret n° 82-103
 * (structure), the key rule as published by INSEE/Ameli.
 *
 * Formats: "1 84 12 76 451 089 46" (the printed form, spaces between the
 * fields) counts alone; the unspaced 15-character form, and partly spaced
 * ones such as "1841276451089 46" (the number, then the key, as many forms
 * ask for them) or "1 84 12 76 451089 46", count only with a keyword,
 * because 15-digit references (order, parcel, contract numbers) that start
 * with 1 or 2 pass the key about once in 97 and the field ranges are loose.
 * A space may stand only between two fields, at most one there.
 *
 * False positives: a spaced reference of the same 1-2-2-2-3-3-2 shape with a
 * matching key (rare).
 */
import type { Detector } from './types';
import { isDigitCode } from './checksums';

/** Bit j set: a space may follow the j-th significant character (the field ends in "1 84 12 76 451 089 46"). */
const FIELD_END = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 10) | (1 << 13);

export function validateNir(s: string): boolean {
  if (s.length < 15 || s.length > 21) return false;
  let value = 0; // the 13-character number, Corsica mapped; < 2^53
  let key = 0;
  let j = 0; // position among the 15 significant characters
  let month = 0, dept = 0, commune = 0, order = 0;
  let corsica = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32) {
      if ((FIELD_END & (1 << j)) === 0 || s.charCodeAt(i - 1) === 32) return false;
      continue;
    }
    let d: number;
    if (isDigitCode(c)) d = c - 48;
    else if (j === 6 && (c === 65 || c === 97 || c === 66 || c === 98) && corsica === 0 && dept === 2) {
      // 2A -> 19, 2B -> 18: the department digits become 1 and 9 or 8.
      corsica = c === 65 || c === 97 ? 1 : 2;
      d = 0;
    } else return false;
    if (j < 13) value = value * 10 + d;
    else key = key * 10 + d;
    if (j === 0 && d !== 1 && d !== 2 && d !== 3 && d !== 4 && d !== 7 && d !== 8) return false;
    if (j === 3 || j === 4) month = month * 10 + d;
    else if (j === 5 || j === 6) dept = dept * 10 + d;
    else if (j >= 7 && j <= 9) commune = commune * 10 + d;
    else if (j >= 10 && j <= 12) order = order * 10 + d;
    j++;
  }
  if (j !== 15) return false;
  if (!((month >= 1 && month <= 12) || (month >= 20 && month <= 42) || month >= 50)) return false;
  if (dept === 0 || commune === 0 || order === 0) return false;
  // "2A"/"2B" were read as 20; INSEE's key uses 19/18 there (10^6 place).
  if (corsica) value -= corsica * 1_000_000;
  return key >= 1 && key <= 97 && key === 97 - (value % 97);
}

export const frNir: Detector = {
  name: 'fr_nir',
  description: 'French NIR / numéro de sécurité sociale with the 97 key (Corsica 2A/2B); unspaced form needs a keyword',
  pattern: '\\b[1-478] ?\\d{2} ?\\d{2} ?(?:\\d{2}|2[ABab]) ?\\d{3} ?\\d{3} ?\\d{2}\\b',
  keywords: [
    'nir', 'insee', 'numéro insee', 'numero insee', 'sécurité sociale', 'securite sociale', 'sécu', 'secu',
    'numéro de sécurité sociale', 'numero de securite sociale', 'n° ss', 'nss', 'carte vitale', 'social security',
  ],
  within: 300,
  maxLength: 21,
  validate: validateNir,
  // Only the fully spaced printed form counts alone.
  requiresKeyword: (m) => m.length !== 21,
  samples: {
    hit: [
      '1 84 12 76 451 089 46', '2 90 09 75 123 456 36', '1 85 05 2A 001 002 73', '184122B04510896', '184127645108946',
      '1841276451089 46', '1 84 12 76 451089 46', '1 85 05 2A 001002 73',
    ],
    miss: [
      '1 84 12 76 451 089 47', '1 84 13 76 451 089 62', '1 84 12 00 451 089 61', '1 84 12 76 000 089 93',
      '1 84 12 76 451 000 38', '1 85 05 2A 001 002 46', '5 84 12 76 451 089 46', '1 84 12 76 451 089 4',
      '1 8412 76 451 089 47', '184127645108947', '1 84 12 76 45 1089 46', '1841276451089  46', '1841276451089 47',
    ],
    context: 'Numéro de sécurité sociale :',
  },
};
