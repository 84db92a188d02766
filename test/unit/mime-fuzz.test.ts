/*
 * Seeded fuzzing of MimeTextExtractor: the .eml fixtures mutated at random
 * (bytes flipped, inserted, deleted, slices duplicated, input truncated;
 * insertions favour CR, LF, "-", "=", "<", "&" and boundary-like text, where
 * the parsers branch). Each mutant must: not throw, not hang (the test has a
 * timeout), come out byte for byte, keep the sink contract, and give the
 * same result whole and in random-size chunks.
 * The seed is in every assertion message; rerun one with MIME_FUZZ_SEED=<n>
 * (and MIME_FUZZ_ROUNDS for a longer run). A failing input is also written to
 * the temp directory, named in the message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_DIR } from '../helpers/paths';
import { extractText } from '../helpers/text-sink';
import { xorshift32 } from '../helpers/prng';

const ROUNDS = Number(process.env.MIME_FUZZ_ROUNDS ?? 150);
const SEED = Number(process.env.MIME_FUZZ_SEED ?? 0x5eed1234) >>> 0;

/** xorshift32: small, seedable, good enough to pick mutations. */
const rng = (seed: number) => xorshift32(seed, 1);

const INTERESTING = ['\r', '\n', '\r\n', '-', '--', '=', '=\r\n', '<', '&', '&#', '>', ';', '\0', ' ', '"', '?=', '=?utf-8?B?', '<!--', '-->', 'Content-Type: multipart/mixed; boundary=', 'Content-Transfer-Encoding: base64\r\n'];

function mutate(input: Buffer, next: () => number): Buffer {
  let b = Buffer.from(input);
  const edits = 1 + (next() % 8);
  for (let e = 0; e < edits; e++) {
    const at = b.length ? next() % b.length : 0;
    switch (next() % 6) {
      case 0: // flip
        if (b.length) b[at] ^= 1 << (next() % 8);
        break;
      case 1: {
        const piece = next() % 2 ? Buffer.from(INTERESTING[next() % INTERESTING.length], 'latin1') : Buffer.from([next() & 0xff]);
        b = Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
        break;
      }
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + (next() % 16)))]);
        break;
      case 3: {
        // duplicate a slice (a boundary line, a header...)
        const len = 1 + (next() % 64);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 4: // truncate
        if (next() % 4 === 0) b = b.subarray(0, at);
        break;
      case 5: // a bare CR or LF where a CRLF was
        if (b[at] === 0x0d && b[at + 1] === 0x0a) b = Buffer.concat([b.subarray(0, at), b.subarray(at + (next() % 2 ? 1 : 0), at + 1), b.subarray(at + 2)]);
        break;
    }
  }
  return b;
}

const dir = join(TEST_DIR, 'fixtures', 'mime');
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.eml'))
  .sort()
  .map((f) => ({ name: f, data: readFileSync(join(dir, f)) }));

test(`fuzz: ${ROUNDS} mutated fixtures, seed ${SEED}`, { timeout: 120_000 }, async () => {
  assert.ok(fixtures.length >= 8, 'fixtures missing');
  const next = rng(SEED);
  for (let round = 0; round < ROUNDS; round++) {
    const roundSeed = next();
    const local = rng(roundSeed);
    const fx = fixtures[local() % fixtures.length];
    const input = mutate(fx.data, local);
    const chunk = 1 + (local() % 40);
    const limits = local() % 3 === 0 ? { maxMimeDepth: 2, maxParts: 4, maxHeaderSize: 300, maxPartText: 64 } : {};
    const label = `seed ${SEED} round ${round} (MIME_FUZZ_SEED=${SEED}), ${fx.name}, chunks of ${chunk}, limits ${JSON.stringify(limits)}`;
    let dumped = '';
    const where = (): string => {
      if (!dumped) {
        dumped = join(tmpdir(), `mime-fuzz-${SEED}-${round}.eml`);
        writeFileSync(dumped, input);
      }
      return `${label}, input in ${dumped}`;
    };
    let whole;
    let chunked;
    try {
      whole = await extractText(input, Infinity, limits);
      chunked = await extractText(input, chunk, limits);
    } catch (err) {
      assert.fail(`${where()}: threw ${(err as Error).stack}`);
    }
    // Checked first, so the messages (and the dump) are only made on failure.
    const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
    if (!whole.output.equals(input)) assert.fail(`${where()}: output differs from input (whole)`);
    if (!chunked.output.equals(input)) assert.fail(`${where()}: output differs from input (chunked)`);
    if (whole.sink.violations.length) assert.deepEqual(whole.sink.violations, [], `${where()}: sink contract`);
    if (!same(chunked.sink.summary(), whole.sink.summary())) assert.deepEqual(chunked.sink.summary(), whole.sink.summary(), `${where()}: chunking changed the result`);
  }
});
