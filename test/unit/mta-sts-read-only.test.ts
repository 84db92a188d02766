/* The read-only MTA-STS cache of `tls check`, and the DNS adapters of the MTA-STS resolver. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StsCache, entryFileName } from '../../src/mta-sts/cache';
import { ReadOnlyStsCache } from '../../src/mta-sts/read-only-cache';
import { parsePolicy } from '../../src/mta-sts/policy';
import { stsLookups } from '../../src/mta-sts/dns';

const TEXT = 'version: STSv1\nmode: enforce\nmx: mx1.a.test\nmax_age: 86400\n';

test('read-only cache: reads what serve stored, never creates the folder, never stores', async () => {
  const state = mkdtempSync(join(tmpdir(), 'mv-sts-ro-'));
  const ro = new ReadOnlyStsCache(state);
  await ro.open();
  assert.deepEqual(await ro.get('a.test'), { kind: 'miss' });
  assert.equal(existsSync(ro.dir), false, 'the folder is not made');
  const p = parsePolicy(TEXT);
  if (p.kind !== 'ok') throw new Error('bad policy');
  const now = Date.now();
  const entry = { domain: 'a.test', id: '1', policy: p.policy, text: TEXT, fetchedAt: now, expiresAt: now + 86_400_000, refreshAt: now + 80_000_000 };
  await ro.put(entry);
  assert.equal(existsSync(ro.dir), false, 'put stores nothing');
  const rw = new StsCache(state);
  await rw.open();
  await rw.put(entry);
  const hit = await ro.get('a.test');
  assert.equal(hit.kind, 'hit');
  assert.equal((hit as { entry: { policy: { mode: string } } }).entry.policy.mode, 'enforce');
  writeFileSync(join(ro.dir, entryFileName('b.test')), '{not json');
  assert.equal((await ro.get('b.test')).kind, 'error');
  const before = readdirSync(ro.dir).sort();
  await ro.purgeExpired();
  await ro.remove('a.test');
  assert.deepEqual(readdirSync(ro.dir).sort(), before);
});

test('stsLookups: TXT temp is temp (never "no record"), NXDOMAIN and empty are none; the host lookup takes IPv4 first', async () => {
  const l = stsLookups({
    txt: async (n) => (n.startsWith('temp') ? { kind: 'temp', reason: 'timeout', detail: '' } : n.startsWith('nx') ? { kind: 'nxdomain', secure: false } : n.startsWith('empty') ? { kind: 'txt', records: [], secure: false } : { kind: 'txt', records: ['v=STSv1; id=1'], secure: false }),
    addresses: async (h) => (h === 'none.test' ? { kind: 'nxdomain', secure: false } : { kind: 'addresses', ipv4: ['192.0.2.1'], ipv6: ['2001:db8::1'], secure: false }),
  });
  assert.deepEqual(await l.txt('temp.test'), { kind: 'temp' });
  assert.deepEqual(await l.txt('nx.test'), { kind: 'none' });
  assert.deepEqual(await l.txt('empty.test'), { kind: 'none' });
  assert.deepEqual(await l.txt('ok.test'), { kind: 'ok', records: ['v=STSv1; id=1'] });
  assert.equal(await l.lookup('mta-sts.a.test'), '192.0.2.1');
  await assert.rejects(l.lookup('none.test'), /no such host/);
});
