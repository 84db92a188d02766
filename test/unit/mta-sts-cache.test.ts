/*
 * The MTA-STS cache (src/mta-sts/cache.ts) and resolver (resolve.ts): the
 * cache survives a restart, a corrupt entry defers its own domain only, a
 * new TXT id refetches, a failed refresh keeps the old policy until it
 * expires, and an expired policy with a failing fetch is no policy. DNS and
 * the HTTPS fetch are fakes here (counted); the last test runs the real
 * fetch against an HTTPS host on 127.0.0.1 across a restart.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StsCache, entryFileName } from '../../src/mta-sts/cache';
import { refreshTime, StsResolver, type StsAnswer, type StsResolverOptions } from '../../src/mta-sts/resolve';
import type { FetchResult } from '../../src/mta-sts/fetch';
import { parsePolicy } from '../../src/mta-sts/policy';
import type { TxtLookup } from '../../src/mta-sts/types';
import { mtaStsDir } from '../../src/state-layout';
import { TestPki } from '../helpers/test-pki';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mv-sts-'));
  dirs.push(d);
  return d;
}

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const policyText = (mx: string, maxAge = 86400, mode = 'enforce') => `version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: ${maxAge}\n`;

/** A world of domains: their TXT ids and policy texts, switchable per test, with counters. */
class World {
  now = T0;
  txtIds = new Map<string, string | 'temp'>();
  policies = new Map<string, string | 'fail'>();
  fetches: string[] = [];
  events: unknown[] = [];
  txt: TxtLookup = async (name) => {
    const id = this.txtIds.get(name.replace(/^_mta-sts\./, ''));
    if (id === undefined) return { kind: 'none' };
    if (id === 'temp') return { kind: 'temp' };
    return { kind: 'ok', records: [`v=STSv1; id=${id}`, 'v=spf1 -all'] };
  };
  fetch = async (domain: string): Promise<FetchResult> => {
    this.fetches.push(domain);
    const text = this.policies.get(domain);
    if (text === undefined || text === 'fail') return { kind: 'failed', reason: 'connect', failure: { type: 'sts-policy-fetch-error', detail: 'connect: ECONNREFUSED' } };
    const p = parsePolicy(text);
    if (p.kind !== 'ok') return { kind: 'failed', reason: 'policy', failure: { type: 'sts-policy-invalid', detail: p.detail } };
    return { kind: 'ok', policy: p.policy, text };
  };
  async resolver(dir: string, extra: Partial<StsResolverOptions> = {}): Promise<{ cache: StsCache; r: StsResolver }> {
    const cache = new StsCache(dir, { now: () => this.now });
    await cache.open();
    const r = new StsResolver({ cache, txt: this.txt, fetch: this.fetch, now: () => this.now, random: () => 0.5, onEvent: (e) => this.events.push(e), ...extra });
    return { cache, r };
  }
}

function policyOf(a: StsAnswer): { source: string; mx: string[]; id: string; failure?: string } {
  assert.equal(a.kind, 'policy', JSON.stringify(a));
  const p = a as Extract<StsAnswer, { kind: 'policy' }>;
  return { source: p.source, mx: p.policy.mx, id: p.id, ...(p.failure ? { failure: p.failure.type } : {}) };
}

