/*
 * MimeTextExtractor end to end: .eml fixtures under test/fixtures/mime/ and
 * small messages built here. Every case runs with the input whole and cut
 * into 1-, 3- and 17-byte chunks, and must give the same text per part, the
 * same sink calls, and output bytes identical to the input (extractAll).
 * Synthetic data only: example.com addresses, numbers that are not real.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TEST_DIR } from '../helpers/paths';
import { extractText, RecordingSink, TEST_LIMITS } from '../helpers/text-sink';
import { MimeTextExtractor, type ExtractLimits, type PartInfo } from '../../src/mime/extract';

const CHUNKS = [Infinity, 1, 3, 17];

function fixture(name: string): Buffer {
  return readFileSync(join(TEST_DIR, 'fixtures', 'mime', name));
}

/** CRLF message from LF-written lines. */
function crlf(text: string): Buffer {
  return Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1');
}

function b64(data: Buffer | string, width = 76): string {
  const s = Buffer.from(data).toString('base64');
  return s.replace(new RegExp(`(.{${width}})`, 'g'), '$1\n').replace(/\n$/, '');
}

/** Runs every chunking; asserts pass-through, the sink contract and identical results; returns the whole-input run. */
async function extractAll(input: Buffer, limits: Partial<ExtractLimits> = {}): Promise<RecordingSink> {
  let reference: RecordingSink | undefined;
  for (const size of CHUNKS) {
    const { sink, output } = await extractText(input, size, limits);
    assert.ok(output.equals(input), `chunks of ${size}: output bytes differ from input`);
    assert.deepEqual(sink.violations, [], `chunks of ${size}: sink contract`);
    if (!reference) reference = sink;
    else assert.deepEqual(sink.summary(), reference.summary(), `chunks of ${size} differ from one chunk`);
  }
  return reference!;
}

function leafPaths(sink: RecordingSink): string[] {
  return [...sink.parts.values()].map((p) => `${p.info.path}|${p.info.scope}`).sort();
}

const HEAD = 'From: Sender <sender@example.com>\nTo: Rcpt <rcpt@example.com>\nSubject: test\nMIME-Version: 1.0\n';

test('base64 text/plain is decoded', async () => {
  const sink = await extractAll(fixture('base64-text.eml'));
  assert.equal(sink.textOf('1', 'body'), 'Dear team,\nthe test SSN is 123-45-6789 and the card is 4111 1111 1111 1111.\nRegards, Ümit\n');
  assert.deepEqual(sink.info('1'), { path: '1', scope: 'body', contentType: 'text/plain', depth: 0, charset: 'utf-8', transferEncoding: 'base64' });
  assert.deepEqual(sink.unscannables, []);
});

test('quoted-printable: a soft break inside a number is joined', async () => {
  const sink = await extractAll(fixture('qp-soft-break.eml'));
  const text = sink.textOf('1', 'body')!;
  assert.match(text, /The number is 123-45-6789, and café costs 3=3\./);
  // "=" followed by blanks and the line end is a soft break too.
  assert.match(text, /right here and it goes on/);
  assert.deepEqual(sink.unscannables, []);
});

test('UTF-16 attachments: with and without BOM, either byte order, sniffed without a charset', async () => {
  const sink = await extractAll(fixture('utf16-attachments.eml'));
  const expected = 'Name,SSN\nAlice Example,123-45-6789\n';
  const names = ['le-bom.txt', 'be-bom.txt', 'le.txt', 'be.txt', 'le-declared.txt', 'sniffed.csv'];
  names.forEach((name, i) => {
    const path = String(i + 2);
    assert.equal(sink.textOf(path, 'attachments'), expected, `${name} (part ${path})`);
    assert.equal(sink.info(path)?.filename, name);
  });
  assert.equal(sink.textOf('1', 'body'), 'See the attachments.');
  assert.deepEqual(sink.unscannables, []);
});

