/*
 * Every DLP action over real SMTP: a running mailveil in front of smtp-sink,
 * with a rule set written by the test (one rule per action, each triggered
 * by its own synthetic value) plus the shipped header rules. For each action
 * the client's reply is asserted, and so is what the next hop got:
 *  - monitor, tag, redact: delivered (250 only after the sink's 250), with
 *    the verdict header and, for redact, the values gone from a QP body, a
 *    base64 attachment, an HTML part and an RFC 2047 Subject;
 *  - quarantine: 250 "held in quarantine as <id>", nothing at the sink, the
 *    entry listed by `mailveil quarantine list --json`, and no file under
 *    state_dir holding the value or the sender in clear;
 *  - reject, tempfail: the rule's own reply, nothing at the sink.
 * Then precedence, fail-closed on unscannable content (guarantee 5), the
 * side doors of guarantee 6 (logs, metrics, replies, added headers), the
 * metrics, and a hot reload that adds a rule and then refuses a broken one.
 * Known gaps are `todo` tests that say what is wrong: they fail today and
 * keep the suite green until the code is fixed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink, type SinkMessage } from '../helpers/sink';
import { startMailveil, type Mailveil, type LogLine } from '../helpers/mailveil';
import { sendOne, type ClientReply } from '../helpers/smtp-client';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { sleep, waitFor } from '../helpers/ports';
import { cleanupAfter } from '../helpers/cleanup';

const skip = systemSkipReason(['smtp-sink']);
const { running, tempDir } = cleanupAfter();

// ---- the rule set under test ------------------------------------------------

const REJECT_REPLY = '550 5.7.1 Blocked by data-protection policy (test)';
const TEMPFAIL_REPLY = '451 4.7.1 Deferred by policy (test)';

const TEST_RULES = `rules:
  - id: t-monitor
    pattern: '\\bMONITOR-[0-9]{4}\\b'
    action: monitor
  - id: t-tag
    pattern: '\\bTAGME-[0-9]{4}\\b'
    action: tag
  - id: t-card
    detector: credit_card
    scope: [subject, body, attachments]
    action: redact
    replacement: "[CARD]"
  - id: t-ssn
    detector: us_ssn
    scope: [subject, body, attachments]
    action: redact
    replacement: "[SSN]"
  - id: t-header-redact
    pattern: '\\bHDRSECRET-[0-9]{4}\\b'
    scope: [headers]
    action: redact
    replacement: "[HDR]"
  - id: t-quarantine
    detector: private_key
    scope: [body, attachments]
    action: quarantine
  - id: t-reject
    pattern: '\\bREJECT-[0-9]{4}\\b'
    action: reject
    reply: "${REJECT_REPLY}"
  - id: t-tempfail
    pattern: '\\bDEFER-[0-9]{4}\\b'
    action: tempfail
    reply: "${TEMPFAIL_REPLY}"
`;

/** Synthetic values, each found by exactly one rule above. None may leak through a side door. */
const V = {
  monitor: 'MONITOR-4711',
  tag: 'TAGME-2718',
  cardQp: '4111 1111 1111 1111',
  cardB64: '5555-5555-5555-4444',
  cardHtml: '6011111111111117',
  cardSubject: '3782 822463 10005',
  ssnQp: '123-45-6789',
  ssnHtml: '321 54 9876',
  keyLine: '-----BEGIN OPENSSH PRIVATE KEY-----',
  keyMaterial: 'b3BlbnNzaC1rZXktdjEAIFNZTlRIRVRJQyBURVNUIEtFWSBGT1IgTUFJTFZFSUwgRklYVF',
  reject: 'REJECT-1234',
  tempfail: 'DEFER-5678',
  newBlock: 'NEWBLOCK-9001',
  headerSecret: 'HDRSECRET-4242',
  cardNbsp: '4111&nbsp;1111&nbsp;1111&nbsp;1111',
  cardComment: '5555 5555 5555 4444',
  cardStyle: '3782 822463 10005',
  cardDataAttr: '6011 1111 1111 1117',
};
/** Digits-only forms too: a value must not leak with its separators removed either. */
const digitsOnly = (s: string) => s.replace(/[ -]/g, '');
const ALL_VALUES = [...new Set([...Object.values(V), ...[V.cardQp, V.cardB64, V.cardSubject, V.ssnQp, V.ssnHtml].map(digitsOnly)])];

// ---- harness ------------------------------------------------------------------

interface Env { sink: Sink; mv: Mailveil; rulesDir: string }
let envPromise: Promise<Env> | undefined;
/** Every SMTP reply any test got, for the side-door check. */
const replies: ClientReply[] = [];

