/*
 * `mailveil gdpr report` (src/gdpr/report.ts): the Art. 30 record is built
 * from the live config and rules, has every section a DPO looks for, and is
 * deterministic apart from its one "Generated at" line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { loadConfig, type Config } from '../../src/config/load';
import { loadRuleSet } from '../../src/rules/load';
import { gdprReport } from '../../src/gdpr/report';
import { removeTempDirs, tempDir } from '../fixtures/quarantine/sample';

after(removeTempDirs);

const AT = new Date('2026-11-22T12:00:00.000Z');

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A config and rule set unlike the defaults, so every value in the report can be traced to its source. */
function customInstance(): { dir: string; cfgFile: string } {
  const dir = tempDir('mv-gdpr-');
  const rules = join(dir, 'rules');
  mkdirSync(rules);
  writeFileSync(
    join(rules, '10-local.yaml'),
    [
      'headers:',
      '  remove: [X-Internal-Ticket]',
      '  received: strip-internal',
      '  internal_networks: [10.20.0.0/16]',
      '  internal_domains: [corp.example]',
      'rules:',
      '  - id: employee-number',
      '    description: Staff number in HR mail',
      "    pattern: 'EMP-[0-9]{6}'",
      '    keywords: [personnel, staff]',
      '    within: 80',
      '    scope: [subject, body]',
      '    action: quarantine',
      '  - id: card-block',
      '    detector: credit_card',
      '    min_count: 3',
      '    action: reject',
      '    reply: "550 5.7.1 Card numbers are not sent by e-mail here"',
      '  - id: iban-tag',
      '    detector: iban',
      '    scope: [attachments]',
      '    action: tag',
      '',
    ].join('\n'),
  );
  const cfgFile = join(dir, 'mailveil.yaml');
  writeFileSync(
    cfgFile,
    [
      'state_dir: ./state',
      'rules_dir: ./rules',
      'next_hop: 192.0.2.25:2525',
      'metrics: 0.0.0.0:9464',
      'admin: 127.0.0.1:9999',
      'clients: [192.0.2.0/24]',
      'unscannable: tempfail',
      'verdict_header: false',
      'hostname: relay.example',
      'inbound_tls: { cert: tls/cert.pem, key: tls/key.pem }',
      'quarantine: { retention: 7d }',
      'audit: { retention: 90d }',
      '',
    ].join('\n'),
  );
  return { dir, cfgFile };
}

function reportFor(cfgFile: string | undefined, generatedAt = AT, edit?: (c: Config) => Config): string {
  let config = loadConfig(cfgFile, {}, REPO_ROOT);
  if (edit) config = edit(config);
  return gdprReport({ config, rules: loadRuleSet(config.rules_dir), version: '9.9.9', generatedAt, configFile: cfgFile });
}

const SECTIONS = [
  '# Record of processing activities: e-mail data-protection filter (mailveil)',
  '## 1. Controller',
  '## 2. Purposes of the processing',
  '## 3. Categories of data subjects',
  '## 4. Categories of personal data',
  '### 4.2 Looked for by the rules',
  '### 4.3 Header anonymisation (data minimisation)',
  '### 4.4 Content that cannot be inspected',
  '## 5. What is kept, where, how it is protected, for how long',
  '## 6. Who can reach the data (recipients)',
  '## 7. Transfers',
  '## 8. Technical and organisational measures (Art. 32)',
  '## 9. Data subject rights',
];

test('gdpr report: every section, in order, and controller placeholders to fill in', () => {
  const md = reportFor(undefined);
  const lines = md.split('\n');
  let last = -1;
  for (const s of SECTIONS) {
    const at = lines.indexOf(s);
    assert.ok(at > last, `section ${JSON.stringify(s)} missing or out of order`);
    last = at;
  }
  assert.match(md, /- Name and contact details of the controller: _to fill in_/);
  assert.match(md, /- Data protection officer and contact: _to fill in_/);
  assert.match(md, /Legal basis \(Art\. 6\): _to fill in_/);
  assert.match(md, /Transfers to third countries .*: _to fill in_/);
  assert.ok(md.endsWith('\n'));
});

test('gdpr report: deterministic except the one "Generated at" line, and no other timestamp', () => {
  const { cfgFile } = customInstance();
  const a = reportFor(cfgFile, AT);
  const b = reportFor(cfgFile, new Date('2031-01-02T03:04:05.678Z'));
  const diff = a.split('\n').flatMap((line, i) => (line === b.split('\n')[i] ? [] : [line]));
  assert.deepEqual(diff, ['Generated at: 2026-11-22T12:00:00.000Z']);
  assert.equal(a.split('\n').length, b.split('\n').length);
  const stamps = a.match(/\d{4}-\d\d-\d\dT\d\d:\d\d/g) ?? [];
  assert.deepEqual(stamps, ['2026-11-22T12:00']);
  assert.equal(reportFor(cfgFile, AT), a);
});