test('8-bit charsets: ISO-8859-1, ISO-8859-15 and windows-1252 (euro sign), UTF-8, US-ASCII', async () => {
  const sink = await extractAll(fixture('charsets-8bit.eml'));
  assert.equal(sink.textOf('1'), 'Müller wohnt in Köln, Straße 5.\r\n');
  assert.equal(sink.textOf('2'), 'Preis: 100 € für Œuvre.\r\n');
  assert.equal(sink.textOf('3'), 'Price: 100 € – “quoted”.\r\n');
  assert.equal(sink.textOf('4'), 'Zoë paid 100 € to 李.\r\n');
  assert.equal(sink.textOf('5'), 'Plain ascii 123-45-6789.\r\n');
  assert.deepEqual(sink.unscannables, []);
});

test('HTML: inline tags join, entities decode, Outlook conditional kept; hidden content scanned on its own lines', async () => {
  const sink = await extractAll(fixture('html-entities.eml'));
  const text = sink.textOf('1', 'body')!;
  assert.equal(sink.info('1')?.contentType, 'text/html');
  assert.match(text, /SSN: 123-45-6789\n/);
  assert.match(text, /987-65-4321 & AT&T rocks © café/);
  assert.match(text, /Outlook only 222-22-2222/);
  assert.match(text, /3 < 4 and abc\n/);
  assert.match(text, /one\s+two/);
  assert.match(text, /Statement/);
  assert.doesNotMatch(text, /<p>|<b>|<span|&nbsp;/);
  // Not shown, but it leaves with the message: scanned, each item on a line of its own.
  assert.match(text, /^ a comment with 111-11-1111 that nobody sees $/m);
  assert.match(text, /^var ssn = "000-00-0000"; if \(a < b\) \{\}$/m);
  assert.match(text, /^p \{ color: red \} \.x > b \{\}$/m);
  assert.match(text, /^Logo of ACME$/m);
  assert.match(text, /^logo\.png$/m);
});

test('RFC 2047: B and Q words, UTF-8 and ISO-8859-1, in Subject and display names', async () => {
  const sink = await extractAll(fixture('rfc2047-headers.eml'));
  assert.equal(sink.textOf('0', 'subject'), 'Café naïve and résumé');
  const headers = sink.textOf('0', 'headers')!;
  assert.match(headers, /José García <jose@example\.com>/);
  assert.match(headers, /Jèrôme <jerome@example\.com>, "Plain Name" <plain@example\.com>/);
  assert.match(headers, /André <andre@example\.com>/);
  assert.match(headers, /Ümit <umit@example\.com>/);
  assert.deepEqual(sink.info('0', 'subject'), { path: '0', scope: 'subject', contentType: 'text/rfc822-headers', depth: 0 });
  assert.equal(sink.textOf('1', 'body'), 'Body.\r\n');
});

test('multipart/alternative: both the plain and the HTML part are extracted', async () => {
  const sink = await extractAll(fixture('alternative.eml'));
  // '' is the multipart container's own text: its preamble.
  assert.deepEqual(leafPaths(sink), ['0|headers', '0|subject', '1|body', '2|body', '|body']);
  assert.equal(sink.textOf(''), 'This is a multi-part message in MIME format.\r\n');
  assert.equal(sink.textOf('1'), 'Plain: 123-45-6789');
  assert.equal(sink.textOf('2'), '\nHTML: 123-45-6789\n');
  assert.equal(sink.info('2')?.depth, 1);
});

test('multipart/mixed: CSV and .txt attachments extracted, the image is not', async () => {
  const sink = await extractAll(fixture('mixed-csv-image.eml'));
  assert.equal(sink.textOf('1', 'body'), 'Please find the list attached.');
  assert.equal(sink.textOf('2', 'attachments'), 'id,name,iban\n1,Alice Example,DE89 3704 0044 0532 0130 00\n');
  assert.equal(sink.textOf('3', 'attachments'), 'notes 555-55-5555\n'); // application/octet-stream, but named .txt
  assert.deepEqual(
    sink.notExtractedParts.map((p) => [p.path, p.contentType, p.filename]),
    [['4', 'image/png', 'dot.png']],
  );
  assert.equal(sink.textOf('4'), undefined);
  assert.deepEqual(sink.unscannables, []);
});

