/*
 * `mailveil tlsrpt report` as an operator runs it: a state_dir seeded
 * through the store API (as serve's delivery code will), then bin/mailveil
 * prints the RFC 8460 JSON. Exit codes: 0 with a report, 1 for a domain
 * without data (one line), 2 for a bad --date (one line).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TlsRptStore } from '../../src/tlsrpt/store';
import { tlsrptDayDir } from '../../src/state-layout';
import { BIN, REPO_ROOT } from '../helpers/paths';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(...args: string[]) {
  // No inherited MAILVEIL_CONFIG: the test names its own instance.
  const env = { ...process.env };
  delete env.MAILVEIL_CONFIG;
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const DAY = '2026-01-31';
const STS = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: mx.b.example', 'max_age: 604800'], mxHosts: ['mx.b.example'] };

async function seeded(): Promise<{ state: string; config: string }> {
  const state = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-cli-'));
  dirs.push(state);
  const at = () => new Date(`${DAY}T08:00:00Z`);
  const w1 = new TlsRptStore(state, { now: at, flushIntervalMs: 0 });
  const w2 = new TlsRptStore(state, { now: at, flushIntervalMs: 0 });
  for (let i = 0; i < 3; i++) w1.record({ policyDomain: 'b.example', policy: STS, result: 'success' });
  w2.record({ policyDomain: 'b.example', policy: STS, result: 'success' });
  w2.record({ policyDomain: 'b.example', policy: STS, result: { type: 'certificate-host-mismatch', sendingMtaIp: '192.0.2.10', receivingMxHostname: 'mx.b.example', receivingMxHelo: 'mx.b.example', receivingIp: '203.0.113.25' } });
  w2.record({ policyDomain: 'a.example', policy: { type: 'no-policy-found', strings: [], mxHosts: [] }, result: 'success' });
  await Promise.all([w1.close(), w2.close()]);
  const config = join(state, 'mailveil.yaml');
  writeFileSync(config, `state_dir: ${state}\nhostname: mx-out.ours.example\n`);
  // state_dir holds the config file too in this test: mark it as mailveil's.
  writeFileSync(join(state, 'state.json'), JSON.stringify({ kind: 'mailveil-state', format: 1, created: new Date().toISOString() }));
  return { state, config };
}

test('--domain prints that domain\'s RFC 8460 report, merged from both writers', async () => {
  const { config } = await seeded();
  const r = run('tlsrpt', 'report', '--date', DAY, '--domain', 'B.Example', '--config', config, '--organization', 'Ours Inc', '--contact', 'tlsrpt@ours.example');
  assert.equal(r.err, '');
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), {
    'organization-name': 'Ours Inc',
    'date-range': { 'start-datetime': '2026-01-31T00:00:00Z', 'end-datetime': '2026-01-31T23:59:59Z' },
    'contact-info': 'tlsrpt@ours.example',
    'report-id': '2026-01-31T00:00:00Z_b.example@mx-out.ours.example',
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': STS.strings, 'policy-domain': 'b.example', 'mx-host': ['mx.b.example'] },
        summary: { 'total-successful-session-count': 4, 'total-failure-session-count': 1 },
        'failure-details': [
          { 'result-type': 'certificate-host-mismatch', 'sending-mta-ip': '192.0.2.10', 'receiving-mx-hostname': 'mx.b.example', 'receiving-mx-helo': 'mx.b.example', 'receiving-ip': '203.0.113.25', 'failed-session-count': 1 },
        ],
      },
    ],
  });
});

test('without --domain: an array, one report per policy domain in name order; defaults from hostname', async () => {
  const { config } = await seeded();
  const r = run('tlsrpt', 'report', '--date', DAY, '--config', config);
  assert.equal(r.code, 0, r.err);
  const reports = JSON.parse(r.out);
  assert.ok(Array.isArray(reports));
  assert.deepEqual(reports.map((x: { policies: { policy: { 'policy-domain': string } }[] }) => x.policies[0].policy['policy-domain']), ['a.example', 'b.example']);
  assert.equal(reports[0]['organization-name'], 'mx-out.ours.example');
  assert.equal(reports[0]['contact-info'], 'postmaster@mx-out.ours.example');
  // A quiet day is an empty array, not an error.
  const quiet = run('tlsrpt', 'report', '--date', '2026-01-01', '--config', config);
  assert.equal(quiet.code, 0);
  assert.equal(quiet.out, '[]\n');
});

test('a domain without data is exit 1 with one line; a bad date or domain is exit 2 with one line; --date is required', async () => {
  const { config } = await seeded();
  let r = run('tlsrpt', 'report', '--date', DAY, '--domain', 'c.example', '--config', config);
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.equal(r.err, 'mailveil: no TLS-RPT data for c.example on 2026-01-31\n');
  for (const bad of ['2026-02-30', '31.01.2026', '2026-1-31']) {
    r = run('tlsrpt', 'report', '--date', bad, '--config', config);
    assert.equal(r.code, 2, bad);
    assert.equal(r.err, `mailveil: --date: must be a UTC day YYYY-MM-DD, e.g. 2026-01-31 (got "${bad}")\n`);
  }
  r = run('tlsrpt', 'report', '--date', DAY, '--domain', 'user@b.example', '--config', config);
  assert.equal(r.code, 2);
  assert.equal(r.err, 'mailveil: --domain: not a domain name (got "user@b.example")\n');
  assert.equal(run('tlsrpt', 'report', '--config', config).code, 2);
  assert.equal(run('tlsrpt', 'report', '--help').code, 0);
});

test('a corrupt counts file is a warning line; the report is still printed from the rest', async () => {
  const { state, config } = await seeded();
  const dir = tlsrptDayDir(state, DAY);
  writeFileSync(join(dir, 'counts-00000000000000ff.json'), '{"kind":');
  const r = run('tlsrpt', 'report', '--date', DAY, '--domain', 'b.example', '--config', config);
  assert.equal(r.code, 0);
  assert.equal(r.err, `mailveil: warning: ${dir}/counts-00000000000000ff.json: not JSON; skipped\n`);
  assert.equal(JSON.parse(r.out).policies[0].summary['total-successful-session-count'], 4);
  assert.equal(readdirSync(dir).length, 3, 'the report only reads');
});

test('a state_dir that is not mailveil\'s is refused with one line', () => {
  const foreign = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-foreign-'));
  dirs.push(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'x');
  const r = run('tlsrpt', 'report', '--date', DAY, '--state-dir', foreign);
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: state_dir .* is not mailveil's .*\n$/);
});
