/*
 * Check-digit algorithms shared by the detectors and offered to custom
 * `pattern:` rules as named validators (see VALIDATORS in ./index.ts).
 *
 * Every function walks the string once with charCodeAt: no regex, no
 * substring, no array, so it is cheap enough to run on every candidate.
 * Separators that people type inside numbers (space, '-', '.', '/') are
 * skipped; any other unexpected character makes the check fail. Each
 * function rejects inputs with too few digits to carry a check at all, and
 * inputs longer than MAX_CHECKED_LENGTH, so the work per call is bounded.
 *
 * Sources:
 *  - Luhn: ISO/IEC 7812-1 annex B (payment cards), also Swedish personnummer.
 *  - MOD 97-10: ISO/IEC 7064 (pure system, modulus 97, radix 10); IBAN
 *    (ISO 13616-1) applies it after moving the first four characters to the end.
 *  - MOD 11,10: ISO/IEC 7064 hybrid system (German Steuer-ID, Croatian OIB).
 *  - mod11: the common weighted modulus-11 family in the ISBN-10 convention
 *    (ISO 2108); exact weights documented on the function.
 *  - elfproef: the Dutch BSN 11-check (weights 9..2 and -1).
 *  - Verhoeff: J. Verhoeff, "Error detecting decimal codes" (1969), dihedral
 *    group D5 (used by Aadhaar and others).
 */

/** No checksum input is longer than this (IBAN is 34; a spaced one about 42). */
export const MAX_CHECKED_LENGTH = 64;

export function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function isUpperCode(c: number): boolean {
  return c >= 65 && c <= 90;
}

/** Space, '-', '.', '/': separators skipped inside numbers. */
export function isSeparatorCode(c: number): boolean {
  return c === 32 || c === 45 || c === 46 || c === 47;
}

/** Number of ASCII digits in s. */
export function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (isDigitCode(s.charCodeAt(i))) n++;
  return n;
}

/**
 * Digits only, separators allowed: returns the digit count, or -1 when s
 * holds anything else (or is too long).
 */
export function digitCountOrFail(s: string): number {
  if (s.length > MAX_CHECKED_LENGTH) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) n++;
    else if (!isSeparatorCode(c)) return -1;
  }
  return n;
}

/** Value of the n characters at index i read as digits, or -1 when one is not a digit. */
export function digitsAt(s: string, i: number, n: number): number {
  if (i < 0 || i + n > s.length) return -1;
  let v = 0;
  for (let k = i; k < i + n; k++) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + c - 48;
  }
  return v;
}

/** The k-th digit (0-based) of s, skipping non-digits; -1 when there is none. */
export function nthDigit(s: string, k: number): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) {
      if (k === 0) return c - 48;
      k--;
    }
  }
  return -1;
}

/** The value of `count` digits starting at the k-th digit of s (separators skipped). */
export function digitsValue(s: string, k: number, count: number): number {
  let v = 0;
  let seen = 0;
  for (let i = 0; i < s.length && count > 0; i++) {
    const c = s.charCodeAt(i);
    if (!isDigitCode(c)) continue;
    if (seen++ < k) continue;
    v = v * 10 + (c - 48);
    count--;
  }
  return count === 0 ? v : -1;
}

/**
 * Luhn (mod 10, ISO/IEC 7812-1): the last digit is the check digit; from the
 * right, every second digit is doubled (minus 9 if over 9); the total must be
 * a multiple of 10. At least 2 digits.
 */
export function luhn(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let sum = 0;
  let n = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) {
      let d = c - 48;
      if (n & 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
      n++;
    } else if (!isSeparatorCode(c)) return false;
  }
  return n >= 2 && sum % 10 === 0;
}

/** 0-9 for digits, 10-35 for letters (either case), -1 otherwise. */
function alnumValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 90) return c - 55;
  if (c >= 97 && c <= 122) return c - 87;
  return -1;
}

/** Folds one alphanumeric value into a running remainder mod 97. */
function fold97(rem: number, v: number): number {
  return v < 10 ? (rem * 10 + v) % 97 : (rem * 100 + v) % 97;
}

