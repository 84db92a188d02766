/*
 * Releasing a held message that needed verified TLS (issue 10 point 4;
 * operations/release.ts). A `require_tls: verified` rule with action
 * quarantine holds a card message; step hold records the requirement, and
 * `mailveil quarantine release` (the real CLI, on the serve instance's
 * state_dir) then sends it only over a verified path:
 *  - next_hop at level may, no tls.secure_next_hop: MV_RELEASE_TLS_REQUIRED
 *    (exit 1, one line), nothing reaches the plain sink, the entry stays;
 *  - a secure_next_hop whose certificate does not verify: the same;
 *  - a secure_next_hop that verifies: delivered there over TLS, REQUIRETLS
 *    on MAIL FROM, `released; rules=card; tls=verified-required`, the entry
 *    gone, the audit event says tls_path secure_next_hop;
 *  - next_hop at level verify: delivered over it;
 *  - REQUIRETLS received on MAIL FROM: a verified hop that does not
 *    advertise REQUIRETLS is no path (RFC 8689 4.2.1).
 * MISS beside it: a message held by a rule without require_tls still
 * releases to the plain next hop.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestPki } from '../helpers/test-pki';
import { startTlsSink, type TlsSink } from '../helpers/tls-sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { message, sendOne } from '../helpers/smtp-client';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { cleanupAfter } from '../helpers/cleanup';
import { QuarantineStore } from '../../src/quarantine/store';
import { auditDir, type AuditEvent } from '../../src/audit/log';

const { running, tempDir } = cleanupAfter();
const HOP = 'hop.example.test';
const RCPT = 'held.person@example.net';
const CARD_BODY = 'please charge 4111 1111 1111 1111 today\r\n';

let pki: TestPki;
const sinks: Record<'plain' | 'secure' | 'secureNoRequireTls' | 'wrongName', TlsSink> = {} as never;
let stateDir: string;
let rulesDir: string;
let mv: Mailveil;

before(async () => {
  pki = new TestPki('mailveil release-tls');
  const ok = pki.leaf('hop', { names: [HOP] });
  const wrong = pki.leaf('wrong', { names: ['other.example.test'] });
  sinks.plain = await startTlsSink({ cert: ok, hideSTARTTLS: true });
  sinks.secure = await startTlsSink({ cert: ok });
  sinks.secureNoRequireTls = await startTlsSink({ cert: ok, hideREQUIRETLS: true });
  sinks.wrongName = await startTlsSink({ cert: wrong });
  running.push(...Object.values(sinks));
  rulesDir = tempDir('mv-reltls-rules-');
  writeFileSync(
    join(rulesDir, '10-test.yaml'),
    'rules:\n' +
      '  - id: card\n    detector: credit_card\n    scope: [body]\n    action: quarantine\n    require_tls: verified\n' +
      "  - id: t-hold\n    pattern: '\\bHOLDME-[0-9]{4}\\b'\n    scope: [body]\n    action: quarantine\n",
  );
  stateDir = tempDir('mv-reltls-state-');
  // serve holds; it has no verified path itself, which does not matter for holding.
  mv = await startMailveil({ nextHop: sinks.plain.address, rulesDir, stateDir, config: configFile({ level: 'may', nextHop: sinks.plain.address, secure: null }) });
  running.push(mv);
});

/** A config for the CLI on serve's state_dir: next_hop, its TLS level and tls.secure_next_hop. */
function configFile(o: { level: string; nextHop: string; secure: string | null }): string {
  const file = join(tempDir('mv-reltls-cfg-'), 'mailveil.yaml');
  const tls = { next_hop: { level: o.level, servername: HOP, ca_file: pki.caFile }, secure_next_hop: o.secure };
  writeFileSync(file, `state_dir: ${JSON.stringify(stateDir)}\nrules_dir: ${JSON.stringify(rulesDir)}\nnext_hop: ${JSON.stringify(o.nextHop)}\ntls: ${JSON.stringify(tls)}\n`);
  return file;
}

