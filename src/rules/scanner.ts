/*
 * Streaming scanner for the decoded text of one MIME part. Text arrives in
 * pieces of any size; it is scanned in windows of about WINDOW bytes of
 * UTF-8, and the last `horizon` bytes (longest match plus keyword window)
 * are carried into the next window, so a value or its keyword that straddles
 * two pieces is still found, and found once.
 *
 * Per window: the RE2.Set runs over each SLICE of it in turn and tells which
 * rules can match a value starting there; only those rules run their own
 * regex, and only over the slices that were flagged. Rules with the same
 * regex (a monitor rule and a bulk rule on one detector) share that pass;
 * each then checks the values with its own validator and keywords. Clean
 * text therefore costs one native call per slice, not one per rule (the
 * JS/C++ boundary costs ~0.4 µs), and a rule that one value in a long part
 * wakes up reads a slice, not the part: every RE2 pass reads about 1.5 ns
 * per byte, however simple the pattern.
 *
 * A slice's Set pass sees one byte before it (for \b) and the longest match
 * plus one byte after it, so any value that starts in the slice is seen with
 * the context it has in the window. Like the carry between windows, this
 * relies on a rule's maxLength bounding its matches (counted in bytes:
 * maxBytes).
 *
 * Offsets, and keyword windows (`within`), count bytes of the part's
 * decoded text as UTF-8: the same as characters for ASCII text. The text is
 * folded first (src/detectors/fold.ts), as redaction's findRanges folds it.
 */
import type { CompiledRule, CompiledRules, Scope } from './compile';
import { foldForDetection } from '../detectors/fold';

type RE2Like = NonNullable<CompiledRule['keywordPhrases']>;

const WINDOW = 256 * 1024;
/** Bytes per Set pass: small enough that one value does not wake a rule up for a whole window, large enough that the overlap (maxBytes) stays cheap. */
const SLICE = 16 * 1024;
/** Matches found with exec in one window before the rest are found in bulk (runRuleBulk). */
const EXEC_BEFORE_BULK = 8;
/** Keyword look-ups for one rule in one window before the window is checked once for any keyword at all. */
const KEYWORD_CHECKS_BEFORE_PRESENCE = 16;
const MARK_START = 0x01;
const MARK_END = 0x02;
const MARKS = '\x01$&\x02';

export interface Match {
  rule: CompiledRule;
  /** Byte offsets of the value in the part's decoded UTF-8 text. */
  start: number;
  end: number;
}

/** What a rule's regex found in a window, before validation: start, end and value of each, in order. */
interface Found {
  starts: number[];
  ends: number[];
  values: string[];
}

/** Rules that can share one exec pass: same regex, same flags, same value group. Cached: RE2's source getter is a native call. */
const regexKeys = new WeakMap<CompiledRule, string>();
function regexKey(rule: CompiledRule): string {
  let key = regexKeys.get(rule);
  if (key === undefined) regexKeys.set(rule, (key = `${rule.re.source}\0${rule.re.flags}\0${rule.group}`));
  return key;
}