function writeRules(dir: string): void {
  cpSync(join(REPO_ROOT, 'rules.d', '00-headers.yaml'), join(dir, '00-headers.yaml'));
  writeFileSync(join(dir, '10-test-actions.yaml'), TEST_RULES);
}

/** One sink and one mailveil (small max_mime_depth via --config) shared by the tests of this file. */
function env(): Promise<Env> {
  envPromise ??= (async () => {
    const rulesDir = tempDir('mv-dlp-rules-');
    writeRules(rulesDir);
    const config = join(tempDir('mv-dlp-cfg-'), 'mailveil.yaml');
    writeFileSync(config, 'limits: { max_mime_depth: 3 }\n');
    const sink = await startSink();
    running.push(sink);
    const mv = await startMailveil({ nextHop: sink.address, rulesDir, config });
    running.push(mv);
    return { sink, mv, rulesDir };
  })();
  return envPromise;
}

let seq = 0;
/** A message with an `X-Test-Case` header to find it at the sink. `body` uses CRLF. */
function mail(testCase: string, opts: { subject?: string; body: string; headers?: string }): string {
  return (
    `From: Sender <sender@example.com>\r\nTo: <rcpt@example.net>\r\n` +
    `Subject: ${opts.subject ?? 'case ' + testCase}\r\n` +
    `Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n` +
    `Message-ID: <dlp-${testCase}-${++seq}@mail.example.com>\r\n` +
    `X-Test-Case: ${testCase}\r\n` +
    (opts.headers ?? 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n') +
    `\r\n${opts.body}`
  );
}

async function send(mv: Mailveil, body: string | Buffer, from = 'sender@example.com'): Promise<ClientReply> {
  const r = await sendOne(mv.port, { from, to: ['rcpt@example.net'], body });
  assert.equal(r.mail.code, 250, JSON.stringify(r));
  assert.equal(r.rcpt[0]?.code, 250, JSON.stringify(r));
  assert.ok(r.final, `no reply to the final dot: ${JSON.stringify(r)}`);
  replies.push(r.final);
  return r.final;
}

const QUEUED = /^2\.0\.0 Ok: queued as ([0-9A-Z]+); next hop said: 250 /;
const HELD = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/;

function queuedId(r: ClientReply): string {
  assert.equal(r.code, 250, r.text);
  const m = QUEUED.exec(r.text);
  assert.ok(m, `not a delivery reply: ${r.text}`);
  return m[1];
}

function heldId(r: ClientReply): string {
  assert.equal(r.code, 250, r.text);
  const m = HELD.exec(r.text);
  assert.ok(m, `not a quarantine reply: ${r.text}`);
  return m[1];
}

async function atSink(sink: Sink, testCase: string): Promise<SinkMessage> {
  return waitFor(() => sink.messages().find((m) => m.header('X-Test-Case')[0] === testCase), {
    timeoutMs: 10_000,
    what: `message "${testCase}" at smtp-sink`,
    describe: () => `captured: ${sink.messages().map((m) => m.header('X-Test-Case')[0]).join(', ')}`,
  });
}

/** Nothing with this case reached the sink, not even a transaction in progress or an aborted one's partial file. */
async function assertNothingAtSink(sink: Sink, testCase: string): Promise<void> {
  await sleep(300);
  for (const name of readdirSync(sink.dir)) {
    let text = '';
    try { text = readFileSync(join(sink.dir, name), 'latin1'); } catch { continue; }
    assert.ok(!text.includes(`X-Test-Case: ${testCase}\n`), `"${testCase}" reached the sink (${name})`);
  }
}

/**
 * The body as the sink stores it: sendOne ends DATA with "\r\n.\r\n", so a
 * body that already ends in CRLF gets one more (empty) line; the sink keeps LF only.
 */
const asDelivered = (body: string) => (body + '\r\n').replace(/\r\n/g, '\n');

async function logFor(mv: Mailveil, id: string): Promise<LogLine> {
  return mv.waitForLog((l) => l.msg === 'message' && l.id === id, `message log line for ${id}`);
}

// ---- metrics ------------------------------------------------------------------

interface Scrape { text: string; get(name: string, labels?: Record<string, string>): number }

function metricKey(name: string, labels: Record<string, string>): string {
  const l = Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return l.length ? `${name}{${l.join(',')}}` : name;
}

async function scrape(mv: Mailveil): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${mv.metricsPort}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    values.set(metricKey(m[1], labels), Number(m[3]));
  }
  return { text, get: (name, labels = {}) => values.get(metricKey(name, labels)) ?? 0 };
}

/** Runs `fn` and returns how much each listed series moved meanwhile. */
async function delta(mv: Mailveil, series: [string, Record<string, string>][], fn: () => Promise<void>): Promise<number[]> {
  const before = await scrape(mv);
  await fn();
  const afterScrape = await scrape(mv);
  return series.map(([n, l]) => afterScrape.get(n, l) - before.get(n, l));
}