test('nested message/rfc822 two levels deep: headers and parts under the right paths', async () => {
  const sink = await extractAll(fixture('nested-rfc822.eml'));
  assert.deepEqual(leafPaths(sink), ['0|headers', '0|subject', '1|body', '2.0|attachments', '2.1|attachments', '2.2.0|attachments', '2.2.1|attachments']);
  assert.equal(sink.textOf('1'), 'Top text');
  assert.equal(sink.textOf('2.0'), 'Middle <middle@example.com>\nSomeone <someone@example.com>\nLevel 1');
  assert.equal(sink.textOf('2.1'), 'Level one text 444-44-4444');
  assert.equal(sink.textOf('2.2.0'), 'Deepest <deep@example.com>\nLevel 2 €'); // message in base64, Subject in Q
  assert.equal(sink.textOf('2.2.1'), 'Level two text 333-33-3333\r\n');
  assert.deepEqual(
    ['2.0', '2.1', '2.2.0', '2.2.1'].map((p) => sink.info(p)?.depth),
    [2, 3, 4, 4],
  );
});

test('an inline message/rfc822 keeps subject and headers scopes; its body is body', async () => {
  const inner = 'From: Fwd <fwd@example.com>\nSubject: forwarded 123-45-6789\n\nforwarded body\n';
  const msg = crlf(`${HEAD}Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee below\n--b\nContent-Type: message/rfc822\n\n${inner}--b--\n`);
  const sink = await extractAll(msg);
  assert.deepEqual(leafPaths(sink), ['0|headers', '0|subject', '1|body', '2.0|headers', '2.0|subject', '2.1|body']);
  assert.equal(sink.textOf('2.0', 'subject'), 'forwarded 123-45-6789');
  assert.equal(sink.textOf('2.1', 'body'), 'forwarded body'); // the line end before a boundary belongs to the boundary
});

test('a message that is only a message/rfc822', async () => {
  const msg = crlf(`${HEAD}Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n`);
  const sink = await extractAll(msg);
  assert.equal(sink.textOf('1.0', 'subject'), 'inner');
  assert.equal(sink.textOf('1.1', 'body'), 'inner body\r\n');
});

/** A multipart nested `levels` deep, one text part at each level. */
function deepMessage(levels: number): Buffer {
  let body = 'deepest text\n';
  let type = 'text/plain';
  for (let i = levels; i >= 1; i--) {
    body = `--b${i}\nContent-Type: text/plain\n\nlevel ${i} text\n--b${i}\nContent-Type: ${type}\n\n${body}\n--b${i}--\n`;
    type = `multipart/mixed; boundary=b${i}`;
  }
  return crlf(`${HEAD}Content-Type: ${type}\n\n${body}`);
}

test('depth limit: the subtree below maxMimeDepth is unscannable, once, and the rest is extracted', async () => {
  const msg = deepMessage(6);
  const full = await extractAll(msg);
  assert.equal(full.textOf('2.2.2.2.2.2'), 'deepest text\r\n');
  assert.deepEqual(full.unscannables, []);
  const sink = await extractAll(msg, { maxMimeDepth: 3 });
  assert.deepEqual(sink.unscannables, [{ path: '2.2.2.1', scope: 'body', reason: 'mime_depth' }, { path: '2.2.2.2', scope: 'body', reason: 'mime_depth' }]);
  assert.equal(sink.textOf('2.2.1'), 'level 3 text');
  assert.equal(sink.textOf('2.2.2.1'), undefined);
  assert.equal(sink.textOf('2.2.2.2.2.2'), undefined);
});

test('depth limit applies through nested messages', async () => {
  const sink = await extractAll(fixture('nested-rfc822.eml'), { maxMimeDepth: 3 });
  assert.deepEqual(sink.unscannables, [{ path: '2.2', scope: 'attachments', reason: 'mime_depth' }]);
  assert.equal(sink.textOf('2.1'), 'Level one text 444-44-4444');
  assert.equal(sink.textOf('2.2.1'), undefined);
});

