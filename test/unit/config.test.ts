/*
 * Config: defaults from DESIGN.md, one-line errors that name the key,
 * durations and sizes that carry units, paths resolved where they were
 * written, and where a command finds its config file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { TestPki } from '../helpers/test-pki';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { loadConfig } from '../../src/config/load';
import { timeoutOrderWarnings } from '../../src/config/timeout-order';
import { configSchema } from '../../src/config/schema';
import { durationFix, parseDuration } from '../../src/config/duration';
import { parseSize, sizeFix } from '../../src/config/size';
import { configFile, DEFAULT_CONFIG_FILE } from '../../src/config/default-file';

function withFile(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'mv-cfg-')), 'mailveil.yaml');
  writeFileSync(f, text);
  return f;
}

test('config: defaults match DESIGN.md', () => {
  const c = loadConfig(undefined, {}, '/srv');
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 10025 });
  assert.deepEqual(c.next_hop, { host: '127.0.0.1', port: 10026 });
  assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(c.admin, { host: '127.0.0.1', port: 9465 });
  assert.deepEqual(c.clients, ['127.0.0.0/8', '::1/128']);
  assert.equal(c.rules_dir, '/srv/rules.d');
  assert.equal(c.state_dir, '/srv/var');
  assert.equal(c.unscannable, 'quarantine');
  assert.equal(c.limits.max_message_size, 50 * 1024 * 1024);
  assert.equal(c.limits.max_header_size, 1024 * 1024);
  assert.equal(c.limits.max_mime_depth, 32);
  assert.equal(c.limits.max_parts, 1000);
  assert.equal(c.verdict_header, 'X-Mailveil-Verdict');
});

test('config: file values, paths relative to the file, flags override the file', () => {
  const f = withFile('listen: "[::1]:2525"\nstate_dir: state\nlimits: { max_message_size: 10MB }\nverdict_header: false\n');
  const c = loadConfig(f, { next_hop: '127.0.0.1:2626' }, '/elsewhere');
  assert.deepEqual(c.listen, { host: '::1', port: 2525 });
  assert.deepEqual(c.next_hop, { host: '127.0.0.1', port: 2626 });
  assert.equal(c.state_dir, join(f, '..', 'state'));
  assert.equal(c.limits.max_message_size, 10_000_000);
  assert.equal(c.verdict_header, false);
});

test('config: errors are one line naming the file and the key', () => {
  const cases: [string, RegExp][] = [
    ['lisen: 127.0.0.1:25\n', /mailveil\.yaml: lisen: unknown key$/],
    ['listen: localhost\n', /mailveil\.yaml: listen: must be HOST:PORT/],
    ['next_hop: 127.0.0.1:99999\n', /next_hop: must be HOST:PORT/],
    ['limits: { max_message_size: 12 parsecs }\n', /limits\.max_message_size: must be a size/],
    ['limits: { max_header_sise: 1MiB }\n', /limits\.max_header_sise: unknown key/],
    ['clients: [10.0.0.0/33]\n', /clients\.0: must be an address or CIDR/],
    ['unscannable: ignore\n', /unscannable: must be equal to one of/],
    ['listen: [unclosed\n', /mailveil\.yaml: /],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => loadConfig(withFile(text)), (e: Error) => {
      assert.match(e.message, want);
      assert.ok(!e.message.includes('\n'), 'error is one line');
      return true;
    });
  }
  assert.throws(() => loadConfig(undefined, { listen: 'nonsense' }), /config: listen: must be HOST:PORT/);
  assert.throws(() => loadConfig('/nonexistent/mailveil.yaml'), /cannot read: ENOENT/);
});

// ---- units (issue 8, point 13) ----------------------------------------------

/** Every key whose schema format is `duration` or `size`, as dotted paths. */
function unitKeys(format: 'duration' | 'size'): string[] {
  const out: string[] = [];
  const walk = (props: Record<string, any>, prefix: string) => {
    for (const [k, s] of Object.entries(props)) {
      if (s.format === format) out.push(prefix + k);
      if (s.properties) walk(s.properties, `${prefix}${k}.`);
    }
  };
  walk(configSchema.properties, '');
  return out;
}