/** The CLI, asynchronously: the TLS sinks live in this process and must keep answering. */
function release(config: string, id: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'quarantine', 'release', id, '--config', config], { encoding: 'utf8', timeout: 60_000, cwd: REPO_ROOT }, (err, out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, out, err: stderr });
    });
  });
}

async function hold(subject: string, body: string, headers = ''): Promise<string> {
  const r = await sendOne(mv.port, { from: 'sender@example.com', to: [RCPT], body: message(subject, body, headers) });
  const m = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/.exec(String(r.final?.text));
  assert.ok(m, JSON.stringify(r));
  return m[1];
}

const counts = () => Object.fromEntries(Object.entries(sinks).map(([k, s]) => [k, s.count()]));
const delta = (b: Record<string, number>) => Object.fromEntries(Object.entries(sinks).map(([k, s]) => [k, s.count() - b[k]]).filter(([, n]) => n !== 0));
const store = () => new QuarantineStore(stateDir);
const stillHeld = async (id: string) => (await store().list()).some((e) => e.id === id);

function releaseEvents(id: string): AuditEvent[] {
  const dir = auditDir(stateDir);
  return readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent))
    .filter((e) => e.event === 'release' && e.id === id);
}

test('hold records the TLS requirement: a require_tls rule, the Require-TLS-ESMTP field; not for a plain hold', async () => {
  const card = await hold('card', CARD_BODY);
  const hdr = await hold('hdr', 'ref HOLDME-1234\r\n', 'Require-TLS-ESMTP: yes\r\n');
  const plain = await hold('plain', 'ref HOLDME-5678\r\n');
  assert.deepEqual((await store().readMeta(card)).requireTls, { why: 'rule', esmtp: false });
  assert.deepEqual((await store().readMeta(hdr)).requireTls, { why: 'requiretls', esmtp: false });
  assert.equal((await store().readMeta(plain)).requireTls, undefined);
});

test('no verified path (next_hop may, no secure_next_hop): MV_RELEASE_TLS_REQUIRED, nothing sent, entry kept; a plain hold still releases', async () => {
  const card = await hold('card none', CARD_BODY);
  const plain = await hold('plain none', 'ref HOLDME-1111\r\n');
  const cfg = configFile({ level: 'may', nextHop: sinks.plain.address, secure: null });
  let b = counts();
  const mails = sinks.plain.mailCommands();
  const r = await release(cfg, card);
  assert.equal(r.code, 1, r.out + r.err);
  assert.equal(r.out, '');
  assert.match(r.err, new RegExp(`^mailveil: cannot release ${card}: it may leave only over verified TLS \\(require_tls: verified or REQUIRETLS\\) and no verified path is configured \\(tls\\.next_hop\\.level is may and tls\\.secure_next_hop is not set\\); nothing was sent, entry ${card} kept\\n$`));
  assert.deepEqual(delta(b), {}, 'nothing reached any sink');
  assert.equal(sinks.plain.mailCommands(), mails, 'not even a MAIL FROM to the plain sink');
  assert.ok(await stillHeld(card));
  const ev = releaseEvents(card).pop();
  assert.equal(ev?.details?.result, 'failed');
  assert.equal(ev?.details?.error, 'tls_required');
  assert.equal(ev?.details?.tls, 'verified-required');

  b = counts();
  const p = await release(cfg, plain);
  assert.equal(p.code, 0, p.err);
  assert.deepEqual(delta(b), { plain: 1 });
  assert.match(sinks.plain.messages.at(-1)!.data.toString(), /^X-Mailveil-Verdict: released; rules=t-hold\r\n/);
  assert.ok(!(await stillHeld(plain)));
});

