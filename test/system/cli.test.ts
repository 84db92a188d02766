/* The command line as an operator meets it: help, version, exit codes, one-line errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, REPO_ROOT } from '../helpers/paths';

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help on every command and --version exit 0', () => {
  for (const args of [['--help'], ['serve', '--help'], ['rules', '--help'], ['rules', 'check', '--help']]) {
    const r = run(...args);
    assert.equal(r.code, 0, args.join(' '));
    assert.match(r.out, /Usage: mailveil/);
  }
  assert.match(run('--version').out, /^\d+\.\d+\.\d+\n$/);
});

test('usage errors exit 2', () => {
  assert.equal(run('serve', '--no-such-flag').code, 2);
  assert.equal(run('frobnicate').code, 2);
});

test('no command prints the usage to stderr and exits 2; `help` still exits 0', () => {
  for (const args of [[], ['quarantine']]) {
    const r = run(...args);
    assert.equal(r.code, 2, args.join(' ') || '(no arguments)');
    assert.equal(r.out, '');
    assert.match(r.err, /^Usage: mailveil/);
  }
  const help = run('help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^Usage: mailveil/);
});

test('serve --print-pipeline prints the whole lifecycle: passes, steps with their branches, after steps, outcomes', () => {
  const r = run('serve', '--print-pipeline');
  assert.equal(r.code, 0);
  const lines = r.out.trim().split('\n');
  assert.deepEqual(lines.slice(0, 4), [
    'pass 1: client -> header-scan -> tls-headers -> dlp-scan -> subject-index -> spool',
    'decide: decide',
    'pass 2: spool -> redact -> anonymise-headers -> verdict-header -> smtp-encode -> next-hop',
    'steps:',
  ]);
  const step = (name: string) => lines.find((l) => l.startsWith(`  ${name}: `)) ?? '';
  assert.match(step('route'), /=> hold \| escalate \| deliver \| end:policy_reject \| end:policy_tempfail \| end:header_too_big/);
  // Verified TLS required: a verified path, or 451 4.7.5 / 550 5.7.10.
  assert.match(step('escalate'), /=> deliver \| end:tls_required_deferred \| end:tls_required_bounced/);
  assert.ok(lines.includes('  tls_required_bounced: MV_TLS_REQUIRED_BOUNCE'));
  // A failed redaction moves deliver -> hold.
  assert.match(step('deliver'), /=> hold \| end:delivered \| end:next_hop_refused/);
  assert.ok(lines.includes('after: count -> log -> audit'));
  assert.ok(lines.includes('  too_big: MV_TOO_BIG'));
  assert.ok(lines.includes("  next_hop_refused: the next hop's 5xx, unchanged"));
});

test('a bad config or flag is one line naming the key, exit 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-cli-'));
  const cfg = join(dir, 'mailveil.yaml');
  writeFileSync(cfg, 'listen: 127.0.0.1:10025\nlimits:\n  max_message_size: lots\n');
  let r = run('serve', '--config', cfg);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mailveil: ${cfg}: limits.max_message_size: must be a size, e.g. 50MiB, 512KB or 500B\n`);
  writeFileSync(cfg, 'listen: 127.0.0.1:10025\nnext_hops: 127.0.0.1:10026\n');
  r = run('serve', '--config', cfg);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mailveil: ${cfg}: next_hops: unknown key\n`);
  r = run('serve', '--listen', '127.0.0.1', '--state-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: config: listen: must be HOST:PORT.*\n$/);
});

test('serve refuses to start on a broken rule set, naming file:line:col', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-cli-'));
  writeFileSync(join(dir, '10-bad.yaml'), 'headers:\n  remove: X-Mailer\n');
  const r = run('serve', '--rules', dir, '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:1', '--metrics', '127.0.0.1:2');
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: rules: .*10-bad\.yaml:2:11: remove must be array\n$/);
});

test('rules check: exit 0 on the shipped set, exit 1 with file:line:col lines on a broken one', () => {
  const ok = run('rules', 'check', '--rules', join(REPO_ROOT, 'rules.d'));
  assert.equal(ok.code, 0);
  // The first line sums up; then each layer and each rule with its layer.
  assert.match(ok.out, /^ok: \d+ files?, \d+ rules\n/);
  assert.match(ok.out, /^  us-ssn +redact +shipped +\/.+11-us-ssn\.yaml:\d+$/m);
  const dir = mkdtempSync(join(tmpdir(), 'mv-cli-'));
  writeFileSync(join(dir, 'a.yaml'), 'headers:\n  received: nope\n  bogus: 1\n');
  writeFileSync(join(dir, 'b.yaml'), 'rules:\n  - id: Bad_Id\n    detector: us_ssn\n    action: tag\n');
  const bad = run('rules', 'check', '--rules', dir);
  assert.equal(bad.code, 1);
  const lines = bad.out.trim().split('\n');
  assert.ok(lines.length >= 3);
  for (const l of lines) assert.match(l, /^\/.+\.yaml:\d+:\d+: .+$/);
  assert.ok(lines.some((l) => /a\.yaml:3:3: unknown key 'bogus'/.test(l)));
  assert.ok(lines.some((l) => /b\.yaml:2:9: id must match \[a-z0-9-\]\+/.test(l)));
});