/**
 * IBAN-style MOD 97-10 (ISO 13616-1 / ISO 7064): move the first four
 * characters to the end, letters become 10..35, the number mod 97 must be 1.
 * Spaces and dashes are skipped. At least 5 alphanumerics.
 */
export function mod97(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let rem = 0;
  let n = 0;
  // Pass 1: from the fifth alphanumeric on.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 45) continue;
    const v = alnumValue(c);
    if (v < 0) return false;
    if (n++ >= 4) rem = fold97(rem, v);
  }
  if (n < 5) return false;
  // Pass 2: the first four, appended.
  for (let i = 0, k = 0; k < 4; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 45) continue;
    rem = fold97(rem, alnumValue(c));
    k++;
  }
  return rem === 1;
}

/**
 * ISO 7064 MOD 97-10 without rearrangement (e.g. LEI, ISO 17442): letters
 * become 10..35, the whole string read as a number mod 97 must be 1.
 */
export function iso7064Mod97_10(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let rem = 0;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 45) continue;
    const v = alnumValue(c);
    if (v < 0) return false;
    rem = fold97(rem, v);
    n++;
  }
  return n >= 3 && rem === 1;
}

/**
 * ISO 7064 MOD 11,10 (hybrid): p = 10; for each data digit d:
 * s = (d + p) mod 10, s = 10 if 0, p = 2s mod 11. The check digit c makes
 * (p + c) mod 10 == 1, i.e. c = 11 - p, with 10 written as 0.
 * The last digit is the check digit; at least 2 digits.
 */
export function iso7064Mod11_10(s: string): boolean {
  const n = digitCountOrFail(s);
  if (n < 2) return false;
  let p = 10;
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isDigitCode(c)) continue;
    const d = c - 48;
    if (++k === n) {
      let check = 11 - p;
      if (check === 10) check = 0;
      return d === check;
    }
    let t = (d + p) % 10;
    if (t === 0) t = 10;
    p = (2 * t) % 11;
  }
  return false;
}

/**
 * Generic weighted modulus 11 (the ISBN-10 convention): counting positions
 * from the right starting at 1 (the check digit has weight 1, the digit
 * before it 2, and so on), the weighted sum must be a multiple of 11. The
 * check character may be 'X' or 'x' (value 10). Equivalently: weights
 * 2, 3, 4, ... from the right over the payload and check = (11 - sum mod 11)
 * mod 11, 10 written as X. Separators are skipped; at least 2 characters.
 */
export function mod11(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let sum = 0;
  let w = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    let v: number;
    if (isDigitCode(c)) v = c - 48;
    else if ((c === 88 || c === 120) && w === 0) v = 10;
    else if (isSeparatorCode(c)) continue;
    else return false;
    w++;
    sum += v * w;
  }
  return w >= 2 && sum % 11 === 0;
}

/** Dutch "elfproef" as used by the BSN: weights 9..2 and -1 for the last digit; sum mod 11 == 0 and not all zero. 9 digits. */
export function elfproefBsn(s: string): boolean {
  if (digitCountOrFail(s) !== 9) return false;
  let sum = 0;
  let w = 9;
  let any = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isDigitCode(c)) continue;
    const d = c - 48;
    if (d) any = true;
    sum += w === 1 ? -d : d * w;
    w--;
  }
  return any && sum % 11 === 0;
}

const VERHOEFF_D = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
  [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
  [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
  [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
  [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
  [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
  [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
  [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
  [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
  [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
  [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
  [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
  [4, 3, 2, 1, 5, 7, 0, 9, 8, 6],
  [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
  [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/** Verhoeff: the last digit is the check digit; the D5 product over all digits must be 0. At least 2 digits. */
export function verhoeff(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let c = 0;
  let k = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const ch = s.charCodeAt(i);
    if (isDigitCode(ch)) c = VERHOEFF_D[c][VERHOEFF_P[k++ % 8][ch - 48]];
    else if (!isSeparatorCode(ch)) return false;
  }
  return k >= 2 && c === 0;
}

/** Proleptic Gregorian calendar check; month 1-12. */
export function isValidDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return day <= (leap ? 29 : 28);
  }
  return day <= (month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31);
}