function yamlAt(dotted: string, value: string): string {
  const [first, second] = dotted.split('.');
  return second ? `${first}: { ${second}: ${value} }\n` : `${first}: ${value}\n`;
}

function configError(text: string): string {
  const f = withFile(text);
  try {
    loadConfig(f);
  } catch (err) {
    const m = (err as Error).message;
    assert.ok(m.startsWith(`${f}: `), m);
    assert.ok(!m.includes('\n'), 'error is one line');
    return m.slice(f.length + 2);
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

test('units: the schema lists every duration and size, and none accepts a bare number', () => {
  const durations = unitKeys('duration');
  const sizes = unitKeys('size');
  assert.deepEqual(durations, [
    'timeouts.next_hop_connect', 'timeouts.next_hop_command', 'timeouts.next_hop_write', 'timeouts.next_hop_data',
    'timeouts.client_idle', 'timeouts.drain', 'next_hop_pool.idle_timeout', 'quarantine.retention', 'audit.retention', 'dns.timeout',
  ]);
  assert.deepEqual(sizes, ['limits.max_message_size', 'limits.max_header_size', 'limits.spool_memory', 'timeouts.client_min_data_rate']);
  for (const key of durations) assert.equal(configError(yamlAt(key, '600')), `${key}: 600 has no unit; write 600s (or 600000ms)`);
  for (const key of sizes) assert.equal(configError(yamlAt(key, '2048')), `${key}: 2048 has no unit; write 2KiB or 2048B`);
});

test('units: a bare number is an error naming the key and the fix (HIT); the same value with a unit loads (MISS)', () => {
  assert.equal(configError('timeouts: { drain: 60 }\n'), 'timeouts.drain: 60 has no unit; write 60s (or 60000ms)');
  assert.equal(configError('timeouts: { drain: "60" }\n'), 'timeouts.drain: 60 has no unit; write 60s (or 60000ms)');
  assert.equal(configError('timeouts: { next_hop_data: 1.5 }\n'), 'timeouts.next_hop_data: 1.5 has no unit; write 1.5s (or 1500ms)');
  assert.equal(configError('limits: { max_message_size: 5242880 }\n'), 'limits.max_message_size: 5242880 has no unit; write 5MiB or 5242880B');
  assert.equal(configError('limits: { spool_memory: 1000 }\n'), 'limits.spool_memory: 1000 has no unit; write 1000B');
  assert.equal(configError('timeouts: { client_min_data_rate: 500 }\n'), 'timeouts.client_min_data_rate: 500 has no unit; write 500B');
  assert.equal(configError('quarantine: { retention: 0 }\n'), 'quarantine.retention: 0 has no unit; write 0s (or 0ms)');
  // Not a number at all: the format hint, not a unit suggestion.
  assert.equal(configError('timeouts: { drain: -5 }\n'), 'timeouts.drain: must be a duration, e.g. 500ms, 30s, 5m, 7d');
  assert.equal(configError('timeouts: { drain: soon }\n'), 'timeouts.drain: must be a duration, e.g. 500ms, 30s, 5m, 7d');
  assert.equal(configError('limits: { max_header_size: 12 parsecs }\n'), 'limits.max_header_size: must be a size, e.g. 50MiB, 512KB or 500B');
  assert.equal(configError('limits: { max_header_size: true }\n'), 'limits.max_header_size: must be a size, e.g. 50MiB, 512KB or 500B');

  const c = loadConfig(
    withFile(
      'timeouts: { drain: 60s, next_hop_connect: 500ms, next_hop_command: 5m, next_hop_write: 2h, next_hop_data: 1d, client_idle: 90s, client_min_data_rate: 500B }\n' +
        'limits: { max_message_size: 50MiB, max_header_size: 512KB, spool_memory: 512KiB }\n' +
        'next_hop_pool: { idle_timeout: 30s }\nquarantine: { retention: 7d }\naudit: { retention: 2h }\n',
    ),
  );
  assert.deepEqual(c.timeouts, {
    drain: 60_000, next_hop_connect: 500, next_hop_command: 300_000, next_hop_write: 7_200_000, next_hop_data: 86_400_000,
    client_idle: 90_000, client_min_data_rate: 500,
  });
  assert.equal(c.limits.max_message_size, 50 * 1024 * 1024);
  assert.equal(c.limits.max_header_size, 512_000);
  assert.equal(c.limits.spool_memory, 512 * 1024);
  assert.equal(c.next_hop_pool.idle_timeout, 30_000);
  assert.equal(c.quarantine.retention, 7 * 86_400_000);
  assert.equal(c.audit.retention, 7_200_000);
});

test('units: the timeouts defaults (schema.ts) load as milliseconds and bytes per second', () => {
  const c = loadConfig(undefined, {}, '/srv');
  assert.deepEqual(c.timeouts, {
    next_hop_connect: 10_000, next_hop_command: 60_000, next_hop_write: 60_000, next_hop_data: 300_000,
    client_idle: 300_000, client_min_data_rate: 500, drain: 60_000,
  });
  assert.equal(c.limits.spool_memory, 1024 * 1024);
  assert.equal(c.next_hop_pool.idle_timeout, 30_000);
});

test('units: parseDuration and parseSize take text with a unit only; the fixes are valid input', () => {
  for (const [text, ms] of [['500ms', 500], ['30s', 30_000], ['5m', 300_000], ['2h', 7_200_000], ['7d', 604_800_000], [' 1.5s ', 1500], ['10M', 600_000]] as const) {
    assert.equal(parseDuration(text), ms, text);
  }
  for (const bad of [60, '60', '', 's', '5 minutes', '-1s', '1e3ms', undefined]) assert.equal(parseDuration(bad), undefined, String(bad));
  for (const [text, bytes] of [['500B', 500], ['512KB', 512_000], ['512KiB', 524_288], ['50MiB', 52_428_800], ['1GB', 1e9], ['2gib', 2 * 1024 ** 3], ['1.5KiB', 1536], ['10k', 10_000]] as const) {
    assert.equal(parseSize(text), bytes, text);
  }
  for (const bad of [5242880, '5242880', '', 'MiB', '5 parsecs', '-1B', undefined]) assert.equal(parseSize(bad), undefined, String(bad));
  assert.equal(durationFix(60), '60s (or 60000ms)');
  assert.equal(durationFix(0.25), '0.25s (or 250ms)');
  assert.equal(sizeFix(5 * 1024 * 1024), '5MiB or 5242880B');
  assert.equal(sizeFix(3 * 1024 ** 3), '3GiB or 3221225472B');
  assert.equal(sizeFix(1536), '1536B');
  assert.equal(sizeFix(0), '0B');
  for (const n of [60, 0.25, 1800]) assert.ok(parseDuration(durationFix(n).split(' ')[0]) === Math.round(n * 1000));
  for (const n of [500, 1024, 5 * 1024 * 1024]) assert.ok(parseSize(sizeFix(n).split(' ')[0]) === n);
});

// ---- messages for keys with a format (issue 9) ------------------------------

test('a value of the wrong type on a key with a format says what the format is', () => {
  assert.equal(configError('listen: 10125\n'), 'listen: must be HOST:PORT, e.g. 127.0.0.1:10025 or [::1]:10025');
  assert.equal(configError('next_hop: 10026\n'), 'next_hop: must be HOST:PORT, e.g. 127.0.0.1:10025 or [::1]:10025');
  assert.equal(configError('metrics: [127.0.0.1, 9464]\n'), 'metrics: must be HOST:PORT, e.g. 127.0.0.1:10025 or [::1]:10025');
  assert.equal(configError('clients: [10]\n'), 'clients.0: must be an address or CIDR, e.g. 10.0.0.0/8 or ::1/128');
  assert.equal(configError('state_dir: ""\n'), 'state_dir: must not be empty');
  // MISS: the same keys written correctly load.
  const c = loadConfig(withFile('listen: 127.0.0.1:10125\nnext_hop: "[::1]:10026"\nclients: [10.0.0.0/8]\n'));
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 10125 });
  assert.deepEqual(c.next_hop, { host: '::1', port: 10026 });
});

