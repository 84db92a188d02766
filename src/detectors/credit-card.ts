/*
 * credit_card: payment card numbers (PANs), 13-19 digits.
 *
 * Rule: Luhn check digit (ISO/IEC 7812-1 annex B), plus an issuer
 * identification number (IIN) range with the lengths that brand issues:
 *   Visa 4 (13, 16, 19); Mastercard 51-55 and 2221-2720 (16);
 *   American Express 34, 37 (15); Discover 6011, 644-649, 65 (16-19);
 *   Diners Club 300-305, 3095, 36, 38, 39 (14-19); JCB 3528-3589 (16-19);
 *   UnionPay 62 (16-19); Mir 2200-2204 (16-19); Maestro 50, 56-69 (13-19).
 * Sources: ISO/IEC 7812-1; the brands' published IIN tables (Visa, Mastercard
 * "2-series" bulletin 2016, Discover IIN ranges, JCB, UnionPay), as collected
 * on Wikipedia's "Payment card number" page.
 *
 * Formats: 4111111111111111, 4111 1111 1111 1111, 4111-1111-1111-1111,
 * 4111.1111.1111.1111 (4-4-4-4), Amex 3782 822463 10005 (4-6-5) and
 * 3782 8224 6310 005 (4-4-4-3, as people type it), Diners 3056 930902 5904
 * (4-6-4). One separator kind per number. A digit run longer than 19 never
 * matches (the pattern needs a word boundary on both sides). Separated
 * 19-digit numbers (4-4-4-4-3) are not looked for: a 16-digit card followed
 * by a 3-digit CVV looks exactly like one, and the card matters more.
 * Look-alike spaces and dashes (no-break space, en dash) and full-width
 * digits are folded to ASCII before matching (fold.ts).
 *
 * Keywords: 14-19 digit numbers count alone (as in most DLP products: a card
 * number without context is still a card number). 13-digit numbers count
 * only with a card keyword nearby: the 13-digit length is Visa's obsolete
 * original format and a rare Maestro one, while 13 digits is exactly an
 * EAN-13 / GTIN-13 barcode, and every tenth barcode with a prefix of 4
 * (Germany 400-440), 50 (UK) or 56-69 (much of Europe and Asia) passes Luhn
 * (GS1's own example 5901234123457 does). Test numbers such as
 * 4222222222222 still count next to "Visa" or "card number".
 *
 * False positives: about 1 in 10 random digit runs of the right length and
 * prefix passes Luhn, so 16-digit order, tracking or account numbers that
 * start with 4, 5 or 6 are flagged now and then. Public test numbers
 * (4111 1111 1111 1111) validate.
 */
import type { Detector } from './types';
import { isDigitCode, luhn, MAX_CHECKED_LENGTH } from './checksums';

/** Is a card of `len` digits with leading digits `p` (first 6 digits as a number) a known brand? */
function iinAllows(p6: number, len: number): boolean {
  const p1 = Math.floor(p6 / 100000);
  const p2 = Math.floor(p6 / 10000);
  const p3 = Math.floor(p6 / 1000);
  const p4 = Math.floor(p6 / 100);
  if (p1 === 4) return len === 13 || len === 16 || len === 19; // Visa
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return len === 16; // Mastercard
  if (p2 === 34 || p2 === 37) return len === 15; // Amex
  const long = len >= 16 && len <= 19;
  if (p4 >= 2200 && p4 <= 2204) return long; // Mir
  if (p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65) return long; // Discover
  if ((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39) return len >= 14 && len <= 19; // Diners
  if (p4 >= 3528 && p4 <= 3589) return long; // JCB
  if (p2 === 62) return long; // UnionPay (also Discover co-branded 622126-622925)
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return len >= 13 && len <= 19; // Maestro and national schemes on Maestro ranges
  return false;
}

export function validateCard(s: string): boolean {
  if (s.length > MAX_CHECKED_LENGTH) return false;
  let n = 0;
  let p6 = 0;
  let sep = 0;
  // Lengths of the first three groups and how many groups there are.
  let groups = 1;
  let run = 0;
  let g0 = 0, g1 = 0, g2 = 0; // the fourth group is the final run
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isDigitCode(c)) {
      if (n < 6) p6 = p6 * 10 + (c - 48);
      n++;
      run++;
    } else if (c === 32 || c === 45 || c === 46) {
      if (sep === 0) sep = c;
      else if (c !== sep) return false;
      if (run === 0) return false;
      if (groups === 1) g0 = run;
      else if (groups === 2) g1 = run;
      else if (groups === 3) g2 = run;
      groups++;
      run = 0;
    } else return false;
  }
  if (n < 13 || n > 19 || run === 0) return false;
  if (groups > 1) {
    const ok =
      (groups === 4 && g0 === 4 && g1 === 4 && g2 === 4 && (run === 4 || run === 3)) ||
      (groups === 3 && g0 === 4 && g1 === 6 && (run === 5 || run === 4));
    if (!ok) return false;
  }
  for (let k = n; k < 6; k++) p6 *= 10;
  return iinAllows(p6, n) && luhn(s);
}

export const creditCard: Detector = {
  name: 'credit_card',
  description: 'Payment card number: Luhn, brand IIN range and length, 13-19 digits',
  pattern: '\\b(?:\\d{13,19}|\\d{4}[ .\\-]\\d{4}[ .\\-]\\d{4}[ .\\-]\\d{3,4}|\\d{4}[ .\\-]\\d{6}[ .\\-]\\d{4,5})\\b',
  // Only 13-digit numbers need one, and those are mostly EANs: so only words that mean a payment card.
  // Not 'expiry' (food and medicine lists carry EANs and expiry dates), 'discover' ("discover our
  // range"), 'diners', 'jcb' (the machinery maker), 'pan' (cookware) or 'card holder' (a product).
  keywords: [
    'credit card', 'debit card', 'payment card', 'bank card', 'card number', 'card no', 'card #', 'card num',
    'cardholder', 'cc#', 'ccn', 'visa', 'mastercard', 'amex', 'american express', 'unionpay', 'maestro',
    'valid thru', 'cvv', 'cvv2', 'cvc', 'kreditkarte', 'kartennummer', 'carte bancaire', 'numéro de carte',
    'tarjeta', 'número de tarjeta', 'carta di credito', 'karta kredytowa', 'creditcard', 'kortnummer',
  ],
  within: 300,
  // 16 digits and 3 separators
  maxLength: 19,
  validate: validateCard,
  requiresKeyword: (m) => m.length === 13,
  samples: {
    hit: [
      '4111 1111 1111 1111', '4111111111111111', '5555-5555-5555-4444', '2223003122003222', '378282246310005',
      '3782 822463 10005', '6011111111111117', '3530111333300000', '30569309025904', '3056 930902 5904',
      '6200000000000005', '4222222222222', '4012888818888', '6011000000000000001', '3782 8224 6310 005',
      '4111.1111.1111.1111', '6205500000000000004', '2200000000000004', '3566 0020 2036 0505',
    ],
    miss: [
      '4111 1111 1111 1112', '4111111111111112', '41111111111111111111', '4111-1111 1111-1111',
      '0000 0000 0000 0000', '3782 822463 1000', '5555 5555 5555 44', '4111 1111 1111 11111',
      '700000000000003', '378 2822 4631 0005', '3400000000000000', '5500000000000000004', '9111111111111110', '1234567890123452', '41111111111114',
      '4111 1111 1111 111', '4111.1111-1111.1111', '3782 8224 6310 006', '4222222222223', '5901234123458',
    ],
    context: 'Card number:',
  },
};