test('parts limit: too_many_parts once, the parts before it are extracted, bytes still pass', async () => {
  let body = '';
  for (let i = 1; i <= 12; i++) body += `--p\nContent-Type: text/plain\n\npart ${i}\n`;
  const msg = crlf(`${HEAD}Content-Type: multipart/mixed; boundary=p\n\n${body}--p--\n`);
  const sink = await extractAll(msg, { maxParts: 5 });
  assert.deepEqual(sink.reasons(), ['too_many_parts']);
  assert.equal(sink.unscannables[0].path, '5'); // the root container is the first part
  assert.deepEqual(['1', '2', '3', '4'].map((p) => sink.textOf(p)), ['part 1', 'part 2', 'part 3', 'part 4']);
  assert.equal(sink.textOf('6'), undefined);
});

test('part size limit: text stops at maxPartText, part_size, the part still ends', async () => {
  const sink = await extractAll(fixture('base64-text.eml'), { maxPartText: 20 });
  assert.equal(sink.textOf('1'), 'Dear team,\nthe test ');
  assert.deepEqual(sink.reasons('1'), ['part_size']);
  assert.equal(sink.parts.get('1|body')?.ended, true);
});

test('header size limit: header_size on the section that is too big', async () => {
  const big = `X-Filler: ${'x'.repeat(2000)}\n`;
  const sink = await extractAll(crlf(`${HEAD}${big}\nbody\n`), { maxHeaderSize: 1000 });
  assert.deepEqual(sink.unscannables, [{ path: '0', scope: 'headers', reason: 'header_size' }]);
  const part = crlf(`${HEAD}Content-Type: multipart/mixed; boundary=h\n\n--h\nContent-Type: text/plain\n\nfirst\n--h\nContent-Type: text/plain\n${big}\nsecond\n--h--\n`);
  const sink2 = await extractAll(part, { maxHeaderSize: 1000 });
  assert.deepEqual(sink2.unscannables, [{ path: '2', scope: 'body', reason: 'header_size' }]);
  assert.equal(sink2.textOf('1'), 'first');
});

test('bad base64: unscannable, and the valid start is still scanned', async () => {
  const sink = await extractAll(fixture('bad-base64.eml'));
  assert.deepEqual(sink.reasons(), ['bad_base64']);
  assert.ok(sink.textOf('1')!.startsWith('Valid start 123-45-6789 '));
});

test('base64 without padding or line breaks is fine; a lone trailing character is not', async () => {
  const text = 'no padding here!';
  const ok = await extractAll(crlf(`${HEAD}Content-Transfer-Encoding: base64\n\n${b64(text).replace(/=+$/, '')}\n`));
  assert.equal(ok.textOf('1'), text);
  assert.deepEqual(ok.unscannables, []);
  const bad = await extractAll(crlf(`${HEAD}Content-Transfer-Encoding: base64\n\n${b64('abc')}Q\n`));
  assert.deepEqual(bad.reasons(), ['bad_base64']);
});

test('unknown charset: bad_charset, text decoded anyway (UTF-8 if valid)', async () => {
  const sink = await extractAll(fixture('unknown-charset.eml'));
  assert.deepEqual(sink.reasons(), ['bad_charset']);
  assert.equal(sink.textOf('1'), 'SSN 123-45-6789 café\r\n');
});

test('unknown transfer encoding: decoded as 8bit and reported', async () => {
  const sink = await extractAll(crlf(`${HEAD}Content-Transfer-Encoding: x-uuencode\n\nraw 123-45-6789\n`));
  assert.deepEqual(sink.reasons(), ['bad_transfer_encoding']);
  assert.equal(sink.textOf('1'), 'raw 123-45-6789\r\n');
});