test('gdpr report: the shipped defaults: every rule and detector, the header policy, 30d and 180d retention', () => {
  const md = reportFor(undefined);
  const rules = loadRuleSet(join(REPO_ROOT, 'rules.d'));
  for (const r of rules.rules) assert.ok(md.includes(`| \`${r.id}\` |`), `rule ${r.id} missing`);
  assert.match(md, /\| `payment-card` \| Payment card number .* \(`credit_card`\) \| subject, body, attachments \| redact \(with `\[CARD\]`\) \| at least 1 \|/);
  assert.match(md, /^- redact: `credit_card`, `us_ssn`$/m);
  // Cards and SSNs in address fields cannot be redacted in place: held instead (rules.d/10-payment-cards.yaml).
  assert.match(md, /^- quarantine: `credit_card`, `us_ssn`, `private_key`, `aws_access_key`$/m);
  assert.match(md, /^- monitor: `email_address`, `ipv4`, `ipv6`$/m);
  assert.match(md, /Header fields removed: `X-Originating-IP`, `X-Mailer`/);
  assert.match(md, /`Received` fields: pseudonymise/);
  assert.match(md, /Verdict header: `X-Mailveil-Verdict`, carrying the action and rule ids only/);
  assert.match(md, /\| quarantine \| not delivered; the original is held for review \| the whole original message, encrypted \| `payment-card-in-headers`, `us-ssn-in-headers`, `private-key`, `aws-access-key`, content that cannot be inspected \|/);
  assert.match(md, /\| reject \| .* \| - \|/);
  const state = join(REPO_ROOT, 'var');
  assert.ok(md.includes(`| \`${join(state, 'quarantine')}\` | AES-256-GCM`));
  assert.match(md, /at most 30d \(`quarantine\.retention`\); less if released or deleted/);
  assert.match(md, /180d \(`audit\.retention`\), in whole days/);
  assert.ok(md.includes(`bearer token in \`${join(state, 'admin.token')}\` (0600)`));
  assert.match(md, /Admin API on `127\.0\.0\.1:9465` \(loopback only\)/);
  assert.match(md, /Metrics endpoint `127\.0\.0\.1:9464` \(loopback only\)/);
  assert.match(md, /next hop `127\.0\.0\.1:10026`/);
  assert.match(md, /STARTTLS not configured/);
  assert.match(md, /SMTP accepted only from `127\.0\.0\.0\/8`, `::1\/128`/);
  assert.match(md, /\| Configuration \| built-in defaults \(no config file\) \|/);
  assert.match(md, /\| Software \| mailveil 9\.9\.9 \|/);
});

test('gdpr report: values come from the live config and rules', () => {
  const { dir, cfgFile } = customInstance();
  const md = reportFor(cfgFile);
  const state = join(dir, 'state');
  assert.ok(md.includes(`| Configuration | \`${cfgFile}\` |`));
  assert.ok(md.includes(`| Rules | \`${join(dir, 'rules')}\`: 1 file, 3 rules |`));
  assert.ok(md.includes(`| State directory | \`${state}\` |`));
  assert.match(md, /host name `relay\.example`/);
  // Rules: custom pattern with keywords and scope, a reject rule with a threshold.
  assert.match(md, /\| `employee-number` \| Staff number in HR mail \(RE2 pattern\) \| subject, body \| quarantine \| at least 1, with a keyword \(personnel, staff\) within 80 characters \|/);
  assert.match(md, /\| `card-block` \| Payment card number: Luhn.* \(`credit_card`\) \| subject, body, attachments \| reject \| at least 3 \|/);
  assert.match(md, /\| `iban-tag` \| .* \| attachments \| tag \| at least 1 \|/);
  assert.match(md, /^- quarantine: custom pattern \(`employee-number`\)$/m);
  assert.match(md, /^- reject: `credit_card`$/m);
  assert.ok(!md.includes('EMP-[0-9]{6}'), 'a custom pattern is described, not printed');
  // Header policy from the rule file only.
  assert.match(md, /Header fields removed: `X-Internal-Ticket`$/m);
  assert.match(md, /`Received` fields: strip-internal/);
  assert.match(md, /Internal networks: `10\.20\.0\.0\/16`$/m);
  assert.match(md, /Internal domains: `corp\.example`$/m);
  assert.match(md, /Verdict header: switched off/);
  // Unscannable content and what keeps data.
  assert.match(md, /it takes the action `tempfail`/);
  assert.match(md, /\| tempfail \| deferred with a 4xx reply; the sender retries \| no message data \| content that cannot be inspected \|/);
  assert.match(md, /\| quarantine \| .* \| `employee-number` \|$/m);
  assert.match(md, /\| Held messages.* \| rules `employee-number` \| `/);
  assert.match(md, /at most 7d \(`quarantine\.retention`\)/);
  assert.match(md, /90d \(`audit\.retention`\), in whole days/);
  assert.match(md, /Bounded retention: held messages 7d \(`quarantine\.retention`\), audit log 90d \(`audit\.retention`\)/);
  // Who can reach it, transfers, measures.
  assert.ok(md.includes(`\`${join(state, 'keys')}\` (directory 0700, files 0600)`));
  assert.match(md, /Admin API on `127\.0\.0\.1:9999` \(loopback only\)/);
  assert.match(md, /Metrics endpoint `0\.0\.0\.0:9464`: /);
  assert.match(md, /next hop `192\.0\.2\.25:2525`/);
  assert.ok(md.includes(`STARTTLS offered (certificate \`${join(dir, 'tls', 'cert.pem')}\`)`));
  assert.match(md, /SMTP accepted only from `192\.0\.2\.0\/24`/);
});

