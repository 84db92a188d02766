/*
 * Finds the values to redact in one part's decoded text (a JS string), with
 * the same regexes, validators and keyword rules as the pass-1 scanner, and
 * returns non-overlapping ranges in string offsets. Like the scanner, it
 * looks at the folded text (src/detectors/fold.ts); folding keeps offsets.
 * Pass 2 works on whole parts that pass 1 flagged, so this is not on the
 * clean-mail hot path.
 */
import type { CompiledRule } from '../rules/compile';
import { foldForDetection } from '../detectors/fold';
import { TextMap, applyEdits } from './text-map';

export interface Range {
  start: number;
  end: number;
  rule: CompiledRule;
}

export function findRanges(original: string, rules: readonly CompiledRule[]): Range[] {
  // The scanner's view of the text (same length, so the ranges hold for the original too).
  const text = foldForDetection(original);
  const found: Range[] = [];
  for (const rule of rules) {
    const re = rule.re;
    re.lastIndex = 0;
    for (;;) {
      const m = re.exec(text);
      if (!m) break;
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      const value = m[rule.group] ?? m[0];
      const start = m.index + (rule.group ? m[0].indexOf(value) : 0);
      const end = start + value.length;
      if (!rule.validate(value)) continue;
      if (rule.keywordsRequired || rule.requiresKeyword(value)) {
        if (!rule.keywords) continue;
        const around = text.slice(Math.max(0, start - rule.within), Math.min(text.length, end + rule.within));
        if (!rule.keywords.test(around)) continue;
      }
      found.push({ start, end, rule });
    }
  }
  // Earliest first; on overlap the earlier (then longer) range wins.
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Range[] = [];
  for (const r of found) if (!out.length || r.start >= out[out.length - 1].end) out.push(r);
  return out;
}

/** Redaction in plain text: what pass 1 scans is the text itself, less its NULs. */
export function redactText(raw: string, rules: readonly CompiledRule[]): { text: string; count: number } {
  const identity = new TextMap();
  identity.copy(raw.length, 0);
  const { text, map } = identity.withoutNul(raw);
  const ranges = findRanges(text, rules);
  const edits = ranges.map((r) => ({ ...map.hull(r.start, r.end)!, text: replacementOf(r.rule), ctx: 0 }));
  return { text: applyEdits(raw, edits), count: ranges.length };
}

/** Replaces every range with its rule's replacement. */
export function applyRanges(text: string, ranges: readonly Range[]): string {
  let out = '';
  let at = 0;
  for (const r of ranges) {
    out += text.slice(at, r.start) + replacementOf(r.rule);
    at = r.end;
  }
  return out + text.slice(at);
}

export function replacementOf(rule: CompiledRule): string {
  return rule.def.replacement ?? `[${rule.def.id.toUpperCase()}]`;
}
