/* The spool: bounded memory, spill to an encrypted file, exact read-back, tamper detection. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Spool, cleanStaleSpool } from '../../src/pipeline/spool';

async function fill(spool: Spool, data: Buffer, chunk: number): Promise<void> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  await pipeline(Readable.from(parts, { objectMode: false }), spool);
}

async function readAll(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of r) out.push(b as Buffer);
  return Buffer.concat(out);
}

const SECRET = 'Card 4111 1111 1111 1111 for synthetic-user@example.com';

test('spool: small message stays in memory and reads back exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-spool-'));
  const data = Buffer.from('Subject: t\r\n\r\n' + SECRET + '\r\n');
  const s = new Spool(dir, 'A1', 1024);
  await fill(s, data, 3);
  assert.equal(s.spilled, false);
  assert.equal(s.size, data.length);
  assert.deepEqual(await readAll(s.read()), data);
  assert.deepEqual(readdirSync(dir), []);
});

test('spool: large message spills to a 0600 file that holds no plaintext, reads back exactly, is removed on dispose', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-spool-'));
  const data = Buffer.from(('Subject: t\r\n\r\n' + SECRET + '\r\n').repeat(5000));
  const s = new Spool(dir, 'B2', 64 * 1024);
  await fill(s, data, 17 * 1024);
  assert.equal(s.spilled, true);
  const [file] = readdirSync(dir);
  assert.equal(statSync(join(dir, file)).mode & 0o777, 0o600);
  assert.ok(!readFileSync(join(dir, file)).includes('4111 1111'), 'spool file holds the card number in clear');
  assert.deepEqual(await readAll(s.read()), data);
  await s.dispose();
  assert.deepEqual(readdirSync(dir), []);
});

test('spool: a tampered file fails the read instead of returning altered bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-spool-'));
  const s = new Spool(dir, 'C3', 1024);
  await fill(s, Buffer.alloc(10_000, 'x'), 4096);
  const path = join(dir, readdirSync(dir)[0]);
  const bytes = readFileSync(path);
  bytes[5000] ^= 1;
  writeFileSync(path, bytes);
  await assert.rejects(readAll(s.read()), /auth|unable to authenticate/i);
});

test('spool: stale files from a crashed process are removed at start', () => {
  const state = mkdtempSync(join(tmpdir(), 'mv-state-'));
  cleanStaleSpool(state);
  writeFileSync(join(state, 'spool', 'OLD.spool'), 'x');
  assert.equal(cleanStaleSpool(state), 1);
  assert.deepEqual(readdirSync(join(state, 'spool')), []);
});
