/*
 * Streaming scanner for the decoded text of one MIME part. Text arrives in
 * pieces of any size; it is scanned in windows of about WINDOW bytes of
 * UTF-8, and the last `horizon` bytes (longest match plus keyword window)
 * are carried into the next window, so a value or its keyword that straddles
 * two pieces is still found, and found once.
 *
 * Per window: one RE2.Set pass tells which rules can match at all; only
 * those rules run their own regex. Clean text therefore costs one native
 * call per window, not one per rule (the JS/C++ boundary costs ~0.4 µs).
 *
 * Offsets, and keyword windows (`within`), count bytes of the part's
 * decoded text as UTF-8: the same as characters for ASCII text. The text is
 * folded first (src/detectors/fold.ts), as redaction's findRanges folds it.
 */
import type { CompiledRule, CompiledRules, Scope } from './compile';
import { foldForDetection } from '../detectors/fold';

const WINDOW = 256 * 1024;
/** Matches found with exec in one window before the rest are found in bulk (runRuleBulk). */
const EXEC_BEFORE_BULK = 8;
const MARK_START = 0x01;
const MARK_END = 0x02;
const MARKS = '\x01$&\x02';

export interface Match {
  rule: CompiledRule;
  /** Byte offsets of the value in the part's decoded UTF-8 text. */
  start: number;
  end: number;
}

export class PartScanner {
  private buf: Buffer = Buffer.alloc(0);
  /** Absolute offset of buf[0] in the part's text. */
  private base = 0;
  /** Matches must start at or after this absolute offset (earlier ones were reported). */
  private reportedUpTo = 0;
  private pending: string[] = [];
  private pendingChars = 0;
  private readonly rules: CompiledRule[];

  constructor(
    private readonly compiled: CompiledRules,
    scope: Scope,
    private readonly onMatch: (m: Match) => void,
  ) {
    this.rules = compiled.rules.filter((r) => r.scope.has(scope));
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  push(text: string): void {
    if (!this.active || !text) return;
    // Pieces may be a byte long; join them lazily so small pieces cost O(n).
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= WINDOW) {
      this.absorb();
      if (this.buf.length >= WINDOW + 2 * this.compiled.horizon) this.scan(false);
    }
  }

  end(): void {
    if (!this.active) return;
    this.absorb();
    if (this.buf.length) this.scan(true);
    this.buf = Buffer.alloc(0);
  }

  private absorb(): void {
    if (!this.pending.length) return;
    const text = this.pending.join('');
    let more = Buffer.from(text, 'utf8');
    // Look-alike spaces, dashes and full-width digits fold to ASCII (detectors/fold.ts); ASCII text has none.
    if (more.length !== text.length) {
      const folded = foldForDetection(text);
      if (folded !== text) more = Buffer.from(folded, 'utf8');
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, more]) : more;
    this.pending = [];
    this.pendingChars = 0;
  }

  private scan(final: boolean): void {
    const horizon = this.compiled.horizon;
    const buf = this.buf;
    // Matches starting before `limit` are decided now; later ones wait for more text.
    const limit = final ? buf.length : buf.length - horizon;
    const candidates = this.compiled.set!.match(buf);
    if (candidates.length) {
      const wanted = new Set(candidates.map((i: number) => this.compiled.rules[i]));
      for (const rule of this.rules) if (wanted.has(rule)) this.runRule(rule, buf, limit);
    }
    if (final) return;
    // Keep enough text before `limit` for keyword windows of the next matches.
    const keepFrom = Math.max(0, limit - horizon);
    this.reportedUpTo = this.base + limit;
    this.base += keepFrom;
    this.buf = buf.subarray(keepFrom);
  }

  private runRule(rule: CompiledRule, buf: Buffer, limit: number): void {
    const re = rule.re;
    const minStart = this.reportedUpTo - this.base;
    re.lastIndex = Math.max(0, minStart - rule.maxLength);
    for (let found = 0; ; found++) {
      if (found === EXEC_BEFORE_BULK && rule.group === 0 && this.runRuleBulk(rule, buf, limit, minStart, re.lastIndex)) return;
      const m = re.exec(buf) as (Buffer[] & { index: number }) | null;
      if (!m) break;
      const whole = m[0];
      if (whole.length === 0) {
        re.lastIndex++;
        continue;
      }
      const value = m[rule.group] ?? whole;
      const start = m.index + (rule.group ? whole.indexOf(value) : 0);
      if (start >= limit) break;
      if (start < minStart) continue;
      const end = start + value.length;
      if (this.accept(rule, buf, start, end, value.toString('utf8'))) this.onMatch({ rule, start: this.base + start, end: this.base + end });
    }
  }

  /**
   * The rest of runRule's exec loop, from `from` on, when a window is dense
   * with matches: node-re2 builds a result object per exec (~1.5 µs), so all
   * the matches are marked in one native replace instead ("\x01$&\x02";
   * those bytes must not occur in the window) and read back from the marks.
   * replace walks the matches from offset 0 exactly as exec does from its
   * lastIndex (leftmost-first, next search at the match end), so the matches
   * at or after `from` are the exec loop's, unless one straddles `from` or a
   * match is empty (exec and replace step past those differently): then
   * false, and the exec loop carries on. Only for rules whose value is the
   * whole match (group 0).
   */
  private runRuleBulk(rule: CompiledRule, buf: Buffer, limit: number, minStart: number, from: number): boolean {
    if (buf.indexOf(MARK_START) >= 0 || buf.indexOf(MARK_END) >= 0) return false;
    const re = rule.re;
    const marked = re.replace(buf, MARKS) as Buffer;
    re.lastIndex = from; // replace resets it; the exec loop may need it back
    // First pass: where each match is, checked before anything is reported.
    const spans: number[] = [];
    let shift = 0;
    for (let at = marked.indexOf(MARK_START); at >= 0; at = marked.indexOf(MARK_START, at + 1)) {
      const close = marked.indexOf(MARK_END, at + 1);
      if (close < 0 || close === at + 1) return false; // an empty match
      const start = at - shift;
      const end = close - 1 - shift;
      shift += 2;
      at = close;
      if (end <= from) continue;
      if (start < from) return false; // straddles where the exec loop stands
      if (start >= limit) break;
      spans.push(start, end);
    }
    for (let i = 0; i < spans.length; i += 2) {
      const start = spans[i];
      const end = spans[i + 1];
      if (start < minStart) continue;
      if (this.accept(rule, buf, start, end, buf.toString('utf8', start, end))) this.onMatch({ rule, start: this.base + start, end: this.base + end });
    }
    return true;
  }

  private accept(rule: CompiledRule, buf: Buffer, start: number, end: number, value: string): boolean {
    if (!rule.validate(value)) return false;
    const needKeyword = rule.keywordsRequired || rule.requiresKeyword(value);
    if (!needKeyword) return true;
    if (!rule.keywords) return false;
    const from = Math.max(0, start - rule.within);
    const to = Math.min(buf.length, end + rule.within);
    return rule.keywords.test(buf.subarray(from, to));
  }
}