const msgs = (verdict: string): [string, Record<string, string>] => ['mailveil_messages_total', { verdict }];
const hits = (rule: string, action: string): [string, Record<string, string>] => ['mailveil_rule_hits_total', { rule, action }];
const unscannable = (reason: string): [string, Record<string, string>] => ['mailveil_unscannable_total', { reason }];

// ---- MIME helpers for the delivered copy -----------------------------------------

/** Quoted-printable decoding (RFC 2045 6.7): soft breaks, =XX escapes. */
function qpDecode(s: string): Buffer {
  const t = s.replace(/=\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < t.length; i++) {
    const hex = t.slice(i + 1, i + 3);
    if (t[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(...Buffer.from(t[i], 'latin1'));
    }
  }
  return Buffer.from(out);
}

/** RFC 2047 encoded words (UTF-8, B or Q), adjacent words joined. */
function decodeWords(s: string): string {
  return s
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_w, enc: string, text: string) =>
      enc.toLowerCase() === 'b' ? Buffer.from(text, 'base64').toString('utf8') : qpDecode(text.replace(/_/g, ' ')).toString('utf8'));
}

interface Part { headers: string; body: string; header(name: string): string }

/** The parts of a one-level multipart body (LF line ends, as the sink stores them). */
function mimeParts(body: string, boundary: string): Part[] {
  const chunks = body.split(new RegExp(`^--${boundary}(?:--)?[ \\t]*$`, 'm')).slice(1, -1);
  return chunks.map((c) => {
    const text = c.replace(/^\n/, '');
    const sep = text.indexOf('\n\n');
    const headers = text.slice(0, sep);
    return {
      headers,
      body: text.slice(sep + 2),
      header: (name: string) => new RegExp(`^${name}:\\s*(.*(?:\\n[ \\t].*)*)`, 'im').exec(headers)?.[1].replace(/\n[ \t]+/g, ' ') ?? '',
    };
  });
}

