/*
 * Linearity of MIME text extraction, after mailsplit's own test: an input of
 * size n and one of 4n, each timed (best of 3); the larger may take at most
 * 6x as long. Catches quadratic code without timing anything absolute.
 * The hostile cases are the ones mailsplit's header parser is super-linear on
 * (a run of bare CRs, many continuation lines), a long line arriving in small
 * chunks, and HTML and RFC 2047 words in bulk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractText } from '../helpers/text-sink';

const MAX_RATIO = 6;
const ROUNDS = 5;
/** Other test files run alongside and disturb timings: a failed ratio is measured again before it counts. */
const ATTEMPTS = 3;

async function time(input: Buffer, chunk: number): Promise<number> {
  const t = process.hrtime.bigint();
  const { output } = await extractText(input, chunk, { maxHeaderSize: 16 * 1024 * 1024, maxParts: 100_000 });
  assert.equal(output.length, input.length);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** Best of ROUNDS runs each, n and 4n interleaved so both see the same machine load. */
async function measure(small: Buffer, large: Buffer, chunk: number): Promise<{ t1: number; t4: number }> {
  let t1 = Infinity;
  let t4 = Infinity;
  for (let i = 0; i < ROUNDS; i++) {
    t1 = Math.min(t1, await time(small, chunk));
    t4 = Math.min(t4, await time(large, chunk));
  }
  return { t1, t4 };
}

const cases: Array<{ name: string; make: (n: number) => Buffer; n: number; chunk: number }> = [
  {
    name: 'plain text body',
    n: 512 * 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('Subject: t\r\n\r\n' + 'Lorem ipsum 123-45-6789 dolor sit amet, consectetur.\r\n'.repeat(n / 54)),
  },
  {
    name: 'run of bare CRs in a header',
    n: 512 * 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('Subject: ' + '\r'.repeat(n) + '\r\nFrom: a@example.com\r\n\r\nbody\r\n'),
  },
  {
    name: 'many continuation lines',
    n: 32 * 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('X-Long: a\r\n' + ' b\r\n'.repeat(n) + 'Subject: s\r\n\r\nbody\r\n'),
  },
  {
    name: 'alternating fields and continuations, many encoded words',
    n: 8 * 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('To: =?utf-8?Q?a=C3=A9?= <a@example.com>,\r\n =?utf-8?B?w6k=?= <b@example.com>\r\nX: y\r\n'.repeat(n) + '\r\nbody\r\n'),
  },
  {
    name: 'one long base64 line in small chunks',
    n: 1024 * 1024,
    chunk: 512,
    make: (n) => Buffer.from('Content-Transfer-Encoding: base64\r\n\r\n' + Buffer.alloc((n * 3) / 4, 'text 123-45-6789 ').toString('base64') + '\r\n'),
  },
  {
    name: 'HTML with tags and entities',
    n: 512 * 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('Content-Type: text/html\r\n\r\n' + '<p class="x">123-<b>45</b>&#45;6789 &amp; &nbsp;<!-- c --></p>\r\n'.repeat(n / 64)),
  },
  {
    name: 'many small parts',
    n: 1024,
    chunk: 16 * 1024,
    make: (n) => Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n' + '--b\r\nContent-Type: text/plain\r\n\r\npart 123-45-6789\r\n'.repeat(n) + '--b--\r\n'),
  },
];

for (const c of cases) {
  test(`linear: ${c.name}`, { timeout: 180_000 }, async (t) => {
    const small = c.make(c.n);
    const large = c.make(4 * c.n);
    await time(small, c.chunk); // warm up
    let last = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const { t1, t4 } = await measure(small, large, c.chunk);
      last = `n ${t1.toFixed(1)} ms, 4n ${t4.toFixed(1)} ms (ratio ${(t4 / t1).toFixed(1)})`;
      t.diagnostic(`attempt ${attempt}: ${last}`);
      if (t4 <= MAX_RATIO * Math.max(t1, 1)) return;
    }
    assert.fail(`${c.name}: ${last}, more than ${MAX_RATIO}x`);
  });
}
