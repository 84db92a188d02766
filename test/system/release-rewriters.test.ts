/*
 * A release runs the rewriters every delivered message gets (issue 9,
 * point 5). A running bin/mailveil in front of smtp-sink, with the shipped
 * header policy (rules.d/00-headers.yaml), holds messages whose Received
 * hops come from internal networks and names; the real CLI and the admin
 * API release them. Checked at the sink:
 *  - the hops are pseudonymised exactly as on a message delivered straight
 *    through (same pseudonyms, same count of Received fields), no internal
 *    name or address is left, the headers the policy removes are gone;
 *  - `X-Mailveil-Verdict: released; rules=<the entry's rule ids>`, and a
 *    copy the sender forged is gone;
 *  - without --redact the body is the held body, value included; with
 *    --redact (CLI) or {"redact": true} (API) the rules' redaction is
 *    applied;
 *  - a redaction that cannot be applied keeps the entry, sends nothing and
 *    says why in one line (CLI exit 1, API 409); a refused final dot keeps
 *    the entry; either way the entry file is byte-identical.
 * Tests run in order and share one sink and one mailveil.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink, type SinkMessage } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { sendOne, type ClientReply } from '../helpers/smtp-client';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { sleep, waitFor } from '../helpers/ports';
import { auditDir, type AuditEvent } from '../../src/audit/log';
import { quarantineDir } from '../../src/quarantine/store';
import { ENTRY_SUFFIX } from '../../src/quarantine/entry-format';
import { cleanupAfter } from '../helpers/cleanup';

const skip = systemSkipReason(['smtp-sink']);
const { running, tempDir } = cleanupAfter();

const RULES = `rules:
  - id: t-hold
    pattern: '\\bHOLDME-[0-9]{4}\\b'
    scope: [body]
    action: quarantine
  - id: t-ssn
    detector: us_ssn
    scope: [headers, body]
    action: redact
    replacement: "[SSN]"
`;

const SSN = '123-45-6789';
const FROM = 'rel-sender@example.com';
const RCPT = 'rel-rcpt@example.net';
/** Internal names and addresses in the hops below (00-headers.yaml: internal_networks, internal_domains). */
const INTERNAL = ['ws-anna.corp', '10.20.30.40', 'build-7.lan', '192.168.7.20', 'fd12:3456:789a::17', 'printer-3f.internal'];
const HOPS =
  'Received: from ws-anna.corp (ws-anna.corp [10.20.30.40])\r\n\tby mail.example.com (Postfix) with ESMTPSA id 2B3C4D5E6F\r\n\tfor <rel-rcpt@example.net>; Sun, 22 Nov 2026 10:00:03 +0000 (UTC)\r\n' +
  'Received: from build-7.lan (unknown [192.168.7.20])\r\n\tby mail.example.com (Postfix) with ESMTP id 7Q8R9S0T1U; Sun, 22 Nov 2026 10:00:01 +0000 (UTC)\r\n' +
  'Received: from printer-3f.internal ([fd12:3456:789a::17]:51234 helo=printer-3f.internal)\r\n\tby mail.example.com with esmtp (Exim 4.96)\r\n\tid 1tXyZa-000Abc-2Q; Sun, 22 Nov 2026 09:59:58 +0000\r\n';

interface Env {
  sink: Sink;
  mv: Mailveil;
  stateDir: string;
  config: string;
  token: string;
}
let envPromise: Promise<Env> | undefined;

function env(): Promise<Env> {
  envPromise ??= (async () => {
    const rulesDir = tempDir('mv-rel-rules-');
    cpSync(join(REPO_ROOT, 'rules.d', '00-headers.yaml'), join(rulesDir, '00-headers.yaml'));
    writeFileSync(join(rulesDir, '10-test.yaml'), RULES);
    const stateDir = tempDir('mv-rel-state-');
    const sink = await startSink();
    running.push(sink);
    const config = join(tempDir('mv-rel-cfg-'), 'mailveil.yaml');
    writeFileSync(config, `state_dir: ${JSON.stringify(stateDir)}\nrules_dir: ${JSON.stringify(rulesDir)}\nnext_hop: ${JSON.stringify(sink.address)}\n`);
    const mv = await startMailveil({ nextHop: sink.address, rulesDir, stateDir, config });
    running.push(mv);
    const token = readFileSync(join(stateDir, 'admin.token'), 'utf8').trim();
    return { sink, mv, stateDir, config, token };
  })();
  return envPromise;
}

