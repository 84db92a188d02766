/*
 * The pieces of MIME text extraction on their own: transfer decoders,
 * charsets, HTML to text, format=flowed, RFC 2047 words, header sections,
 * the line feeder, part kinds and part paths. Every streaming decoder is fed
 * its input split at every position and must give the same output as whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Splitter } from 'mailsplit';
import { TEST_DIR } from '../helpers/paths';
import { extractText } from '../helpers/text-sink';
import { Base64Decoder, QuotedPrintableDecoder, transferDecoder, type ByteDecoder } from '../../src/mime/transfer-decode';
import { Utf8OrLatin, charsetDecoder, decodeBytes, type TextDecoderLike } from '../../src/mime/charset';
import { HtmlText, MAX_HIDDEN_TEXT } from '../../src/mime/html-text';
import { FlowedText } from '../../src/mime/flowed';
import { decodeHeaderValue, parseHeaderSection } from '../../src/mime/header-words';
import { LineFeeder, SPLIT, cutAfterEmptyLines } from '../../src/mime/line-feeder';
import { partKind } from '../../src/mime/part-kind';
import { partPath, HEADER_PART } from '../../src/mime/paths';

function splits<T extends Buffer | string>(input: T): T[][] {
  const out: T[][] = [[input]];
  for (let i = 0; i <= input.length; i++) out.push([input.slice(0, i) as T, input.slice(i) as T]);
  out.push(Array.from({ length: input.length }, (_, i) => input.slice(i, i + 1) as T));
  return out;
}

function bytesOut(make: () => ByteDecoder, input: Buffer): { out: string; problem?: string } {
  let result: { out: string; problem?: string } | undefined;
  for (const pieces of splits(input)) {
    const d = make();
    const out = Buffer.concat([...pieces.map((p) => d.write(p)), d.end()]).toString('latin1');
    const r = { out, problem: d.problem };
    if (result) assert.deepEqual(r, result, `split ${pieces.map((p) => p.length).join('+')}`);
    result = r;
  }
  return result!;
}

function textOut(make: () => TextDecoderLike, input: Buffer): string {
  let result: string | undefined;
  for (const pieces of splits(input)) {
    const d = make();
    const out = pieces.map((p) => d.write(p)).join('') + d.end();
    if (result !== undefined) assert.equal(out, result, `split ${pieces.map((p) => p.length).join('+')}`);
    result = out;
  }
  return result!;
}

function stringOut(make: () => { write(s: string): string; end(): string }, input: string): string {
  let result: string | undefined;
  for (const pieces of splits(input)) {
    const d = make();
    const out = pieces.map((p) => d.write(p)).join('') + d.end();
    if (result !== undefined) assert.equal(out, result, `split ${pieces.map((p) => p.length).join('+')}`);
    result = out;
  }
  return result!;
}

const latin = (s: string): Buffer => Buffer.from(s, 'latin1');

test('base64: whitespace ignored, missing padding accepted, padded blocks concatenated', () => {
  const b64 = () => new Base64Decoder();
  assert.deepEqual(bytesOut(b64, latin('MTIz LTQ1\r\nLTY3\tODk=\r\n')), { out: '123-45-6789', problem: undefined });
  assert.deepEqual(bytesOut(b64, latin('MTIzNA')), { out: '1234', problem: undefined });
  assert.deepEqual(bytesOut(b64, latin('QUI=Qw==')), { out: 'ABC', problem: undefined });
});

test('base64: invalid characters and a lone trailing sextet are bad_base64, valid data still decoded', () => {
  const b64 = () => new Base64Decoder();
  assert.deepEqual(bytesOut(b64, latin('MTIz!LTQ1')), { out: '123-45', problem: 'bad_base64' });
  assert.deepEqual(bytesOut(b64, latin('MTIzL')), { out: '123', problem: 'bad_base64' });
  assert.deepEqual(bytesOut(b64, latin('MTIz-_')), { out: '123', problem: 'bad_base64' }); // base64url is not base64
});

test('quoted-printable: soft breaks (CRLF, LF, trailing blanks) joined; malformed "=" kept', () => {
  const qp = () => new QuotedPrintableDecoder();
  assert.equal(bytesOut(qp, latin('123-45-=\r\n6789')).out, '123-45-6789');
  assert.equal(bytesOut(qp, latin('123-45-=\n6789')).out, '123-45-6789');
  assert.equal(bytesOut(qp, latin('123-45-= \t\r\n6789')).out, '123-45-6789');
  assert.equal(bytesOut(qp, latin('caf=C3=a9 =3D x=ZZ =4')).out, 'caf\xc3\xa9 = x=ZZ =4');
  assert.equal(bytesOut(qp, latin('a = b\r\nc')).out, 'a = b\r\nc');
  assert.equal(bytesOut(qp, latin('end=')).out, 'end'); // its CRLF went to the boundary
  assert.equal(bytesOut(qp, latin('a=\rb')).out, 'ab');
});

test('transfer encodings: names, unknown ones reported', () => {
  assert.equal(transferDecoder(' Base64 ').decoder.constructor.name, 'Base64Decoder');
  assert.equal(transferDecoder('8bit').problem, undefined);
  assert.equal(transferDecoder(undefined).problem, undefined);
  assert.equal(transferDecoder('x-uuencode').problem, 'bad_transfer_encoding');
});

test('UTF-8 until invalid, then windows-1252; a character split anywhere decodes whole', () => {
  assert.equal(textOut(() => new Utf8OrLatin(), Buffer.from('naïve € 李 😀 ok')), 'naïve € 李 😀 ok');
  assert.equal(textOut(() => new Utf8OrLatin(), latin('caf\xe9 \x80 10')), 'café € 10');
  assert.equal(textOut(() => new Utf8OrLatin(), Buffer.concat([Buffer.from('ok €'), latin('\xe2\x82')])), 'ok €â\u201a');
  assert.equal(textOut(() => new Utf8OrLatin(), latin('\xc0\xb1')), 'À±'); // an overlong "1" is not UTF-8
});

test('charsets: declared, WHATWG windows-1252 labels, BOM wins, UTF-16 guessed, UTF-7, unknown', () => {
  const dec = (label: string | undefined, bytes: Buffer) => textOut(() => charsetDecoder(label).decoder, bytes);
  assert.equal(dec('ISO-8859-15', latin('\xa4 \xbc')), '€ Œ');
  assert.equal(dec('iso-8859-1', latin('\x80 \xe9')), '€ é');
  assert.equal(dec('us-ascii', latin('\x80')), '€');
  assert.equal(dec('"utf-8"', Buffer.from('\ufeffSSN')), 'SSN');
  assert.equal(dec('iso-8859-1', Buffer.concat([latin('\xff\xfe'), Buffer.from('123', 'utf16le')])), '123');
  const le = Buffer.from('123-45-6789 is a number', 'utf16le');
  const be = Buffer.from(le).swap16();
  assert.equal(dec('utf-16', le), '123-45-6789 is a number');
  assert.equal(dec('utf-16', be), '123-45-6789 is a number');
  assert.equal(dec(undefined, le), '123-45-6789 is a number');
  assert.equal(dec('utf-16', Buffer.from('李李', 'utf16le').swap16()), '李李'); // no NULs: big endian (RFC 2781)
  assert.equal(dec('UTF-7', latin('SSN +ADEAMgAz--45')), 'SSN 123-45');
  assert.equal(charsetDecoder('x-made-up').problem, 'bad_charset');
  assert.equal(dec('x-made-up', Buffer.from('café')), 'café');
  assert.equal(charsetDecoder('unknown-8bit').problem, undefined);
  assert.deepEqual(decodeBytes(latin('caf\xe9'), 'windows-1252'), { text: 'café', problem: undefined });
});

test('HTML: inline tags join, blocks separate, entities, hidden content after the visible text', () => {
  const html = (s: string) => stringOut(() => new HtmlText(), s);
  assert.equal(html('123-<b>45</b>-<span>6789</span>'), '123-45-6789');
  assert.equal(html('123-<b class="x">45</b>-<span title="t">6789</span> more'), '123-45-6789 more\nx\nt\n');
  assert.equal(html('a<br>b<BR/>c<p>d</P>'), 'a\nb\nc\nd\n');
  assert.equal(html('<tr><td>1</td><TD>2</td></tr>'), '\n 1  2 \n');
  assert.equal(html('987&#45;65&#x2D;4321 &amp; &lt;x&gt; a&nbsp;b &copy &#0; &unknown; & x'), '987-65-4321 & <x> a b © \ufffd &unknown; & x');
  assert.equal(html('x<script type="a>b">if (a<b) { s = "</scr" + "ipt>"; }</script >y<style>p{}</STYLE>z'), 'xyz\na>b\nif (a<b) { s = "</scr" + "ipt>"; }\np{}\n');
  assert.equal(html('x<script>a</script>y<style>p>b{}</style>z<scripty>w</scripty>'), 'xyzw\na\np>b{}\n');
  assert.equal(html('a<!-- 111-11-1111 -->b<!---->c<!-->d<!--->e<!-- x --!>f<!---y-- -->g'), 'abcdefg\n 111-11-1111 \n x \n-y-- \n');
  assert.equal(html('<!--[if mso]><p>Outlook 222-22-2222</p><![endif]-->z'), '\n mso]\nOutlook 222-22-2222\nz\n[endif]--\n');
  assert.equal(html('<!DOCTYPE html><?xml x?>3 < 4, a<>b, 5 <= 6'), '3 < 4, a<>b, 5 <= 6\nDOCTYPE html\nxml x?\n');
  assert.equal(html("<img alt='Logo &amp; co' src=x.png>text<a href=\"tel:123-45-6789\" title=t>call</a><div>"), 'textcall\nLogo & co\nx.png\ntel:123-45-6789\nt\n');
  assert.equal(html('<style>/* 4111 */ p {}</style></head><body><!-- c --><p data-card="4111">Hi</p>'), '\n/* 4111 */ p {}\n\n\n c \n4111\nHi\n');
  assert.equal(html('unterminated <b'), 'unterminated ');
  assert.equal(html('x<!-- open'), 'x\n open');
  assert.equal(html('trailing &amp'), 'trailing &');
});