test('no charset: UTF-8 when valid, windows-1252 from the first invalid byte', async () => {
  const msg = Buffer.concat([crlf(`${HEAD}\n`), Buffer.from('naïve '), Buffer.from([0x80, 0x20, 0xe9]), Buffer.from('\r\n')]);
  const sink = await extractAll(msg);
  assert.equal(sink.textOf('1'), 'naïve € é\r\n');
});

test('a UTF-16 BOM wins over a declared charset', async () => {
  const body = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('123-45-6789', 'utf16le')]);
  const sink = await extractAll(crlf(`${HEAD}Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n${b64(body)}\n`));
  assert.equal(sink.textOf('1'), '123-45-6789');
});

test('NUL bytes are dropped from text', async () => {
  const sink = await extractAll(Buffer.concat([crlf(`${HEAD}Content-Type: text/plain; charset=iso-8859-1\n\n`), Buffer.from('123\x00-45-\x006789', 'latin1')]));
  assert.equal(sink.textOf('1'), '123-45-6789');
});

test('format=flowed with DelSp=yes: soft line breaks joined without the space', async () => {
  const msg = crlf(`${HEAD}Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n\nSSN 123-45- \n6789 and a hard\nbreak\n-- \nsig\n`);
  const sink = await extractAll(msg);
  assert.equal(sink.textOf('1'), 'SSN 123-45-6789 and a hard\r\nbreak\r\n-- \r\nsig\r\n');
  const plain = await extractAll(crlf(`${HEAD}Content-Type: text/plain; format=flowed\n\nsoft \nbreak\n`));
  assert.equal(plain.textOf('1'), 'soft break\r\n');
});

test('RFC 2231 file name selects extraction; Content-Disposition attachment sets the scope', async () => {
  const msg = crlf(
    `${HEAD}Content-Type: multipart/mixed; boundary=f\n\n--f\nContent-Type: text/plain\n\nbody\n` +
      `--f\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename*=utf-8''Liste%20M%C3%BCller.csv\n\na,b\n` +
      `--f\nContent-Type: text/plain; name=inline.txt\n\nnamed but inline\n--f--\n`,
  );
  const sink = await extractAll(msg);
  assert.equal(sink.info('2')?.filename, 'Liste Müller.csv');
  assert.equal(sink.textOf('2', 'attachments'), 'a,b');
  assert.equal(sink.textOf('3', 'attachments'), 'named but inline'); // has a name and is not the first text part
});

test('the first text part is body even with a file name', async () => {
  const sink = await extractAll(crlf(`${HEAD}Content-Type: text/plain; name=note.txt\n\nhello\n`));
  assert.equal(sink.textOf('1', 'body'), 'hello\r\n');
});

test('malformed fixture: an inner multipart never closed, the outer boundary still ends it', async () => {
  const sink = await extractAll(fixture('malformed.eml'));
  assert.deepEqual(leafPaths(sink), ['0|headers', '0|subject', '1|body', '2.1|body', '3|body']);
  assert.equal(sink.textOf('1'), 'first part 123-45-6789');
  assert.equal(sink.textOf('2.1'), '\nunclosed tag 987-65-4321');
  assert.equal(sink.textOf('3'), 'after a missing inner close\r\n');
  assert.deepEqual(sink.unscannables, []); // a missing closing boundary is common, not a reason
});

test('a base64 part after an unclosed inner multipart is decoded, not read as text', async () => {
  const msg = crlf(
    `${HEAD}Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\nContent-Type: text/plain\n\ninner\n` +
      `--o\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n${b64('hidden 123-45-6789')}\n--o--\n`,
  );
  const sink = await extractAll(msg);
  assert.equal(sink.textOf('1.1'), 'inner');
  assert.equal(sink.textOf('2'), 'hidden 123-45-6789');
});

