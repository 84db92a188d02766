/*
 * The DATA deadline (src/smtp/data-deadline.ts) on short real timers: a
 * trickling client is cut soon after client_idle, a silent one is left a
 * moment to smtp-server's own idle timer, a fast one is never cut.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataDeadline } from '../../src/smtp/data-deadline';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function watch(idleMs: number, rate: number) {
  const start = Date.now();
  let expiredAt: number | undefined;
  const d = new DataDeadline(idleMs, rate, () => (expiredAt = Date.now() - start));
  return { d, expiredAt: () => expiredAt };
}

test('a client trickling one byte per tick is cut just after client_idle, not a whole idle period later', async () => {
  const w = watch(200, 500);
  const tick = setInterval(() => w.d.add(1), 20);
  await sleep(600);
  clearInterval(tick);
  w.d.stop();
  const at = w.expiredAt();
  assert.ok(at !== undefined, 'never expired');
  assert.ok(at >= 200 && at < 320, `expired after ${at} ms`);
});

test('a client that looks silent gets a grace of a quarter of client_idle before the rate deadline cuts it', async () => {
  const w = watch(200, 500);
  await sleep(400);
  w.d.stop();
  const at = w.expiredAt();
  assert.ok(at !== undefined && at >= 245 && at < 350, `expired after ${at}`);
});

test('a client that keeps up the rate is never cut, and stop() cancels the deadline', async () => {
  const w = watch(100, 500);
  const tick = setInterval(() => w.d.add(1000), 10);
  await sleep(400);
  clearInterval(tick);
  w.d.stop();
  await sleep(300);
  assert.equal(w.expiredAt(), undefined);
});

test('a rate of 0 switches the deadline off', async () => {
  const w = watch(50, 0);
  await sleep(200);
  assert.equal(w.expiredAt(), undefined);
});
