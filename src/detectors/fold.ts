/*
 * The text the detectors see: decoded text with look-alike characters folded
 * to the ASCII ones the patterns are written for, one UTF-16 code unit for
 * one, so every offset into the folded text is an offset into the original.
 *
 * Why: a value typed or pasted with a no-break space (4111\u00a01111 ...,
 * common from word processors and in plain text that went through one), an
 * en dash or a non-breaking hyphen (536\u201190\u20114399, &hyphen; in HTML)
 * or full-width digits (an IME) reads the same to a person, and RE2's \d,
 * \s and [ -] are ASCII only. Folding once here keeps every detector's
 * pattern and validator ASCII and cheap.
 *
 * Folded:
 *   - space: U+00A0 NO-BREAK SPACE, U+2000..U+200A (en quad .. hair space),
 *     U+202F NARROW NO-BREAK SPACE, U+205F MEDIUM MATHEMATICAL SPACE,
 *     U+3000 IDEOGRAPHIC SPACE;
 *   - '-': U+2010..U+2015 (hyphen, non-breaking hyphen, figure dash, en and
 *     em dash, horizontal bar), U+2212 MINUS SIGN, U+FE58, U+FE63;
 *   - U+FF01..U+FF5E, the full-width forms of ASCII '!'..'~' (digits,
 *     letters, '-', '@', '.'), to their ASCII counterparts (as NFKC does).
 * Not folded: zero-width characters and soft hyphens (removing them would
 * change offsets); other scripts' digits.
 *
 * Used by the pass-1 scanner (src/rules/scanner.ts) and by redaction's
 * findRanges (src/redact/find.ts): both must see the same text, or a value
 * pass 1 found could not be redacted in pass 2.
 */

/** Any character fold() changes. */
const FOLDABLE = /[\u00a0\u2000-\u200a\u2010-\u2015\u202f\u205f\u2212\u3000\ufe58\ufe63\uff01-\uff5e]/;
const FOLDABLE_ALL = new RegExp(FOLDABLE.source, 'g');

function foldChar(c: string): string {
  const code = c.charCodeAt(0);
  if (code >= 0xff01) return String.fromCharCode(code - 0xfee0);
  if (code === 0x00a0 || (code >= 0x2000 && code <= 0x200a) || code === 0x202f || code === 0x205f || code === 0x3000) return ' ';
  return '-';
}

/** s with look-alike spaces, dashes and full-width ASCII folded; the same length as s. Returns s itself when nothing needs folding. */
export function foldForDetection(s: string): string {
  return FOLDABLE.test(s) ? s.replace(FOLDABLE_ALL, foldChar) : s;
}