test('HTML: hidden text beyond the limit is dropped and reported; visible text is kept', () => {
  const h = new HtmlText();
  const out = h.write(`<p title="${'x'.repeat(MAX_HIDDEN_TEXT + 1)}">a<!-- ${'y'.repeat(MAX_HIDDEN_TEXT)} -->b</p>`) + h.end();
  assert.equal(out.slice(0, 3), '\nab');
  assert.equal(h.problem, 'part_size');
});

test('format=flowed: soft breaks, DelSp, quotes, stuffing, signature', () => {
  assert.equal(stringOut(() => new FlowedText(false), 'a \r\nb\r\nc'), 'a b\r\nc');
  assert.equal(stringOut(() => new FlowedText(true), '123-45- \r\n6789\r\n'), '123-45-6789\r\n');
  assert.equal(stringOut(() => new FlowedText(true), '> 123- \r\n> 45\r\n'), '> 123-45\r\n');
  assert.equal(stringOut(() => new FlowedText(false), ' From here\r\n-- \r\nsig'), 'From here\r\n-- \r\nsig');
  assert.equal(stringOut(() => new FlowedText(false), 'a  \r\rb \n'), 'a  \r\rb ');
});

test('RFC 2047: words joined, charsets, Q and B, problems', () => {
  assert.equal(decodeHeaderValue('=?utf-8?Q?=C3?= =?utf-8?Q?=A9t=C3=A9?=').text, 'été'); // a character split between words
  assert.equal(decodeHeaderValue('=?utf-8?q?a?= b =?utf-8?q?c?=').text, 'a b c');
  assert.equal(decodeHeaderValue('=?utf-8?q?a?=\r\n =?iso-8859-1?q?=E9?=').text, 'aé');
  assert.equal(decodeHeaderValue('=?UTF-8*en?B?w5xtaXQ=?= <u@example.com>').text, 'Ümit <u@example.com>');
  assert.equal(decodeHeaderValue('"=?utf-8?Q?Jos=C3=A9_G?=" <j@example.com>').text, '"José G" <j@example.com>');
  assert.equal(decodeHeaderValue('Jos\xc3\xa9 and caf\xe9').text, 'José and café'); // UTF-8 up to the first invalid byte
  assert.equal(decodeHeaderValue('Jos\xc3\xa9').text, 'José');
  assert.equal(decodeHeaderValue('=?utf-8?Q?broken').text, '=?utf-8?Q?broken');
  assert.deepEqual([...decodeHeaderValue('=?x-nope?Q?abc?=').problems], ['bad_charset']);
  assert.equal(decodeHeaderValue('=?x-nope?Q?abc?=').text, 'abc');
  assert.deepEqual([...decodeHeaderValue('=?utf-8?B?!!!?=').problems], ['bad_base64']);
});

