/*
 * iban: International Bank Account Numbers.
 *
 * Rule: ISO 3166 country code, two check digits (02-98), then the country's
 * BBAN with its exact length and character classes (digits, upper-case
 * letters, or either), and the ISO 7064 MOD 97-10 check as ISO 13616-1
 * applies it (first four characters moved to the end, letters as 10-35,
 * remainder 1). Sources: ISO 13616-1:2020; the SWIFT IBAN Registry (the
 * table below follows the registry's BBAN structures, all countries it lists
 * as of 2024, SEPA and non-SEPA).
 *
 * Formats: electronic (DE89370400440532013000) and the printed form in groups
 * of four separated by single spaces (DE89 3704 0044 0532 0130 00) or, less
 * often, dashes (DE89-3704-...; one separator kind per IBAN). Each country
 * has its own alternative in the pattern with its exact length, so a printed
 * IBAN followed by another short word or number ("... 7034 EUR") is not
 * swallowed. Letters may be lower or mixed case (people type "de89 ...";
 * ISO 13616 prints upper case, but mod 97 reads both the same). Other
 * groupings (FR76 30006 00001 ...) are not looked for.
 *
 * False positives: the structure plus mod 97 leave about 1 in 97 random
 * strings of exactly the right shape; in practice that shape (two capital
 * letters, two digits, 11-30 more characters of a fixed class pattern) is rare
 * outside bank details. Registry example IBANs validate (they are used as
 * test values everywhere).
 */
import type { Detector } from './types';
import { isDigitCode, isUpperCode, mod97, MAX_CHECKED_LENGTH } from './checksums';

/** BBAN structure per country: runs of n (digits), a (A-Z), c (A-Z or digit). */
export const IBAN_BBAN: Readonly<Record<string, string>> = {
  AD: '8n12c', AE: '19n', AL: '8n16c', AT: '16n', AZ: '4a20c', BA: '16n', BE: '12n', BG: '4a6n8c',
  BH: '4a14c', BI: '23n', BR: '23n1a1c', BY: '4c4n16c', CH: '5n12c', CR: '18n', CY: '8n16c', CZ: '20n',
  DE: '18n', DJ: '23n', DK: '14n', DO: '4c20n', EE: '16n', EG: '25n', ES: '20n', FI: '14n',
  FK: '2a12n', FO: '14n', FR: '10n11c2n', GB: '4a14n', GE: '2a16n', GI: '4a15c', GL: '14n', GR: '7n16c',
  GT: '24c', HN: '4a20n', HR: '17n', HU: '24n', IE: '4a14n', IL: '19n', IQ: '4a15n', IS: '22n',
  IT: '1a10n12c', JO: '4a4n18c', KW: '4a22c', KZ: '3n13c', LB: '4n20c', LC: '4a24c', LI: '5n12c', LT: '16n',
  LU: '3n13c', LV: '4a13c', LY: '21n', MC: '10n11c2n', MD: '20c', ME: '18n', MK: '3n10c2n', MN: '16n',
  MR: '23n', MT: '4a5n18c', MU: '4a19n3a', NI: '4a20n', NL: '4a10n', NO: '11n', OM: '3n16c', PK: '4a16c',
  PL: '24n', PS: '4a21c', PT: '21n', QA: '4a21c', RO: '4a16c', RS: '18n', RU: '14n15c', SA: '2n18c',
  SC: '4a20n3a', SD: '14n', SE: '20n', SI: '15n', SK: '20n', SM: '1a10n12c', SO: '19n', ST: '21n',
  SV: '4a20n', TL: '19n', TN: '20n', TR: '6n16c', UA: '6n19c', VA: '18n', VG: '4a16n', XK: '16n',
  YE: '4a4n18c',
};

/** The longest IBAN in the registry (LC: 32; the standard allows 34). */
const MAX_IBAN = 34;

/** Expanded class string per country ("nnnn..."), indexed by (c0-65)*26 + (c1-65). */
const CLASSES: (string | undefined)[] = new Array(26 * 26);

function expand(spec: string): string {
  let out = '';
  for (const m of spec.matchAll(/(\d+)([nac])/g)) out += m[2].repeat(Number(m[1]));
  return out;
}

const CLASS_RE: Record<string, string> = { n: '\\d', a: '[A-Z]', c: '[A-Z0-9]' };
/** Between groups of four: a space or a dash (validate wants one kind per IBAN). */
const SEP = '[ \\-]';

/** Regex for a run of class letters without separators, e.g. "nnaa" -> "\d{2}[A-Z]{2}". */
function runRegex(classes: string): string {
  let out = '';
  for (let i = 0; i < classes.length; ) {
    let j = i;
    while (j < classes.length && classes[j] === classes[i]) j++;
    const n = j - i;
    out += CLASS_RE[classes[i]] + (n > 1 ? `{${n}}` : '');
    i = j;
  }
  return out;
}

