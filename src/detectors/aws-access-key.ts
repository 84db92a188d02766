/*
 * aws_access_key: AWS access key IDs.
 *
 * Rule: "AKIA" (long-term IAM user key) or "ASIA" (temporary STS key)
 * followed by 16 upper-case letters or digits, 20 characters in all.
 * Source: AWS IAM User Guide, "Understanding unique ID prefixes" (IAM
 * identifiers), and the key format AWS documents for access keys
 * (AKIAIOSFODNN7EXAMPLE, AKIAI44QH8DHBEXAMPLE). Keys issued today use the
 * base32 alphabet (A-Z, 2-7) after the prefix, but AWS's own documentation
 * examples and older keys do not, so any digit is taken (as GitHub secret
 * scanning, gitleaks and trufflehog do).
 *
 * The access key ID alone is not the secret, but it identifies the account
 * and leaked IDs usually travel with their secret key; both AKIA and ASIA
 * count alone. Other IAM ID prefixes (AIDA users, AROA roles, ...) are
 * identifiers, not credentials, and are not matched.
 *
 * False positives: a 20-character upper-case token starting AKIA/ASIA is
 * specific; AWS's own documentation examples validate (useful for testing). The secret access key (40 characters of
 * base64) is not detected: without context it is indistinguishable from
 * other base64.
 */
import type { Detector } from './types';

export function validateAwsAccessKey(s: string): boolean {
  if (s.length !== 20) return false;
  if (!(s.startsWith('AKIA') || s.startsWith('ASIA'))) return false;
  for (let i = 4; i < 20; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57))) return false;
  }
  return true;
}

export const awsAccessKey: Detector = {
  name: 'aws_access_key',
  description: 'AWS access key ID: AKIA/ASIA + 16 upper-case letters or digits',
  pattern: '\\b(?:AKIA|ASIA)[A-Z0-9]{16}\\b',
  keywords: ['aws', 'access key', 'access key id', 'aws_access_key_id', 'secret access key', 'aws_secret_access_key', 'iam', 'amazon web services'],
  within: 300,
  maxLength: 20,
  validate: validateAwsAccessKey,
  samples: {
    hit: ['AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A', 'AKIA2EQARF3B2C4D5E6F', 'AKIAI44QH8DHBEXAMPLE'],
    miss: [
      'AKIAIOSFODNN7EXAMPL', 'AKIAIOSFODNN7EXAMPLE1', 'AKIAIOSFODNN7EXAMPLe', 'AKIDIOSFODNN7EXAMPLE', 'akiaiosfodnn7example',
      'AIDAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMP_E', 'XAKIAIOSFODNN7EXAMPLE',
    ],
  },
};