/** Every file under a directory, recursively. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function runCli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// ---- the actions ------------------------------------------------------------------

test('monitor: delivered unchanged, verdict header says pass with no rule, counted in metrics and the log', { skip }, async () => {
  const { sink, mv } = await env();
  const body = `Hello,\r\n\r\nthe audit reference is ${V.monitor}; nothing else.\r\n`;
  let id = '';
  const [m, h] = await delta(mv, [msgs('monitor'), hits('t-monitor', 'monitor')], async () => {
    id = queuedId(await send(mv, mail('monitor', { body })));
  });
  assert.deepEqual([m, h], [1, 1]);
  const got = await atSink(sink, 'monitor');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['pass; rules='], 'monitor leaves no trace in the message');
  assert.equal(got.body, asDelivered(body));
  const line = await logFor(mv, id);
  assert.equal(line.verdict, 'monitor');
  assert.deepEqual(line.rules, ['t-monitor']);
  assert.equal(line.next_hop_reply, '250 2.0.0');
});

test('tag: delivered with "X-Mailveil-Verdict: tag; rules=t-tag" and the body unchanged', { skip }, async () => {
  const { sink, mv } = await env();
  const body = `Hello,\r\n\r\nplease file this under ${V.tag}.\r\n`;
  const [m, h] = await delta(mv, [msgs('tag'), hits('t-tag', 'tag')], async () => {
    queuedId(await send(mv, mail('tag', { body })));
  });
  assert.deepEqual([m, h], [1, 1]);
  const got = await atSink(sink, 'tag');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['tag; rules=t-tag']);
  assert.equal(got.body, asDelivered(body));
});

test('tag: a forged verdict header from the sender is replaced, not kept beside ours', { skip }, async () => {
  const { sink, mv } = await env();
  const body = `Reference ${V.tag}.\r\n`;
  queuedId(await send(mv, mail('forged', { body, headers: 'X-Mailveil-Verdict: pass; rules=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n' })));
  const got = await atSink(sink, 'forged');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['tag; rules=t-tag']);
});

test('redact: values replaced in a QP body, a base64 attachment, an HTML part and a non-ASCII Subject', { skip }, async () => {
  const { sink, mv } = await env();
  const B = 'mv-redact-boundary';
  // The QP card number is cut by a soft line break: decoding must come before detection.
  const qp =
    'Gr=C3=BC=C3=9Fe,\r\n\r\nthe card on file is 4111 1111 11=\r\n11 1111 and the SSN: 123-45-6789.\r\n' +
    'Caf=C3=A9 au lait is on the house.\r\n';
  // 52 bytes before the value: it straddles the first 57-byte (76-column) base64 line.
  const attachment = `Refund request for the order placed last week: card ${V.cardB64} please.\nUnrelated line stays.\n`;
  // A part with no value: it must leave byte-identical (guarantee 4), soft breaks and all.
  const untouched = 'Nothing to see here, just a long line that the client folded with a soft=\r\n break and an =C3=A9.\r\n';
  const b64 = Buffer.from(attachment, 'utf8').toString('base64').replace(/.{1,76}/g, '$&\r\n');
  const html = `<html><body><p>Card: <b>${V.cardHtml}</b></p><p>SSN ${V.ssnHtml} &amp; more</p></body></html>\r\n`;
  const subject = `=?UTF-8?Q?R=C3=BCckerstattung_Karte_${V.cardSubject.replace(/ /g, '_')}?=`;
  const body =
    `This is a multi-part message in MIME format.\r\n` +
    `--${B}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qp}` +
    `--${B}\r\nContent-Type: text/plain; charset=utf-8; name="refund.txt"\r\nContent-Disposition: attachment; filename="refund.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}` +
    `--${B}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${html}` +
    `--${B}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${untouched}` +
    `--${B}--\r\n`;
  const headers = `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n`;
  const [m, hc, hs] = await delta(mv, [msgs('redact'), hits('t-card', 'redact'), hits('t-ssn', 'redact')], async () => {
    queuedId(await send(mv, mail('redact', { subject, body, headers })));
  });
  assert.deepEqual([m, hc, hs], [1, 1, 1]);
  const got = await atSink(sink, 'redact');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['redact; rules=t-card,t-ssn']);
  assert.equal(decodeWords(got.header('Subject')[0]), 'Rückerstattung Karte [CARD]');

  const parts = mimeParts(got.body, B);
  assert.equal(parts.length, 4, got.body);
  assert.match(parts[0].header('Content-Transfer-Encoding'), /^quoted-printable$/i, 'QP stays QP');
  const text = qpDecode(parts[0].body).toString('utf8');
  assert.match(text, /the card on file is \[CARD\] and the SSN: \[SSN\]\./);
  assert.match(text, /^Grüße,/);
  assert.match(text, /Café au lait is on the house\./);

  assert.match(parts[1].header('Content-Transfer-Encoding'), /^base64$/i, 'base64 stays base64');
  assert.equal(Buffer.from(parts[1].body, 'base64').toString('utf8'), attachment.replace(V.cardB64, '[CARD]'), 'only the value changed, line ends included');

  assert.match(parts[2].body, /<p>Card: <b>\[CARD\]<\/b><\/p><p>SSN \[SSN\] &amp; more<\/p>/);
  assert.equal(parts[3].body, untouched.replace(/\r\n/g, '\n'), 'a part without a value leaves as it came');

  // Nowhere in the delivered bytes, in clear or in any of the forms above.
  const decoded = [got.data, text, Buffer.from(parts[1].body, 'base64').toString('utf8'), decodeWords(got.headers)].join('\n');
  for (const v of [V.cardQp, V.cardB64, V.cardHtml, V.cardSubject, V.ssnQp, V.ssnHtml]) {
    assert.ok(!decoded.includes(v) && !decoded.includes(digitsOnly(v)), `${v} was delivered`);
  }
});

test('quarantine: 250 "held in quarantine as <id>", nothing at the sink, listed with rule and pseudonym, nothing in clear on disk', { skip }, async () => {
  const { sink, mv } = await env();
  const from = 'keyholder.private@example.org';
  const body =
    `Here is the deploy key (synthetic):\r\n\r\n${V.keyLine}\r\n${V.keyMaterial}\r\n` +
    `VSRVMgT05MWSAtIE5PVCBBIFJFQUwgS0VZIC0gb3BlbnNzaC1rZXktdjEAIFNZTlRIRVRJ\r\n-----END OPENSSH PRIVATE KEY-----\r\n`;
  let id = '';
  const [m, h, gauge] = await delta(mv, [msgs('quarantine'), hits('t-quarantine', 'quarantine'), ['mailveil_quarantine_messages', {}]], async () => {
    id = heldId(await send(mv, mail('quarantine', { body }), from));
  });
  assert.deepEqual([m, h, gauge], [1, 1, 1]);
  await assertNothingAtSink(sink, 'quarantine');
  const line = await logFor(mv, id);
  assert.equal(line.verdict, 'quarantine');

  const list = runCli('quarantine', 'list', '--state-dir', mv.stateDir, '--json');
  assert.equal(list.code, 0, list.err);
  const entries = JSON.parse(list.out) as { id: string; rules: string[]; from: string; verdict: string; rcpts: string[] }[];
  const entry = entries.find((e) => e.id === id);
  assert.ok(entry, `quarantine list lacks ${id}: ${list.out}`);
  assert.deepEqual(entry.rules, ['t-quarantine']);
  assert.equal(entry.verdict, 'quarantine');
  assert.equal(entry.from, line.from, 'the same pseudonym as in the log line');
  assert.ok(entry.from && !entry.from.includes('keyholder') && !entry.from.includes('example.org'), entry.from);
  assert.ok(!list.out.includes(from) && !list.out.includes(V.keyLine));

  const needles = [V.keyLine, V.keyMaterial, 'OPENSSH PRIVATE KEY', from, 'keyholder.private', 'rcpt@example.net'];
  const files = walk(mv.stateDir);
  assert.ok(files.length > 0);
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const n of needles) {
      assert.ok(!bytes.includes(Buffer.from(n, 'utf8')), `${f} holds "${n}" in clear`);
      assert.ok(!bytes.includes(Buffer.from(n, 'utf16le')), `${f} holds "${n}" in clear (UTF-16)`);
    }
  }
});

test('a quarantined card number is readable nowhere under state_dir (shipped rules: a card in a display name is quarantined)', { skip }, async () => {
  // The shipped rules.d, as an operator starts with it: payment-card-in-headers quarantines.
  const sink = await startSink();
  running.push(sink);
  const mv = await startMailveil({ nextHop: sink.address });
  running.push(mv);
  const card = '4539 1488 0343 6467';
  const csv = Buffer.from(`name,card\r\nPat Example,${card.replace(/ /g, '')}\r\n`);
  const message =
    `From: Sender <sender@example.com>\r\nTo: "Card ${card}" <rcpt@example.net>\r\nSubject: order\r\n` +
    `Message-ID: <card-at-rest@mail.example.com>\r\nX-Test-Case: card-at-rest\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n` +
    `--b\r\nContent-Type: text/plain\r\n\r\nCard ${card}, also ${card.replace(/ /g, '-')}.\r\n` +
    `--b\r\nContent-Type: text/csv; name="cards.csv"\r\nContent-Transfer-Encoding: base64\r\n\r\n${csv.toString('base64')}\r\n--b--\r\n`;
  const id = heldId(await send(mv, message));
  const logLine = await mv.waitForLog((l) => l.id === id && typeof l.verdict === 'string', `the log line of ${id}`);
  assert.equal(logLine.verdict, 'quarantine');
  assert.deepEqual(logLine.rules, ['payment-card', 'payment-card-in-headers']);
  await assertNothingAtSink(sink, 'card-at-rest');

  // Every way the number could sit in a file: grouped, dashed, bare, in the base64 of the attachment, in UTF-16.
  const digits = card.replace(/ /g, '');
  const forms = [card, card.replace(/ /g, '-'), digits, csv.toString('base64').slice(0, 40)];
  const files = walk(mv.stateDir);
  assert.ok(files.some((f) => f.includes('quarantine')), `no quarantine file under ${mv.stateDir}: ${files.join(', ')}`);
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const form of forms) for (const enc of ['utf8', 'utf16le'] as const) assert.ok(!bytes.includes(Buffer.from(form, enc)), `${f} holds the card (${enc}) in clear`);
    assert.doesNotMatch(bytes.toString('latin1'), /4539\D{0,3}1488\D{0,3}0343\D{0,3}6467/, `${f} holds the card in clear`);
  }
  // Nor in what mailveil printed.
  assert.ok(!JSON.stringify(mv.logs()).includes(digits.slice(0, 8)) && !mv.stderr().includes(digits.slice(0, 8)));
});

test('reject: exactly the rule\'s 550 reply, nothing at the sink', { skip }, async () => {
  const { sink, mv } = await env();
  const [m, h] = await delta(mv, [msgs('reject'), hits('t-reject', 'reject')], async () => {
    const r = await send(mv, mail('reject', { body: `Order ${V.reject} must not leave.\r\n` }));
    assert.equal(`${r.code} ${r.text}`, REJECT_REPLY);
  });
  assert.deepEqual([m, h], [1, 1]);
  await assertNothingAtSink(sink, 'reject');
});

test('tempfail: exactly the rule\'s 451 reply, nothing at the sink', { skip }, async () => {
  const { sink, mv } = await env();
  const [m, h] = await delta(mv, [msgs('tempfail'), hits('t-tempfail', 'tempfail')], async () => {
    const r = await send(mv, mail('tempfail', { body: `Batch ${V.tempfail} waits.\r\n` }));
    assert.equal(`${r.code} ${r.text}`, TEMPFAIL_REPLY);
  });
  assert.deepEqual([m, h], [1, 1]);
  await assertNothingAtSink(sink, 'tempfail');
});

test('redact that cannot be applied falls back to quarantine: a card in a part that does not round-trip through its charset is held, counted as redact_failed', { skip }, async () => {
  const { sink, mv } = await env();
  // The part says UTF-8 but holds a byte that is not UTF-8 (0xFF): re-encoded
  // after redaction, the bytes around the card would not come back as they
  // were, so the redact stage refuses and the original must be held.
  const body = `Card ${V.cardNbsp.replace(/&nbsp;/g, ' ')}, caf\u00ff\r\n`;
  const raw = Buffer.from(mail('redact-failed', { body, headers: 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n' }), 'latin1');
  const [m, u, h] = await delta(mv, [msgs('quarantine'), unscannable('redact_failed'), hits('t-card', 'redact')], async () => {
    heldId(await send(mv, raw));
  });
  assert.deepEqual([m, u, h], [1, 1, 1]);
  await assertNothingAtSink(sink, 'redact-failed');
});

test('a card in HTML attribute values, a comment and an Outlook conditional comment is delivered redacted', { skip }, async () => {
  const { sink, mv } = await env();
  const card = V.cardNbsp.replace(/&nbsp;/g, ' ');
  const body =
    `<html><body><p title="Card ${V.cardNbsp}" data-x='${card}'>Hello</p><!-- ${card} -->` +
    `<!--[if mso]><td alt=${card.replace(/ /g, '&#32;')}>${card}</td><![endif]--></body></html>\r\n`;
  queuedId(await send(mv, mail('redact-html-hidden', { body, headers: 'MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n' })));
  const got = await atSink(sink, 'redact-html-hidden');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['redact; rules=t-card']);
  const text = got.data;
  assert.match(text, /<p title="Card \[CARD\]" data-x='\[CARD\]'>Hello<\/p><!-- \[CARD\] --><!--\[if mso\]><td alt=\[CARD\]>\[CARD\]<\/td><!\[endif\]-->/);
  assert.ok(!text.includes('4111'), text);
});

test('redact with scope [headers]: the value in a Comments field must not leave in clear', {
  skip,
}, async () => {
  const { sink, mv } = await env();
  const r = await send(mv, mail('header-redact', {
    body: 'Nothing in the body.\r\n',
    headers: `Comments: internal reference ${V.headerSecret}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n`,
  }));
  if (HELD.test(r.text)) return; // holding it would be fail-closed too
  queuedId(r);
  const got = await atSink(sink, 'header-redact');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['redact; rules=t-header-redact']);
  assert.ok(!got.data.includes(V.headerSecret), `delivered in clear: Comments: ${got.header('Comments')[0]}`);
  assert.deepEqual(got.header('Comments'), ['internal reference [HDR]']);
});

test('values hidden in HTML (comment, <style>, data- attribute) are delivered redacted, never in clear', {
  skip,
}, async () => {
  const { sink, mv } = await env();
  const html =
    `<html><head><style>/* ${V.cardStyle} */ p { color: red }</style></head>` +
    `<body><!-- card ${V.cardComment} --><p data-card="${V.cardDataAttr}">Hello</p></body></html>\r\n`;
  // Redacted where pass 1 saw them, so delivered.
  queuedId(await send(mv, mail('html-hidden', { body: html, headers: 'MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n' })));
  const got = await atSink(sink, 'html-hidden');
  for (const v of [V.cardComment, V.cardStyle, V.cardDataAttr]) {
    assert.ok(!got.data.includes(v), `${v} delivered in clear (verdict header: ${got.header('X-Mailveil-Verdict')[0]})`);
  }
});

// ---- precedence ---------------------------------------------------------------------

test('precedence: tag + reject is rejected; redact + quarantine is quarantined; tempfail + quarantine is deferred; monitor + tag is tagged', { skip }, async () => {
  const { sink, mv } = await env();
  const [mr, ht, hr] = await delta(mv, [msgs('reject'), hits('t-tag', 'tag'), hits('t-reject', 'reject')], async () => {
    const r = await send(mv, mail('tag-reject', { body: `${V.tag} and ${V.reject}\r\n` }));
    assert.equal(`${r.code} ${r.text}`, REJECT_REPLY);
  });
  assert.deepEqual([mr, ht, hr], [1, 1, 1], 'both rules fired; the stronger action won');

  let id = '';
  const [mq, hc] = await delta(mv, [msgs('quarantine'), hits('t-card', 'redact')], async () => {
    id = heldId(await send(mv, mail('redact-quarantine', { body: `Card ${V.cardQp}\r\n${V.keyLine}\r\n${V.keyMaterial}\r\n` })));
  });
  assert.deepEqual([mq, hc], [1, 1]);
  const list = runCli('quarantine', 'list', '--state-dir', mv.stateDir, '--json');
  const entry = (JSON.parse(list.out) as { id: string; rules: string[] }[]).find((e) => e.id === id);
  assert.deepEqual(entry?.rules, ['t-card', 't-quarantine']);

  const r = await send(mv, mail('tempfail-quarantine', { body: `${V.tempfail}\r\n${V.keyLine}\r\n` }));
  assert.equal(`${r.code} ${r.text}`, TEMPFAIL_REPLY);
  for (const c of ['tag-reject', 'redact-quarantine', 'tempfail-quarantine']) await assertNothingAtSink(sink, c);

  // monitor + tag: tagged, and the monitor rule stays out of the header.
  const [mt, hm] = await delta(mv, [msgs('tag'), hits('t-monitor', 'monitor')], async () => {
    queuedId(await send(mv, mail('monitor-tag', { body: `${V.monitor} ${V.tag}\r\n` })));
  });
  assert.deepEqual([mt, hm], [1, 1]);
  assert.deepEqual((await atSink(sink, 'monitor-tag')).header('X-Mailveil-Verdict'), ['tag; rules=t-tag']);
});

// ---- fail closed (guarantee 5) ---------------------------------------------------------

test('unscannable: corrupt base64 is quarantined and counted as bad_base64', { skip }, async () => {
  const { sink, mv } = await env();
  const B = 'mv-bad64';
  const body =
    `--${B}\r\nContent-Type: text/plain\r\n\r\nHello.\r\n` +
    `--${B}\r\nContent-Type: text/plain; name="x.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\nThis is *not* base64 at all!!! ### %%%%\r\n` +
    `--${B}--\r\n`;
  let id = '';
  const [m, u] = await delta(mv, [msgs('quarantine'), unscannable('bad_base64')], async () => {
    id = heldId(await send(mv, mail('bad-base64', { body, headers: `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n` })));
  });
  assert.deepEqual([m, u], [1, 1]);
  await assertNothingAtSink(sink, 'bad-base64');
  const list = runCli('quarantine', 'list', '--state-dir', mv.stateDir, '--json');
  const entry = (JSON.parse(list.out) as { id: string; verdict: string; rules: string[]; reasons: string[] }[]).find((e) => e.id === id);
  assert.ok(entry, list.out);
  assert.equal(entry.verdict, 'unscannable');
  assert.deepEqual(entry.rules, []);
  assert.deepEqual(entry.reasons, ['bad_base64']);
});

