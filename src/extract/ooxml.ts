/*
 * Office Open XML (ECMA-376, ISO/IEC 29500): text of DOCX, XLSX and PPTX,
 * read as ZIP plus streaming XML. The kind and the parts come from
 * [Content_Types].xml (Part 2, 10.1.2.2), with the usual part names as a
 * fallback for files whose content types list less than they hold.
 *
 *   - DOCX: the main document, headers, footers, footnotes, endnotes and
 *     comments. Text is <w:t> and <w:delText> (tracked deletions still
 *     travel in the file); runs join without a separator, so a value split
 *     across <w:r> elements comes out whole; a paragraph ends a line.
 *   - XLSX: shared strings first, then each worksheet as a table, one row
 *     per <row> that holds a value, each cell at its column (from its r
 *     attribute), so a column header stays above its column. Cells keep
 *     their own text: a value split over two cells is two cells. Cell values
 *     are shared strings, inline strings, and cached values (numbers,
 *     formula results). Comments and threaded comments are texts of their own.
 *   - PPTX: slides, notes slides and comments (classic and modern).
 *   - All: the core and custom document properties (title, author...).
 *   - Embedded files (*\/embeddings/*) go back to the archive reader, which
 *     reads what it can (an embedded workbook is a nested ZIP).
 * Layouts, masters, styles, themes and media hold no user text and are not read.
 */
import type { ExtractContext } from './context';
import { joinPath, settlePart } from './context';
import { parseXml, TextCollector, type TextRules } from './xml-text';
import { isDirectory, type ZipArchive, type ZipEntry } from './zip';

export type OoxmlKind = 'docx' | 'xlsx' | 'pptx';

type Role = 'body' | 'sharedStrings' | 'sheet' | 'comments' | 'props' | 'embedded';

const CT = {
  docxMain: /(wordprocessingml\.(document|template)|ms-word\.(document|template)\.macroEnabled(Template)?)\.main\+xml$/i,
  xlsxMain: /(spreadsheetml\.(sheet|template)|ms-excel\.(sheet|template)\.macroEnabled(Template)?)\.main\+xml$/i,
  pptxMain: /(presentationml\.(presentation|slideshow|template)|ms-powerpoint\.(presentation|slideshow|template)\.macroEnabled(Template)?)\.main\+xml$/i,
  docxBody: /wordprocessingml\.(header|footer|footnotes|endnotes)\+xml$/i,
  docxComments: /wordprocessingml\.comments\+xml$/i,
  sheet: /spreadsheetml\.worksheet\+xml$/i,
  sharedStrings: /spreadsheetml\.sharedStrings\+xml$/i,
  xlsxComments: /(spreadsheetml\.comments|ms-excel\.threadedcomments)\+xml$/i,
  pptxBody: /presentationml\.(slide|notesSlide)\+xml$/i,
  pptxComments: /(presentationml|ms-powerpoint)\.comments\+xml$/i,
  props: /(package\.core-properties|officedocument\.custom-properties)\+xml$/i,
};

const BY_NAME: Record<OoxmlKind, [RegExp, Role][]> = {
  docx: [
    [/^word\/(document\d*|header\d*|footer\d*|footnotes|endnotes)\.xml$/, 'body'],
    [/^word\/comments\.xml$/, 'comments'],
  ],
  xlsx: [
    [/^xl\/worksheets\/[^/]+\.xml$/, 'sheet'],
    [/^xl\/sharedStrings\.xml$/, 'sharedStrings'],
    [/^xl\/(comments\d*|threadedComments\/[^/]+)\.xml$/, 'comments'],
  ],
  pptx: [
    [/^ppt\/(slides|notesSlides)\/[^/]+\.xml$/, 'body'],
    [/^ppt\/comments\/[^/]+\.xml$/, 'comments'],
  ],
};

const COMMON_BY_NAME: [RegExp, Role][] = [
  [/^docProps\/(core|custom)\.xml$/, 'props'],
  [/^(word|xl|ppt)\/embeddings\/[^/]+$/, 'embedded'],
];

const BODY_RULES: Record<OoxmlKind, TextRules> = {
  docx: {
    textIn: new Set(['t', 'delText']),
    skip: new Set(['tabs', 'instrText', 'rPh']),
    lineAfter: new Set(['p']),
    chars: new Map([
      ['tab', '\t'],
      ['br', '\n'],
      ['cr', '\n'],
    ]),
  },
  xlsx: { textIn: new Set(['t']), skip: new Set(['rPh']), lineAfter: new Set(['si', 'p']) },
  pptx: { textIn: new Set(['t']), lineAfter: new Set(['p']), chars: new Map([['br', '\n']]) },
};

