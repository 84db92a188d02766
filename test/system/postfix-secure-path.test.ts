/*
 * The secure reinjection path in a real Postfix (issue 10 point 4): the
 * README's snippet for the second reinjection listener and its
 * `smtp_secure` transport, run as written.
 *
 *   swaks ─► public smtpd ─content_filter─► mailveil ─┬─► reinject (10026-like) ─► smtp ─► sink A (plain)
 *                                                      └─► reinject-secure (10027-like, STARTTLS)
 *                                                             └─content_filter=smtp_secure:─► smtp, level secure ─► sink B (TLS)
 *
 * A card message under a `require_tls: verified` rule leaves mailveil over
 * verified TLS to the 10027 listener, and Postfix delivers it through
 * smtp_secure with a verified TLS session to sink B; a clean message takes
 * the normal path to sink A.
 *
 * The README blocks (master.cf and mailveil's tls: section) are read from
 * README.md and used with only these substitutions: the listener port, the
 * instance's syslog_name prefix for `postfix/`, and the test PKI's files
 * for the certificate, key and CA paths. Two main.cf lines stand in for
 * DNS, which loopback tests do not have: default_filter_nexthop points the
 * empty next hop of `smtp_secure:` at sink B (in production: each
 * recipient domain's MX), and smtp_tls_secure_cert_match names sink B's
 * certificate (in production: the recipient domain, `nexthop`).
 *
 * Under CI=true nothing skips: a missing tool is a failure.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startMailveil } from '../helpers/mailveil';
import { REPO_ROOT } from '../helpers/paths';
import { freePort } from '../helpers/ports';
import { filterTo, runSwaks, startPostfix } from '../helpers/postfix';
import { isCI, systemSkipReason } from '../helpers/sink';
import { TestPki } from '../helpers/test-pki';
import { startTlsSink } from '../helpers/tls-sink';
import { cleanupAfter } from '../helpers/cleanup';

const CLI_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const skip = systemSkipReason(['postfix', 'postqueue', 'postconf', 'swaks', 'script', 'openssl'], { root: true })
  || (!isCI() && !existsSync(CLI_JS) ? `mailveil is not built (${CLI_JS} missing; run npm run build)` : false);
const { running, tempDir } = cleanupAfter();

/** The name in the README's mailveil config (tls.next_hop.servername): the 10027 listener's certificate names it. */
const REINJECT_NAME = 'mail.example.org';
const SINK_B_NAME = 'mx.dest.example';
const README_PORT = '127.0.0.1:10027';

/** The fenced block in README.md that starts with `first`; fails when the README no longer has it. */
function readmeBlock(first: string): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('```\n' + first);
  const atYaml = readme.indexOf('```yaml\n' + first);
  const start = at >= 0 ? at + 4 : atYaml >= 0 ? atYaml + 8 : -1;
  assert.ok(start >= 0, `README.md has no code block starting with ${JSON.stringify(first)}`);
  return readme.slice(start, readme.indexOf('```', start));
}

/** Replaces each `from` (which must occur) with its `to`. */
function substitute(text: string, pairs: [string, string][]): string {
  for (const [from, to] of pairs) {
    assert.ok(text.includes(from), `the README snippet no longer contains ${JSON.stringify(from)}; update this test with it`);
    text = text.split(from).join(to);
  }
  return text;
}

function writeMessage(dir: string, token: string, body: string): string {
  const file = join(dir, `${token}.eml`);
  writeFileSync(file, [
    'From: Sender <sender@src.example>',
    'To: User <user@dest.example>',
    `Subject: secure path ${token}`,
    `Message-ID: <${token}@src.example>`,
    'Date: Mon, 02 Jun 2025 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `Token ${token}.`,
    body,
  ].join('\n'));
  return file;
}

