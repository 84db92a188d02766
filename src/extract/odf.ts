/*
 * OpenDocument (OASIS ODF 1.2/1.3, ISO/IEC 26300): text of ODT, ODS and ODP,
 * read as ZIP plus streaming XML. The kind comes from the `mimetype` entry
 * (ODF 1.2 Part 3, 3.3), not from the file name.
 *
 *   - content.xml: all character data of the document body. A paragraph or
 *     heading ends a line; <text:s text:c="n"/> is n spaces, <text:tab/> a
 *     tab, <text:line-break/> a line end; spans add nothing, so a value split
 *     across <text:span> elements comes out whole. Annotations (comments),
 *     tracked changes, notes and ODP speaker notes are included.
 *   - ODS: each <table:table> is a table of its own (path content.xml#tableN),
 *     one row per row that holds a value, each cell at its column.
 *     number-columns-repeated and number-rows-repeated are honoured for
 *     cells that hold a value (each copy counts as an XML token, so a
 *     repeated cell cannot blow up) and only skipped over for empty ones:
 *     LibreOffice ends every sheet with a million repeated empty rows.
 *     Comments inside cells go to the non-table text, not into the cell.
 *   - styles.xml: the text of master-page headers and footers.
 *   - meta.xml: title, subject, keywords, description, creators, user fields.
 * Embedded objects ("Object 1/content.xml") are not read (yet).
 */
import type { ExtractContext } from './context';
import { joinPath, settlePart } from './context';
import { tableText } from './ooxml';
import { parseXml, TextCollector, type XmlHandlers, type TextRules } from './xml-text';
import type { ZipArchive } from './zip';

export type OdfKind = 'odt' | 'ods' | 'odp';

const MIMETYPES: [RegExp, OdfKind][] = [
  [/^application\/vnd\.oasis\.opendocument\.text(-template|-master|-master-template|-web)?$/, 'odt'],
  [/^application\/vnd\.oasis\.opendocument\.spreadsheet(-template)?$/, 'ods'],
  [/^application\/vnd\.oasis\.opendocument\.presentation(-template)?$/, 'odp'],
];

/** A `mimetype` entry longer than this is not ODF's. */
const MAX_MIMETYPE_BYTES = 128;

const BODY_RULES: TextRules = {
  skip: new Set(['automatic-styles', 'font-face-decls', 'scripts']),
  lineAfter: new Set(['p', 'h']),
  chars: new Map([
    ['tab', '\t'],
    ['line-break', '\n'],
  ]),
  spaces: 's',
};

const STYLES_RULES: TextRules = {
  ...BODY_RULES,
  within: new Set(['header', 'footer', 'header-left', 'footer-left', 'header-first', 'footer-first']),
};

const META_RULES: TextRules = {
  lineAfter: new Set(['title', 'subject', 'keyword', 'description', 'initial-creator', 'creator', 'user-defined']),
};

/** The ODF kind of an archive from its `mimetype` entry, or undefined. */
export async function detectOdf(zip: ZipArchive): Promise<OdfKind | undefined> {
  const entry = zip.find('mimetype');
  if (entry === undefined || entry.raw.uncompressedSize > MAX_MIMETYPE_BYTES) return undefined;
  const type = (await zip.readAll(entry)).toString('latin1').trim();
  for (const [re, kind] of MIMETYPES) if (re.test(type)) return kind;
  return undefined;
}

function count(attr: string | undefined): number {
  const n = Number.parseInt(attr ?? '1', 10);
  return Number.isFinite(n) && n > 1 ? n : 1;
}

/** ODS content.xml: tables as tables, everything else to `outside` as plain text. */
class OdsHandler implements XmlHandlers {
  private tableDepth = 0;
  private tables = 0;
  private rows: string[][] = [];
  private row: string[] | undefined;
  private rowRepeat = 1;
  private col = 0;
  private cell: string[] | undefined;
  private cellRepeat = 1;
  private paragraphs = 0;
  private inAnnotation = 0;
  private chars = 0;

  constructor(
    private readonly ctx: ExtractContext,
    private readonly path: string,
    readonly outside: TextCollector,
  ) {}

