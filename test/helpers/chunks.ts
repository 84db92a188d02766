/*
 * Feeds a stream stage its input cut into fixed-size chunks and collects what
 * comes out, honouring backpressure, so a test can check that chunking never
 * changes the output (the 1-, 3- and 17-byte rule in CONVENTIONS.md). A stage
 * error rejects the promise; nothing more is written after it.
 */
import { once } from 'node:events';
import type { Transform } from 'node:stream';

export async function runChunked(transform: Transform, input: Buffer, size: number): Promise<Buffer> {
  if (!(size >= 1)) throw new RangeError(`chunk size must be >= 1, got ${size}`);
  const out: Buffer[] = [];
  let failed = false;
  const ended = new Promise<void>((resolve, reject) => {
    transform.on('data', (chunk: Buffer) => out.push(chunk));
    transform.once('end', resolve);
    // `on`, not `once`: a destroyed stream may report again, and an unheard 'error' would crash the test run.
    transform.on('error', (err) => {
      failed = true;
      reject(err);
    });
  });
  ended.catch(() => {}); // awaited below; this only stops an early failure counting as unhandled
  for (let i = 0; i < input.length && !failed; i += size) {
    // A failed stream never drains; racing `ended` turns that into a rejection instead of a hang.
    if (!transform.write(input.subarray(i, i + size))) await Promise.race([once(transform, 'drain'), ended]);
  }
  if (!failed) transform.end();
  await ended;
  return Buffer.concat(out);
}
