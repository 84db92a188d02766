/*
 * Redaction in text/plain; format=flowed (RFC 3676). Pass 1 scans the text
 * unwrapped (src/mime/flowed.ts), so a value may run across a soft line
 * break ("4111 1111 CRLF 1111 1111"), with DelSp=yes even inside a number.
 * The lines are read here the way pass 1 reads them, each character of the
 * unwrapped text mapped to the wrapped text; the unwrapped text must equal
 * pass 1's own, or the part fails closed.
 *
 * A value is replaced where it starts, and the rest of it is removed, soft
 * breaks included: the line it starts on goes on with what followed the
 * value, so the unwrapped text is exactly "before + replacement + after" and
 * every other break, quote mark and stuffing space stays as it was. Then:
 *   - a value ending in the space of a soft break (DelSp=no) takes the break
 *     with it, or the line would end hard;
 *   - a replacement that would start a line with " ", ">" or "From " is
 *     space-stuffed (RFC 3676 4.4);
 *   - a line that comes out longer than 998 octets (RFC 5322 2.1.1) is
 *     wrapped again with soft breaks (after a space when DelSp=no), its
 *     quote marks repeated; if it cannot be and is longer than any line of
 *     the input, the part fails closed.
 */
import type { CompiledRule } from '../rules/compile';
import { FlowedText } from '../mime/flowed';
import { findRanges, replacementOf } from './find';
import { TextMap, applyEdits, lastAtOrBefore, type RawEdit } from './text-map';
import { RedactionError } from './error';

export const MAX_LINE_OCTETS = 998;

/** Per line: start, content start (after the prefix pass 1 strips), end (its LF, or the text's end), soft space (-1: hard). */
const LINE = 4;

interface Parsed {
  unwrapped: string;
  map: TextMap;
  lines: Int32Array;
  count: number;
}

/** Reads the lines as FlowedText does: see src/mime/flowed.ts. */
function parse(text: string, delSp: boolean): Parsed {
  let lines = new Int32Array(LINE * 64);
  let count = 0;
  const map = new TextMap();
  const parts: string[] = [];
  let afterSoft = false;
  for (let start = 0; start <= text.length; ) {
    const lf = text.indexOf('\n', start);
    const end = lf < 0 ? text.length : lf;
    let content = start;
    // After a soft break the quote marks go; then one stuffing space.
    if (afterSoft) while (content < end && text.charCodeAt(content) === 0x3e) content++;
    if (content < end && text.charCodeAt(content) === 0x20) content++;
    // Soft: a line feed after a space (and CR), unless the line is the signature separator.
    let space = -1;
    if (lf >= 0 && end > content && text.charCodeAt(end - 1) === 0x20) space = end - 1;
    else if (lf >= 0 && end - content >= 2 && text.charCodeAt(end - 1) === 0x0d && text.charCodeAt(end - 2) === 0x20) space = end - 2;
    if (space >= 0 && isSignature(text, content, end)) space = -1;
    // The unwrapped text: a soft break keeps its space unless DelSp=yes; a hard one keeps its CR and LF.
    const upTo = space >= 0 ? space + (delSp ? 0 : 1) : lf < 0 ? end : end + 1;
    map.copy(upTo - content, content);
    parts.push(text.slice(content, upTo));
    if ((count + 1) * LINE > lines.length) {
      const bigger = new Int32Array(lines.length * 2);
      bigger.set(lines);
      lines = bigger;
    }
    const k = count++ * LINE;
    [lines[k], lines[k + 1], lines[k + 2], lines[k + 3]] = [start, content, end, space];
    afterSoft = space >= 0;
    if (lf < 0) break;
    start = lf + 1;
  }
  return { unwrapped: parts.join(''), map, lines, count };
}

/** The signature separator "-- " is a hard break: the line's characters other than CR are exactly those three. */
function isSignature(text: string, from: number, to: number): boolean {
  let seen = '';
  for (let i = from; i < to && seen.length <= 3; i++) if (text.charCodeAt(i) !== 0x0d) seen += text[i];
  return seen === '-- ';
}

/** The line holding raw offset `pos`. */
function lineAt(p: Parsed, pos: number): number {
  return lastAtOrBefore(p.lines, LINE, p.count, pos);
}