/** Pattern for one country: the IBAN with an optional single space or dash before every fourth character. */
function countryRegex(cc: string, bban: string): string {
  let out = cc + '\\d{2}';
  const chunks: string[] = [];
  for (let i = 0; i < bban.length; i += 4) chunks.push(runRegex(bban.slice(i, i + 4)));
  for (let i = 0; i < chunks.length; ) {
    let j = i;
    while (j < chunks.length && chunks[j] === chunks[i]) j++;
    out += j - i > 1 ? `(?:${SEP}?${chunks[i]}){${j - i}}` : `${SEP}?${chunks[i]}`;
    i = j;
  }
  return out;
}

const alternatives: string[] = [];
for (const [cc, spec] of Object.entries(IBAN_BBAN)) {
  const classes = expand(spec);
  if (classes.length + 4 > MAX_IBAN) throw new Error(`iban: ${cc} is longer than ${MAX_IBAN}`);
  CLASSES[(cc.charCodeAt(0) - 65) * 26 + (cc.charCodeAt(1) - 65)] = classes;
  alternatives.push(countryRegex(cc, classes));
}

/** Upper case of an ASCII letter code, anything else unchanged. */
function upper(c: number): number {
  return c >= 97 && c <= 122 ? c - 32 : c;
}

export function validateIban(s: string): boolean {
  if (s.length < 5 || s.length > MAX_CHECKED_LENGTH) return false;
  const c0 = upper(s.charCodeAt(0));
  const c1 = upper(s.charCodeAt(1));
  if (!isUpperCode(c0) || !isUpperCode(c1)) return false;
  const classes = CLASSES[(c0 - 65) * 26 + (c1 - 65)];
  if (classes === undefined) return false;
  const len = classes.length + 4;
  let j = 0; // position among the IBAN's own characters
  let spaces = 0;
  let sep = 0;
  let check = 0;
  for (let i = 0; i < s.length; i++) {
    const c = upper(s.charCodeAt(i));
    if (c === 32 || c === 45) {
      // Printed form: a single separator, of one kind, before every fourth character only.
      if (j === 0 || j % 4 !== 0 || (sep !== 0 && c !== sep) || s.charCodeAt(i - 1) === c) return false;
      sep = c;
      spaces++;
      continue;
    }
    if (j >= len) return false;
    if (j >= 2 && j < 4) {
      if (!isDigitCode(c)) return false;
      check = check * 10 + (c - 48);
    } else if (j >= 4) {
      const k = classes.charCodeAt(j - 4);
      const digit = isDigitCode(c);
      if (k === 110 /* n */ ? !digit : k === 97 /* a */ ? !isUpperCode(c) : !digit && !isUpperCode(c)) return false;
    }
    j++;
  }
  if (j !== len) return false;
  if (spaces !== 0 && spaces !== Math.floor((len - 1) / 4)) return false;
  if (check < 2 || check > 98) return false;
  return mod97(s);
}

export const iban: Detector = {
  name: 'iban',
  description: 'IBAN: SWIFT registry country length and BBAN structure, ISO 7064 mod 97',
  pattern: `\\b(?i:${alternatives.join('|')})\\b`,
  keywords: [
    'iban', 'bank account', 'account number', 'account no', 'bic', 'swift', 'sepa', 'kontonummer',
    'bankverbindung', 'rekeningnummer', 'compte bancaire', 'rib', 'cuenta', 'conto corrente',
  ],
  within: 300,
  // 34 characters and 8 spaces
  maxLength: 42,
  validate: validateIban,
  samples: {
    hit: [
      'DE89 3704 0044 0532 0130 00', 'DE89370400440532013000', 'GB29NWBK60161331926819', 'GB29 NWBK 6016 1331 9268 19',
      'FR14 2004 1010 0505 0001 3M02 606', 'NL91ABNA0417164300', 'BE68 5390 0754 7034', 'CH93 0076 2011 6238 5295 7',
      'MT84MALT011000012345MTLCAST001S', 'IT60X0542811101000000123456', 'NO9386011117947', 'LC55HEMM000100010012001200023015',
      'de89370400440532013000', 'gb29 nwbk 6016 1331 9268 19', 'DE89-3704-0044-0532-0130-00',
    ],
    miss: [
      'DE88 3704 0044 0532 0130 00', 'DE89370400440532013001', 'DE89 3704 0044 0532 0130 0', 'DE89 3704 0044 0532 0130 000',
      'DE89 3704 00440532 0130 00', 'XX89370400440532013000', 'GB29NWBK6016133192681', 'GB28NWBK60161331926819',
      'NL91ABNA041716430', 'NL91 ABNA 0417 1643 01', 'BE68 5390 0754 703', 'de88370400440532013000', 'DE89-3704 0044-0532-0130-00', 'DE89--3704-0044-0532-0130-00',
      'GB80123460161331926811', 'NL251BNA0417164300', 'DE5137040044053201300', 'DE89  3704 0044 0532 0130 00',
    ],
  },
};