test('a fetched policy is stored durably and survives a restart (a new instance over the same dir), with no fetch', async () => {
  const w = new World();
  const dir = stateDir();
  w.txtIds.set('example.test', 'id1');
  w.policies.set('example.test', policyText('mx.example.test'));
  const a = await w.resolver(dir);
  assert.deepEqual(policyOf(await a.r.policyFor('Example.TEST.')), { source: 'fetched', mx: ['mx.example.test'], id: 'id1' });
  assert.deepEqual(policyOf(await a.r.policyFor('example.test')), { source: 'cache', mx: ['mx.example.test'], id: 'id1' });
  assert.equal(a.cache.entries(), 1);
  assert.deepEqual(readdirSync(mtaStsDir(dir)), [entryFileName('example.test')], 'one file, no temp file left');
  const file = JSON.parse(readFileSync(join(mtaStsDir(dir), entryFileName('example.test')), 'utf8'));
  assert.deepEqual([file.domain, file.id, file.fetched_at, file.expires_at], ['example.test', 'id1', '2026-03-01T00:00:00.000Z', '2026-03-02T00:00:00.000Z']);

  w.now += 3_600_000;
  const b = await w.resolver(dir); // restart
  assert.equal(b.cache.entries(), 1);
  assert.deepEqual(policyOf(await b.r.policyFor('example.test')), { source: 'cache', mx: ['mx.example.test'], id: 'id1' });
  assert.deepEqual(w.fetches, ['example.test'], 'fetched once, before the restart');
  // Concurrent lookups of one domain share one resolution.
  w.txtIds.set('other.test', 'o1');
  w.policies.set('other.test', policyText('mx.other.test'));
  await Promise.all([b.r.policyFor('other.test'), b.r.policyFor('other.test'), b.r.policyFor('OTHER.test')]);
  assert.equal(w.fetches.filter((d) => d === 'other.test').length, 1);
});

test('a corrupt or unreadable entry defers its own domain (never "no policy"); another domain with the same MX is unaffected', async () => {
  const w = new World();
  const dir = stateDir();
  for (const d of ['broken.test', 'fine.test']) {
    w.txtIds.set(d, 'id1');
    w.policies.set(d, policyText('mx.shared.test'));
  }
  const a = await w.resolver(dir);
  await a.r.policyFor('broken.test');
  await a.r.policyFor('fine.test');
  writeFileSync(join(mtaStsDir(dir), entryFileName('broken.test')), '{"format":1,"domain":"broken.te');
  w.policies.set('broken.test', 'fail'); // and its policy host is down

  const b = await w.resolver(dir); // restart
  assert.equal(b.cache.entries(), 1);
  assert.equal(b.cache.brokenFiles().length, 1);
  const broken = await b.r.policyFor('broken.test');
  assert.equal(broken.kind, 'defer', JSON.stringify(broken));
  assert.equal(broken.kind === 'defer' && broken.reason, 'cache-error');
  assert.equal(broken.kind === 'defer' && broken.failure?.type, 'sts-policy-fetch-error', 'the fetch failure is kept for TLS-RPT');
  w.txtIds.delete('broken.test');
  assert.equal((await b.r.policyFor('broken.test')).kind, 'defer', 'no TXT either: still defer, the cache may hold a policy in force');
  w.txtIds.set('broken.test', 'temp');
  assert.equal((await b.r.policyFor('broken.test')).kind, 'defer');
  assert.deepEqual(policyOf(await b.r.policyFor('fine.test')), { source: 'cache', mx: ['mx.shared.test'], id: 'id1' });
  assert.ok(w.events.some((e) => (e as { event: string }).event === 'mta_sts_cache_error'));

  // A file that is not a file, and an entry that claims another domain, are errors too.
  rmSync(join(mtaStsDir(dir), entryFileName('broken.test')));
  mkdirSync(join(mtaStsDir(dir), entryFileName('broken.test')));
  assert.equal((await (await w.resolver(dir)).r.policyFor('broken.test')).kind, 'defer', 'a directory in its place');
  rmSync(join(mtaStsDir(dir), entryFileName('broken.test')), { recursive: true });
  const fine = readFileSync(join(mtaStsDir(dir), entryFileName('fine.test')));
  writeFileSync(join(mtaStsDir(dir), entryFileName('broken.test')), fine);
  assert.equal((await (await w.resolver(dir)).r.policyFor('broken.test')).kind, 'defer', "another domain's entry");

  // A successful fetch under a live TXT id repairs the entry.
  w.txtIds.set('broken.test', 'id2');
  w.policies.set('broken.test', policyText('mx.shared.test'));
  const c = await w.resolver(dir);
  assert.deepEqual(policyOf(await c.r.policyFor('broken.test')), { source: 'fetched', mx: ['mx.shared.test'], id: 'id2' });
  assert.deepEqual(policyOf(await (await w.resolver(dir)).r.policyFor('broken.test')).source, 'cache');
});

