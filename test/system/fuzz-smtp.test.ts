/*
 * The SMTP fuzzer (test/fuzz/) in its CI size: a few hundred iterations
 * against the real `bin/mailveil serve`, once with a fixed seed and once with
 * a fresh one (printed, so a failure replays with `npm run fuzz -- --seed S`).
 * Every invariant the long run checks is checked here too, log lines
 * included: each acknowledged message committed once and whole, no command
 * from a body at the next hop, nothing left pending.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatReport, hex, runFuzz } from '../fuzz/engine';

const ITERATIONS = Number(process.env.MAILVEIL_FUZZ_ITERATIONS ?? 300);

async function fuzz(seed: number): Promise<void> {
  const report = await runFuzz({ seed, iterations: ITERATIONS, concurrency: 48, mode: 'spawn', examples: 2 });
  const text = formatReport(report);
  // Always visible in the test output: the seed, the rate and the counts.
  process.stdout.write(text.split('\n').slice(0, 3).join('\n') + '\n');
  assert.equal(report.total, 0, text);
  assert.equal(report.iterations, ITERATIONS);
}

test('SMTP fuzz, fixed seed 0x5eed0001', { timeout: 120_000 }, async () => {
  await fuzz(0x5eed0001);
});

test('SMTP fuzz, a fresh seed', { timeout: 120_000 }, async () => {
  const seed = randomBytes(4).readUInt32BE(0);
  process.stdout.write(`fuzz seed ${hex(seed)} (replay: npm run fuzz -- --seed ${hex(seed)} --iterations ${ITERATIONS})\n`);
  await fuzz(seed);
});
