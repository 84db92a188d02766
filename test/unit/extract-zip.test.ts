/*
 * ZIP text extraction (src/extract): text entries, nested archives and
 * documents, what is not read, encrypted and corrupt archives, detection from
 * the bytes rather than the name, and a seeded fuzz run showing that hostile
 * bytes give a result, never an exception. Every HIT has a MISS beside it.
 * Synthetic data only: test card numbers and the ECBS example IBAN.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractDocument, type ExtractResult } from '../../src/extract';
import { docx, makeZip, markEncrypted } from '../helpers/office-fixtures';
import { xorshift32 } from '../helpers/prng';

const CARD = '4111 1111 1111 1111';
const IBAN = 'DE89370400440532013000';
const REASONS = new Set(['depth', 'entries', 'expanded_size', 'ratio', 'xml_depth', 'xml_tokens', 'text_size', 'time', 'encrypted', 'corrupt']);

function allText(r: ExtractResult): string {
  return r.texts.map((t) => t.text).join('\n');
}

function textAt(r: ExtractResult, path: string): string | undefined {
  return r.texts.find((t) => t.path === path)?.text;
}

test('zip: text entries are returned by path, whatever their extension says (HIT)', async () => {
  const zip = await makeZip([
    { name: 'notes.txt', data: `card ${CARD}\n` },
    { name: 'export/payroll.csv', data: Buffer.from(`name;iban\nJürgen;${IBAN}\n`, 'latin1') },
    { name: 'data.json', data: JSON.stringify({ iban: IBAN }) },
    { name: 'page.html', data: `<p>${CARD}</p>` },
    { name: 'noextension', data: `IBAN ${IBAN}` },
    { name: 'empty.txt', data: '' },
    { name: 'dir/', data: '' },
  ]);
  const r = await extractDocument(zip, { contentType: 'application/zip', filename: 'a.zip' });
  assert.equal(r.kind, 'zip');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'notes.txt'), `card ${CARD}\n`);
  // Not valid UTF-8: read as Latin-1, so the umlaut survives.
  assert.equal(textAt(r, 'export/payroll.csv'), `name;iban\nJürgen;${IBAN}\n`);
  assert.match(textAt(r, 'data.json') ?? '', new RegExp(IBAN));
  assert.match(textAt(r, 'page.html') ?? '', new RegExp(CARD));
  assert.match(textAt(r, 'noextension') ?? '', new RegExp(IBAN));
  assert.deepEqual(r.unextracted, []);
});

test('zip: a clean archive gives its text and no value (MISS)', async () => {
  const zip = await makeZip([
    { name: 'readme.txt', data: 'Minutes of the meeting. Order 4111-11 shipped.\n' },
    { name: 'sums.csv', data: 'a,b\n1,2\n' },
  ]);
  const r = await extractDocument(zip, {});
  assert.equal(r.kind, 'zip');
  assert.deepEqual(r.unscannable, []);
  assert.equal(r.texts.length, 2);
  assert.doesNotMatch(allText(r), /4111 1111|DE89/);
});

test('zip: UTF-8 and UTF-16 (with BOM) text entries are decoded', async () => {
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`Ålesund ${IBAN}`, 'utf16le')]);
  const zip = await makeZip([
    { name: 'u8.txt', data: `\ufeffÅlesund ${CARD}` },
    { name: 'u16.txt', data: utf16 },
  ]);
  const r = await extractDocument(zip, {});
  assert.equal(textAt(r, 'u8.txt'), `Ålesund ${CARD}`);
  assert.equal(textAt(r, 'u16.txt'), `Ålesund ${IBAN}`);
});

test('zip: nested archives and documents are read, paths joined by "!"', async () => {
  const inner = await makeZip([{ name: 'secret.txt', data: `IBAN ${IBAN}` }]);
  const report = await docx([[`Card ${CARD}`]]);
  const outer = await makeZip([
    { name: 'inner.zip', data: inner, compress: false },
    { name: 'reports/report.docx', data: report },
    { name: 'clean.txt', data: 'nothing here' },
  ]);
  const r = await extractDocument(outer, { filename: 'bundle.zip' });
  assert.equal(r.kind, 'zip');
  assert.deepEqual(r.unscannable, []);
  assert.equal(textAt(r, 'inner.zip!secret.txt'), `IBAN ${IBAN}`);
  assert.equal(textAt(r, 'reports/report.docx!word/document.xml'), `Card ${CARD}`);
  assert.equal(textAt(r, 'clean.txt'), 'nothing here');
});

test('zip: binary entries are listed as unextracted, not read as text', async () => {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]), Buffer.alloc(200, 7)]);
  const zip = await makeZip([
    { name: 'logo.png', data: png },
    { name: 'a.txt', data: 'text' },
  ]);
  const r = await extractDocument(zip, {});
  assert.deepEqual(r.unextracted, ['logo.png']);
  assert.deepEqual(
    r.texts.map((t) => t.path),
    ['a.txt'],
  );
});

test('zip: encrypted entries are unscannable{encrypted}, with their paths', async () => {
  const zip = markEncrypted(await makeZip([{ name: 'locked.txt', data: `card ${CARD}` }, { name: 'b.txt', data: 'x' }]));
  const r = await extractDocument(zip, { filename: 'locked.zip' });
  assert.equal(r.kind, 'zip');
  assert.deepEqual(r.unscannable, [
    { reason: 'encrypted', path: 'locked.txt' },
    { reason: 'encrypted', path: 'b.txt' },
  ]);
  assert.deepEqual(r.texts, []);
});

test('zip: a truncated or mangled archive is unscannable{corrupt}', async () => {
  const zip = await makeZip([{ name: 'a.txt', data: `card ${CARD} `.repeat(100) }]);
  const truncated = zip.subarray(0, zip.length - 30);
  let r = await extractDocument(truncated, { filename: 'a.zip' });
  assert.equal(r.kind, 'zip');
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt' }]);

  // The deflate stream itself broken: the entry is corrupt, the archive opens.
  const broken = Buffer.from(zip);
  broken.fill(0xff, 40, 60);
  r = await extractDocument(broken, {});
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt', path: 'a.txt' }]);
});

test('zip: the bytes decide the kind; a promised format over other bytes is corrupt', async () => {
  const d = await docx([['hello']]);
  let r = await extractDocument(d, { filename: 'archive.zip', contentType: 'application/zip' });
  assert.equal(r.kind, 'docx');
  const z = await makeZip([{ name: 'a.txt', data: 'hi' }]);
  r = await extractDocument(z, { filename: 'letter.docx', contentType: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' });
  assert.equal(r.kind, 'zip');
  r = await extractDocument(Buffer.from('just some text, no zip'), { filename: 'letter.docx' });
  assert.equal(r.kind, 'docx');
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt' }]);
  r = await extractDocument(Buffer.from('just some text, no zip'), { contentType: 'text/plain' });
  assert.deepEqual(r, { kind: 'none', texts: [], unscannable: [], unextracted: [] });
});

test('zip: seeded fuzz: mutated archives give a result with defined reasons, never an exception', async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 0xffffffff);
  const rnd = xorshift32(seed);
  const inner = await makeZip([{ name: 'x.txt', data: `IBAN ${IBAN}` }]);
  const bases = [
    await docx([[`Card ${CARD}`], ['second paragraph']], { header: 'head', comment: 'note' }),
    await makeZip([
      { name: 'a.txt', data: 'hello '.repeat(50) },
      { name: 'in.zip', data: inner },
    ]),
  ];
  for (let i = 0; i < 300; i++) {
    const base = bases[i % bases.length];
    const buf = Buffer.from(base);
    const flips = 1 + (rnd() % 8);
    for (let f = 0; f < flips; f++) buf[rnd() % buf.length] = rnd() & 0xff;
    let r: ExtractResult;
    try {
      r = await extractDocument(buf, { filename: 'f.zip' }, { maxTimeMs: 2000 });
    } catch (err) {
      assert.fail(`seed ${seed}, iteration ${i}: threw ${String(err)}`);
    }
    for (const u of r.unscannable) assert.ok(REASONS.has(u.reason), `seed ${seed}, iteration ${i}: reason ${u.reason}`);
  }
});
