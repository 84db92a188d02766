/*
 * email_address: e-mail addresses in text (local-part@domain).
 *
 * Rule: a dot-atom local part (RFC 5322 3.2.3) of at most 64 characters
 * (RFC 5321 4.5.3.1.1), with no leading, trailing or doubled dot, and a DNS
 * domain of at least two labels: letters, digits and inner hyphens, labels
 * of 1-63 characters, at most 253 in all (RFC 1035, RFC 5321), ending in an
 * alphabetic top-level label of 2-63 characters. Internationalised domains
 * and local parts (RFC 6531) may use letters and digits of any script.
 * The local part takes letters, digits and _ % + ' - only: the rarer atext
 * characters (/ = ? # & ...) mostly mean a URL query, not an address.
 * Quoted local parts ("john doe"@example.com) and address literals
 * (user@[192.0.2.1]) are not looked for.
 *
 * Not counted: retina image names such as icon@2x.png (a top-level label
 * that is a common file extension is not a real TLD), package specifiers
 * such as name@1.2.3 (numeric TLD), and @handles without a domain. No
 * keyword is needed.
 *
 * False positives: Message-ID-like tokens (<id@host.example>) quoted in a
 * body; scoped names that look like a domain (user@org.tools).
 */
import type { Detector } from './types';

/** Top-level labels that are file extensions, not delegated TLDs (icon@2x.png). */
const FILE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'bmp', 'ico', 'tif', 'tiff', 'heic', 'avif', 'pdf', 'js', 'css', 'html', 'htm', 'txt']);

export function validateEmail(s: string): boolean {
  if (s.length > 64 + 1 + 253) return false;
  const at = s.lastIndexOf('@');
  if (at < 1 || at > 64 || s.length - at - 1 > 253) return false;
  if (s.indexOf('@') !== at) return false;
  // Local part: no leading, trailing or doubled dot.
  if (s.charCodeAt(0) === 46 || s.charCodeAt(at - 1) === 46) return false;
  for (let i = 1; i < at; i++) if (s.charCodeAt(i) === 46 && s.charCodeAt(i - 1) === 46) return false;
  // Domain: labels 1-63, no hyphen at either end of a label.
  let labelStart = at + 1;
  let lastDot = -1;
  for (let i = at + 1; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c !== 46) continue;
    const len = i - labelStart;
    if (len < 1 || len > 63) return false;
    if (s.charCodeAt(labelStart) === 45 || s.charCodeAt(i - 1) === 45) return false;
    if (i < s.length) lastDot = i;
    labelStart = i + 1;
  }
  if (lastDot < 0) return false;
  const tldLen = s.length - lastDot - 1;
  if (tldLen < 2) return false;
  for (let i = lastDot + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 48 && c <= 57) || c === 45) return false; // TLDs are alphabetic
  }
  if (tldLen <= 5 && FILE_EXTENSIONS.has(s.slice(lastDot + 1).toLowerCase())) return false;
  return true;
}

/** The local-part characters people actually use (RFC 5322 atext minus / = ? and friends, which mostly mean a URL). */
const LOCAL = "A-Za-z0-9\\p{L}\\p{N}_%+'-";
const ALNUM = 'A-Za-z0-9\\p{L}\\p{N}';
const LABEL = `[${ALNUM}](?:[${ALNUM}-]*[${ALNUM}])?`;

export const emailAddress: Detector = {
  name: 'email_address',
  description: 'E-mail address (RFC 5322 dot-atom local part, DNS domain with an alphabetic TLD)',
  // Unbounded repetition on purpose: counted repetition of Unicode classes
  // (64 x \p{L} ...) makes an RE2 program too large. validate() enforces the
  // RFC lengths, so no match longer than maxLength is ever counted.
  pattern: `[${LOCAL}][${LOCAL}.]*@(?:${LABEL}\\.)+\\p{L}+`,
  keywords: ['email', 'e-mail', 'email address', 'mail to', 'contact', 'courriel', 'correo'],
  within: 300,
  // local part 64 + '@' + domain 253 (RFC 5321); longer matches fail validate
  maxLength: 318,
  validate: validateEmail,
  samples: {
    hit: ['jane.doe@example.com', 'j.smith+newsletter@mail.example.org', 'info@sub-domain.example.co.uk', 'o\'brien@example.net', 'müller@exämple.de'],
    miss: ['jane..doe@example.com', 'jane.@example.com', 'jane.doe@localhost', 'jane.doe@example', 'icon@2x.png', 'jane.doe@example.c', 'jane.doe@-example.com', 'jane.doe@example-.com', 'a@b', 'jane.doe(at)example.com', 'name@1.2.3', '@example.com'],
  },
};
