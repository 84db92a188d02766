/*
 * PDF text extraction (src/extract/pdf.ts): HIT and MISS text, a value split
 * across text runs, pages, encryption, corrupt files, and the hostile files
 * issue 11 names: a huge page tree and memory bombs, each with a defined
 * outcome, a bounded time and a bounded RSS for this process (the workers
 * are its threads, so their memory is in it), after which the pool still
 * reads a good PDF. Fixtures are written at test time (test/helpers/pdf-fixtures.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PdfExtractor, PDF_DEFAULTS, type PdfResult } from '../../src/extract/pdf';
import { joinRuns } from '../../src/extract/pdf-worker';
import {
  deepPageTreePdf,
  encryptedPdf,
  inflateBombPdf,
  pagesPdf,
  textPdf,
  widePageTreePdf,
} from '../helpers/pdf-fixtures';

const CARD = '4111 1111 1111 1111';
const MiB = 1024 * 1024;

/** One pool for the ordinary cases, as the relay would have. */
const pool = new PdfExtractor();
after(() => pool.close());

function textOf(r: PdfResult): string {
  assert.ok('text' in r, `expected text, got ${JSON.stringify(r)}`);
  return r.text;
}

/** Runs `fn`, sampling this process's RSS every 5 ms: the result, the time, and the RSS growth over the start. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; growthMb: number; peakMb: number }> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  const t0 = performance.now();
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, ms: Math.round(performance.now() - t0), growthMb: Math.round((peak - base) / MiB), peakMb: Math.round(peak / MiB) };
  } finally {
    clearInterval(sampler);
  }
}

async function stillReads(x: PdfExtractor): Promise<void> {
  assert.equal(textOf(await x.extract(textPdf([`after: ${CARD}`]))), `after: ${CARD}\n`);
}

test('HIT: a card in the text comes out as typed', async () => {
  const r = await pool.extract(textPdf([`Card: ${CARD}`, 'Expires 03/28']));
  assert.deepEqual(r, { text: `Card: ${CARD}\nExpires 03/28\n`, pages: 1 });
});

test('MISS: a clean PDF gives its text and no digits', async () => {
  const text = textOf(await pool.extract(textPdf(['Quarterly report', 'Nothing personal here (really).'])));
  assert.equal(text, 'Quarterly report\nNothing personal here (really).\n');
  assert.doesNotMatch(text, /\d/);
});

test('a value split across text runs on one line comes out contiguous', async () => {
  // Two Tj with nothing between: the second starts where the first ends.
  assert.equal(textOf(await pool.extract(pagesPdf(['BT /F1 12 Tf 72 720 Td (4111 1111) Tj (1111 1111) Tj ET']))), '4111 11111111 1111\n');
  // One TJ with a kerning adjustment inside a group.
  assert.equal(textOf(await pool.extract(pagesPdf(['BT /F1 12 Tf 72 720 Td [(4111 11) -10 (11 1111 1111)] TJ ET']))), `${CARD}\n`);
  // Two runs placed one word-space apart on one baseline: one space, not a line.
  const placed = 'BT /F1 12 Tf 72 720 Td (4111 1111) Tj ET BT /F1 12 Tf 133 720 Td (1111 1111) Tj ET'; // Helvetica: the first run is 56.7 pt wide
  assert.equal(textOf(await pool.extract(pagesPdf([placed]))), `${CARD}\n`);
  // The same runs on two baselines are two lines.
  const twoLines = 'BT /F1 12 Tf 72 720 Td (4111 1111) Tj ET BT /F1 12 Tf 72 700 Td (1111 1111) Tj ET';
  assert.equal(textOf(await pool.extract(pagesPdf([twoLines]))), '4111 1111\n1111 1111\n');
});

test('joinRuns: gap, line and hasEOL rules on their own', () => {
  const run = (str: string, x: number, y: number, width: number, hasEOL = false) => ({ str, transform: [12, 0, 0, 12, x, y], width, height: 12, hasEOL });
  assert.equal(joinRuns([run('4111', 0, 700, 24), run('1111', 24, 700, 24)]), '41111111\n', 'touching: nothing between');
  assert.equal(joinRuns([run('4111', 0, 700, 24), run('1111', 25, 700, 24)]), '41111111\n', 'a sliver (under 0.15 em): nothing');
  assert.equal(joinRuns([run('4111', 0, 700, 24), run('1111', 28, 700, 24)]), '4111 1111\n', 'a space wide: one space');
  assert.equal(joinRuns([run('4111 ', 0, 700, 30), run('1111', 40, 700, 24)]), '4111 1111\n', 'no second space after a space');
  assert.equal(joinRuns([run('a', 0, 700, 6), run('b', 0, 686, 6)]), 'a\nb\n', 'another baseline: a new line');
  assert.equal(joinRuns([run('a', 0, 700, 6, true), run('b', 0, 686, 6)]), 'a\nb\n', 'hasEOL: one line end, not two');
  assert.equal(joinRuns([]), '');
});

test('several pages: text in page order, the page count', async () => {
  const r = await pool.extract(textPdf(['page one'], ['page two', CARD], ['page three']));
  assert.deepEqual(r, { text: `page one\npage two\n${CARD}\npage three\n`, pages: 3 });
});

test('encrypted: a user password gives encrypted; an owner password alone is read', async () => {
  assert.deepEqual(await pool.extract(encryptedPdf([`secret ${CARD}`], 'letmein')), { unscannable: 'encrypted', detail: 'the PDF needs a password' });
  assert.equal(textOf(await pool.extract(encryptedPdf([`restricted ${CARD}`], ''))), `restricted ${CARD}\n`);
});

test('corrupt files give corrupt, never a crash, and the pool goes on', async () => {
  const good = textPdf([`Card: ${CARD}`]);
  const bad: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['garbage', Buffer.from('this is not a PDF at all, just words\n'.repeat(50))],
    ['a header only', Buffer.from('%PDF-1.7\n')],
    ['truncated after 20 bytes', good.subarray(0, 20)],
    ['truncated in the middle', good.subarray(0, good.length >> 1)],
    ['random bytes after a header', Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255))])],
  ];
  for (const [name, bytes] of bad) {
    const r = await pool.extract(bytes, { keep: true });
    assert.ok('unscannable' in r && r.unscannable === 'corrupt', `${name}: ${JSON.stringify(r)}`);
  }
  // A startxref pointing nowhere: pdfjs rebuilds the table by scanning the
  // objects and reads the text, as readers do. Not corrupt: readable.
  const badStart = Buffer.from(good.toString('latin1').replace(/startxref\n\d+/, 'startxref\n9'), 'latin1');
  assert.equal(textOf(await pool.extract(badStart)), `Card: ${CARD}\n`);
  await stillReads(pool);
});

test('limits: more pages than maxPages gives pages, more text than maxTextChars gives text_size', async () => {
  const x = new PdfExtractor({ workers: 1, maxPages: 2, maxTextChars: 40 });
  try {
    assert.deepEqual(await x.extract(textPdf(['1'], ['2'], ['3'])), { unscannable: 'pages', detail: '3 pages, over the limit of 2' });
    const r = await x.extract(textPdf(['a'.repeat(30)], ['b'.repeat(30)]));
    assert.ok('unscannable' in r && r.unscannable === 'text_size', JSON.stringify(r));
    assert.equal(textOf(await x.extract(textPdf(['a'.repeat(30)]))), 'a'.repeat(30) + '\n');
  } finally {
    await x.close();
  }
});

test('huge page tree, wide: refused as pages, or stopped by the deadline, in bounded time', async () => {
  const x = new PdfExtractor({ workers: 1, timeoutMs: 3000 });
  try {
    await stillReads(x); // started, so the times below are the documents'
    const wide10k = await measured(() => x.extract(widePageTreePdf(10_000)));
    assert.deepEqual(wide10k.value, { unscannable: 'pages', detail: '10000 pages, over the limit of 500' });
    const wide100k = await measured(() => x.extract(widePageTreePdf(100_000)));
    const r = wide100k.value;
    assert.ok('unscannable' in r && (r.unscannable === 'pages' || r.unscannable === 'time'), JSON.stringify(r));
    assert.ok(wide100k.ms < 3000 + 1500, `${wide100k.ms} ms`);
    console.log(`# wide page tree: 10,000 kids ${wide10k.ms} ms (pages); 100,000 kids ${wide100k.ms} ms (${r.unscannable}), RSS +${wide100k.growthMb} MiB`);
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('huge page tree, deep (50,000 nested Pages nodes): a defined outcome in bounded time', async () => {
  const x = new PdfExtractor({ workers: 1, timeoutMs: 5000 });
  try {
    await stillReads(x);
    const deep = await measured(() => x.extract(deepPageTreePdf(50_000)));
    const r = deep.value;
    // pdfjs walks the tree without recursion, so it reads the page; a slow machine may hit the deadline instead.
    assert.ok(('text' in r && r.text === 'deep page\n') || ('unscannable' in r && r.unscannable === 'time'), JSON.stringify(r));
    assert.ok(deep.ms < 5000 + 1500, `${deep.ms} ms`);
    console.log(`# deep page tree: ${deep.ms} ms (${'text' in r ? 'text' : r.unscannable}), RSS +${deep.growthMb} MiB`);
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('a document past its deadline gives time; its worker is replaced', async () => {
  // 1 GiB of inflated spaces takes pdfjs seconds; the RSS limit is raised out of the way.
  const x = new PdfExtractor({ workers: 1, timeoutMs: 500, maxRssGrowthMb: 4096 });
  try {
    await stillReads(x);
    const slow = await measured(() => x.extract(inflateBombPdf('spaces', 1024)));
    assert.deepEqual(slow.value, { unscannable: 'time', detail: 'not read within 500 ms' });
    assert.ok(slow.ms < 500 + 500, `${slow.ms} ms`);
    console.log(`# deadline: stopped after ${slow.ms} ms, RSS +${slow.growthMb} MiB`);
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('heap bomb: resourceLimits stop it as memory, RSS stays bounded, the pool goes on', async () => {
  // 32 MiB of "0 " in one TJ array: 16 M numbers in one JS array, past a 64 MiB heap.
  const bomb = inflateBombPdf('numbers', 32);
  const size = bomb.length; // before extract() moves it
  assert.ok(size < 64 * 1024, `${size} bytes`);
  const x = new PdfExtractor({ workers: 1, maxOldGenerationSizeMb: 64 });
  try {
    await stillReads(x);
    const m = await measured(() => x.extract(bomb));
    assert.deepEqual(m.value, { unscannable: 'memory', detail: 'over the worker heap limit (64 MiB)' });
    assert.ok(m.growthMb < 400, `RSS grew by ${m.growthMb} MiB`);
    console.log(`# heap bomb (${size} bytes): memory after ${m.ms} ms, RSS +${m.growthMb} MiB (peak ${m.peakMb} MiB)`);
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('inflate bomb outside the V8 heap: the RSS watchdog stops it as memory at the default limit', async () => {
  // 1 MiB of PDF inflating to 2 GiB of spaces: pdfjs holds it in one Uint8Array, which resourceLimits do not count.
  const bomb = inflateBombPdf('spaces', 2048);
  const size = bomb.length;
  const x = new PdfExtractor({ workers: 1 });
  try {
    await stillReads(x);
    const m = await measured(() => x.extract(bomb));
    const r = m.value;
    assert.ok('unscannable' in r && r.unscannable === 'memory', JSON.stringify(r));
    assert.match(r.detail, /^process RSS grew by \d+ MiB while 1 document\(s\) were read \(limit 512 MiB\)$/);
    assert.ok(m.growthMb < PDF_DEFAULTS.maxRssGrowthMb + 150, `RSS grew by ${m.growthMb} MiB`);
    console.log(`# inflate bomb (${size} bytes, 2 GiB inflated): memory after ${m.ms} ms, RSS +${m.growthMb} MiB (peak ${m.peakMb} MiB)`);
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('a heap bomb beside good documents: only the bomb is lost (its own worker\'s heap), the pool goes on', async () => {
  const x = new PdfExtractor({ workers: 2, maxOldGenerationSizeMb: 64 });
  try {
    const results = await Promise.all([
      x.extract(textPdf([`one ${CARD}`])),
      x.extract(inflateBombPdf('numbers', 32)),
      x.extract(textPdf(['two'])),
      x.extract(textPdf(['three'])),
    ]);
    assert.equal(textOf(results[0]), `one ${CARD}\n`);
    assert.ok('unscannable' in results[1] && results[1].unscannable === 'memory', JSON.stringify(results[1]));
    assert.equal(textOf(results[2]), 'two\n');
    assert.equal(textOf(results[3]), 'three\n');
    await stillReads(x);
  } finally {
    await x.close();
  }
});

test('many documents at once: each gets its own text', async () => {
  const docs = Array.from({ length: 12 }, (_, i) => textPdf([`document ${i}`], [`page two of ${i}`]));
  const results = await Promise.all(docs.map((d) => pool.extract(d)));
  results.forEach((r, i) => assert.deepEqual(r, { text: `document ${i}\npage two of ${i}\n`, pages: 2 }));
});

test('the bytes move to the worker when the Buffer owns them, and are copied otherwise', async () => {
  const owned = textPdf([CARD]);
  const own = new Uint8Array(new ArrayBuffer(owned.length));
  own.set(owned);
  assert.equal(textOf(await pool.extract(own)), `${CARD}\n`);
  assert.equal(own.byteLength, 0, 'moved: the caller\'s view is detached');

  const kept = new Uint8Array(new ArrayBuffer(owned.length));
  kept.set(owned);
  assert.equal(textOf(await pool.extract(kept, { keep: true })), `${CARD}\n`);
  assert.equal(kept.byteLength, owned.length, 'keep: copied');

  // A view into a larger buffer (a slice of a spool read, Node's Buffer pool) is copied: its neighbours stay.
  const big = Buffer.concat([Buffer.from('before'), owned, Buffer.from('after')]);
  const view = big.subarray(6, 6 + owned.length);
  assert.equal(textOf(await pool.extract(view)), `${CARD}\n`);
  assert.equal(big.subarray(0, 6).toString(), 'before');
  assert.equal(view.byteLength, owned.length);
});

test('options are checked; close() ends the pool and rejects what is left', async () => {
  assert.throws(() => new PdfExtractor({ workers: 0 }), /workers must be a positive integer/);
  assert.throws(() => new PdfExtractor({ timeoutMs: 1.5 }), /timeoutMs must be a positive integer/);
  const x = new PdfExtractor({ workers: 1 });
  const running = assert.rejects(x.extract(textPdf(['one'])), /closed/);
  const queued = assert.rejects(x.extract(textPdf(['two'])), /closed/);
  await x.close();
  await running;
  await queued;
  await assert.rejects(x.extract(textPdf(['three'])), /closed/);
});

test('an idle pool does not keep the process alive', async () => {
  // Workers are unref'd between documents: a script that forgets close() still exits.
  const { spawnSync } = await import('node:child_process');
  const script = `
    const { PdfExtractor } = require(${JSON.stringify(require.resolve('../../src/extract/pdf'))});
    const { textPdf } = require(${JSON.stringify(require.resolve('../helpers/pdf-fixtures'))});
    new PdfExtractor().extract(textPdf(['bye'])).then((r) => console.log(r.text.trim()));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'bye');
});

test('large legitimate PDFs: 150 pages of dense text each, two at once, inside the defaults', async () => {
  const line = (p: number, l: number) => `Page ${p} line ${l}: the quick brown fox jumps over the lazy dog, 0123456789.`;
  const doc = () => textPdf(...Array.from({ length: 150 }, (_, p) => Array.from({ length: 45 }, (_, l) => line(p, l))));
  const x = new PdfExtractor();
  try {
    await Promise.all([stillReads(x), stillReads(x)]); // both workers started
    const m = await measured(() => Promise.all([x.extract(doc()), x.extract(doc())]));
    for (const r of m.value) {
      assert.ok('text' in r && r.pages === 150, JSON.stringify(r).slice(0, 200));
      assert.ok(r.text.startsWith(line(0, 0) + '\n') && r.text.endsWith(line(149, 44) + '\n'));
    }
    const chars = (m.value[0] as { text: string }).text.length;
    assert.ok(m.growthMb < PDF_DEFAULTS.maxRssGrowthMb / 2, `RSS grew by ${m.growthMb} MiB`);
    console.log(`# two 150-page PDFs (${chars} chars each) at once: ${m.ms} ms, RSS +${m.growthMb} MiB`);
  } finally {
    await x.close();
  }
});