// ---- paths (issue 8, point 11) -----------------------------------------------

test('paths: every path key written in the file resolves against the file\'s directory', () => {
  const f = withFile(
    'rules_dir: rules\nstate_dir: ./state\ninbound_tls: { cert: tls/cert.pem, key: ../key.pem }\nadmin_tls: { cert: admin.pem, key: /abs/admin-key.pem }\n',
  );
  const dir = dirname(f);
  const c = loadConfig(f, {}, '/elsewhere');
  assert.equal(c.rules_dir, join(dir, 'rules'));
  assert.equal(c.state_dir, join(dir, 'state'));
  assert.deepEqual(c.inbound_tls, { cert: join(dir, 'tls/cert.pem'), key: join(dir, '..', 'key.pem') });
  assert.deepEqual(c.admin_tls, { cert: join(dir, 'admin.pem'), key: '/abs/admin-key.pem' });
});

test('paths: flags resolve against the working directory; defaults against the file\'s directory, or the working directory without a file', () => {
  const f = withFile('listen: 127.0.0.1:2525\n');
  const dir = dirname(f);
  let c = loadConfig(f, {}, '/elsewhere');
  assert.equal(c.state_dir, join(dir, 'var'), 'one config names one instance from any working directory');
  assert.equal(c.rules_dir, join(dir, 'rules.d'));
  c = loadConfig(f, { state_dir: 'mine', rules_dir: '/r' }, '/elsewhere');
  assert.equal(c.state_dir, '/elsewhere/mine');
  assert.equal(c.rules_dir, '/r');
  c = loadConfig(undefined, {}, '/');
  assert.equal(c.state_dir, '/var', 'the case the marker check exists for');
  assert.equal(c.rules_dir, '/rules.d');
  // A relative --config is read from the working directory passed in.
  c = loadConfig(basename(f), {}, dir);
  assert.equal(c.listen.port, 2525);
  assert.equal(c.state_dir, join(dir, 'var'));
  assert.throws(() => loadConfig(undefined, { state_dir: '' }, '/srv'), { message: 'config: state_dir: must not be empty' }, 'an empty flag is not the working directory');
});