test('secure_next_hop with a certificate that does not verify: MV_RELEASE_TLS_REQUIRED, entry kept', async () => {
  const card = await hold('card wrong', CARD_BODY);
  const b = counts();
  const mails = sinks.wrongName.mailCommands();
  const r = await release(configFile({ level: 'may', nextHop: sinks.plain.address, secure: sinks.wrongName.address }), card);
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, new RegExp(`^mailveil: cannot release ${card}: .*tls\\.secure_next_hop ${sinks.wrongName.address} failed TLS at level secure .*entry ${card} kept\\n$`));
  assert.deepEqual(delta(b), {});
  assert.equal(sinks.wrongName.mailCommands(), mails);
  assert.ok(await stillHeld(card));
});

test('secure_next_hop that verifies: released there over TLS with REQUIRETLS, tls=verified-required, entry gone', async () => {
  const card = await hold('card secure', CARD_BODY);
  const b = counts();
  const r = await release(configFile({ level: 'may', nextHop: sinks.plain.address, secure: sinks.secure.address }), card);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^released ${card} to ${sinks.secure.address}: 250 `));
  assert.deepEqual(delta(b), { secure: 1 });
  const m = sinks.secure.messages.at(-1)!;
  assert.equal(m.secure, true);
  assert.equal(m.requireTls, true, 'REQUIRETLS on MAIL FROM where advertised');
  assert.deepEqual(m.to, [RCPT]);
  assert.match(m.data.toString(), /^X-Mailveil-Verdict: released; rules=card; tls=verified-required\r\n/);
  assert.ok(!(await stillHeld(card)));
  const ev = releaseEvents(card).pop();
  assert.equal(ev?.details?.result, 'ok');
  assert.equal(ev?.details?.tls_path, 'secure_next_hop');
});

test('next_hop at level verify: the release goes over it (no secure_next_hop needed)', async () => {
  const hdr = await hold('hdr verify', 'ref HOLDME-2222\r\n', 'Require-TLS-ESMTP: yes\r\n');
  const b = counts();
  const r = await release(configFile({ level: 'verify', nextHop: sinks.secureNoRequireTls.address, secure: null }), hdr);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(delta(b), { secureNoRequireTls: 1 });
  const m = sinks.secureNoRequireTls.messages.at(-1)!;
  assert.equal(m.secure, true);
  assert.equal(m.requireTls, false, 'not advertised: not sent (the header asks for it only where offered)');
  assert.match(m.data.toString(), /\r\nRequire-TLS-ESMTP: yes\r\n/);
  assert.equal(releaseEvents(hdr).pop()?.details?.tls_path, 'next_hop');
});

test('REQUIRETLS received on MAIL FROM: a verified hop without REQUIRETLS is no path; one with it is', async () => {
  // serve would need inbound TLS to receive REQUIRETLS; the entry is written as hold writes it.
  const id = 'RELTLSESMTP1';
  const body = Buffer.from(message('esmtp', 'nothing sensitive\r\n'));
  await store().put(
    {
      id, receivedAt: new Date().toISOString(), size: body.length, verdict: 'quarantine', rules: ['t-hold'], reasons: [], from: 'p1', rcpts: ['p2'], findings: [], subjects: [],
      envelope: { from: 'sender@example.com', rcpts: [RCPT] }, requireTls: { why: 'requiretls', esmtp: true },
    },
    (async function* () {
      yield body;
    })(),
  );
  let b = counts();
  let r = await release(configFile({ level: 'verify', nextHop: sinks.secureNoRequireTls.address, secure: null }), id);
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, /next hop .* does not advertise REQUIRETLS, which the message arrived with, and tls\.secure_next_hop is not set; nothing was sent/);
  assert.deepEqual(delta(b), {});
  r = await release(configFile({ level: 'may', nextHop: sinks.plain.address, secure: sinks.secureNoRequireTls.address }), id);
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, /tls\.secure_next_hop .* does not advertise REQUIRETLS/);
  assert.deepEqual(delta(b), {});
  assert.ok(await stillHeld(id));
  b = counts();
  r = await release(configFile({ level: 'verify', nextHop: sinks.secureNoRequireTls.address, secure: sinks.secure.address }), id);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(delta(b), { secure: 1 });
  assert.equal(sinks.secure.messages.at(-1)!.requireTls, true);
});
