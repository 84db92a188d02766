/* Finding the end of the header section, however the bytes are chunked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { HeaderBlockTransform, HeaderEndFinder } from '../../src/pipeline/header-block';

function endIn(input: string, size: number): number {
  const f = new HeaderEndFinder();
  const buf = Buffer.from(input, 'latin1');
  for (let i = 0; i < buf.length; i += size) {
    const r = f.feed(buf.subarray(i, i + size));
    if (r >= 0) return i + r;
  }
  return -1;
}

test('header end: CRLF, bare LF, mixed, none, empty header', () => {
  const cases: [string, number][] = [
    ['A: 1\r\nB: 2\r\n\r\nbody', 14],
    ['A: 1\nB: 2\n\nbody', 11],
    ['A: 1\r\n\nbody', 7],
    ['A: 1\n\r\nbody', 7],
    ['A: 1\r\n folded\r\n\r\n', 17],
    ['A: 1\r\nB: 2\r\n', -1],
    ['\r\nbody', 2],
    ['\nbody', 1],
    ['A: x\r\rB\r\n\r\n', 11],
  ];
  for (const [input, want] of cases) {
    for (const size of [1, 3, 17, 1000]) assert.equal(endIn(input, size), want, `${JSON.stringify(input)} in ${size}-byte chunks`);
  }
});

async function run(t: HeaderBlockTransform, input: Buffer, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) parts.push(input.subarray(i, i + size));
  const out: Buffer[] = [];
  for await (const b of Readable.from(parts, { objectMode: false }).pipe(t)) out.push(b as Buffer);
  return Buffer.concat(out);
}

test('header block: rewrite sees exactly the header, the body passes untouched', async () => {
  const msg = Buffer.from('Subject: x\r\nX-A: 1\r\n\r\nline 1\r\n\r\nline 2\r\n');
  for (const size of [1, 3, 17, 4096]) {
    let seen = '';
    const out = await run(new HeaderBlockTransform(1024, (h) => ((seen = h.toString()), Buffer.from('New: 1\r\n\r\n'))), msg, size);
    assert.equal(seen, 'Subject: x\r\nX-A: 1\r\n\r\n');
    assert.equal(out.toString(), 'New: 1\r\n\r\nline 1\r\n\r\nline 2\r\n');
  }
});

test('header block: a header over the limit fails the stream (fail closed)', async () => {
  const msg = Buffer.from('X-Big: ' + 'a'.repeat(5000) + '\r\n\r\nbody');
  await assert.rejects(run(new HeaderBlockTransform(1000, (h) => h), msg, 17), /header section exceeds 1000 bytes/);
});