test('malformed: bare LF line ends give the same text', async () => {
  const lf = Buffer.from(fixture('alternative.eml').toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
  const sink = await extractAll(lf);
  assert.equal(sink.textOf('1'), 'Plain: 123-45-6789');
  assert.equal(sink.textOf('2'), '\nHTML: 123-45-6789\n');
});

test('malformed: a multipart without a boundary parameter is read as text and reported', async () => {
  const sink = await extractAll(crlf(`${HEAD}Content-Type: multipart/mixed\n\nsome text 123-45-6789\n`));
  assert.equal(sink.textOf('1'), 'some text 123-45-6789\r\n');
  assert.deepEqual(sink.reasons(), ['bad_multipart']);
});

test('malformed: a boundary that never appears leaves the text in the preamble: bad_multipart', async () => {
  const sink = await extractAll(crlf(`${HEAD}Content-Type: multipart/mixed; boundary=never\n\nhidden 123-45-6789\n`));
  assert.deepEqual(sink.unscannables, [{ path: '', scope: 'body', reason: 'bad_multipart' }]);
});

test('malformed: no header section, headers only, empty input, truncated headers', async () => {
  const noHeaders = await extractAll(crlf('\nonly a body 123-45-6789\n'));
  assert.equal(noHeaders.textOf('1'), 'only a body 123-45-6789\r\n');
  const headersOnly = await extractAll(crlf('Subject: just headers'));
  assert.equal(headersOnly.textOf('0', 'subject'), 'just headers');
  const empty = await extractAll(Buffer.alloc(0));
  assert.deepEqual(empty.unscannables, []);
  const truncated = await extractAll(crlf(`${HEAD}Content-Type: multipart/mixed; boundary=t\n\n--t\nContent-Type: text/pl`));
  assert.deepEqual(truncated.violations, []);
});

test('malformed: a header line that is not a field is scanned and reported', async () => {
  const sink = await extractAll(crlf('From: a@example.com\nthis line is not a header 123-45-6789\nSubject: s\n\nbody\n'));
  assert.match(sink.textOf('0', 'headers')!, /this line is not a header 123-45-6789/);
  assert.deepEqual(sink.reasons('0'), ['bad_header']);
});

test('a Content-Type given twice is reported (readers disagree on which counts)', async () => {
  const sink = await extractAll(crlf(`${HEAD}Content-Type: text/plain\nContent-Type: image/png\n\ntext\n`));
  assert.deepEqual(sink.reasons('1'), ['bad_header']);
  assert.equal(sink.textOf('1'), 'text\r\n');
});

test('a line over MAX_LINE: harmless inside base64, unscannable in text', async () => {
  const long = 'x'.repeat(70 * 1024) + ' 123-45-6789';
  const inB64 = await extractText(crlf(`${HEAD}Content-Transfer-Encoding: base64\n\n${Buffer.from(long).toString('base64')}\n`), 4096);
  assert.deepEqual(inB64.sink.unscannables, []);
  assert.equal(inB64.sink.textOf('1'), long);
  const inText = await extractText(crlf(`${HEAD}\n${long}\n`), 4096);
  assert.deepEqual(inText.sink.reasons(), ['line_size']);
  assert.ok(inText.sink.textOf('1')!.includes('123-45-6789'));
  for (const { sink } of [inB64, inText]) assert.deepEqual(sink.violations, []);
  // The same whatever the chunking.
  const whole = await extractText(crlf(`${HEAD}\n${long}\n`));
  assert.deepEqual(whole.sink.summary(), inText.sink.summary());
});

test('pass-through: arbitrary binary input comes out byte for byte', async () => {
  const input = Buffer.alloc(50_000);
  let x = 12345;
  for (let i = 0; i < input.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    input[i] = x & 0xff;
  }
  for (const size of [1, 3, 17, 65536]) {
    const { output, sink } = await extractText(input, size);
    assert.ok(output.equals(input), `chunks of ${size}`);
    assert.deepEqual(sink.violations, []);
  }
});

test('works in stream.pipeline with a slow consumer (backpressure)', async () => {
  const input = Buffer.concat(Array.from({ length: 200 }, () => fixture('mixed-csv-image.eml')));
  const sink = new RecordingSink();
  const out: Buffer[] = [];
  const source = new PassThrough();
  source.end(input);
  await pipeline(
    source,
    new MimeTextExtractor(sink, TEST_LIMITS),
    new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        setImmediate(cb);
      },
    }),
  );
  assert.ok(Buffer.concat(out).equals(input));
  assert.equal(sink.textOf('1'), 'Please find the list attached.');
});

