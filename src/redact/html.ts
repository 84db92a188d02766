/*
 * Redaction inside HTML that leaves the markup valid. Values are looked for
 * in exactly the text pass 1 scans: its own tokenizer (src/mime/html-text.ts)
 * runs here with a trace of where each character came from. That text is
 * the visible text (inline tags join, "123-<b>45</b>-6789" is one value,
 * conditional comments parsed as HTML) followed by the hidden content:
 * attribute values, comments, <script>/<style> content, <!DOCTYPE>-like
 * markup. So anything pass 1 can see, pass 2 can remove.
 *
 * A value is replaced where its first character is, escaped for that place:
 *   - text and quoted attribute values: as character references, so the
 *     quote style of the attribute stays valid;
 *   - an unquoted attribute value: spaces, quotes, "=", "<", ">" and "`" as
 *     references too; a value emptied whole becomes "" (title= href=x would
 *     otherwise give title the value "href=x");
 *   - comments, <script>/<style> and other markup take no references: the
 *     characters that would end them early ('>' and a trailing "-"/"!" in a
 *     comment, '>' in markup, '<' in script or style) are left out.
 * The rest of the value is removed wherever it is; every tag stays in place.
 * A character reference is removed whole when a value ends inside it.
 */
import { decodeHTML, decodeHTMLAttribute } from 'entities';
import { HtmlText, HtmlContext, type HtmlTrace } from '../mime/html-text';
import type { CompiledRule } from '../rules/compile';
import { findRanges, replacementOf } from './find';
import { TextMap, mergeEdits, applyEdits, type RawEdit } from './text-map';

/** Builds the TextMap of the tokenizer's output; hidden text is held apart until the tokenizer flushes it. */
class HtmlMapper implements HtmlTrace {
  readonly map = new TextMap();
  private readonly held = new TextMap();
  /** Raw [start, end) of every unquoted attribute value, in order. */
  readonly unquoted: number[] = [];

  copy(hidden: boolean, at: number, length: number, ctx: HtmlContext): void {
    (hidden ? this.held : this.map).copy(length, at, ctx);
  }

  decoded(hidden: boolean, text: string, raw: string, at: number, ctx: HtmlContext): void {
    mapDecoded(hidden ? this.held : this.map, text, raw, at, ctx);
    if (ctx === HtmlContext.ATTR_UQ) this.unquoted.push(at, at + raw.length);
  }

  gap(hidden: boolean, length: number): void {
    (hidden ? this.held : this.map).skip(length);
  }

  flush(): void {
    this.map.append(this.held);
    this.held.clear();
  }
}

const nbspToSpace = (s: string) => s.replace(/\u00a0/g, ' ');
const REFERENCE = /^&(?:#[xX]?[0-9A-Fa-f]*;?|[A-Za-z0-9]*;?)/;

/**
 * Maps `text`, which the tokenizer decoded from `raw`, character by character
 * where it can: the raw is cut before each "&" (a reference never holds one),
 * each piece is a reference, mapped whole, then characters copied as they
 * are. If that does not give back `text` exactly, all of it maps to all of raw.
 */
function mapDecoded(map: TextMap, text: string, raw: string, at: number, ctx: HtmlContext): void {
  const attribute = ctx === HtmlContext.ATTR_DQ || ctx === HtmlContext.ATTR_SQ || ctx === HtmlContext.ATTR_UQ;
  const decode = attribute ? decodeHTMLAttribute : decodeHTML;
  const runs: [length: number, raw: number, rawLength: number, exact: boolean][] = [];
  let got = '';
  for (let start = 0; start < raw.length; ) {
    const amp = raw.indexOf('&', start + 1);
    const end = amp < 0 ? raw.length : amp;
    const piece = raw.slice(start, end);
    const whole = decode(piece);
    const head = piece[0] === '&' ? REFERENCE.exec(piece)![0] : '';
    const headText = head ? decode(head) : '';
    if (whole === piece) runs.push([piece.length, start, piece.length, true]);
    else if (headText + piece.slice(head.length) === whole) {
      runs.push([headText.length, start, head.length, false], [piece.length - head.length, start + head.length, piece.length - head.length, true]);
    } else runs.push([whole.length, start, piece.length, false]);
    got += whole;
    start = end;
  }
  if (nbspToSpace(got) !== text) {
    map.span(text.length, at, raw.length, ctx);
    return;
  }
  for (const [length, start, rawLength, exact] of runs) {
    if (exact) map.copy(length, at + start, ctx);
    else map.span(length, at + start, rawLength, ctx);
  }
}

const ref = (c: string) => `&#${c.codePointAt(0)};`;

/** The replacement as it must be written where the value's first character was. */
function escapeFor(ctx: number, s: string): string {
  switch (ctx) {
    case HtmlContext.ATTR_SQ:
      return s.replace(/[&<>']/g, (c) => (c === "'" ? '&#39;' : ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!));
    case HtmlContext.ATTR_UQ:
      return s.replace(/&/g, '&amp;').replace(/[\s"'<>=`]/g, ref);
    case HtmlContext.COMMENT:
      return s.replace(/>/g, '').replace(/[-!]+$/, '');
    case HtmlContext.BOGUS:
      return s.replace(/>/g, '');
    case HtmlContext.RAWTEXT:
      return s.replace(/</g, '');
    default: // text, double-quoted attribute value
      return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  }
}

/** An unquoted attribute value that the edits remove whole and replace with nothing is written "". */
function quoteEmptied(edits: RawEdit[], unquoted: readonly number[]): void {
  let e = 0;
  for (let u = 0; u < unquoted.length; u += 2) {
    const [start, end] = [unquoted[u], unquoted[u + 1]];
    while (e < edits.length && edits[e].end <= start) e++;
    if (e >= edits.length || edits[e].start > start) continue;
    let covered = start;
    let empty = true;
    for (let k = e; k < edits.length && edits[k].start <= covered && covered < end; k++) {
      empty &&= edits[k].text === '';
      covered = Math.max(covered, edits[k].end);
    }
    if (covered >= end && empty) edits[e].text = '""';
  }
}

export function redactHtml(html: string, rules: readonly CompiledRule[]): { text: string; count: number } {
  const mapper = new HtmlMapper();
  const tokenizer = new HtmlText(mapper);
  const scanned = tokenizer.write(html) + tokenizer.end();
  if (mapper.map.length !== scanned.length) throw new Error(`redact/html: mapped ${mapper.map.length} of ${scanned.length} characters`);
  const { text, map } = mapper.map.withoutNul(scanned);
  const ranges = findRanges(text, rules);
  if (!ranges.length) return { text: html, count: 0 };
  const edits: RawEdit[] = [];
  for (const r of ranges) {
    map.pieces(r.start, r.end).forEach((p, k, all) => {
      // NULs between two pieces (pass 1 dropped them) go with the value.
      const gap = k > 0 ? p.start - all[k - 1].end : 0;
      if (gap > 0 && gap <= 64 && /^\0+$/.test(html.slice(all[k - 1].end, p.start))) p.start = all[k - 1].end;
      edits.push({ ...p, text: k === 0 ? escapeFor(p.ctx, replacementOf(r.rule)) : '' });
    });
  }
  const merged = mergeEdits(edits);
  quoteEmptied(merged, mapper.unquoted);
  return { text: applyEdits(html, merged), count: ranges.length };
}
