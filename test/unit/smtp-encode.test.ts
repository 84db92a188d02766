/*
 * The wire encoder: CRLF only, dot-stuffed, last line terminated, whatever
 * the chunking. This is the stage that makes SMTP smuggling impossible
 * downstream, so it gets a seeded fuzz test against a simple reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { SmtpEncoder } from '../../src/pipeline/stages/smtp-encode';

async function encode(input: Buffer, chunk = input.length || 1): Promise<string> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  const out: Buffer[] = [];
  for await (const b of Readable.from(parts, { objectMode: false }).pipe(new SmtpEncoder())) out.push(b as Buffer);
  return Buffer.concat(out).toString('latin1');
}

/** The obvious, slow definition the encoder must agree with. */
function reference(input: string): string {
  if (input === '') return '';
  const lines = input.replace(/\r\n|\r|\n/g, '\n').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => (l.startsWith('.') ? '.' + l : l) + '\r\n').join('');
}

const CASES: [string, string, string][] = [
  ['CRLF text passes unchanged', 'a\r\nb\r\n', 'a\r\nb\r\n'],
  ['bare LF becomes CRLF', 'a\nb\n', 'a\r\nb\r\n'],
  ['bare CR becomes CRLF', 'a\rb\r', 'a\r\nb\r\n'],
  ['leading dot is doubled', '.x\r\n..y\r\n', '..x\r\n...y\r\n'],
  ['a lone dot line is stuffed', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n'],
  ['smuggling \\n.\\n cannot end data', 'a\n.\nMAIL FROM:<x@example.com>\n', 'a\r\n..\r\nMAIL FROM:<x@example.com>\r\n'],
  ['smuggling \\n.\\r\\n cannot end data', 'a\n.\r\nRCPT TO:<x@example.com>\r\n', 'a\r\n..\r\nRCPT TO:<x@example.com>\r\n'],
  ['smuggling \\r\\n.\\n cannot end data', 'a\r\n.\nDATA\r\n', 'a\r\n..\r\nDATA\r\n'],
  ['smuggling \\r.\\r cannot end data', 'a\r.\rQUIT\r\n', 'a\r\n..\r\nQUIT\r\n'],
  ['missing final line end is added', 'a\r\nb', 'a\r\nb\r\n'],
  ['CR CR LF is a bare CR then CRLF', 'a\r\r\nb\r\n', 'a\r\n\r\nb\r\n'],
  ['empty input stays empty', '', ''],
  ['dot at the very start', '.', '..\r\n'],
];

for (const [name, input, want] of CASES) {
  test(`smtp-encode: ${name}`, async () => {
    for (const size of [1, 3, 17, 1 << 20]) {
      assert.equal(await encode(Buffer.from(input, 'latin1'), size), want, `chunk size ${size}`);
    }
  });
}

test('smtp-encode: seeded fuzz agrees with the reference in 1-, 3- and 17-byte chunks', async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 100000);
  let s = seed || 1;
  const rnd = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 2 ** 32);
  const alphabet = ['\r', '\n', '.', 'a', ' ', '\r\n', '.\r\n'];
  for (let iter = 0; iter < 300; iter++) {
    let input = '';
    const len = Math.floor(rnd() * 60);
    for (let i = 0; i < len; i++) input += alphabet[Math.floor(rnd() * alphabet.length)];
    const want = reference(input);
    for (const size of [1, 3, 17]) {
      const got = await encode(Buffer.from(input, 'latin1'), size);
      assert.equal(got, want, `seed=${seed} iter=${iter} size=${size} input=${JSON.stringify(input)}`);
      assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(got), `bare CR/LF in output, seed=${seed}`);
    }
  }
});