test('unscannable: a MIME tree deeper than limits.max_mime_depth (3) is quarantined and counted as mime_depth', { skip }, async () => {
  const { sink, mv } = await env();
  const nest = (d: number): string =>
    d === 0 ? 'Content-Type: text/plain\r\n\r\ndeep text\r\n' : `Content-Type: multipart/mixed; boundary="d${d}"\r\n\r\n--d${d}\r\n${nest(d - 1)}--d${d}--\r\n`;
  const full = nest(6);
  const sep = full.indexOf('\r\n\r\n');
  const [m, u] = await delta(mv, [msgs('quarantine'), unscannable('mime_depth')], async () => {
    heldId(await send(mv, mail('deep', { headers: 'MIME-Version: 1.0\r\n' + full.slice(0, sep + 2), body: full.slice(sep + 4) })));
  });
  assert.deepEqual([m, u], [1, 1]);
  await assertNothingAtSink(sink, 'deep');
});

test('not extracted: a PNG attachment without PII is delivered, counted as not_extracted, and never reported as scanned', { skip }, async () => {
  const { sink, mv } = await env();
  const B = 'mv-png';
  // A real 1x1 PNG.
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
  const body =
    `--${B}\r\nContent-Type: text/plain\r\n\r\nSee the picture.\r\n` +
    `--${B}\r\nContent-Type: image/png; name="dot.png"\r\nContent-Disposition: attachment; filename="dot.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n${png}\r\n` +
    `--${B}--\r\n`;
  let id = '';
  const [m, u] = await delta(mv, [msgs('pass'), unscannable('not_extracted')], async () => {
    id = queuedId(await send(mv, mail('png', { body, headers: `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n` })));
  });
  assert.deepEqual([m, u], [1, 1]);
  const got = await atSink(sink, 'png');
  assert.equal(got.body, asDelivered(body), 'delivered byte for byte');
  // Designed behaviour (src/pipeline/stages/verdict-header.ts, pipeline/lifecycle.ts): a part
  // that was not extracted does not change the verdict; it is only counted in
  // mailveil_unscannable_total{reason="not_extracted"}. The header carries the
  // action and rule ids only, and says nothing like "clean" or "scanned".
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['pass; rules=']);
  assert.doesNotMatch(got.headers, /clean|scanned/i);
  const line = await logFor(mv, id);
  assert.equal(line.verdict, 'pass');
});