// ---- the default config file (issue 8, point 11) -----------------------------

test('config file lookup: --config, else MAILVEIL_CONFIG, else /etc/mailveil/mailveil.yaml when present, else none', () => {
  const etc = '/etc/mailveil/mailveil.yaml';
  const present = (p: string) => p === etc;
  const absent = () => false;
  const look = (env: NodeJS.ProcessEnv, exists: (p: string) => boolean) => ({ env, defaultFile: etc, exists });
  assert.equal(DEFAULT_CONFIG_FILE, etc);
  assert.equal(configFile('/x.yaml', look({ MAILVEIL_CONFIG: '/env.yaml' }, present)), '/x.yaml', '--config wins over both');
  assert.equal(configFile(undefined, look({ MAILVEIL_CONFIG: '/env.yaml' }, present)), '/env.yaml', 'MAILVEIL_CONFIG wins over /etc');
  assert.equal(configFile(undefined, look({ MAILVEIL_CONFIG: '/env.yaml' }, absent)), '/env.yaml', 'a missing MAILVEIL_CONFIG file still counts (read error, not defaults)');
  assert.equal(configFile(undefined, look({}, present)), etc);
  assert.equal(configFile(undefined, look({ MAILVEIL_CONFIG: '' }, present)), etc, 'an empty variable is unset');
  assert.equal(configFile(undefined, look({}, absent)), undefined);
  assert.equal(configFile('relative.yaml', look({}, present)), 'relative.yaml');
});