test('an exception from the sink is an internal error: the stream fails', async () => {
  const sink = new RecordingSink();
  sink.text = () => {
    throw new Error('sink bug');
  };
  const extractor = new MimeTextExtractor(sink, TEST_LIMITS);
  await assert.rejects(
    pipeline(
      (async function* () {
        yield fixture('alternative.eml');
      })(),
      extractor,
      new Writable({ write: (_c, _e, cb) => cb() }),
    ),
    /sink bug/,
  );
});

test('limits are checked at construction', () => {
  assert.throws(() => new MimeTextExtractor(new RecordingSink(), { ...TEST_LIMITS, maxParts: 0 }), /maxParts/);
});

test("a multipart's preamble and epilogue are scanned as the container's own text, the last line even without a line end", async () => {
  const input = Buffer.from(
    HEAD.replace(/\n/g, '\r\n') +
      'Content-Type: multipart/mixed; boundary="b"\r\n\r\nPreamble SSN 123-45-6789\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\nEpilogue line one\r\ncard 4111 1111 1111 1111',
  );
  const sink = await extractAll(input);
  assert.deepEqual(leafPaths(sink), ['0|headers', '0|subject', '1|body', '|body']);
  assert.equal(sink.textOf(''), 'Preamble SSN 123-45-6789\r\nEpilogue line one\r\ncard 4111 1111 1111 1111');
  assert.equal(sink.info('')?.contentType, 'multipart/mixed');
  assert.equal(sink.textOf('1'), 'hello');
});

test("a nested multipart's closing delimiter is not taken for its epilogue, even when its boundary looks like a card number", async () => {
  const boundary = '----=_Part_0_1296263223.4111111111111111';
  const inner = ['From: <inner@example.org>', 'Subject: fwd', 'MIME-Version: 1.0', `Content-Type: multipart/alternative; boundary="${boundary}"`, '', `--${boundary}`, 'Content-Type: text/plain', '', 'inner text', `--${boundary}--`].join('\r\n');
  const input = Buffer.from(
    HEAD.replace(/\n/g, '\r\n') + 'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n' + inner + '\r\n--o--\r\n',
  );
  const sink = await extractAll(input);
  for (const p of sink.parts.values()) assert.doesNotMatch(p.text, /4111111111111111/, `part ${p.info.path} holds the delimiter`);
  assert.equal(sink.textOf('2.1'), 'inner text');
});

test("a Content-Transfer-Encoding or charset on a multipart does not apply to its preamble (no false bad_base64)", async () => {
  const input = Buffer.from(
    HEAD.replace(/\n/g, '\r\n') + 'Content-Type: multipart/mixed; boundary="b"; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\nThis is a multi-part message in MIME format.\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n',
  );
  const sink = await extractAll(input);
  assert.deepEqual(sink.reasons(), []);
  assert.equal(sink.textOf(''), 'This is a multi-part message in MIME format.\r\n');
});

test('a preamble ends before the first part begins, so no scanner stays open behind the parser', async () => {
  const events: string[] = [];
  const sink = {
    text: (p: PartInfo) => events.push(`text ${p.path}`),
    endPart: (p: PartInfo) => events.push(`end ${p.path}`),
    unscannable: () => undefined,
    notExtracted: () => undefined,
  };
  const input = Buffer.from(HEAD.replace(/\n/g, '\r\n') + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b--\r\nepilogue\r\n');
  const x = new MimeTextExtractor(sink, TEST_LIMITS);
  await new Promise<void>((resolve, reject) => x.on('finish', resolve).on('error', reject).end(input));
  const order = events.filter((e) => !e.endsWith(' 0')).filter((e, i, a) => e !== a[i - 1]);
  assert.deepEqual(order, ['text ', 'end ', 'text 1', 'end 1', 'text ', 'end ']);
});