test('a cache folder that cannot be used defers every domain', async () => {
  const w = new World();
  const dir = stateDir();
  writeFileSync(mtaStsDir(dir), 'not a folder');
  w.txtIds.set('example.test', 'id1');
  w.policies.set('example.test', 'fail');
  const { r } = await w.resolver(dir);
  assert.equal((await r.policyFor('example.test')).kind, 'defer');
  assert.equal((await r.policyFor('nopolicy.test')).kind, 'defer');
});

test('one domain\'s broken policy does not touch another sharing its MX hosts', async () => {
  const w = new World();
  const { r } = await w.resolver(stateDir());
  w.txtIds.set('a.test', 'x');
  w.policies.set('a.test', 'version: STSv1\nmode: enforce\nmax_age: 86400\n'); // no mx: invalid
  w.txtIds.set('b.test', 'y');
  w.policies.set('b.test', policyText('mx.shared.test'));
  const a = await r.policyFor('a.test');
  assert.deepEqual(a, { kind: 'none', failure: { type: 'sts-policy-invalid', detail: 'mode enforce needs at least one mx' } });
  assert.deepEqual(policyOf(await r.policyFor('b.test')), { source: 'fetched', mx: ['mx.shared.test'], id: 'y' });
});

test('a new TXT id refetches; a failed refetch keeps the cached policy (with the failure for TLS-RPT); a stripped TXT does not downgrade', async () => {
  const w = new World();
  const { r } = await w.resolver(stateDir());
  w.txtIds.set('example.test', 'id1');
  w.policies.set('example.test', policyText('old.example.test'));
  await r.policyFor('example.test');
  w.txtIds.set('example.test', 'id2');
  w.policies.set('example.test', policyText('new.example.test'));
  assert.deepEqual(policyOf(await r.policyFor('example.test')), { source: 'fetched', mx: ['new.example.test'], id: 'id2' });
  assert.deepEqual(w.fetches.length, 2);
  w.txtIds.set('example.test', 'id3');
  w.policies.set('example.test', 'fail');
  assert.deepEqual(policyOf(await r.policyFor('example.test')), { source: 'cache', mx: ['new.example.test'], id: 'id2', failure: 'sts-policy-fetch-error' });
  for (const t of ['temp', undefined] as const) {
    if (t) w.txtIds.set('example.test', t);
    else w.txtIds.delete('example.test');
    assert.deepEqual(policyOf(await r.policyFor('example.test')), { source: 'cache', mx: ['new.example.test'], id: 'id2' }, `TXT ${t ?? 'none'}`);
  }
});

test('expired, and the fetch fails: no policy (with the failure); no TXT and no cache: no policy', async () => {
  const w = new World();
  const { r, cache } = await w.resolver(stateDir());
  w.txtIds.set('example.test', 'id1');
  w.policies.set('example.test', policyText('mx.example.test', 3600));
  await r.policyFor('example.test');
  w.now += 3600_000; // expires_at reached
  assert.equal(cache.entries(), 0, 'an expired policy is not counted');
  w.policies.set('example.test', 'fail');
  assert.deepEqual(await r.policyFor('example.test'), { kind: 'none', failure: { type: 'sts-policy-fetch-error', detail: 'connect: ECONNREFUSED' } });
  w.txtIds.delete('example.test');
  assert.deepEqual(await r.policyFor('example.test'), { kind: 'none' }, 'expired and no TXT');
  assert.deepEqual(await r.policyFor('nothing.test'), { kind: 'none' });
  w.txtIds.set('nothing.test', 'temp');
  assert.equal((await r.policyFor('nothing.test')).kind, 'none', 'a TXT temp failure with nothing cached: no policy (RFC 8461 3)');
  assert.equal(await r.refreshAll().then(() => cache.all().length), 0, 'refreshAll purges the expired entry');
});