/** The rules of one scope and their regex keys, worked out once per rule set (a scanner is made per part). */
const byScope = new WeakMap<CompiledRules, Map<Scope, { rules: CompiledRule[]; keys: string[] }>>();
function rulesFor(compiled: CompiledRules, scope: Scope): { rules: CompiledRule[]; keys: string[] } {
  let scopes = byScope.get(compiled);
  if (!scopes) byScope.set(compiled, (scopes = new Map()));
  let entry = scopes.get(scope);
  if (!entry) {
    const rules = compiled.rules.filter((r) => r.scope.has(scope));
    scopes.set(scope, (entry = { rules, keys: rules.map(regexKey) }));
  }
  return entry;
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
  private readonly keys: string[];
  /**
   * Per keyword regex, for the window being scanned: look-ups so far, then
   * (true/false) whether any keyword occurs in it at all. Number-dense text
   * (a table, a CSV) can hold thousands of matches that each need a keyword
   * within `within` characters; when the window has none anywhere, one pass
   * says so for all of them (see CompiledRule.keywordPhrases).
   */
  private keywordState = new Map<RE2Like, number | boolean>();

  constructor(
    private readonly compiled: CompiledRules,
    scope: Scope,
    private readonly onMatch: (m: Match) => void,
  ) {
    ({ rules: this.rules, keys: this.keys } = rulesFor(compiled, scope));
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
    // Matches starting before `minStart` were decided in the last window.
    const minStart = Math.max(0, this.reportedUpTo - this.base);
    this.keywordState.clear();
    const runs = this.candidateRuns(buf, minStart, limit);
    const shared = new Map<string, Found>();
    for (let k = 0; k < this.rules.length; k++) {
      const rule = this.rules[k];
      const r = runs.get(rule);
      if (!r) continue;
      let found = shared.get(this.keys[k]);
      if (!found) {
        found = { starts: [], ends: [], values: [] };
        let resume = 0;
        for (let i = 0; i < r.length; i += 2) resume = this.runRule(rule, buf, r[i], r[i + 1], resume, found);
        shared.set(this.keys[k], found);
      }
      for (let i = 0; i < found.starts.length; i++) {
        const start = found.starts[i];
        const end = found.ends[i];
        if (this.accept(rule, buf, start, end, found.values[i])) this.onMatch({ rule, start: this.base + start, end: this.base + end });
      }
    }
    if (final) return;
    // Keep enough text before `limit` for keyword windows of the next matches.
    const keepFrom = Math.max(0, limit - horizon);
    this.reportedUpTo = this.base + limit;
    this.base += keepFrom;
    this.buf = buf.subarray(keepFrom);
  }

  /** Per rule, [from, to) pairs: the slices of [minStart, limit) where a value of the rule may start, adjacent ones merged. */
  private candidateRuns(buf: Buffer, minStart: number, limit: number): Map<CompiledRule, number[]> {
    const runs = new Map<CompiledRule, number[]>();
    const reach = this.compiled.maxBytes + 1;
    const all = this.compiled.rules;
    for (let from = minStart; from < limit; from += SLICE) {
      const to = Math.min(limit, from + SLICE);
      const hits: number[] = this.compiled.set!.match(buf.subarray(from > 0 ? from - 1 : 0, Math.min(buf.length, to + reach)));
      for (const i of hits) {
        const rule = all[i];
        let r = runs.get(rule);
        if (!r) runs.set(rule, (r = []));
        if (r.length && r[r.length - 1] === from) r[r.length - 1] = to;
        else r.push(from, to);
      }
    }
    return runs;
  }

  /**
   * Adds to `found` the rule's values that start in [from, to), with exec from
   * `resume` (where the last run of this rule stopped) or a match length
   * before `from`, so the matches are the ones one exec loop over the whole
   * window would give. exec reads only the run (one byte before where it
   * starts, for \b, to a match length past `to`): otherwise each run would
   * read on to the next match, through every slice the Set said was clean.
   * Returns where the next run should resume.
   */
  private runRule(rule: CompiledRule, buf: Buffer, from: number, to: number, resume: number, found: Found): number {
    const re = rule.re;
    const begin = Math.max(resume, from - rule.maxBytes, 0);
    const v0 = begin > 0 ? begin - 1 : 0;
    const view = buf.subarray(v0, Math.min(buf.length, to + rule.maxBytes + 1));
    re.lastIndex = begin - v0;
    for (let n = 0; ; n++) {
      // After a bulk run the next run (at least a SLICE later, runs are merged) is past every match it saw.
      if (n === EXEC_BEFORE_BULK && rule.group === 0 && this.runRuleBulk(rule, buf, from, to, v0 + re.lastIndex, found)) return to;
      const m = re.exec(view) as (Buffer[] & { index: number }) | null;
      if (!m) return to;
      const whole = m[0];
      if (whole.length === 0) {
        re.lastIndex++;
        continue;
      }
      const value = m[rule.group] ?? whole;
      const start = v0 + m.index + (rule.group ? whole.indexOf(value) : 0);
      if (start >= to) return v0 + m.index;
      if (start < from) continue;
      found.starts.push(start);
      found.ends.push(start + value.length);
      found.values.push(value.toString('utf8'));
    }
  }

  /**
   * The rest of runRule's exec loop, from `at` on, when a run is dense with
   * matches: node-re2 builds a result object per exec (~1.5 µs), so all the
   * matches are marked in one native replace instead ("\x01$&\x02"; those
   * bytes must not occur in the text) and read back from the marks. The
   * replace reads only the run, from one byte before `at` (for \b) to a
   * match length past `to`. It walks the matches as exec does from its
   * lastIndex (leftmost-first, next search at the match end), so the
   * matches at or after `at` are the exec loop's, unless one straddles `at`
   * or a match is empty (exec and replace step past those differently):
   * then false, and the exec loop carries on. Only for rules whose value is
   * the whole match (group 0).
   */
  private runRuleBulk(rule: CompiledRule, buf: Buffer, from: number, to: number, at: number, found: Found): boolean {
    const v0 = at > 0 ? at - 1 : 0;
    const view = buf.subarray(v0, Math.min(buf.length, to + rule.maxBytes + 1));
    if (view.indexOf(MARK_START) >= 0 || view.indexOf(MARK_END) >= 0) return false;
    const re = rule.re;
    // A global replace starts at lastIndex, and resets it: the exec loop's (in its own view) is put back.
    const execAt = re.lastIndex;
    re.lastIndex = 0;
    const marked = re.replace(view, MARKS) as Buffer;
    re.lastIndex = execAt;
    // First pass: where each match is, checked before anything is reported.
    const spans: number[] = [];
    let shift = 0;
    for (let mark = marked.indexOf(MARK_START); mark >= 0; mark = marked.indexOf(MARK_START, mark + 1)) {
      const close = marked.indexOf(MARK_END, mark + 1);
      if (close < 0 || close === mark + 1) return false; // an empty match
      const start = v0 + mark - shift;
      const end = v0 + close - 1 - shift;
      shift += 2;
      mark = close;
      if (end <= at) continue;
      if (start < at) return false; // straddles where the exec loop stands
      if (start >= to) break;
      spans.push(start, end);
    }
    for (let i = 0; i < spans.length; i += 2) {
      const start = spans[i];
      const end = spans[i + 1];
      if (start < from) continue;
      found.starts.push(start);
      found.ends.push(end);
      found.values.push(buf.toString('utf8', start, end));
    }
    return true;
  }

  /** False once the window is known to hold no keyword of the rule anywhere. */
  private keywordsMayBeIn(rule: CompiledRule, buf: Buffer): boolean {
    const phrases = rule.keywordPhrases;
    if (!phrases) return true;
    const state = this.keywordState.get(phrases) ?? 0;
    if (typeof state === 'boolean') return state;
    if (state < KEYWORD_CHECKS_BEFORE_PRESENCE) {
      this.keywordState.set(phrases, state + 1);
      return true;
    }
    const present = phrases.test(buf);
    this.keywordState.set(phrases, present);
    return present;
  }

  private accept(rule: CompiledRule, buf: Buffer, start: number, end: number, value: string): boolean {
    if (!rule.validate(value)) return false;
    const needKeyword = rule.keywordsRequired || rule.requiresKeyword(value);
    if (!needKeyword) return true;
    if (!rule.keywords) return false;
    if (!this.keywordsMayBeIn(rule, buf)) return false;
    const from = Math.max(0, start - rule.within);
    const to = Math.min(buf.length, end + rule.within);
    return rule.keywords.test(buf.subarray(from, to));
  }
}
