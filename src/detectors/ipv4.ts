/*
 * ipv4: IPv4 addresses in dotted-quad notation (192.0.2.10).
 *
 * Rule: exactly four decimal octets 0-255 (RFC 791; the dotted-decimal text
 * form of RFC 1123 2.1 / inet_pton), no leading zeros (010.1.2.3 is octal to
 * some parsers and a zero-padded serial number to everyone else), first
 * octet not 0, and not a netmask (255.255.255.0, 255.255.0.0, ...: a
 * configuration value, not anyone's address; 255.255.255.255 included). An optional /prefix is not
 * part of the match.
 *
 * Version-like runs: the pattern takes a whole dotted digit run of up to
 * eight parts (1.2.3.4.5, 1.3.6.1.4.1.311) and validate rejects anything that
 * is not four parts, so no 4-part window inside a longer run is reported.
 * An octet longer than 3 digits (1234.1.2.3) rejects the run too.
 *
 * False positives: a four-part version number (1.2.3.4), SNMP OIDs of four
 * arcs, and section numbers (2.5.4.3) are indistinguishable from addresses.
 * IPs are personal data under GDPR (CJEU C-582/14, Breyer), so no keyword
 * is required.
 */
import type { Detector } from './types';

export function validateIpv4(s: string): boolean {
  if (s.length < 7 || s.length > 15) return false;
  let parts = 0;
  let value = 0;
  let len = 0;
  let first = 0;
  // The address as a 32-bit number, for the netmask test.
  let addr = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57) {
      if (len === 1 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (++len > 3 || value > 255) return false;
    } else if (c === 46) {
      if (len === 0) return false;
      if (parts === 0) first = value;
      addr = addr * 256 + value;
      parts++;
      value = 0;
      len = 0;
    } else return false;
  }
  if (parts !== 4 || first === 0) return false;
  // Netmask: 255.x.x.x whose bits are ones followed by zeros.
  if (first === 255) {
    const inv = 0xffffffff - addr;
    if ((inv & (inv + 1)) === 0) return false;
  }
  return true;
}

export const ipv4: Detector = {
  name: 'ipv4',
  description: 'IPv4 address: four octets 0-255, no leading zeros, not a netmask or a version-like run',
  pattern: '\\b\\d{1,4}(?:\\.\\d{1,4}){3,7}\\b',
  keywords: ['ip', 'ip address', 'ipv4', 'host', 'server', 'client', 'address'],
  within: 300,
  // 8 parts of 4 digits and 7 dots
  maxLength: 39,
  validate: validateIpv4,
  samples: {
    hit: ['192.0.2.10', '198.51.100.23', '203.0.113.255', '10.0.0.1', '172.16.254.1', '100.64.12.7'],
    miss: [
      '256.1.2.3', '1.2.3.4.5', '192.168.1', '010.1.2.3', '192.168.01.1', '255.255.255.0', '255.255.0.0', '255.255.255.255',
      '0.1.2.3', '1234.1.2.3', '1.3.6.1.4.1.311', '2026.11.22', '22.11.2026', '192.168.1.300',
    ],
  },
};