test('timeouts below Postfix\'s smtp client limits: the defaults pass, a value at or above a limit is named', () => {
  const defaults = loadConfig(undefined, {}).timeouts;
  assert.deepEqual(timeoutOrderWarnings(defaults), []);
  const w = timeoutOrderWarnings({ ...defaults, next_hop_data: 600_000, next_hop_write: 200_000 });
  assert.equal(w.length, 2);
  assert.match(w[0], /^timeouts\.next_hop_data \(600s\) is not below Postfix's smtp_data_done_timeout \(600s\)/);
  assert.match(w[1], /^timeouts\.next_hop_write \(200s\).*smtp_data_xfer_timeout/);
  assert.match(timeoutOrderWarnings({ ...defaults, next_hop_command: 300_000 }).join('\n'), /smtp_rcpt_timeout/);
});

test('paths: local_rules_dir defaults to ./rules.local.d and resolves like rules_dir (file, flag, default)', () => {
  const f = withFile('local_rules_dir: site-rules\n');
  const dir = dirname(f);
  assert.equal(loadConfig(f, {}, '/elsewhere').local_rules_dir, join(dir, 'site-rules'));
  assert.equal(loadConfig(f, { local_rules_dir: 'mine' }, '/elsewhere').local_rules_dir, '/elsewhere/mine');
  assert.equal(loadConfig(withFile('listen: 127.0.0.1:2525\n'), {}, '/elsewhere').local_rules_dir.endsWith('/rules.local.d'), true);
  assert.equal(loadConfig(undefined, {}, '/srv').local_rules_dir, '/srv/rules.local.d');
  assert.throws(() => loadConfig(withFile('local_rules_dir: ""\n')), /local_rules_dir: must not be empty/);
});

// ---- issue 10: tls, dns, delivery, listen_protocol ---------------------------

test('config: tls, dns, delivery and listen_protocol defaults match DESIGN.md', () => {
  const c = loadConfig(undefined, {}, '/srv');
  assert.equal(c.listen_protocol, 'smtp');
  assert.deepEqual(c.delivery, { mode: 'relay', max_mx: 5, destination_concurrency: 20 });
  assert.deepEqual(c.dns, { servers: [{ host: '127.0.0.1', port: 53 }], timeout: 5000 });
  assert.deepEqual(c.tls, {
    next_hop: { level: 'may', ca_file: null, servername: null, cert: null, key: null },
    secure_next_hop: null,
    default_level: 'may',
    ca_file: null,
    dane: true,
    mta_sts: true,
    escalation_failure: 'defer',
    tlsrpt: { submit: false, organization: null, contact: null },
  });
});

test('config: tls.next_hop takes each level, the short form, a servername, and files read relative to the config file', () => {
  for (const level of ['none', 'may', 'encrypt', 'verify', 'secure']) {
    assert.equal(loadConfig(withFile(`tls: { next_hop: { level: ${level} } }\n`)).tls.next_hop.level, level);
    assert.equal(loadConfig(withFile(`tls: { next_hop: ${level} }\n`)).tls.next_hop.level, level, 'short form');
  }
  const pki = new TestPki();
  const client = pki.leaf('client', { names: ['mailveil.example.test'] });
  const f = withFile('');
  const dir = dirname(f);
  writeFileSync(join(dir, 'ca.pem'), pki.root.cert);
  writeFileSync(join(dir, 'client.pem'), client.chain);
  writeFileSync(join(dir, 'client.key'), client.key);
  writeFileSync(f, 'tls:\n  ca_file: ca.pem\n  next_hop: { level: verify, servername: relay.example.test, ca_file: ca.pem, cert: client.pem, key: client.key }\ndns: { servers: ["127.0.0.1:5353", "[::1]:53"], timeout: 2s }\ndelivery: { max_mx: 3 }\n');
  const c = loadConfig(f, {}, '/elsewhere');
  assert.equal(c.tls.next_hop.servername, 'relay.example.test');
  assert.equal(c.tls.next_hop.ca_file?.path, join(dir, 'ca.pem'));
  assert.equal(c.tls.next_hop.ca_file?.pem, pki.root.cert);
  assert.equal(c.tls.next_hop.cert?.pem, client.chain);
  assert.equal(c.tls.next_hop.key?.pem, client.key);
  assert.equal(c.tls.ca_file?.path, join(dir, 'ca.pem'));
  assert.deepEqual(c.dns, { servers: [{ host: '127.0.0.1', port: 5353 }, { host: '::1', port: 53 }], timeout: 2000 });
  assert.equal(c.delivery.max_mx, 3);
});

test('config: values whose feature this version lacks are refused with one line, never ignored', () => {
  // mx delivery and LMTP are in this version.
  assert.equal(loadConfig(withFile('delivery: { mode: mx, destination_concurrency: 4 }\nlisten_protocol: lmtp\n')).delivery.mode, 'mx');
  // tls.secure_next_hop is in this version (require_tls escalation in relay mode).
  assert.deepEqual(loadConfig(withFile('tls: { secure_next_hop: "127.0.0.1:10027" }\n')).tls.secure_next_hop, { host: '127.0.0.1', port: 10027 });
  // tls.tlsrpt.submit is in this version (daily RFC 8460 reports to each domain's rua).
  assert.equal(loadConfig(withFile('tls: { tlsrpt: { submit: true } }\n')).tls.tlsrpt.submit, true);
  // MISS: the values this version has load.
  const c = loadConfig(withFile('delivery: { mode: relay }\nlisten_protocol: smtp\ntls: { secure_next_hop: null, tlsrpt: { submit: false, organization: Example, contact: "mailto:tls@example.com" }, escalation_failure: bounce, default_level: dane-only, dane: false, mta_sts: false }\n'));
  assert.equal(c.tls.escalation_failure, 'bounce');
  assert.equal(c.tls.tlsrpt.organization, 'Example');
});

test('config: bad tls/dns values and unreadable files are one line naming the key (and the path)', () => {
  const pki = new TestPki();
  const a = pki.leaf('a', { names: ['a.example.test'] });
  const b = pki.leaf('b', { names: ['b.example.test'] });
  const f = withFile('');
  const dir = dirname(f);
  writeFileSync(join(dir, 'not-pem.txt'), 'hello\n');
  const cases: [string, string | RegExp][] = [
    ['tls: { next_hop: { level: dane } }\n', 'tls.next_hop.level: must be equal to one of the allowed values: none, may, encrypt, verify, secure'],
    ['tls: { next_hop: { level: verify, colour: blue } }\n', 'tls.next_hop.colour: unknown key'],
    ['tls: { next_hop: { servername: "bad name" } }\n', 'tls.next_hop.servername: must be a DNS name, e.g. relay.example.com'],
    ['tls: { next_hop: { ca_file: missing.pem } }\n', `tls.next_hop.ca_file: cannot read ${join(dir, 'missing.pem')}: ENOENT`],
    ['tls: { ca_file: missing.pem }\n', `tls.ca_file: cannot read ${join(dir, 'missing.pem')}: ENOENT`],
    ['tls: { next_hop: { ca_file: not-pem.txt } }\n', /^tls\.next_hop\.ca_file: .*not-pem\.txt is not a PEM certificate/],
    [`tls: { next_hop: { cert: ${a.chainFile} } }\n`, 'tls.next_hop.key: a client certificate needs both cert and key'],
    [`tls: { next_hop: { key: ${a.keyFile} } }\n`, 'tls.next_hop.cert: a client certificate needs both cert and key'],
    [`tls: { next_hop: { cert: ${a.chainFile}, key: not-pem.txt } }\n`, /^tls\.next_hop\.key: .*not-pem\.txt is not a PEM key/],
    [`tls: { next_hop: { cert: ${a.chainFile}, key: ${b.keyFile} } }\n`, `tls.next_hop.key: ${b.keyFile} is not the key of the certificate in ${a.chainFile}`],
    ['tls: { escalation_failure: drop }\n', /^tls\.escalation_failure: must be equal to one of the allowed values: defer, bounce$/],
    ['dns: { servers: [] }\n', /^dns\.servers: /],
    ['dns: { servers: [localhost] }\n', /^dns\.servers\.0: must be HOST:PORT/],
    ['dns: { timeout: 5 }\n', 'dns.timeout: 5 has no unit; write 5s (or 5000ms)'],
    ['delivery: { max_mx: 0 }\n', /^delivery\.max_mx: /],
    ['listen_protocol: http\n', 'listen_protocol: must be equal to one of the allowed values: smtp, lmtp'],
  ];
  for (const [text, want] of cases) {
    writeFileSync(f, text);
    let msg = '';
    try {
      loadConfig(f);
    } catch (err) {
      msg = (err as Error).message;
    }
    assert.ok(msg.startsWith(`${f}: `), `${text.trim()}: error names the file (${msg})`);
    assert.ok(!msg.includes('\n'), `${text.trim()}: one line`);
    const rest = msg.slice(f.length + 2);
    if (typeof want === 'string') assert.equal(rest, want, text.trim());
    else assert.match(rest, want, text.trim());
  }
});
