/*
 * us_ssn: United States Social Security numbers, AAA-GG-SSSS.
 *
 * Rule: area (AAA) not 000, not 666, not 900-999; group (GG) not 00; serial
 * (SSSS) not 0000. Source: SSA, "Social Security Number Randomization"
 * (ssa.gov/employer/randomization.html, June 2011); 9xx areas are IRS ITINs
 * and never SSNs. Two numbers SSA voided after they were printed in
 * advertising (078-05-1120, 219-09-9999) are rejected too.
 *
 * Formats: 123-45-6789 and 123 45 6789 count alone; a bare 9-digit run
 * counts only with a keyword (`requiresKeyword`), because invoice, order and
 * routing numbers are 9 digits too and most of them pass the range rules.
 * A dashed or spaced group glued to more digits (12-123-45-6789,
 * 123-45-6789-01) is taken whole and rejected: it is part of something else.
 *
 * False positives: after randomisation almost every AAA-GG-SSSS is
 * possible, so any 3-2-4 dashed number (some part numbers, case numbers)
 * validates; spaced 3-2-4 digit groups can be phone-number fragments. The
 * common dummy 123-45-6789 is accepted on purpose (it is how people test
 * DLP rules). Values glued to letters (SSN123-45-6789) are not seen.
 * Keyword phrases match across '_', '-', '.', line breaks and camelCase
 * (social_security_number, socialSecurityNumber; rules/compile.ts), so JSON
 * and CSV field names count as context.
 */
import type { Detector } from './types';
import { digitsAt as num } from './checksums';

export function validateSsn(s: string): boolean {
  let area: number, group: number, serial: number;
  if (s.length === 9) {
    area = num(s, 0, 3);
    group = num(s, 3, 2);
    serial = num(s, 5, 4);
  } else if (s.length === 11) {
    const sep = s.charCodeAt(3);
    if ((sep !== 45 && sep !== 32) || s.charCodeAt(6) !== sep) return false;
    area = num(s, 0, 3);
    group = num(s, 4, 2);
    serial = num(s, 7, 4);
  } else return false;
  if (area < 0 || group < 0 || serial < 0) return false;
  if (area === 0 || area === 666 || area >= 900) return false;
  if (group === 0 || serial === 0) return false;
  if ((area === 78 && group === 5 && serial === 1120) || (area === 219 && group === 9 && serial === 9999)) return false;
  return true;
}

export const usSsn: Detector = {
  name: 'us_ssn',
  description: 'US Social Security number (SSA area/group/serial rules; bare 9 digits need a keyword)',
  pattern:
    '\\b(?:\\d{1,8}-)?\\d{3}-\\d{2}-\\d{4}(?:-\\d{1,8})?\\b' +
    '|\\b(?:\\d{1,8} )?\\d{3} \\d{2} \\d{4}(?: \\d{1,8})?\\b' +
    '|\\b\\d{9}\\b',
  keywords: [
    'ssn', 'ssns', 'ssn#', 'ss#', 's.s.n', 'ss no', 'social security', 'social security number', 'social security no',
    'social sec', 'soc sec', 'ssa number', 'ssa no', 'taxpayer id', 'taxpayer identification number',
  ],
  within: 300,
  // 8 digits + '-' + 11 + '-' + 8 digits
  maxLength: 29,
  validate: validateSsn,
  requiresKeyword: (m) => m.length === 9,
  samples: {
    hit: ['123-45-6789', '321 54 9876', '234567891'],
    miss: [
      '000-12-3456', '666-12-3456', '900-12-3456', '987-65-4321', '123-00-4567', '123-45-0000',
      '078-05-1120', '219-09-9999', '12-123-45-6789', '123-45-6789-01', '123-45-67890', '1234-56-7890',
      '000123456', '666123456', '900123456', '123004567', '123450000', '123-45 6789',
    ],
    context: 'SSN:',
  },
};
