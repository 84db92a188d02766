/*
 * decodeWholePart (mime/transfer-decode.ts) is what the redactor decodes a
 * part with, since the redactor's own decoding (libqp.decode, and base64
 * by padded runs) went: one decoder per transfer encoding. It must give
 * what those gave, byte for byte, so a redacted part comes out as before.
 * The old decoders are the reference here; a seeded fuzz of the characters
 * that matter ("=", hex digits, blanks, CR, LF, padding, garbage) compares
 * them, and prints its seed on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import libqp from 'libqp';
import { decodeWholePart } from '../../src/mime/transfer-decode';
import { xorshift32 } from '../helpers/prng';

/** The redactor's base64 before: padded runs decoded on their own. */
function oldBase64(raw: Buffer): Buffer {
  const clean = raw.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
  const runs = clean.match(/[A-Za-z0-9+/]+={0,2}/g) ?? [];
  return Buffer.concat(runs.map((r) => Buffer.from(r, 'base64')));
}

const QP_CASES: [string, string][] = [
  ['caf=E9', 'caf\xe9'],
  ['soft=\r\nbreak', 'softbreak'],
  ['trailing   \r\nblanks\t\r\n', 'trailing\r\nblanks\r\n'],
  ['split =4=\r\n1 escape', 'split A escape'],
  ['==\r\n41', 'A'],
  ['= \r\nsoft after blanks', 'soft after blanks'],
  ['bare =\rCR', 'bare =\rCR'],
  ['==', '='],
  ['=4x and =G0', '=4x and =G0'],
  ['ends with =4', 'ends with =4'],
];

test('quoted-printable: known cases', () => {
  for (const [input, want] of QP_CASES) {
    const got = decodeWholePart(Buffer.from(input, 'latin1'), 'quoted-printable');
    assert.equal(got.toString('latin1'), want, JSON.stringify(input));
    assert.ok(got.equals(libqp.decode(input)), `libqp differs on ${JSON.stringify(input)}`);
  }
});

test('other encodings are returned as they are', () => {
  const raw = Buffer.from('=41 QUJD\r\n', 'latin1');
  for (const enc of ['7bit', '8bit', 'binary', '', 'x-unknown', 'BASE64']) assert.equal(decodeWholePart(raw, enc), raw, enc);
});

test('seeded fuzz: the same bytes as the decoders the redactor used before', () => {
  const seed = Number(process.env.FUZZ_SEED) || (Date.now() >>> 0);
  const rnd = xorshift32(seed);
  const pick = (s: string) => s[rnd() % s.length];
  const qpChars = '=AFaf09xz \t\r\n_\x80\xff';
  const b64Chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \r\n\t-.\x80_';
  for (let i = 0; i < 20_000; i++) {
    const len = rnd() % 64;
    let qp = '';
    let b64 = '';
    for (let k = 0; k < len; k++) {
      qp += rnd() % 8 ? pick(qpChars) : String.fromCharCode(rnd() % 256);
      b64 += pick(b64Chars);
    }
    const q = Buffer.from(qp, 'latin1');
    const b = Buffer.from(b64, 'latin1');
    assert.ok(decodeWholePart(q, 'quoted-printable').equals(libqp.decode(qp)), `seed ${seed}: quoted-printable ${JSON.stringify(qp)}`);
    assert.ok(decodeWholePart(b, 'base64').equals(oldBase64(b)), `seed ${seed}: base64 ${JSON.stringify(b64)}`);
  }
});
