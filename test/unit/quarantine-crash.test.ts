/*
 * kill -9 during put(): a child node process writes a quarantine entry and is
 * SIGKILLed, then the state dir must hold either no entry or a complete one
 * that reads back byte-identical (and a complete one whenever put() had
 * resolved, which is what the SMTP side acknowledges). Temp files are never
 * listed and recover() removes them.
 *
 * This proves the temp-then-rename protocol against process death. It cannot
 * prove fsync ordering against power loss; that rests on the code doing
 * fsync(file), rename, fsync(dir) in that order (src/quarantine/store.ts and
 * durable.ts; the syscall order was checked with strace when they were written).
 *
 * The random-kill case prints its seed; rerun with MV_CRASH_SEED=<seed>.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { keysDir } from '../../src/quarantine/keys';
import { bigMessage, chunked, readAll, sampleMeta, removeTempDirs, tempDir } from '../fixtures/quarantine/sample';

const children = new Set<ChildProcess>();
// A failed assertion must not leave a paused child holding the IPC channel
// (and the test run) open.
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  removeTempDirs();
});

const ID = 'CRASH1';
const CHUNK = 64 * 1024;

// The child is a script written at run time, not a file under test/, so the
// test runner never mistakes it for a test file and runs it on its own.
const CHILD_SOURCE = `
const { QuarantineStore } = require(${JSON.stringify(join(__dirname, '../../src/quarantine/store.js'))});
const { bigMessage, sampleMeta } = require(${JSON.stringify(join(__dirname, '../fixtures/quarantine/sample.js'))});
const [stateDir, size, seed, pauseAfter] = process.argv.slice(2);
const data = bigMessage(Number(size), Number(seed));
async function* source() {
  process.send('started');
  for (let i = 0, n = 0; i < data.length; i += ${CHUNK}, n++) {
    if (n === Number(pauseAfter)) {
      process.send('paused');
      await new Promise((r) => setTimeout(r, 1e9));
    }
    yield data.subarray(i, i + ${CHUNK});
  }
}
new QuarantineStore(stateDir).put(sampleMeta(${JSON.stringify(ID)}, data.length), source()).then(
  () => process.send('done'),
  (err) => { console.error(err); process.exit(3); },
);
`;

function childScript(): string {
  const file = join(tempDir('mv-qcrash-child-'), 'put-child.js');
  writeFileSync(file, CHILD_SOURCE);
  return file;
}

function startPut(script: string, stateDir: string, size: number, seed: number, pauseAfter = -1): { child: ChildProcess; messages: string[] } {
  const child = fork(script, [stateDir, String(size), String(seed), String(pauseAfter)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const messages: string[] = [];
  child.on('message', (m) => messages.push(String(m)));
  return { child, messages };
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

function names(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** The crash invariant; returns what the kill left behind. */
async function checkAfterCrash(stateDir: string, data: Buffer, acknowledged: boolean): Promise<'none' | 'complete'> {
  const store = new QuarantineStore(stateDir);
  const list = await store.list();
  assert.ok(list.length <= 1, `more than one entry: ${JSON.stringify(list)}`);
  if (acknowledged) assert.equal(list.length, 1, 'put() resolved but no entry survived');
  if (list.length === 1) {
    assert.equal(list[0].error, undefined, `a surviving entry must be complete: ${list[0].error}`);
    assert.ok((await readAll(store.readMessage(ID))).equals(data), 'surviving entry differs from the message');
  }
  const temps = [...names(quarantineDir(stateDir)), ...names(keysDir(stateDir))].filter((n) => n.startsWith('.tmp-')).length;
  assert.equal(await store.recover(), temps);
  assert.deepEqual(names(quarantineDir(stateDir)), list.length ? [`${ID}.mvq`] : []);
  return list.length ? 'complete' : 'none';
}