test('header sections: unfolding, wanted fields, bad lines, mbox From line', () => {
  const text = 'From nobody Mon Jan 1\r\nSubject: one\r\n two\r\nX-Skip: a\r\n b\r\nnot a field\r\nTo: t@example.com\r\n\r\nbody: not a header\r\n';
  const section = parseHeaderSection(text, (n) => n !== 'x-skip');
  assert.deepEqual(section.fields, [
    { name: 'subject', value: 'one two' },
    { name: 'to', value: 't@example.com' },
  ]);
  assert.deepEqual(section.badLines, ['not a field']);
});

test('line feeder: pieces end at a line feed, long lines split at exactly maxLine, whatever the chunking', () => {
  const input = Buffer.from('short\nexactly10!\n' + 'y'.repeat(25) + '\nend');
  const runs = [1, 2, 3, 7, input.length].map((size) => {
    const f = new LineFeeder(10);
    const pieces = [];
    for (let i = 0; i < input.length; i += size) pieces.push(...f.push(input.subarray(i, i + size)));
    pieces.push(...f.end());
    for (const p of pieces.slice(0, -1)) assert.ok(p.split ? p.data.subarray(-3).equals(SPLIT) : p.data[p.data.length - 1] === 0x0a);
    return { data: Buffer.concat(pieces.map((p) => p.data)).toString(), splits: pieces.filter((p) => p.split).length };
  });
  for (const r of runs) assert.deepEqual(r, runs[0]);
  assert.equal(runs[0].data, 'short\nexactly10!\nyyyyyyyyyy\r\n yyyyyyyyy\r\n yyyyyy\nend');
  assert.equal(runs[0].splits, 2);
});

