/*
 * private_key: the opening line of a private key in a text container.
 *
 * Rule: a PEM/RFC 7468 encapsulation boundary whose label ends in
 * PRIVATE KEY: "-----BEGIN PRIVATE KEY-----" (PKCS#8, RFC 5958),
 * "-----BEGIN ENCRYPTED PRIVATE KEY-----" (PKCS#8 encrypted), RSA (PKCS#1,
 * RFC 8017), EC (RFC 5915), DSA, OPENSSH (openssh PROTOCOL.key), and the
 * OpenPGP armor "-----BEGIN PGP PRIVATE KEY BLOCK-----" (RFC 4880 6.2);
 * also the SSH.com/RFC 4716-style "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
 * and PuTTY's "PuTTY-User-Key-File-2:" / "-3:" header. Label words are
 * upper case letters and digits; at most four of them before PRIVATE KEY.
 *
 * What is matched: only the BEGIN line (at most 77 characters), not the
 * whole block: a block can be many kilobytes and RE2 bounds counted
 * repetition at 1000. The line is enough to detect a key; a rule that must
 * remove the key material should quarantine or reject rather than redact.
 *
 * False positives: documentation or tutorials that quote the BEGIN line
 * with no key after it. PUBLIC KEY, CERTIFICATE and the END line alone do
 * not match.
 */
import type { Detector } from './types';

const SSH2 = '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----';

export function validatePrivateKey(s: string): boolean {
  if (s.length > 77) return false;
  if (s === SSH2 || s === 'PuTTY-User-Key-File-2:' || s === 'PuTTY-User-Key-File-3:') return true;
  if (!s.startsWith('-----BEGIN ') || !(s.endsWith(' PRIVATE KEY-----') || s.endsWith(' PRIVATE KEY BLOCK-----'))) return false;
  // No PUBLIC among the label words ("-----BEGIN PUBLIC PRIVATE KEY-----" is nonsense, not a key).
  return !s.includes('PUBLIC');
}

export const privateKey: Detector = {
  name: 'private_key',
  description: 'Private key: PEM / OpenSSH / PGP / SSH2 BEGIN line, or a PuTTY key file header',
  pattern:
    '-----BEGIN (?:[A-Z0-9]{1,10} ){0,4}PRIVATE KEY(?: BLOCK)?-----' +
    '|' + SSH2 +
    '|\\bPuTTY-User-Key-File-[23]:',
  keywords: ['private key', 'ssh key', 'id_rsa', 'id_ed25519', 'pem', 'key file'],
  within: 300,
  // "-----BEGIN " + 4 * 11 + "PRIVATE KEY BLOCK-----"
  maxLength: 77,
  validate: validatePrivateKey,
  samples: {
    hit: [
      '-----BEGIN PRIVATE KEY-----', '-----BEGIN RSA PRIVATE KEY-----', '-----BEGIN EC PRIVATE KEY-----',
      '-----BEGIN OPENSSH PRIVATE KEY-----', '-----BEGIN ENCRYPTED PRIVATE KEY-----', '-----BEGIN DSA PRIVATE KEY-----',
      '-----BEGIN PGP PRIVATE KEY BLOCK-----', '---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----', 'PuTTY-User-Key-File-3:',
    ],
    miss: [
      '-----BEGIN PUBLIC KEY-----', '-----BEGIN RSA PUBLIC KEY-----', '-----BEGIN CERTIFICATE-----',
      '-----END PRIVATE KEY-----', '-----BEGIN PRIVATE KEY', 'BEGIN PRIVATE KEY', '-----BEGIN private key-----',
      '-----BEGIN PGP PUBLIC KEY BLOCK-----', '----BEGIN PRIVATE KEY-----', 'PuTTY-User-Key-File-9:',
    ],
  },
};