function cli(e: Env, ...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--config', e.config], { encoding: 'utf8', timeout: 60_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function api(e: Env, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${e.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`http://127.0.0.1:${e.mv.adminPort}${path}`, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

function mail(testCase: string, body: string, extraHeaders = ''): string {
  return (
    'X-Mailveil-Verdict: pass; rules=\r\n' +
    HOPS +
    `From: Anna <${FROM}>\r\nTo: <${RCPT}>\r\nSubject: case ${testCase}\r\n${extraHeaders}` +
    `Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <rel-${testCase}@mail.example.com>\r\n` +
    `X-Test-Case: ${testCase}\r\nX-Originating-IP: [10.20.30.40]\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    body
  );
}

const bodyWith = (hold: boolean) => `Hello,\r\n${hold ? 'reference HOLDME-4711; ' : ''}the SSN on file is ${SSN}.\r\n..a line that starts with a dot\r\nAnna\r\n`;
/** The body as the sink stores it: sendOne's CRLF before the final dot is part of the message; dots unstuffed, LF line ends. */
const asStored = (body: string) => (body + '\r\n').replace(/\r\n\.\./g, '\r\n.').replace(/\r\n/g, '\n');

async function send(e: Env, testCase: string, body: string, extraHeaders = ''): Promise<ClientReply> {
  const r = await sendOne(e.mv.port, { from: FROM, to: [RCPT], body: mail(testCase, body, extraHeaders) });
  assert.ok(r.final, JSON.stringify(r));
  return r.final;
}

async function hold(e: Env, testCase: string, extraHeaders = ''): Promise<string> {
  const final = await send(e, testCase, bodyWith(true), extraHeaders);
  const m = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/.exec(final.text);
  assert.ok(m, final.text);
  return m[1];
}

function atSink(e: Env, testCase: string): Promise<SinkMessage> {
  return waitFor(() => e.sink.messages().find((m) => m.header('X-Test-Case')[0] === testCase), { timeoutMs: 10_000, what: `${testCase} at the sink` });
}

function copies(e: Env, testCase: string): number {
  return e.sink.messages().filter((m) => m.header('X-Test-Case')[0] === testCase).length;
}

function entryBytes(e: Env, id: string): Buffer | undefined {
  const file = join(quarantineDir(e.stateDir), id + ENTRY_SUFFIX);
  return existsSync(file) ? readFileSync(file) : undefined;
}

function releaseEvents(e: Env, id: string): AuditEvent[] {
  const dir = auditDir(e.stateDir);
  return readdirSync(dir)
    .filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent))
    .filter((x) => x.event === 'release' && x.id === id);
}

/** The header checks every released message must pass. */
function assertAnonymised(m: SinkMessage, delivered: SinkMessage, rules: string): void {
  assert.deepEqual(m.header('X-Mailveil-Verdict'), [`released; rules=${rules}`], m.headers);
  assert.ok(m.headers.startsWith(`X-Mailveil-Verdict: released; rules=${rules}\n`), m.headers);
  const hops = m.header('Received');
  assert.equal(hops.length, 3, m.headers);
  for (const h of hops) assert.match(h, /^from hop-[0-9a-f]{8} /);
  // The pseudonyms a message delivered straight through got: the same rewriter, the same key.
  assert.deepEqual(hops, delivered.header('Received'));
  for (const n of INTERNAL) assert.ok(!m.headers.toLowerCase().includes(n), `${n} left in the released header:\n${m.headers}`);
  assert.deepEqual(m.header('X-Originating-IP'), []);
  assert.equal(m.mailFrom, `<${FROM}>`);
  assert.deepEqual(m.rcptTo, [`<${RCPT}>`]);
}

let delivered: SinkMessage;

test('a message delivered straight through: the hops pseudonymised, the reference for the released ones', { skip }, async () => {
  const e = await env();
  const final = await send(e, 'rd', bodyWith(false).replace(SSN, 'nothing'));
  assert.equal(final.code, 250, final.text);
  delivered = await atSink(e, 'rd');
  assert.deepEqual(delivered.header('X-Mailveil-Verdict'), ['pass; rules=']);
  assert.equal(delivered.header('Received').length, 3);
  for (const n of INTERNAL) assert.ok(!delivered.headers.toLowerCase().includes(n), `${n} left in the delivered header`);
});

test('release without --redact: hops pseudonymised, verdict header "released", the body as held', { skip }, async () => {
  const e = await env();
  const id = await hold(e, 'r1');
  const r = cli(e, 'quarantine', 'release', id);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^released ${id} to ${e.sink.address.replace(/\./g, '\\.')}: 250 .*\\n$`));
  const m = await atSink(e, 'r1');
  assertAnonymised(m, delivered, 't-hold,t-ssn');
  // The reviewer let it go as it was: the value is still there, the body unchanged (the sink unstuffs dots).
  assert.equal(m.body, asStored(bodyWith(true)));
  assert.equal(entryBytes(e, id), undefined, 'entry removed after the 250');
  assert.deepEqual(releaseEvents(e, id).map((x) => [x.details?.result, x.details?.redact]), [['ok', false]]);
});