test('crash: SIGKILL in the middle of writing a large message leaves no entry; recover() removes the temp file', { timeout: 60_000 }, async () => {
  const stateDir = tempDir('mv-qcrash-');
  const size = 16 * 1024 * 1024;
  const { child, messages } = startPut(childScript(), stateDir, size, 5, 24);
  while (!messages.includes('paused')) {
    assert.equal(child.exitCode, null, 'child exited before pausing');
    await new Promise((r) => setTimeout(r, 10));
  }
  // Really mid-write: a temp file with over a MiB of ciphertext, no entry yet.
  const temps = names(quarantineDir(stateDir)).filter((n) => n.startsWith(`.tmp-${ID}-`));
  assert.equal(temps.length, 1, names(quarantineDir(stateDir)).join(' '));
  assert.ok(statSync(join(quarantineDir(stateDir), temps[0])).size > 1024 * 1024);
  await kill9(child);
  assert.equal(child.signalCode, 'SIGKILL');

  const store = new QuarantineStore(stateDir);
  assert.deepEqual(await store.list(), []);
  assert.equal(await store.count(), 0);
  assert.equal(await store.recover(), 1);
  assert.deepEqual(names(quarantineDir(stateDir)), []);

  // The client retries after the 4xx; the same id then stores normally.
  const data = bigMessage(size, 5);
  await store.put(sampleMeta(ID, size), chunked(data, CHUNK));
  assert.ok((await readAll(store.readMessage(ID))).equals(data));
});

test('crash: SIGKILL right after put() resolved keeps the complete entry', { timeout: 60_000 }, async () => {
  const stateDir = tempDir('mv-qcrash-');
  const size = 2 * 1024 * 1024 + 3;
  const { child, messages } = startPut(childScript(), stateDir, size, 9, 1e9);
  while (!messages.includes('done')) {
    assert.equal(child.exitCode, null, 'child exited before finishing');
    await new Promise((r) => setTimeout(r, 5));
  }
  await kill9(child);
  assert.equal(await checkAfterCrash(stateDir, bigMessage(size, 9), true), 'complete');
});

test('crash: SIGKILL at random points never leaves a partial entry', { timeout: 120_000 }, async (t) => {
  const seed = Number(process.env.MV_CRASH_SEED ?? Date.now() % 1e9);
  t.diagnostic(`MV_CRASH_SEED=${seed}`);
  let x = seed >>> 0 || 1;
  const random = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  const script = childScript();
  const size = 8 * 1024 * 1024;
  const data = bigMessage(size, seed);

  // Calibrate: when, after spawning, the child starts streaming (node start-up,
  // key creation and the metadata are done) and when put() resolves, so the
  // kills land from key creation through write, fsync, rename and fsync(dir).
  const cal = tempDir('mv-qcrash-');
  const t0 = Date.now();
  const run = startPut(script, cal, size, seed);
  let started = 0;
  run.child.on('message', (m) => {
    if (m === 'started') started = Date.now() - t0;
  });
  await once(run.child, 'exit');
  const done = Date.now() - t0;
  assert.deepEqual(run.messages, ['started', 'done']);
  assert.equal(await checkAfterCrash(cal, data, true), 'complete');
  const from = Math.max(0, started - 15);
  const span = done + 5 - from;

  const seen = { none: 0, complete: 0 };
  for (let i = 0; i < 12; i++) {
    const stateDir = tempDir('mv-qcrash-');
    const { child, messages } = startPut(script, stateDir, size, seed);
    await new Promise((r) => setTimeout(r, from + Math.floor(random() * span)));
    await kill9(child);
    try {
      seen[await checkAfterCrash(stateDir, data, messages.includes('done'))]++;
    } catch (err) {
      (err as Error).message += ` (MV_CRASH_SEED=${seed}, round ${i})`;
      throw err;
    }
  }
  t.diagnostic(`after kill: ${seen.none} without entry, ${seen.complete} complete (kills ${from}..${from + span} ms after spawn; streaming started at ${started} ms)`);
});
