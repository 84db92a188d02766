/*
 * Minimal but valid ZIP, DOCX, XLSX, PPTX, ODT, ODS and ODP files, built with
 * yazl at test time (so no binary fixture needs reviewing), and byte patches
 * that make hostile ZIPs out of valid ones. Synthetic data only.
 */
import * as yazl from 'yazl';

export interface ZipItem {
  name: string;
  data: string | Buffer;
  /** Deflate (default) or store. */
  compress?: boolean;
}

export function makeZip(items: readonly ZipItem[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const it of items) {
    if (it.name.endsWith('/')) {
      zip.addEmptyDirectory(it.name, { mtime: new Date(Date.UTC(2024, 0, 1)) });
      continue;
    }
    zip.addBuffer(Buffer.isBuffer(it.data) ? it.data : Buffer.from(it.data, 'utf8'), it.name, {
      compress: it.compress ?? true,
      mtime: new Date(Date.UTC(2024, 0, 1)),
    });
  }
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

const XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function contentTypes(overrides: Record<string, string>): string {
  const o = Object.entries(overrides)
    .map(([part, type]) => `<Override PartName="/${part}" ContentType="${type}"/>`)
    .join('');
  return (
    XML +
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
    '<Default Extension="xml" ContentType="application/xml"/>' +
    o +
    '</Types>'
  );
}

function rels(target: string): string {
  return (
    XML +
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
    `<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="${target}"/>` +
    '</Relationships>'
  );
}

const W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';
const OD = 'application/vnd.openxmlformats-officedocument';

/** word/document.xml for paragraphs given as runs: each inner string is one <w:r>. */
export function docxDocumentXml(paragraphs: readonly (readonly string[])[]): string {
  const body = paragraphs
    .map((runs) => `<w:p>${runs.map((r) => `<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">${esc(r)}</w:t></w:r>`).join('')}</w:p>`)
    .join('');
  return `${XML}<w:document ${W}><w:body>${body}<w:sectPr/></w:body></w:document>`;
}

export interface DocxParts {
  header?: string;
  footer?: string;
  comment?: string;
  footnote?: string;
  /** Replaces word/document.xml as given (hostile XML). */
  documentXml?: string;
}

export function docx(paragraphs: readonly (readonly string[])[], parts: DocxParts = {}): Promise<Buffer> {
  const overrides: Record<string, string> = { 'word/document.xml': `${OD}.wordprocessingml.document.main+xml` };
  const items: ZipItem[] = [
    { name: 'word/document.xml', data: parts.documentXml ?? docxDocumentXml(paragraphs) },
    { name: '_rels/.rels', data: rels('word/document.xml') },
  ];
  const add = (name: string, type: string, root: string, text: string, inner = (t: string) => `<w:p><w:r><w:t>${esc(t)}</w:t></w:r></w:p>`): void => {
    overrides[name] = `${OD}.wordprocessingml.${type}+xml`;
    items.push({ name, data: `${XML}<w:${root} ${W}>${inner(text)}</w:${root}>` });
  };
  if (parts.header !== undefined) add('word/header1.xml', 'header', 'hdr', parts.header);
  if (parts.footer !== undefined) add('word/footer1.xml', 'footer', 'ftr', parts.footer);
  if (parts.comment !== undefined) {
    add('word/comments.xml', 'comments', 'comments', parts.comment, (t) => `<w:comment w:id="0" w:author="A"><w:p><w:r><w:t>${esc(t)}</w:t></w:r></w:p></w:comment>`);
  }
  if (parts.footnote !== undefined) {
    add('word/footnotes.xml', 'footnotes', 'footnotes', parts.footnote, (t) => `<w:footnote w:id="1"><w:p><w:r><w:t>${esc(t)}</w:t></w:r></w:p></w:footnote>`);
  }
  return makeZip([{ name: '[Content_Types].xml', data: contentTypes(overrides) }, ...items]);
}

const S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"';

function colName(i: number): string {
  let s = '';
  for (let n = i + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + ((n - 1) % 26)) + s;
  return s;
}

/** A cell: a string goes to the shared strings, a number stays a number, {inline} is an inline string, null is no cell. */
export type XlsxCell = string | number | { inline: string } | null;

export function xlsx(rows: readonly (readonly XlsxCell[])[], comment?: string): Promise<Buffer> {
  const shared: string[] = [];
  const sheetRows = rows
    .map((row, r) => {
      const cells = row
        .map((cell, c) => {
          const ref = `${colName(c)}${r + 1}`;
          if (cell === null) return '';
          if (typeof cell === 'number') return `<c r="${ref}"><v>${cell}</v></c>`;
          if (typeof cell === 'object') return `<c r="${ref}" t="inlineStr"><is><t>${esc(cell.inline)}</t></is></c>`;
          shared.push(cell);
          return `<c r="${ref}" t="s"><v>${shared.length - 1}</v></c>`;
        })
        .join('');
      return `<row r="${r + 1}">${cells}</row>`;
    })
    .join('');
  // Shared strings in rich-text form: each string as two runs, as Excel writes formatted text.
  const si = shared
    .map((s) => {
      const half = Math.ceil(s.length / 2);
      return `<si><r><rPr><b/></rPr><t xml:space="preserve">${esc(s.slice(0, half))}</t></r><r><t xml:space="preserve">${esc(s.slice(half))}</t></r></si>`;
    })
    .join('');
  const overrides: Record<string, string> = {
    'xl/workbook.xml': `${OD}.spreadsheetml.sheet.main+xml`,
    'xl/worksheets/sheet1.xml': `${OD}.spreadsheetml.worksheet+xml`,
    'xl/sharedStrings.xml': `${OD}.spreadsheetml.sharedStrings+xml`,
  };
  const items: ZipItem[] = [
    { name: '_rels/.rels', data: rels('xl/workbook.xml') },
    { name: 'xl/workbook.xml', data: `${XML}<workbook ${S}><sheets><sheet name="Sheet1" sheetId="1"/></sheets></workbook>` },
    { name: 'xl/worksheets/sheet1.xml', data: `${XML}<worksheet ${S}><sheetData>${sheetRows}</sheetData></worksheet>` },
    { name: 'xl/sharedStrings.xml', data: `${XML}<sst ${S} count="${shared.length}" uniqueCount="${shared.length}">${si}</sst>` },
  ];
  if (comment !== undefined) {
    overrides['xl/comments1.xml'] = `${OD}.spreadsheetml.comments+xml`;
    items.push({
      name: 'xl/comments1.xml',
      data: `${XML}<comments ${S}><authors><author>A</author></authors><commentList><comment ref="A1" authorId="0"><text><r><t>${esc(comment)}</t></r></text></comment></commentList></comments>`,
    });
  }
  return makeZip([{ name: '[Content_Types].xml', data: contentTypes(overrides) }, ...items]);
}

const P = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"';

function pptxText(root: string, text: string): string {
  return `${XML}<p:${root} ${P}><p:cSld><p:spTree><p:sp><p:txBody><a:bodyPr/><a:p><a:r><a:t>${esc(text)}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:${root}>`;
}

export function pptx(slides: readonly string[], notes?: string): Promise<Buffer> {
  const overrides: Record<string, string> = { 'ppt/presentation.xml': `${OD}.presentationml.presentation.main+xml` };
  const items: ZipItem[] = [
    { name: '_rels/.rels', data: rels('ppt/presentation.xml') },
    { name: 'ppt/presentation.xml', data: `${XML}<p:presentation ${P}/>` },
  ];
  slides.forEach((text, i) => {
    overrides[`ppt/slides/slide${i + 1}.xml`] = `${OD}.presentationml.slide+xml`;
    items.push({ name: `ppt/slides/slide${i + 1}.xml`, data: pptxText('sld', text) });
  });
  if (notes !== undefined) {
    overrides['ppt/notesSlides/notesSlide1.xml'] = `${OD}.presentationml.notesSlide+xml`;
    items.push({ name: 'ppt/notesSlides/notesSlide1.xml', data: pptxText('notes', notes) });
  }
  return makeZip([{ name: '[Content_Types].xml', data: contentTypes(overrides) }, ...items]);
}

const ODF_NS =
  'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" ' +
  'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" ' +
  'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" office:version="1.3"';

function odf(mimetype: string, body: string, footer?: string): Promise<Buffer> {
  const styles =
    footer === undefined
      ? `${XML}<office:document-styles ${ODF_NS}/>`
      : `${XML}<office:document-styles ${ODF_NS}><office:master-styles><style:master-page style:name="Standard"><style:footer><text:p>${esc(footer)}</text:p></style:footer></style:master-page></office:master-styles></office:document-styles>`;
  return makeZip([
    // ODF: the first entry, stored, no extra field.
    { name: 'mimetype', data: mimetype, compress: false },
    { name: 'content.xml', data: `${XML}<office:document-content ${ODF_NS}><office:body>${body}</office:body></office:document-content>` },
    { name: 'styles.xml', data: styles },
    {
      name: 'META-INF/manifest.xml',
      data: `${XML}<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="${mimetype}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>`,
    },
  ]);
}

/** Paragraphs given as spans: each inner string is one <text:span>. */
export function odt(paragraphs: readonly (readonly string[])[], footer?: string): Promise<Buffer> {
  const ps = paragraphs.map((spans) => `<text:p text:style-name="P1">${spans.map((s) => `<text:span text:style-name="T1">${esc(s)}</text:span>`).join('')}</text:p>`).join('');
  return odf('application/vnd.oasis.opendocument.text', `<office:text>${ps}</office:text>`, footer);
}

/** null is an empty cell; a trailing run of repeated empty cells and rows is added, as LibreOffice writes it. */
export function ods(rows: readonly (readonly (string | null)[])[]): Promise<Buffer> {
  const rs = rows
    .map((row) => {
      const cells = row
        .map((c) => (c === null ? '<table:table-cell/>' : `<table:table-cell office:value-type="string"><text:p>${esc(c)}</text:p></table:table-cell>`))
        .join('');
      return `<table:table-row>${cells}<table:table-cell table:number-columns-repeated="16370"/></table:table-row>`;
    })
    .join('');
  const tail = '<table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="16384"/></table:table-row>';
  return odf('application/vnd.oasis.opendocument.spreadsheet', `<office:spreadsheet><table:table table:name="Sheet1">${rs}${tail}</table:table></office:spreadsheet>`);
}

export function odp(slides: readonly string[], notes?: string): Promise<Buffer> {
  const pages = slides
    .map((s, i) => {
      const n = i === 0 && notes !== undefined ? `<presentation:notes><draw:frame><draw:text-box><text:p>${esc(notes)}</text:p></draw:text-box></draw:frame></presentation:notes>` : '';
      return `<draw:page draw:name="p${i + 1}"><draw:frame><draw:text-box><text:p>${esc(s)}</text:p></draw:text-box></draw:frame>${n}</draw:page>`;
    })
    .join('');
  return odf('application/vnd.oasis.opendocument.presentation', `<office:presentation>${pages}</office:presentation>`);
}

/** Offsets of every central directory header (PK\1\2) of a ZIP without comments in names. */
function centralHeaders(zip: Buffer): number[] {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(at);
    at += 46 + zip.readUInt16LE(at + 28) + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return out;
}

/** Sets general purpose bit 0 (encrypted) on every entry, in both local and central headers. */
export function markEncrypted(zip: Buffer): Buffer {
  const out = Buffer.from(zip);
  for (const cd of centralHeaders(out)) {
    out.writeUInt16LE(out.readUInt16LE(cd + 8) | 1, cd + 8);
    const local = out.readUInt32LE(cd + 42);
    out.writeUInt16LE(out.readUInt16LE(local + 6) | 1, local + 6);
  }
  return out;
}

/** Rewrites the uncompressed size that entry `index` declares in the central directory. */
export function declareSize(zip: Buffer, index: number, size: number): Buffer {
  const out = Buffer.from(zip);
  const cd = centralHeaders(out)[index];
  out.writeUInt32LE(size, cd + 24);
  return out;
}
