/*
 * ipv6: IPv6 addresses, full (2001:0db8:85a3:0000:0000:8a2e:0370:7334),
 * compressed (2001:db8::1) and with an embedded IPv4 tail (::ffff:192.0.2.1).
 *
 * Rule: the text form of RFC 4291 section 2.2 (and RFC 5952), checked with
 * Node's net.isIPv6: at most eight 16-bit hex groups, at most one "::".
 * On top of that, to keep code and prose out: at least two non-empty groups
 * (so "::", "::1" and "fe80::" alone do not count: none of them is anyone's
 * address) and at least one decimal digit (so "dead::beef" or a C++-style
 * "Abc::Def" does not count). Zone IDs (%eth0) and /prefix lengths are not
 * part of the match.
 *
 * False positives: MAC addresses and times (00:1a:2b:3c:4d:5e, 12:30:45)
 * are matched by the pattern but fail validation; a hex-and-colon token in
 * source code that happens to be a valid address (a1::b2) still counts.
 * IPs are personal data under GDPR, so no keyword is required.
 */
import { isIPv6 } from 'node:net';
import type { Detector } from './types';

export function validateIpv6(s: string): boolean {
  if (s.length < 3 || s.length > 45) return false;
  let groups = 0;
  let inGroup = false;
  let digit = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) inGroup = false;
    else if (!inGroup) {
      inGroup = true;
      groups++;
    }
    if (c >= 48 && c <= 57) digit = true;
  }
  return groups >= 2 && digit && isIPv6(s);
}

export const ipv6: Detector = {
  name: 'ipv6',
  description: 'IPv6 address, full or compressed, validated with net.isIPv6',
  pattern: '(?:\\b[0-9A-Fa-f]{1,4}|\\B)(?::[0-9A-Fa-f]{0,4}){2,8}(?:\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3})?',
  keywords: ['ip', 'ip address', 'ipv6', 'host', 'server', 'client', 'address'],
  within: 300,
  // 4 + 8 groups of ':' and 4 hex digits + ".255.255.255"
  maxLength: 48,
  validate: validateIpv6,
  samples: {
    hit: [
      '2001:db8::1', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'fe80::1ff:fe23:4567:890a', '::ffff:192.0.2.128',
      '2001:DB8:0:0:8:800:200C:417A', '2001:db8:1234::', 'fd00:1:2::3',
    ],
    miss: [
      '12:30:45', '00:1a:2b:3c:4d:5e', '2001:db8:::1', '2001:db8::1::2', '1:2:3:4:5:6:7:8:9', '::', '::1', 'fe80::',
      'dead::beef', '2001:db8:0:0:0:0:0:0:1', '::ffff:192.0.2.256',
    ],
  },
};
