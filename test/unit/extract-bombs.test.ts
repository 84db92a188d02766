/*
 * Hostile archives and documents against src/extract's limits: a 42.zip-style
 * nested fan-out, a deep nesting, a 10,000-entry ZIP, an XML billion laughs
 * inside a DOCX, entries that lie about their size, and one case per other
 * limit. Each must end with a defined `unscannable` reason, in bounded time,
 * with bounded memory: the peak RSS growth over the call is sampled and
 * printed (test diagnostics), and must stay under RSS_BOUND.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { extractDocument, type ExtractLimits, type ExtractResult } from '../../src/extract';
import { declareSize, docx, makeZip, xlsx } from '../helpers/office-fixtures';

const MiB = 1024 * 1024;
/** Generous: the defaults inflate at most 64 MiB in all. */
const RSS_BOUND = 200 * MiB;
/** Generous too: each case ends in well under a second on a laptop. */
const TIME_BOUND_MS = 10_000;

async function measured(t: TestContext, name: string, input: Buffer, limits?: Partial<ExtractLimits>): Promise<ExtractResult> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sample = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 2);
  const t0 = performance.now();
  let r: ExtractResult;
  try {
    r = await extractDocument(input, {}, limits);
  } finally {
    clearInterval(sample);
  }
  const ms = performance.now() - t0;
  peak = Math.max(peak, process.memoryUsage().rss);
  const growth = peak - before;
  t.diagnostic(
    `${name}: ${input.length} bytes in, ${ms.toFixed(0)} ms, peak RSS growth ${(growth / MiB).toFixed(1)} MiB, ` +
      `unscannable ${JSON.stringify(r.unscannable.slice(0, 3))}`,
  );
  assert.ok(growth < RSS_BOUND, `${name}: RSS grew ${(growth / MiB).toFixed(1)} MiB`);
  assert.ok(ms < TIME_BOUND_MS, `${name}: took ${ms.toFixed(0)} ms`);
  return r;
}

function reasons(r: ExtractResult): string[] {
  return r.unscannable.map((u) => u.reason);
}

/** 42.zip's shape: `fanout` copies of the level below, `levels` deep, over a very compressible text leaf. */
async function fanoutBomb(leafBytes: number, fanout: number, levels: number): Promise<Buffer> {
  let level = await makeZip(Array.from({ length: fanout }, (_, i) => ({ name: `leaf${i}.txt`, data: 'A'.repeat(leafBytes) })));
  for (let l = 1; l < levels; l++) {
    const below = level;
    level = await makeZip(Array.from({ length: fanout }, (_, i) => ({ name: `l${l}-${i}.zip`, data: below })));
  }
  return level;
}

test('42-style nested zip: stops on ratio, in bounded time and memory', async (t) => {
  // 16^5 leaves of 2 MiB: 2 TiB nominal, a few KiB on the wire.
  const bomb = await fanoutBomb(2 * MiB, 16, 5);
  assert.ok(bomb.length < 64 * 1024, `bomb is ${bomb.length} bytes`);
  const r = await measured(t, '42-style', bomb);
  assert.equal(r.kind, 'zip');
  // The first leaf already shows the bomb; a bomb stops the whole attachment.
  assert.deepEqual(r.unscannable, [{ reason: 'ratio', path: 'l4-0.zip!l3-0.zip!l2-0.zip!l1-0.zip!leaf0.txt' }]);
});

test('42-style nested zip with the ratio limits off: the expansion quota stops it', async (t) => {
  const bomb = await fanoutBomb(2 * MiB, 16, 5);
  const r = await measured(t, '42-style, no ratio', bomb, {
    maxEntryRatio: Infinity,
    maxArchiveRatio: Infinity,
    maxTextChars: 1024 * MiB,
  });
  assert.ok(reasons(r).includes('expanded_size'), JSON.stringify(r.unscannable));
  // Stopped everything: the quota is a document-wide one, recorded once.
  assert.equal(reasons(r).filter((x) => x === 'expanded_size').length, 1);
});

test('deeply nested zip: unscannable{depth} at the first level past maxDepth, the text above it kept', async (t) => {
  let z = await makeZip([{ name: 'bottom.txt', data: 'DE89370400440532013000' }]);
  for (let i = 19; i >= 1; i--) z = await makeZip([{ name: `n${i}.zip`, data: z }, { name: `level${i}.txt`, data: `level ${i}` }]);
  const r = await measured(t, 'nested 20 deep', z);
  assert.deepEqual(r.unscannable, [{ reason: 'depth', path: 'n1.zip!n2.zip!n3.zip!n4.zip!n5.zip!n6.zip!n7.zip!n8.zip' }]);
  assert.equal(r.texts.length, 8);
  assert.ok(!r.texts.some((x) => x.text.includes('DE89')));
});

test('10,000-entry zip: unscannable{entries} before any entry is read', async (t) => {
  const z = await makeZip(Array.from({ length: 10_000 }, (_, i) => ({ name: `f${i}.txt`, data: `4111 1111 1111 1111 #${i}` })));
  const r = await measured(t, '10k entries', z);
  assert.deepEqual(r.unscannable, [{ reason: 'entries' }]);
  assert.deepEqual(r.texts, []);
});