  private forwarding(): boolean {
    return this.tableDepth === 0 || this.inAnnotation > 0;
  }

  open(name: string, attrs: Readonly<Record<string, string>>): void {
    if (name === 'annotation' && this.tableDepth > 0) this.inAnnotation++;
    if (name === 'table' && this.inAnnotation === 0) {
      this.tableDepth++;
      return;
    }
    if (this.forwarding()) {
      this.outside.open(name, attrs);
      return;
    }
    if (this.tableDepth === 1 && name === 'table-row') {
      this.row = [];
      this.col = 0;
      this.rowRepeat = count(attrs['number-rows-repeated']);
    } else if (this.row !== undefined && (name === 'table-cell' || name === 'covered-table-cell')) {
      this.cell = [];
      this.cellRepeat = count(attrs['number-columns-repeated']);
      this.paragraphs = 0;
    } else if (this.cell !== undefined) {
      if ((name === 'p' || name === 'h') && this.paragraphs++ > 0) this.cell.push('\n');
      else if (name === 'tab') this.cell.push('\t');
      else if (name === 'line-break') this.cell.push('\n');
      else if (name === 's') {
        const n = count(attrs.c);
        this.ctx.checkRoom(this.chars + n);
        this.cell.push(' '.repeat(n));
      }
    }
  }

  close(name: string): void {
    if (name === 'table' && this.inAnnotation === 0) {
      if (this.tableDepth > 0 && --this.tableDepth === 0) {
        this.tables++;
        const rows = this.rows;
        this.rows = [];
        this.ctx.addText(`${this.path}#table${this.tables}`, tableText(rows), rows);
      }
      return;
    }
    if (this.forwarding()) {
      this.outside.close(name);
      if (name === 'annotation' && this.inAnnotation > 0) this.inAnnotation--;
      return;
    }
    if (this.cell !== undefined && (name === 'table-cell' || name === 'covered-table-cell')) {
      const text = this.cell.join('');
      this.cell = undefined;
      const row = this.row as string[];
      if (text !== '') {
        const gap = this.col - row.length;
        this.ctx.addTokens(gap + this.cellRepeat);
        this.chars += (text.length + 1) * this.cellRepeat;
        this.ctx.checkRoom(this.chars);
        while (row.length < this.col) row.push('');
        for (let i = 0; i < this.cellRepeat; i++) row.push(text);
      }
      this.col += this.cellRepeat;
    } else if (this.row !== undefined && this.tableDepth === 1 && name === 'table-row') {
      const row = this.row;
      this.row = undefined;
      if (row.length === 0) return;
      this.ctx.addTokens(row.length * (this.rowRepeat - 1));
      this.chars += row.reduce((n, c) => n + c.length + 1, 0) * (this.rowRepeat - 1);
      this.ctx.checkRoom(this.chars);
      this.rows.push(row);
      for (let i = 1; i < this.rowRepeat; i++) this.rows.push(row.slice());
    }
  }

  text(data: string): void {
    if (this.forwarding()) this.outside.text(data);
    else if (this.cell !== undefined) {
      this.chars += data.length;
      this.ctx.checkRoom(this.chars);
      this.cell.push(data);
    }
  }
}

/** Reads the text of an ODF package into ctx; each part that fails is recorded and the others read. */
export async function readOdf(ctx: ExtractContext, zip: ZipArchive, kind: OdfKind, prefix: string): Promise<void> {
  const parts: [string, TextRules][] = [
    ['content.xml', BODY_RULES],
    ['styles.xml', STYLES_RULES],
    ['meta.xml', META_RULES],
  ];
  for (const [name, rules] of parts) {
    const entry = zip.find(name);
    if (entry === undefined) continue;
    const path = joinPath(prefix, name);
    const collector = new TextCollector(ctx, rules);
    const handlers = kind === 'ods' && name === 'content.xml' ? new OdsHandler(ctx, path, collector) : collector;
    try {
      ctx.checkAlive();
      try {
        await parseXml(ctx, (on) => zip.read(entry, on), handlers);
      } finally {
        ctx.addText(path, collector.result());
      }
    } catch (err) {
      settlePart(ctx, err, path);
    }
  }
}