// ---- guarantee 6: no side doors ----------------------------------------------------------

test('no matched value in logs, /metrics, SMTP replies or added headers', { skip }, async () => {
  const { sink, mv } = await env();
  assert.ok(replies.length >= 8, 'runs after the action tests');
  const metricsText = (await scrape(mv)).text;
  const logs = JSON.stringify(mv.logs()) + '\n' + mv.rawLines().join('\n') + '\n' + mv.stderr();
  const replyText = replies.map((r) => `${r.code} ${r.text}`).join('\n');
  const added = sink.messages().flatMap((m) => m.header('X-Mailveil-Verdict')).join('\n');
  assert.ok(added.length > 0);
  for (const v of ALL_VALUES) {
    assert.ok(!logs.includes(v), `"${v}" is in mailveil's logs`);
    assert.ok(!metricsText.includes(v), `"${v}" is in /metrics`);
    assert.ok(!replyText.includes(v), `"${v}" is in an SMTP reply`);
    assert.ok(!added.includes(v), `"${v}" is in an added header`);
  }
  for (const clear of ['keyholder.private', 'sender@example.com', 'rcpt@example.net']) {
    assert.ok(!logs.includes(clear), `"${clear}" in clear in the logs`);
  }
  assert.deepEqual(mv.rawLines(), [], 'every stdout line is pino JSON');
  // The per-message lines carry rule ids and no finding detail that could hold a value.
  for (const l of mv.logs().filter((x) => x.msg === 'message')) {
    for (const r of l.rules as string[]) assert.match(r, /^t-[a-z-]+$/);
  }
});