test('gdpr report: a config without retention keys says so instead of inventing a period', () => {
  const md = reportFor(undefined, AT, (c) => {
    const { quarantine: _q, audit: _a, ...rest } = c as Config & { quarantine?: unknown; audit?: unknown };
    return rest as Config;
  });
  assert.match(md, /until released or deleted \(no retention set\)/);
  assert.match(md, /until deleted \(no retention set\)/);
  assert.match(md, /Bounded retention: held messages not set, audit log not set/);
  assert.ok(!md.includes('30d') && !md.includes('180d'));
});

test('gdpr report: no rules quarantine and unscannable is not quarantine -> the quarantine row says so', () => {
  const dir = tempDir('mv-gdpr-');
  writeFileSync(join(dir, '10.yaml'), 'rules:\n  - id: only-tag\n    detector: iban\n    action: tag\n');
  const cfg = join(tempDir('mv-gdpr-'), 'c.yaml');
  writeFileSync(cfg, `rules_dir: ${JSON.stringify(dir)}\nunscannable: reject\n`);
  const md = reportFor(cfg);
  assert.match(md, /\| Held messages.* \| no rule currently quarantines \|/);
  assert.match(md, /\| reject \| .* \| content that cannot be inspected \|/);
});

test('mailveil gdpr report: prints the Markdown; --rules and --config apply; bad rules exit 1 with one line', () => {
  const { dir, cfgFile } = customInstance();
  let r = run('gdpr', 'report', '--config', cfgFile);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^# Record of processing activities/);
  assert.match(r.out, /\| `employee-number` \|/);
  assert.match(r.out, /^Generated at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/m);
  r = run('gdpr', 'report', '--config', cfgFile, '--rules', join(REPO_ROOT, 'rules.d'), '--state-dir', join(dir, 'other'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\| `payment-card` \|/);
  assert.ok(!r.out.includes('employee-number'));
  assert.ok(r.out.includes(`| State directory | \`${join(dir, 'other')}\` |`));
  const bad = tempDir('mv-gdpr-');
  writeFileSync(join(bad, '10-bad.yaml'), 'headers:\n  remove: X-Mailer\n');
  r = run('gdpr', 'report', '--rules', bad);
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: rules: .*10-bad\.yaml:2:11: remove must be array\n$/);
  for (const args of [['gdpr', '--help'], ['gdpr', 'report', '--help']]) {
    const h = run(...args);
    assert.equal(h.code, 0);
    assert.match(h.out, /Usage: mailveil gdpr/);
  }
});

test('gdpr report: each rule names its layer; the local rules dir and switched-off rules are listed', () => {
  const local = tempDir('mv-report-local-');
  writeFileSync(join(local, '50-site.yaml'), 'rules:\n  - id: us-ssn\n    detector: us_ssn\n    action: quarantine\n  - id: iban\n    enabled: false\n');
  const config = loadConfig(undefined, {}, REPO_ROOT);
  const md = gdprReport({ config, rules: loadRuleSet(join(REPO_ROOT, 'rules.d'), local), version: '9.9.9', generatedAt: AT });
  assert.match(md, /^\| Rule \| Detects \| Where it looks \| Action \| Counts when \| Layer \|$/m);
  assert.match(md, /^\| `us-ssn` \| .* \| quarantine \| at least 1 \| local \|$/m);
  assert.match(md, /^\| `payment-card` \| .* \| shipped \|$/m);
  assert.doesNotMatch(md, /^\| `iban` \|/m);
  assert.match(md, /^Switched off \(`enabled: false`\): `iban` \(local\)\.$/m);
  assert.ok(md.includes(`| Local rules | \`${local}\`: 1 file (a rule here replaces the shipped rule of its id) |`));
});
