/*
 * `mailveil quarantine list [--json]` as an operator runs it: the real
 * bin/mailveil against a store filled through the API. Output shows ids,
 * times, sizes, rule ids and pseudonyms, never a value or an address.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { QuarantineStore, quarantineDir } from '../../src/quarantine/store';
import { ADDRESS, CARD, SMALL_MESSAGE, bigMessage, chunked, sampleMeta, removeTempDirs, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function filledStore(): Promise<string> {
  const dir = tempDir('mv-qcli-');
  const store = new QuarantineStore(dir);
  await store.put(sampleMeta('0LDER1', SMALL_MESSAGE.length, { receivedAt: '2026-11-20T08:00:00.000Z' }), chunked(SMALL_MESSAGE, 64));
  const big = bigMessage(3 * 1024 * 1024, 2);
  await store.put(
    sampleMeta('NEWER2', big.length, { receivedAt: '2026-11-22T18:14:49.123Z', verdict: 'unscannable', rules: ['credit-card', 'iban'], reasons: ['mime-depth'], rcpts: ['0f1e2d3c4b5a6978'] }),
    chunked(big, 65536),
  );
  return dir;
}

test('quarantine list: one line per entry, newest first, with id, time, size, rules, sender pseudonym and recipient count', async () => {
  const dir = await filledStore();
  const r = run('quarantine', 'list', '--state-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  assert.equal(
    r.out,
    'NEWER2  2026-11-22T18:14:49Z  3.0 MiB  unscannable  rules=credit-card,iban  reasons=mime-depth  from=a1b2c3d4e5f60718  rcpts=1\n' +
      `0LDER1  2026-11-20T08:00:00Z  ${SMALL_MESSAGE.length} B  quarantine  rules=credit-card  from=a1b2c3d4e5f60718  rcpts=2\n`,
  );
  for (const secret of [CARD, ADDRESS]) assert.ok(!r.out.includes(secret));
});

test('quarantine list --json: an array of summaries without findings or subjects', async () => {
  const dir = await filledStore();
  const r = run('quarantine', 'list', '--json', '--state-dir', dir);
  assert.equal(r.code, 0, r.err);
  const list = JSON.parse(r.out);
  assert.ok(Array.isArray(list));
  assert.deepEqual(list.map((e: { id: string }) => e.id), ['NEWER2', '0LDER1']);
  assert.equal(list[0].size, 3 * 1024 * 1024);
  assert.deepEqual(list[0].rules, ['credit-card', 'iban']);
  assert.match(list[0].keyId, /^[0-9a-f]{16}$/);
  assert.ok(!('findings' in list[0]) && !('subjects' in list[0]));
});

test('quarantine list: an empty store says so and exits 0; --json prints []', () => {
  const dir = tempDir('mv-qcli-');
  let r = run('quarantine', 'list', '--state-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'no messages in quarantine\n');
  r = run('quarantine', 'list', '--json', '--state-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), []);
});

test('quarantine list: state_dir comes from --config too; a missing state_dir is a one-line error, exit 1', async () => {
  const dir = await filledStore();
  const cfg = join(tempDir('mv-qcli-'), 'mailveil.yaml');
  writeFileSync(cfg, `state_dir: ${JSON.stringify(dir)}\n`);
  let r = run('quarantine', 'list', '--config', cfg);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.split('\n').filter(Boolean).length, 2);

  const missing = join(dir, 'no-such-dir');
  r = run('quarantine', 'list', '--state-dir', missing);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mailveil: state_dir ${missing} does not exist\n`);
});

test('quarantine list: an unreadable entry is shown with its error, the rest still listed, exit 0', async () => {
  const dir = await filledStore();
  writeFileSync(join(quarantineDir(dir), 'BROKEN.mvq'), 'garbage');
  const r = run('quarantine', 'list', '--state-dir', dir);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 3);
  assert.ok(lines.some((l) => /^BROKEN  \S+Z  7 B  UNREADABLE: corrupt entry: not a quarantine entry$/.test(l)), r.out);
  assert.equal(r.err, 'mailveil: 1 quarantine entry is unreadable\n');
});

test('quarantine list --help and usage errors', () => {
  const r = run('quarantine', 'list', '--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /Usage: mailveil quarantine list/);
  assert.equal(run('quarantine', 'list', '--no-such-flag').code, 2);
});