test('README secure reinjection snippet in a real Postfix: a card message leaves through smtp_secure over verified TLS, a clean one through smtp', { skip, timeout: 180_000 }, async () => {
  const tmp = tempDir('mailveil-pf-secure-');
  const pki = new TestPki('mailveil postfix-secure-path');
  const reinjectCert = pki.leaf('reinject', { names: [REINJECT_NAME] });
  const sinkBCert = pki.leaf('sink-b', { names: [SINK_B_NAME] });

  const sinkA = await startTlsSink({ cert: pki.leaf('sink-a', { names: ['relay.test.example'] }) });
  running.push(sinkA);
  const sinkB = await startTlsSink({ cert: sinkBCert });
  running.push(sinkB);

  const mvPort = await freePort();
  const securePort = await freePort();
  const masterSnippet = readmeBlock('127.0.0.1:10027 inet');
  const pf = await startPostfix({
    relayPort: sinkA.port,
    contentFilter: filterTo(mvPort),
    relayDomains: ['dest.example'],
    main: {
      // Stand-ins for DNS (see the header comment).
      default_filter_nexthop: `[127.0.0.1]:${sinkB.port}`,
      smtp_tls_secure_cert_match: SINK_B_NAME,
    },
    extraMasterCf: (name) => substitute(masterSnippet, [
      [README_PORT, `127.0.0.1:${securePort}`],
      ['syslog_name=postfix/', `syslog_name=${name}/`],
      ['/etc/postfix/mailveil-reinject.crt', reinjectCert.chainFile],
      ['/etc/postfix/mailveil-reinject.key', reinjectCert.keyFile],
      ['/etc/ssl/certs/ca-certificates.crt', pki.caFile],
    ]),
    extraListenPorts: [securePort],
  });
  running.push(pf);

  const rulesDir = tempDir('mailveil-pf-secure-rules-');
  writeFileSync(join(rulesDir, '10-card.yaml'), 'rules:\n  - id: card\n    detector: credit_card\n    scope: [body]\n    action: redact\n    replacement: "[CARD]"\n    require_tls: verified\n');
  const config = join(tmp, 'mailveil.yaml');
  writeFileSync(config, substitute(readmeBlock('tls:\n  next_hop: { level: may'), [
    ['/etc/mailveil/postfix-ca.pem', pki.caFile],
    [README_PORT, `127.0.0.1:${securePort}`],
  ]));
  const mv = await startMailveil({ listenPort: mvPort, nextHop: `127.0.0.1:${pf.reinjectPort}`, rulesDir, config });
  running.push(mv);

  const send = (file: string) => runSwaks(`127.0.0.1:${pf.publicPort}`, ['--from', 'sender@src.example', '--to', 'user@dest.example', '--data', `@${file}`]);

  // 1. The flagged message: mailveil → 10027 (verified, level secure) → smtp_secure (verified) → sink B.
  const card = await send(writeMessage(tmp, 'tok-card', 'Please charge 4111 1111 1111 1111 today.'));
  assert.equal(card.code, 0, `swaks failed:\n${card.stdout}${card.stderr}`);
  await sinkB.waitForMessages(1, 60_000);
  const b = sinkB.messages[0];
  assert.equal(b.secure, true, 'sink B got it over TLS');
  assert.ok(b.protocol, 'a TLS protocol was negotiated with sink B');
  assert.deepEqual(b.to, ['user@dest.example']);
  const bText = b.data.toString();
  assert.match(bText, /\r\nX-Mailveil-Verdict: redact; rules=card; tls=verified-required\r\n/);
  assert.match(bText, /Token tok-card\./);
  assert.ok(!bText.includes('4111 1111'), 'redacted on the way');

  // mailveil chose the secure path over verified TLS …
  const line = await mv.waitForLog((l) => l.event === 'message' && l.tls === 'verified-required', 'the message line with tls');
  assert.equal(line.tls_path, 'secure_next_hop');
  // … the 10027 listener took it over TLS from mailveil …
  await pf.waitForLog(/\/reinject-secure\/smtpd\[\d+\]: \w+ TLS connection established from localhost\[127\.0\.0\.1\]: TLSv/);
  await pf.waitForLog(/\/reinject-secure\/smtpd\[\d+\]: disconnect from localhost\[127\.0\.0\.1\] .*starttls=1 .*data=1/);
  // … and Postfix delivered it through smtp_secure with a verified session to sink B.
  const sinkBHost = `127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${sinkB.port}`;
  await pf.waitForLog(new RegExp(`/smtp_secure/smtp\\[\\d+\\]: Verified TLS connection established to ${sinkBHost}: TLSv`));
  await pf.waitForLog(new RegExp(`/smtp_secure/smtp\\[\\d+\\]: \\w+: to=<user@dest\\.example>, relay=${sinkBHost},.*status=sent`));
  assert.equal(sinkA.count(), 0, 'the card message never took the normal path');

  // 2. A clean message: mailveil → 10026 → the normal smtp transport → sink A.
  const clean = await send(writeMessage(tmp, 'tok-clean', 'Nothing sensitive here.'));
  assert.equal(clean.code, 0, `swaks failed:\n${clean.stdout}${clean.stderr}`);
  await sinkA.waitForMessages(1, 60_000);
  const a = sinkA.messages[0];
  assert.match(a.data.toString(), /Token tok-clean\./);
  assert.match(a.data.toString(), /\r\nX-Mailveil-Verdict: pass; rules=\r\n/);
  const sinkAHost = `127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${sinkA.port}`;
  await pf.waitForLog(new RegExp(`/smtp\\[\\d+\\]: \\w+: to=<user@dest\\.example>, relay=${sinkAHost},.*status=sent`));
  await pf.waitForEmptyQueue(30_000);
  assert.equal(sinkB.count(), 1, 'the clean message never took the secure path');
  assert.ok(!/\/smtp_secure\/smtp\[\d+\]: \w+: to=.*relay=.*:${sinkA.port}/.test(pf.log()));
});