const COMMENT_RULES: TextRules = {
  textIn: new Set(['t', 'text']),
  skip: new Set(['rPh']),
  lineAfter: new Set(['p', 'comment', 'threadedComment', 'cm']),
};

const PROPS_RULES: TextRules = { lineAfter: new Set(['title', 'subject', 'creator', 'keywords', 'description', 'lastModifiedBy', 'category', 'property']) };

/** [Content_Types].xml: part name (without the leading '/') to content type, from its Override elements. */
async function contentTypes(ctx: ExtractContext, zip: ZipArchive): Promise<Map<string, string> | undefined> {
  const entry = zip.find('[Content_Types].xml');
  if (entry === undefined) return undefined;
  const map = new Map<string, string>();
  await parseXml(ctx, (on) => zip.read(entry, on), {
    open(name, attrs) {
      if (name === 'Override' && attrs.PartName !== undefined && attrs.ContentType !== undefined) {
        map.set(attrs.PartName.replace(/^\//, ''), attrs.ContentType);
      }
    },
  });
  return map;
}

export interface OoxmlPackage {
  kind: OoxmlKind;
  types: Map<string, string>;
}

/**
 * The OOXML kind of an archive, or undefined when it is not one. Reads
 * [Content_Types].xml (an ExtractStop from it propagates: a broken one means
 * the document cannot be read).
 */
export async function detectOoxml(ctx: ExtractContext, zip: ZipArchive): Promise<OoxmlPackage | undefined> {
  const types = await contentTypes(ctx, zip);
  if (types === undefined) return undefined;
  const cts = [...types.values()];
  if (cts.some((t) => CT.docxMain.test(t))) return { kind: 'docx', types };
  if (cts.some((t) => CT.xlsxMain.test(t))) return { kind: 'xlsx', types };
  if (cts.some((t) => CT.pptxMain.test(t))) return { kind: 'pptx', types };
  if (zip.find('word/document.xml') !== undefined) return { kind: 'docx', types };
  if (zip.find('xl/workbook.xml') !== undefined) return { kind: 'xlsx', types };
  if (zip.find('ppt/presentation.xml') !== undefined) return { kind: 'pptx', types };
  return undefined;
}

function roleOf(pkg: OoxmlPackage, name: string): Role | undefined {
  const ct = pkg.types.get(name);
  if (ct !== undefined) {
    if (pkg.kind === 'docx' && (CT.docxMain.test(ct) || CT.docxBody.test(ct))) return 'body';
    if (pkg.kind === 'docx' && CT.docxComments.test(ct)) return 'comments';
    if (pkg.kind === 'xlsx' && CT.sheet.test(ct)) return 'sheet';
    if (pkg.kind === 'xlsx' && CT.sharedStrings.test(ct)) return 'sharedStrings';
    if (pkg.kind === 'xlsx' && CT.xlsxComments.test(ct)) return 'comments';
    if (pkg.kind === 'pptx' && CT.pptxBody.test(ct)) return 'body';
    if (pkg.kind === 'pptx' && CT.pptxComments.test(ct)) return 'comments';
    if (CT.props.test(ct)) return 'props';
  }
  for (const [re, role] of [...BY_NAME[pkg.kind], ...COMMON_BY_NAME]) if (re.test(name)) return role;
  return undefined;
}

/** Natural order, so sheet2 comes before sheet10. */
const byName = new Intl.Collator('en', { numeric: true }).compare;

/** "AB12" -> 27 (0-based column); undefined for a reference without letters or beyond Excel's XFD. */
export function columnIndex(ref: string): number | undefined {
  const m = /^([A-Za-z]{1,3})\d*$/.exec(ref);
  if (m === null) return undefined;
  let n = 0;
  for (const ch of m[1].toUpperCase()) n = n * 26 + (ch.charCodeAt(0) - 64);
  return n <= 16384 ? n - 1 : undefined;
}

async function readSharedStrings(ctx: ExtractContext, zip: ZipArchive, entry: ZipEntry): Promise<string[]> {
  const strings: string[] = [];
  let current: string[] | undefined;
  let inT = 0;
  let inRph = 0;
  await parseXml(ctx, (on) => zip.read(entry, on), {
    open(name) {
      if (name === 'si') current = [];
      else if (name === 't') inT++;
      else if (name === 'rPh') inRph++;
    },
    close(name) {
      if (name === 'si' && current !== undefined) {
        strings.push(current.join(''));
        current = undefined;
      } else if (name === 't') inT--;
      else if (name === 'rPh') inRph--;
    },
    text(data) {
      if (current !== undefined && inT > 0 && inRph === 0) current.push(data);
    },
  });
  return strings;
}

/** One worksheet as a table: rows that hold a value, each cell at its column. */
async function readSheet(ctx: ExtractContext, zip: ZipArchive, entry: ZipEntry, shared: readonly string[]): Promise<string[][]> {
  const table: string[][] = [];
  let row: string[] | undefined;
  let col = -1;
  let type = '';
  let value: string[] | undefined;
  let inValue = 0;
  let inInline = 0;
  let inT = 0;
  let inRph = 0;
  let chars = 0;
  await parseXml(ctx, (on) => zip.read(entry, on), {
    open(name, attrs) {
      if (name === 'row') {
        row = [];
        col = -1;
      } else if (name === 'c' && row !== undefined) {
        col = (attrs.r !== undefined ? columnIndex(attrs.r) : undefined) ?? col + 1;
        type = attrs.t ?? 'n';
        value = [];
      } else if (name === 'v') inValue++;
      else if (name === 'is') inInline++;
      else if (name === 't') inT++;
      else if (name === 'rPh') inRph++;
    },
    close(name) {
      if (name === 'v') inValue--;
      else if (name === 'is') inInline--;
      else if (name === 't') inT--;
      else if (name === 'rPh') inRph--;
      else if (name === 'c' && row !== undefined && value !== undefined) {
        let text = value.join('');
        if (type === 's') text = shared[Number.parseInt(text, 10)] ?? '';
        value = undefined;
        if (text === '') return;
        if (col > row.length) ctx.addTokens(col - row.length); // cells materialised as ''
        while (row.length < col) row.push('');
        row[col] = text;
        chars += text.length + 1;
        ctx.checkRoom(chars);
      } else if (name === 'row' && row !== undefined) {
        if (row.length > 0) table.push(row);
        row = undefined;
      }
    },
    text(data) {
      if (value === undefined) return;
      if (type === 'inlineStr' ? inInline > 0 && inT > 0 && inRph === 0 : inValue > 0) value.push(data);
    },
  });
  return table;
}

/** A table as text: cells joined by tabs, rows by line ends (what a TSV export of the sheet would hold). */
export function tableText(table: readonly (readonly string[])[]): string {
  return table.map((r) => r.join('\t')).join('\n');
}

/**
 * Reads the text of an OOXML package into ctx. Each part that fails is
 * recorded and the others are read; an ExtractStop of scope 'archive' or
 * 'all' is thrown on. `nested` is given embedded files.
 */
export async function readOoxml(
  ctx: ExtractContext,
  zip: ZipArchive,
  pkg: OoxmlPackage,
  prefix: string,
  nested: (entry: ZipEntry) => Promise<void>,
): Promise<void> {
  const parts = zip.entries
    .filter((e) => !isDirectory(e))
    .map((e) => ({ entry: e, role: roleOf(pkg, e.name) }))
    .filter((p): p is { entry: ZipEntry; role: Role } => p.role !== undefined)
    .sort((a, b) => byName(a.entry.name, b.entry.name));
  let shared: string[] = [];
  const sst = parts.find((p) => p.role === 'sharedStrings');
  if (sst !== undefined) {
    try {
      shared = await readSharedStrings(ctx, zip, sst.entry);
    } catch (err) {
      settlePart(ctx, err, joinPath(prefix, sst.entry.name));
    }
  }
  for (const { entry, role } of parts) {
    const path = joinPath(prefix, entry.name);
    try {
      ctx.checkAlive();
      if (role === 'sharedStrings') continue;
      if (role === 'embedded') {
        await nested(entry);
      } else if (role === 'sheet') {
        const table = await readSheet(ctx, zip, entry, shared);
        ctx.addText(path, tableText(table), table);
      } else {
        const rules = role === 'body' ? BODY_RULES[pkg.kind] : role === 'comments' ? COMMENT_RULES : PROPS_RULES;
        const collector = new TextCollector(ctx, rules);
        try {
          await parseXml(ctx, (on) => zip.read(entry, on), collector);
        } finally {
          // What was read before a stop is still scanned.
          ctx.addText(path, collector.result());
        }
      }
    } catch (err) {
      settlePart(ctx, err, path);
    }
  }
}
