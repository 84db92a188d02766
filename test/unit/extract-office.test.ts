/*
 * OOXML and ODF text extraction (src/extract): a HIT and a MISS per format
 * (DOCX, XLSX, PPTX, ODT, ODS, ODP), a value split across DOCX runs that
 * comes out whole, a value split across XLSX cells that stays two cells (the
 * table shape is asserted), headers, footers, comments and notes.
 * Synthetic data only: test card numbers and the ECBS example IBAN.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractDocument, type ExtractResult } from '../../src/extract';
import { docx, odp, ods, odt, pptx, xlsx } from '../helpers/office-fixtures';

const CARD = '4111 1111 1111 1111';
const IBAN = 'DE89370400440532013000';
const VALUE = /4111 1111 1111 1111|DE89370400440532013000/;

function allText(r: ExtractResult): string {
  return r.texts.map((t) => t.text).join('\n');
}

function textAt(r: ExtractResult, path: string): string | undefined {
  return r.texts.find((t) => t.path === path)?.text;
}

test('docx HIT: body, header, footer, footnote and comment', async () => {
  const r = await extractDocument(await docx([['Payroll'], [`Card: ${CARD}`]], { header: `IBAN ${IBAN}`, footer: 'page 1', footnote: `fn ${CARD}`, comment: `check ${IBAN}` }), {});
  assert.equal(r.kind, 'docx');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'word/document.xml'), `Payroll\nCard: ${CARD}`);
  assert.equal(textAt(r, 'word/header1.xml'), `IBAN ${IBAN}`);
  assert.equal(textAt(r, 'word/footer1.xml'), 'page 1');
  assert.equal(textAt(r, 'word/footnotes.xml'), `fn ${CARD}`);
  assert.equal(textAt(r, 'word/comments.xml'), `check ${IBAN}`);
});

test('docx MISS: a clean document', async () => {
  const r = await extractDocument(await docx([['Quarterly report'], ['Revenue grew by 4.1 percent.']], { header: 'ACME' }), { filename: 'r.docx' });
  assert.equal(r.kind, 'docx');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'word/document.xml'), 'Quarterly report\nRevenue grew by 4.1 percent.');
  assert.doesNotMatch(allText(r), VALUE);
});

test('docx: a value split across runs (<w:r>) is joined into one string', async () => {
  const r = await extractDocument(await docx([['IBAN ', 'DE89 3704', ' 0044 0532', ' 0130 00'], ['4111', ' 1111 ', '1111', ' 1111']]), {});
  assert.equal(textAt(r, 'word/document.xml'), 'IBAN DE89 3704 0044 0532 0130 00\n4111 1111 1111 1111');
});

test('xlsx HIT: shared strings, inline strings, numbers and comments, cell by cell in row/column order', async () => {
  const r = await extractDocument(
    await xlsx(
      [
        ['name', 'iban', 'card'],
        ['Ada', IBAN, { inline: CARD }],
        ['Bob', null, 12345],
      ],
      `see ${IBAN}`,
    ),
    {},
  );
  assert.equal(r.kind, 'xlsx');
  assert.deepEqual(r.unscannable, []);
  const sheet = r.texts.find((t) => t.path === 'xl/worksheets/sheet1.xml');
  assert.deepEqual(sheet?.table, [
    ['name', 'iban', 'card'],
    ['Ada', IBAN, CARD],
    ['Bob', '', '12345'],
  ]);
  assert.equal(sheet?.text, `name\tiban\tcard\nAda\t${IBAN}\t${CARD}\nBob\t\t12345`);
  assert.equal(textAt(r, 'xl/comments1.xml'), `see ${IBAN}`);
});

test('xlsx MISS: a clean sheet', async () => {
  const r = await extractDocument(await xlsx([['item', 'qty'], ['bolts', 40], ['nuts', { inline: 'many' }]]), {});
  assert.equal(r.kind, 'xlsx');
  assert.deepEqual(r.texts.find((t) => t.path === 'xl/worksheets/sheet1.xml')?.table, [
    ['item', 'qty'],
    ['bolts', '40'],
    ['nuts', 'many'],
  ]);
  assert.doesNotMatch(allText(r), VALUE);
});

test('xlsx: a value split across shared strings and cells stays in separate cells, under its column header', async () => {
  // Each shared string is also split into two rich-text runs by the fixture: a run is not a cell, and is joined.
  const r = await extractDocument(
    await xlsx([
      ['iban part 1', 'iban part 2', null, 'card'],
      ['DE89 3704 0044', '0532 0130 00', null, null],
      [null, null, null, '4111 1111'],
      [null, null, null, { inline: '1111 1111' }],
    ]),
    {},
  );
  const sheet = r.texts.find((t) => t.path === 'xl/worksheets/sheet1.xml');
  assert.deepEqual(sheet?.table, [
    ['iban part 1', 'iban part 2', '', 'card'],
    ['DE89 3704 0044', '0532 0130 00'],
    ['', '', '', '4111 1111'],
    ['', '', '', '1111 1111'],
  ]);
});

test('pptx HIT: slides and notes', async () => {
  const r = await extractDocument(await pptx(['Welcome', `Wire to ${IBAN}`], `speaker: ${CARD}`), {});
  assert.equal(r.kind, 'pptx');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'ppt/slides/slide1.xml'), 'Welcome');
  assert.equal(textAt(r, 'ppt/slides/slide2.xml'), `Wire to ${IBAN}`);
  assert.equal(textAt(r, 'ppt/notesSlides/notesSlide1.xml'), `speaker: ${CARD}`);
});

test('pptx MISS: clean slides', async () => {
  const r = await extractDocument(await pptx(['Roadmap', 'Q3: ship it'], 'keep it short'), {});
  assert.equal(r.kind, 'pptx');
  assert.doesNotMatch(allText(r), VALUE);
  assert.equal(r.texts.length, 3);
});

test('odt HIT: spans joined, footer from styles.xml', async () => {
  const r = await extractDocument(await odt([['Payroll'], ['IBAN ', 'DE89 3704 0044', ' 0532 0130 00']], `card ${CARD}`), {});
  assert.equal(r.kind, 'odt');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'content.xml'), 'Payroll\nIBAN DE89 3704 0044 0532 0130 00');
  assert.equal(textAt(r, 'styles.xml'), `card ${CARD}`);
});

test('odt MISS: a clean document', async () => {
  const r = await extractDocument(await odt([['Minutes'], ['All agreed.']], 'page 1'), { filename: 'm.odt' });
  assert.equal(r.kind, 'odt');
  assert.equal(textAt(r, 'content.xml'), 'Minutes\nAll agreed.');
  assert.doesNotMatch(allText(r), VALUE);
});

test('ods HIT: rows and cells kept, repeated empty cells and rows not materialised', async () => {
  const r = await extractDocument(await ods([['name', 'iban'], ['Ada', IBAN], [null, CARD]]), {});
  assert.equal(r.kind, 'ods');
  assert.deepEqual(r.unscannable, []);
  const t = r.texts.find((x) => x.path === 'content.xml#table1');
  assert.deepEqual(t?.table, [
    ['name', 'iban'],
    ['Ada', IBAN],
    ['', CARD],
  ]);
  assert.match(t?.text ?? '', VALUE);
});

test('ods MISS: a clean sheet; a value split over two cells stays two cells', async () => {
  const r = await extractDocument(await ods([['a', 'b'], ['4111 1111', '1111 1111']]), {});
  assert.deepEqual(r.texts.find((x) => x.path === 'content.xml#table1')?.table, [
    ['a', 'b'],
    ['4111 1111', '1111 1111'],
  ]);
  assert.doesNotMatch(allText(r), VALUE);
});

test('odp HIT and MISS: slides and speaker notes', async () => {
  const hit = await extractDocument(await odp(['Title', 'Agenda'], `card ${CARD}`), {});
  assert.equal(hit.kind, 'odp');
  assert.deepEqual(hit.unscannable, []);
  assert.equal(textAt(hit, 'content.xml'), `Title\ncard ${CARD}\nAgenda`);
  const miss = await extractDocument(await odp(['Title', 'Agenda'], 'smile'), {});
  assert.doesNotMatch(allText(miss), VALUE);
});
