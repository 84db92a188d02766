/*
 * nl_bsn: Dutch citizen service number (burgerservicenummer, BSN).
 *
 * Rule: 9 digits passing the "elfproef" variant for BSNs: weights
 * 9, 8, 7, 6, 5, 4, 3, 2 and -1 for the last digit, the sum a multiple of 11
 * (and not all zeros). Source: Wet algemene bepalingen
 * burgerservicenummer (Wabb) and the BSN 11-check as published by the
 * Rijksdienst voor Identiteitsgegevens (RvIG).
 *
 * Formats: 123456782, 1234.56.782, 123.456.782 and 123 456 782 (one
 * separator kind). Old 8-digit numbers written without their leading zero
 * are not looked for.
 *
 * Keywords: always required. A BSN is a bare 9-digit number and one random
 * 9-digit number in 11 passes the check, so invoice, order and phone
 * numbers would be flagged all day; with bsn / burgerservicenummer /
 * sofinummer nearby the precision is good.
 *
 * False positives: keyworded mail that also quotes other 9-digit numbers
 * (a BSN form next to a bank reference) may flag the reference 1 time in 11.
 * "Fiscaal nummer" alone is not a keyword: on invoices and donation receipts
 * it labels the organisation's RSIN, which is 9 digits and passes the same
 * 11-check every time (the old personal name, sociaal-fiscaal nummer, is).
 */
import type { Detector } from './types';
import { elfproefBsn, isDigitCode } from './checksums';

export function validateBsn(s: string): boolean {
  if (s.length === 9) return elfproefBsn(s);
  if (s.length !== 11) return false;
  // 1234.56.782 or 123.456.782 / 123 456 782: two separators of one kind.
  const a = s.charCodeAt(3);
  const b = s.charCodeAt(4);
  let p1: number, p2: number;
  if (a === 46 || a === 32) {
    p1 = 3;
    p2 = 7;
  } else if (b === 46) {
    p1 = 4;
    p2 = 7;
  } else return false;
  const sep = s.charCodeAt(p1);
  if (s.charCodeAt(p2) !== sep) return false;
  for (let i = 0; i < 11; i++) if (i !== p1 && i !== p2 && !isDigitCode(s.charCodeAt(i))) return false;
  return elfproefBsn(s);
}

export const nlBsn: Detector = {
  name: 'nl_bsn',
  description: 'Dutch burgerservicenummer (BSN), 9 digits with the 11-check; needs a keyword',
  pattern: '\\b(?:\\d{9}|\\d{4}\\.\\d{2}\\.\\d{3}|\\d{3}\\.\\d{3}\\.\\d{3}|\\d{3} \\d{3} \\d{3})\\b',
  keywords: [
    'bsn', 'burgerservicenummer', 'burger service nummer', 'burgerservice nummer', 'sofinummer', 'sofi-nummer',
    'sofi nummer', 'citizen service number', 'persoonsnummer', 'sociaal-fiscaal nummer',
  ],
  within: 300,
  maxLength: 11,
  validate: validateBsn,
  requiresKeyword: () => true,
  samples: {
    hit: ['111222333', '123456782', '1234.56.782', '123.456.782', '123 456 782'],
    miss: [
      '123456789', '111222334', '000000000', '12345678', '1234567890', '1234.56.789', '12345.6.782', '123.456 782',
      '1234 56 782', '123-456-782',
    ],
    context: 'BSN:',
  },
};