test('release --redact: the rules redaction applied too', { skip }, async () => {
  const e = await env();
  const id = await hold(e, 'r2');
  const r = cli(e, 'quarantine', 'release', id, '--redact', '--json');
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out);
  assert.deepEqual(Object.keys(out).sort(), ['id', 'nextHop', 'rcpts', 'released', 'reply', 'size']);
  assert.equal(out.released, true);
  const m = await atSink(e, 'r2');
  assertAnonymised(m, delivered, 't-hold,t-ssn');
  assert.ok(!m.data.includes(SSN), 'the SSN left');
  assert.equal(m.body, asStored(bodyWith(true).replace(SSN, '[SSN]')));
  assert.equal(entryBytes(e, id), undefined);
  assert.deepEqual(releaseEvents(e, id).map((x) => [x.details?.result, x.details?.redact]), [['ok', true]]);
});

test('a redaction that cannot be applied, or a refused final dot, keeps the entry byte-identical', { skip }, async () => {
  const e = await env();
  // The value also stands in a header field, which redaction does not rewrite.
  const id = await hold(e, 'r3', `Comments: SSN ${SSN}\r\n`);
  const before = entryBytes(e, id);
  assert.ok(before);

  let r = cli(e, 'quarantine', 'release', id, '--redact');
  assert.equal(r.code, 1, r.out);
  assert.equal(r.out, '');
  assert.match(r.err, new RegExp(`^mailveil: cannot release ${id} with redaction: redaction could not be applied \\(.*header.*\\); nothing was sent, entry ${id} kept\\n$`));
  assert.ok(!r.err.includes(SSN));
  assert.ok(entryBytes(e, id)!.equals(before), 'entry changed');

  let a = await api(e, `/api/quarantine/${id}/release`, { redact: true });
  assert.equal(a.status, 409, JSON.stringify(a.json));
  assert.equal(a.json.released, false);
  assert.match(String(a.json.error), /redaction could not be applied/);
  a = await api(e, `/api/quarantine/${id}/release`, { redact: 'yes' });
  assert.equal(a.status, 400);
  a = await api(e, `/api/quarantine/${id}/release`, { redcat: true });
  assert.equal(a.status, 400);
  assert.match(String(a.json.error), /unknown field "redcat"/);
  assert.ok(entryBytes(e, id)!.equals(before), 'entry changed');

  const refusing = await startSink({ flags: ['-f', '.'] });
  running.push(refusing);
  r = cli(e, 'quarantine', 'release', id, '--next-hop', refusing.address);
  assert.equal(r.code, 1, r.out);
  assert.match(r.err, new RegExp(`^mailveil: next hop ${refusing.address} answered 5\\d\\d .*; entry ${id} kept\\n$`));
  assert.ok(entryBytes(e, id)!.equals(before), 'entry changed');
  // What reached the refusing hop before its 5xx was already rewritten.
  const seen = await waitFor(() => refusing.messages().find((m) => m.header('X-Test-Case')[0] === 'r3'), { timeoutMs: 10_000, what: 'r3 at the refusing sink' });
  assert.deepEqual(seen.header('X-Mailveil-Verdict'), ['released; rules=t-hold,t-ssn']);

  await sleep(200);
  assert.equal(copies(e, 'r3'), 0, 'nothing reached the real next hop');
  assert.deepEqual(
    releaseEvents(e, id).map((x) => [x.details?.result, x.details?.error, x.details?.redact]),
    [
      ['failed', 'rewrite', true],
      ['failed', 'rewrite', true],
      ['failed', 'refused', false],
    ],
  );
});

test('the admin API releases the same way: {} as held, {"redact": true} redacted', { skip }, async () => {
  const e = await env();
  const plain = await hold(e, 'r4');
  const redacted = await hold(e, 'r5');
  let a = await api(e, `/api/quarantine/${plain}/release`);
  assert.equal(a.status, 200, JSON.stringify(a.json));
  assert.deepEqual(Object.keys(a.json).sort(), ['code', 'id', 'nextHop', 'rcpts', 'released', 'reply', 'size']);
  a = await api(e, `/api/quarantine/${redacted}/release`, { redact: true });
  assert.equal(a.status, 200, JSON.stringify(a.json));
  const m4 = await atSink(e, 'r4');
  const m5 = await atSink(e, 'r5');
  assertAnonymised(m4, delivered, 't-hold,t-ssn');
  assertAnonymised(m5, delivered, 't-hold,t-ssn');
  assert.ok(m4.body.includes(SSN));
  assert.ok(!m5.data.includes(SSN) && m5.body.includes('[SSN]'));
});