test('entries over nested archives: maxTotalEntries stops the whole attachment', async (t) => {
  const inner = await makeZip(Array.from({ length: 2_500 }, (_, i) => ({ name: `f${i}.txt`, data: `${i}` })));
  const z = await makeZip(Array.from({ length: 5 }, (_, i) => ({ name: `part${i}.zip`, data: inner })));
  const r = await measured(t, '5 x 2500 entries', z);
  assert.deepEqual(reasons(r), ['entries']);
  // 5 + 4 x 2500 entries: the fourth nested archive's directory goes over.
  assert.equal(r.unscannable[0].path, 'part3.zip');
});

const LAUGHS =
  '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n' +
  Array.from({ length: 9 }, (_, i) => ` <!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">\n`).join('') +
  ']>\n<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>';

test('billion laughs in a DOCX: the DTD is refused, unscannable{corrupt}, nothing expanded', async (t) => {
  const d = await docx([], { documentXml: LAUGHS, header: 'still read' });
  const r = await measured(t, 'billion laughs', d);
  assert.equal(r.kind, 'docx');
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt', path: 'word/document.xml' }]);
  assert.ok(!r.texts.some((x) => x.text.includes('lol')));
  assert.equal(r.texts.find((x) => x.path === 'word/header1.xml')?.text, 'still read');
});

test('an undefined entity without a DTD is corrupt too; the predefined ones are decoded', async () => {
  const bad = await docx([], { documentXml: '<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>a &ext; b</w:t></w:r></w:p></w:body></w:document>' });
  let r = await extractDocument(bad, {});
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt', path: 'word/document.xml' }]);
  const ok = await docx([['<IBAN> & "card" \'x\'']]);
  r = await extractDocument(ok, {});
  assert.equal(r.texts[0].text, '<IBAN> & "card" \'x\'');
});

test('an entry that declares fewer bytes than it inflates to: unscannable{corrupt}, only the declared bytes read', async (t) => {
  const z = declareSize(await makeZip([{ name: 'big.txt', data: 'B'.repeat(50 * MiB) }, { name: 'ok.txt', data: 'fine' }]), 0, 100);
  const r = await measured(t, 'size lie (small)', z);
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt', path: 'big.txt' }]);
  assert.deepEqual(
    r.texts.map((x) => x.path),
    ['ok.txt'],
  );
});

test('an entry that declares more than the quota: unscannable{expanded_size} before it is inflated', async (t) => {
  const z = declareSize(await makeZip([{ name: 'x.txt', data: 'tiny' }]), 0, 0xfffffff0);
  const r = await measured(t, 'size lie (huge)', z);
  assert.deepEqual(r.unscannable, [{ reason: 'expanded_size', path: 'x.txt' }]);
});

test('an entry that declares more than it holds, within the quota: unscannable{corrupt}', async () => {
  const z = declareSize(await makeZip([{ name: 'x.txt', data: 'tiny' }]), 0, 5000);
  const r = await extractDocument(z, {});
  assert.deepEqual(r.unscannable, [{ reason: 'corrupt', path: 'x.txt' }]);
});

test('deep XML nesting: unscannable{xml_depth} for that part only', async (t) => {
  const deep = `<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>before</w:t></w:r></w:p>${'<w:x>'.repeat(5000)}${'</w:x>'.repeat(5000)}</w:body></w:document>`;
  const r = await measured(t, 'xml depth', await docx([], { documentXml: deep, footer: 'footer text' }));
  assert.deepEqual(r.unscannable, [{ reason: 'xml_depth', path: 'word/document.xml' }]);
  assert.equal(r.texts.find((x) => x.path === 'word/document.xml')?.text, 'before');
  assert.equal(r.texts.find((x) => x.path === 'word/footer1.xml')?.text, 'footer text');
});

test('XML tokens, text size and time: each limit gives its own reason', async (t) => {
  const rows = Array.from({ length: 3000 }, (_, i) => [`name ${i}`, { inline: `4111 1111 1111 ${String(i).padStart(4, '0')}` }, i]);
  const sheet = await xlsx(rows);
  let r = await measured(t, 'xml tokens', sheet, { maxXmlTokens: 5000 });
  assert.deepEqual(reasons(r), ['xml_tokens']);
  r = await measured(t, 'text size', sheet, { maxTextChars: 10_000 });
  assert.deepEqual(reasons(r), ['text_size']);
  const kept = r.texts.reduce((n, x) => n + x.text.length, 0);
  assert.ok(kept <= 10_000, `kept ${kept}`);
  r = await measured(t, 'time', sheet, { maxTimeMs: 0 });
  assert.deepEqual(reasons(r), ['time']);
});

test('a sparse sheet cannot make the table huge: far-apart cells are counted as tokens', async (t) => {
  const cells = Array.from({ length: 2000 }, (_, i) => `<row r="${i + 1}"><c r="A${i + 1}" t="inlineStr"><is><t>a</t></is></c><c r="XFD${i + 1}" t="inlineStr"><is><t>z</t></is></c></row>`).join('');
  const z = await makeZip([
    {
      name: '[Content_Types].xml',
      data: '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>',
    },
    { name: 'xl/workbook.xml', data: '<workbook/>' },
    { name: 'xl/worksheets/sheet1.xml', data: `<worksheet><sheetData>${cells}</sheetData></worksheet>` },
  ]);
  const r = await measured(t, 'sparse sheet', z);
  assert.deepEqual(reasons(r), ['xml_tokens']);
});