test('refresh: due at a jittered time before expiry; a failed refresh keeps the old policy until it expires, then none', async () => {
  const w = new World();
  const dir = stateDir();
  const { r, cache } = await w.resolver(dir);
  w.txtIds.set('example.test', 'id1');
  w.policies.set('example.test', policyText('mx.example.test', 7 * 86400));
  await r.policyFor('example.test');
  const entry = cache.all()[0];
  // 7 days: lead is 1 day; with U = 0.5 the refresh is 1.25 days before expiry.
  assert.equal(entry.refreshAt, entry.expiresAt - 1.25 * DAY);
  assert.equal(refreshTime(0, 7 * DAY, 0), 6 * DAY);
  assert.equal(refreshTime(0, 7 * DAY, 0.999999), Math.round(7 * DAY - DAY * 1.4999995));
  assert.equal(refreshTime(0, 4 * 3600_000, 0), 3 * 3600_000, 'short max_age: a quarter of it');
  assert.equal(refreshTime(0, 0, 0.3), 0, 'max_age 0');
  const spread = new Set([0, 0.25, 0.5, 0.75].map((u) => refreshTime(T0, T0 + 7 * DAY, u)));
  assert.equal(spread.size, 4, 'the jitter spreads refresh times');

  assert.deepEqual(r.refreshDue(), []);
  w.now = entry.refreshAt;
  assert.deepEqual(r.refreshDue(), ['example.test']);

  // The policy host is down: the old policy stays, and the domain waits before the next try.
  w.policies.set('example.test', 'fail');
  const kept = await r.refresh('example.test');
  assert.equal(kept.kind, 'kept');
  assert.deepEqual(r.refreshDue(), [], 'not retried at once');
  assert.deepEqual(r.refreshDue(w.now + 3600_000 * 1.5), ['example.test'], 'retried within the hour (and a half of jitter)');
  w.now = entry.expiresAt - 1;
  assert.deepEqual(policyOf(await r.policyFor('example.test')), { source: 'cache', mx: ['mx.example.test'], id: 'id1' });
  // A restart in between keeps it too.
  assert.deepEqual(policyOf(await (await w.resolver(dir)).r.policyFor('example.test')).source, 'cache');
  w.now = entry.expiresAt;
  assert.equal((await r.policyFor('example.test')).kind, 'none', 'expired, fetch still failing');

  // Back up: a refresh stores the new policy with a later expiry.
  w.policies.set('example.test', policyText('mx2.example.test', 7 * 86400));
  const again = await r.refresh('example.test');
  assert.equal(again.kind, 'refreshed');
  assert.equal(again.kind === 'refreshed' && again.entry.expiresAt, w.now + 7 * DAY);
  assert.deepEqual(policyOf(await r.policyFor('example.test')), { source: 'cache', mx: ['mx2.example.test'], id: 'id1' });
  assert.equal((await r.refresh('uncached.test')).kind, 'skipped');
});

test('end to end: the real fetch over HTTPS on 127.0.0.1, cached across a restart without a second request', async () => {
  const pki = new TestPki('mta-sts cache');
  const leaf = pki.leaf('mta-sts', { names: ['mta-sts.example.test'] });
  let requests = 0;
  const server = https.createServer({ key: leaf.key, cert: leaf.chain }, (_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'text/plain' }).end(policyText('*.mx.example.test'));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const dir = stateDir();
    const txt: TxtLookup = async () => ({ kind: 'ok', records: ['v=STSv1; id=e2e1'] });
    const opts = { txt, lookup: async () => '127.0.0.1', ca: pki.root.cert, port: (server.address() as AddressInfo).port, timeoutMs: 3000 };
    const c1 = new StsCache(dir);
    await c1.open();
    assert.deepEqual(policyOf(await new StsResolver({ cache: c1, ...opts }).policyFor('example.test')), { source: 'fetched', mx: ['*.mx.example.test'], id: 'e2e1' });
    const c2 = new StsCache(dir);
    await c2.open();
    assert.deepEqual(policyOf(await new StsResolver({ cache: c2, ...opts }).policyFor('example.test')).source, 'cache');
    assert.equal(requests, 1);
  } finally {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
});