export function redactFlowed(text: string, delSp: boolean, rules: readonly CompiledRule[]): { text: string; count: number } {
  const p = parse(text, delSp);
  const reader = new FlowedText(delSp);
  if (reader.write(text) + reader.end() !== p.unwrapped) throw new RedactionError('format=flowed text read differently than pass 1 reads it');
  const { text: scanned, map } = p.map.withoutNul(p.unwrapped);
  const ranges = findRanges(scanned, rules);
  if (!ranges.length) return { text, count: 0 };
  const edits: RawEdit[] = [];
  for (const r of ranges) {
    const hull = map.hull(r.start, r.end)!;
    let end = hull.end;
    const last = lineAt(p, end - 1);
    if (p.lines[last * LINE + 3] === end - 1 && last + 1 < p.count) end = p.lines[(last + 1) * LINE + 1];
    const first = lineAt(p, hull.start) * LINE;
    let replacement = replacementOf(r.rule);
    const [lineStart, content] = [p.lines[first], p.lines[first + 1]];
    const stuffed = content > lineStart && text.charCodeAt(content - 1) === 0x20;
    if (hull.start === content && !stuffed && /^(?: |>|From )/.test(replacement + text.slice(end, end + 5))) replacement = ' ' + replacement;
    edits.push({ start: hull.start, end, text: replacement, ctx: 0 });
  }
  const out = applyEdits(text, edits);
  return { text: rewrapLong(out, edits, delSp, () => longestLine(text)), count: ranges.length };
}

function longestLine(text: string): number {
  let longest = 0;
  for (let start = 0; start <= text.length; ) {
    const lf = text.indexOf('\n', start);
    const end = lf < 0 ? text.length : lf;
    longest = Math.max(longest, octets(text, start, end));
    if (lf < 0) break;
    start = lf + 1;
  }
  return longest;
}

/** UTF-8 octets of the character at text[i]: at least as many as in any 8-bit charset, exact for UTF-8. */
function octetsAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? 4 : 3;
}

function octets(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i += octetsAt(text, i) === 4 ? 2 : 1) n += octetsAt(text, i);
  return n;
}

/** Wraps again the lines of `out` that edits touched and that are now too long. */
function rewrapLong(out: string, edits: readonly RawEdit[], delSp: boolean, longestInput: () => number): string {
  // Where each edit landed in `out`.
  let shift = 0;
  const landed: number[] = [];
  for (const e of edits) {
    landed.push(e.start + shift);
    shift += e.text.length - (e.end - e.start);
  }
  let result = '';
  let at = 0;
  let done = -1;
  for (const pos of landed) {
    if (pos <= done) continue; // on a line already looked at
    const start = out.lastIndexOf('\n', pos - 1) + 1;
    const lf = out.indexOf('\n', pos);
    done = lf < 0 ? out.length : lf;
    let end = done;
    if (end > start && out.charCodeAt(end - 1) === 0x0d) end--;
    result += out.slice(at, start);
    const line = out.slice(start, end);
    const size = octets(line, 0, line.length);
    const wrapped = size > MAX_LINE_OCTETS ? wrap(line, delSp, lf >= 0 && end < lf ? '\r\n' : lf >= 0 ? '\n' : '\r\n') : line;
    if (wrapped === undefined && size > longestInput()) throw new RedactionError(`format=flowed: a redacted line of ${size} octets cannot be wrapped`);
    result += wrapped ?? line;
    at = end;
  }
  return result + out.slice(at);
}

/**
 * Cuts a line (without its line end) into lines of at most MAX_LINE_OCTETS
 * joined by soft breaks: with DelSp=yes anywhere (the added space goes
 * again), else after a space. Continuation lines repeat the quote marks and
 * are space-stuffed, which pass 1 and RFC 3676 readers both strip.
 */
function wrap(line: string, delSp: boolean, eol: string): string | undefined {
  const quote = /^>*/.exec(line)![0];
  const lead = quote + ' ';
  const prefix = /^>* ?/.exec(line)![0].length;
  let out = '';
  let from = 0;
  let left = octets(line, 0, line.length);
  for (let first = true; ; first = false) {
    const room = MAX_LINE_OCTETS - (first ? 0 : lead.length) - (delSp ? 1 : 0);
    if (left + (first ? 0 : lead.length) <= MAX_LINE_OCTETS) return out + (first ? '' : lead) + line.slice(from);
    let fit = from;
    for (let n = 0; fit < line.length; ) {
      const size = octetsAt(line, fit);
      if (n + size > room) break;
      n += size;
      fit += size === 4 ? 2 : 1;
    }
    let cut = fit;
    if (!delSp) {
      cut = line.lastIndexOf(' ', fit - 1) + 1;
      while (cut > 0 && isSignatureLine(line.slice(from, cut), first ? '' : lead)) cut = line.lastIndexOf(' ', cut - 2) + 1;
    } else if (isSignatureLine(line.slice(from, cut) + ' ', first ? '' : lead)) cut--;
    if (cut <= from + (first ? prefix : 0)) return undefined;
    out += (first ? '' : lead) + line.slice(from, cut) + (delSp ? ' ' : '') + eol;
    left -= octets(line, from, cut);
    from = cut;
  }
}

/** Would this line be read as the signature separator (a hard break)? */
function isSignatureLine(body: string, lead: string): boolean {
  const line = lead + body;
  return line.replace(/^>* ?/, '') === '-- ' || line === '-- ';
}