test('cutAfterEmptyLines', () => {
  const cut = (s: string) => cutAfterEmptyLines(Buffer.from(s)).map(String);
  assert.deepEqual(cut('a\n\r\nb\n\nc\n'), ['a\n\r\n', 'b\n\n', 'c\n']);
  assert.deepEqual(cut('\r\nx\n'), ['\r\n', 'x\n']);
  assert.deepEqual(cut('a\n\n'), ['a\n\n']);
});

test('part kinds: content type or extension', () => {
  const cases: Array<[string, string | undefined, string]> = [
    ['text/plain', undefined, 'text'],
    ['text/csv', 'a.csv', 'text'],
    ['text/html', undefined, 'html'],
    ['application/xhtml+xml', undefined, 'html'],
    ['application/octet-stream', 'page.HTM', 'html'],
    ['application/octet-stream', 'data.json', 'text'],
    ['image/png', 'looks-like.csv', 'text'],
    ['application/ld+json', undefined, 'text'],
    ['message/rfc822', undefined, 'message'],
    ['message/global', undefined, 'message'],
    ['application/octet-stream', 'fwd.eml', 'message'],
    ['message/delivery-status', undefined, 'text'],
    ['image/png', 'dot.png', 'none'],
    ['application/pdf', 'x.pdf', 'none'],
    ['application/octet-stream', undefined, 'none'],
    // Key and configuration files: where private keys and cloud credentials travel.
    ['application/x-pem-file', 'server.pem', 'text'],
    ['application/octet-stream', 'server.key', 'text'],
    ['application/octet-stream', 'secret.ASC', 'text'],
    ['application/octet-stream', 'deploy/id_ed25519', 'text'],
    ['application/octet-stream', '.env', 'text'],
    ['application/octet-stream', 'config.yaml', 'text'],
    ['application/octet-stream', 'id_rsa.pub.gz', 'none'],
  ];
  for (const [type, name, kind] of cases) assert.equal(partKind(type, name), kind, `${type} ${name}`);
});

test('partPath on a plain mailsplit Splitter matches the extractor paths', async () => {
  const inline = Buffer.from(
    'Subject: s\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\na\r\n' +
      '--o\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n' +
      '--i\r\nContent-Type: text/plain\r\n\r\nb\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>c</p>\r\n--i--\r\n--o--\r\n',
  );
  const inputs = [inline, ...['alternative.eml', 'mixed-csv-image.eml', 'base64-text.eml', 'charsets-8bit.eml'].map((f) => readFileSync(join(TEST_DIR, 'fixtures', 'mime', f)))];
  for (const input of inputs) {
    const paths: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = new Splitter();
      s.on('data', (obj: { type: string; multipart?: unknown; _boundary?: unknown; contentType?: string }) => {
        if (obj.type === 'node' && !(obj.multipart && obj._boundary) && obj.contentType !== 'message/rfc822') paths.push(partPath(obj as never));
      });
      s.on('end', resolve);
      s.on('error', reject);
      s.end(input);
    });
    const { sink } = await extractText(input);
    // Leaves only: not a multipart's own text (preamble, epilogue).
    const expected = [...sink.parts.values()].filter((p) => !p.info.contentType.startsWith('multipart/')).map((p) => p.info.path).concat(sink.notExtractedParts.map((p) => p.path));
    const leaves = [...new Set(expected.filter((p) => p !== HEADER_PART && !p.endsWith('.0')))].sort();
    assert.deepEqual(paths.sort(), leaves);
  }
});