// ---- hot reload -------------------------------------------------------------------------------

test('hot reload: a new reject rule applies to the next message; a broken file is refused and the previous rules stay live', { skip }, async () => {
  const { sink } = await env();
  const rulesDir = tempDir('mv-dlp-reload-');
  writeRules(rulesDir);
  const mv = await startMailveil({ nextHop: sink.address, rulesDir });
  running.push(mv);
  const startRules = 8;

  // Before the new rule, the new pattern is nothing special.
  queuedId(await send(mv, mail('before-reload', { body: `${V.newBlock}\r\n` })));
  await atSink(sink, 'before-reload');

  writeFileSync(
    join(rulesDir, '20-new.yaml'),
    `rules:\n  - id: t-new-block\n    pattern: '\\bNEWBLOCK-[0-9]{4}\\b'\n    action: reject\n    reply: "550 5.7.1 New block (test)"\n`,
  );
  const ok = await mv.waitForLog((l) => l.event === 'rules_reload' && l.result === 'ok' && l.rules === startRules + 1, 'rules_reload ok with the new rule');
  assert.equal(ok.trigger, 'watch');
  let r = await send(mv, mail('after-reload', { body: `${V.newBlock}\r\n` }));
  assert.equal(`${r.code} ${r.text}`, '550 5.7.1 New block (test)');
  await assertNothingAtSink(sink, 'after-reload');

  writeFileSync(join(rulesDir, '30-broken.yaml'), `rules:\n  - id: t-broken\n    pattern: '(?<=x)y'\n    action: tag\n`);
  const bad = await mv.waitForLog((l) => l.event === 'rules_reload' && l.result === 'error', 'rules_reload error');
  const errors = bad.errors as string[];
  assert.ok(Array.isArray(errors) && errors.length === 1, JSON.stringify(bad));
  assert.match(errors[0], /30-broken\.yaml:3:14: pattern is not valid RE2/);
  assert.match(errors[0], /^.+:\d+:\d+: .+$/);
  const s = await scrape(mv);
  assert.equal(s.get('mailveil_rules_reload_total', { result: 'error' }), 1);
  assert.ok(s.get('mailveil_rules_reload_total', { result: 'ok' }) >= 2);

  // The last good set (with the new rule) is still the live one.
  r = await send(mv, mail('after-broken', { body: `${V.newBlock}\r\n` }));
  assert.equal(`${r.code} ${r.text}`, '550 5.7.1 New block (test)');
  r = await send(mv, mail('after-broken-tag', { body: `${V.tag} and y after x: xy\r\n` }));
  queuedId(r);
  const got = await atSink(sink, 'after-broken-tag');
  assert.deepEqual(got.header('X-Mailveil-Verdict'), ['tag; rules=t-tag']);
  const logs = JSON.stringify(mv.logs()) + mv.stderr();
  assert.ok(!logs.includes(V.newBlock) && !logs.includes(V.tag));
});
