/*
 * The contract between a built-in detector (one file each under
 * src/detectors/) and the scanner (src/rules/compile.ts, src/rules/scanner.ts).
 *
 * A detector is data plus two small pure functions. The scanner runs
 * `pattern` with RE2 over decoded text, hands each whole match to `validate`,
 * and, when `requiresKeyword` says so, counts the match only if one of
 * `keywords` stands within `within` characters of it.
 *
 * Boundaries: RE2 has no lookaround, so patterns keep their matches clean
 * with `\b` (ASCII word boundary) or `\B` (before a leading `+`, `(` or `:`).
 * A digit value therefore never matches inside a longer run of digits or
 * letters: `\b\d{16}\b` finds nothing in a 20-digit run. Where a neighbour
 * could still glue on (a fifth dotted octet, a fourth SSN group), the
 * pattern swallows it and `validate` rejects the whole match; the scanner's
 * exec loop continues after the match, so the tail is not retried.
 * No built-in needs a capture group: the value is always the whole match.
 */

export interface Detector {
  /** Name used in rules: `detector: us_ssn`. */
  readonly name: string;
  readonly description: string;
  /** RE2 source matched against decoded text (no lookaround, no backreferences: RE2 has neither). The scanner adds the 'g' and 'u' flags. Must not match an empty string. */
  readonly pattern: string;
  /** Extra RE2 flags, e.g. 'i'. */
  readonly flags?: string;
  /** Built-in context keywords, lower case (Purview-style supporting evidence). May be empty. */
  readonly keywords: readonly string[];
  /** Default window, in characters either side of a match, in which a keyword counts. */
  readonly within: number;
  /** The longest text a match can span, in characters; the scanner uses it to carry context across chunk boundaries. */
  readonly maxLength: number;
  /** Checks a candidate (the full match text): check digits, ranges, lengths. False = not a hit. Must be fast, allocation-light and bounded. */
  validate(match: string): boolean;
  /** True when this particular match counts only with a keyword within `within` (e.g. an unformatted 9-digit SSN). Optional. */
  requiresKeyword?(match: string): boolean;
  /** Synthetic values for tests: `hit` must be found (with `context` prepended when requiresKeyword), `miss` must not be. Use only synthetic/test values, never a real person's. */
  readonly samples: { readonly hit: readonly string[]; readonly miss: readonly string[]; readonly context?: string };
}
