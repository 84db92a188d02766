/*
 * Splits a header section (RFC 5322 2.2, 2.2.3) into fields. A field is a
 * span of the section's text: first line, continuation lines and its own
 * line end, so a field nobody touches is written back byte for byte, whatever
 * mix of CRLF and bare LF it used. The first empty line and anything after it
 * is the tail, kept verbatim; a section with no empty line is all fields.
 *
 * Why not mailsplit's Headers: its parser is super-linear on hostile input
 * (alternating field/continuation lines: ~9 s for 1 MiB; a long run of bare CR
 * hits a backtracking regex: minutes). This splitter is one indexOf pass, and
 * keeps offsets rather than copies so a 1 MiB section of tiny fields stays
 * cheap for the garbage collector. Text is latin1 ("binary"), so Buffer <->
 * string round-trips exactly.
 */

export interface Field {
  /** Lower-cased name before the first colon of the first line, trimmed; '' when the line has no colon. */
  readonly name: string;
  /** The span [start, end) of Section.source: the whole field including its final line end (if any). */
  readonly start: number;
  readonly end: number;
  /** New text for the field, set by whoever rewrites it; undefined keeps the original bytes. */
  text?: string;
}

export interface Section {
  readonly source: string;
  readonly fields: Field[];
  /** Offset of the empty line that ends the section (source.length if none): it and what follows are kept as they are. */
  readonly tailStart: number;
}

const LF = 10;
const CR = 13;
const SP = 32;
const HT = 9;

function isEmptyLine(text: string, start: number, end: number): boolean {
  const len = end - start;
  return (len === 1 && text.charCodeAt(start) === LF) || (len === 2 && text.charCodeAt(start) === CR && text.charCodeAt(start + 1) === LF);
}

/** The name on the line [start, end): looked for within that line only, so no search runs ahead. */
function fieldName(text: string, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) === 0x3a) return text.slice(start, i).trim().toLowerCase();
  }
  return '';
}

export function splitFields(source: string): Section {
  const fields: Field[] = [];
  let pos = 0;
  let fieldStart = -1;
  let firstLineEnd = 0;
  while (pos < source.length) {
    const nl = source.indexOf('\n', pos);
    const end = nl < 0 ? source.length : nl + 1;
    if (isEmptyLine(source, pos, end)) break;
    const c = source.charCodeAt(pos);
    // A leading continuation line (no field before it) stands alone, as mailsplit does.
    if (!((c === SP || c === HT) && fieldStart >= 0)) {
      if (fieldStart >= 0) fields.push({ name: fieldName(source, fieldStart, firstLineEnd), start: fieldStart, end: pos });
      fieldStart = pos;
      firstLineEnd = end;
    }
    pos = end;
  }
  if (fieldStart >= 0) fields.push({ name: fieldName(source, fieldStart, firstLineEnd), start: fieldStart, end: pos });
  return { source, fields, tailStart: pos };
}

/** RFC 5322 2.2.3: a line end followed by a blank is a fold, and goes. */
export function unfold(text: string): string {
  return text.replace(/\r?\n(?=[ \t])/g, '');
}

/** The field's current text: its rewrite if it has one, else its original bytes. */
export function fieldText(section: Section, field: Field): string {
  return field.text ?? section.source.slice(field.start, field.end);
}

/** `fields` (a subset of section.fields, in order) plus the tail, as one string. */
export function joinFields(section: Section, fields: readonly Field[]): string {
  const parts: string[] = [];
  for (const f of fields) parts.push(fieldText(section, f));
  parts.push(section.source.slice(section.tailStart));
  return parts.join('');
}
