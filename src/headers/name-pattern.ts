/*
 * Header-name patterns for `headers.remove`: `*` matches any run of
 * characters, matching is case-insensitive (field names are ASCII, RFC 5322
 * 3.6.8). Compiled once per policy; plain names are a Set lookup, wildcard
 * names use a greedy matcher that is O(name x pattern) at worst, so a hostile
 * name cannot make it backtrack (no RegExp is built from admin text).
 */

export class NamePattern {
  private readonly exact = new Set<string>();
  private readonly globs: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      const p = raw.trim().toLowerCase();
      if (!p) continue;
      if (p.includes('*')) this.globs.push(p.replace(/\*+/g, '*'));
      else this.exact.add(p);
    }
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.globs.length === 0;
  }

  /** `name` must already be lower-case, as Field.name is. */
  matches(name: string): boolean {
    if (!name) return false;
    if (this.exact.has(name)) return true;
    for (const g of this.globs) if (globMatch(g, name)) return true;
    return false;
  }
}

/** Classic single-backtrack-point wildcard match: on a mismatch, only the last `*` is retried. */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let mark = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (star >= 0) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
