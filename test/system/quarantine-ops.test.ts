/*
 * Quarantine operations as an operator runs them (issue 4, points 1-4): a
 * running mailveil in front of smtp-sink holds messages through SMTP, then
 * the real bin/mailveil CLI lists, shows, releases, deletes, purges and
 * rotates keys on the same state_dir (--config). Checked along the way:
 *  - release delivers the original exactly once with its original envelope,
 *    and removes the entry only after the sink's 250; a sink refusing the
 *    final dot, or no sink at all, leaves the entry in place;
 *  - an entry written under a key that was rotated away still shows and
 *    releases;
 *  - serve purged an expired entry at start, audited as actor `mailveil`;
 *  - the audit log has one event per message and per admin action with the
 *    right actor, and no file under state_dir holds an address, the body or
 *    a matched value in clear.
 * Tests run in order and share one sink and one mailveil.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { startSink, systemSkipReason, type Sink } from '../helpers/sink';
import { startMailveil, type Mailveil } from '../helpers/mailveil';
import { sendOne, type ClientReply } from '../helpers/smtp-client';
import { BIN, REPO_ROOT } from '../helpers/paths';
import { freePort, sleep, waitFor } from '../helpers/ports';
import { QuarantineStore } from '../../src/quarantine/store';
import { auditDir, type AuditEvent } from '../../src/audit/log';
import { cleanupAfter } from '../helpers/cleanup';

const skip = systemSkipReason(['smtp-sink']);
const { running, tempDir } = cleanupAfter();

const RULES = `rules:
  - id: t-hold
    pattern: '\\bHOLDME-[0-9]{4}\\b'
    scope: [body, attachments]
    action: quarantine
  - id: t-subject
    pattern: '\\bSUBJSECRET-[0-9]{4}\\b'
    scope: [subject]
    action: quarantine
  - id: t-hdr
    pattern: '\\bHDRSECRET-[0-9]{4}\\b'
    scope: [headers]
    action: quarantine
`;

/** Synthetic values that must never be found in clear under state_dir. */
const V = {
  from: 'qops-sender@example.com',
  rcpt1: 'qops-one@example.net',
  rcpt2: 'qops-two@example.net',
  hold: 'HOLDME-4711',
  subject: 'SUBJSECRET-2718',
  bodyMarker: 'BODYMARKER-only-in-the-body',
  hdr: 'HDRSECRET-4242',
};
const ACTOR = `os:${userInfo().username}`;

interface Env {
  sink: Sink;
  mv: Mailveil;
  stateDir: string;
  config: string;
}
let envPromise: Promise<Env> | undefined;

function env(): Promise<Env> {
  envPromise ??= (async () => {
    const rulesDir = tempDir('mv-qops-rules-');
    cpSync(join(REPO_ROOT, 'rules.d', '00-headers.yaml'), join(rulesDir, '00-headers.yaml'));
    writeFileSync(join(rulesDir, '10-test.yaml'), RULES);
    const stateDir = tempDir('mv-qops-state-');
    // An entry already past retention: serve must purge it at start.
    const old = Buffer.from('Subject: expired\r\n\r\nold\r\n');
    await new QuarantineStore(stateDir).put(
      { id: 'EXPIRED1', receivedAt: '2020-01-01T00:00:00.000Z', size: old.length, verdict: 'quarantine', rules: ['t-hold'], reasons: [], from: 'p1', rcpts: ['p2'], findings: [], subjects: ['s1'] },
      (async function* () {
        yield old;
      })(),
    );
    const sink = await startSink();
    running.push(sink);
    const config = join(tempDir('mv-qops-cfg-'), 'mailveil.yaml');
    writeFileSync(config, `state_dir: ${JSON.stringify(stateDir)}\nrules_dir: ${JSON.stringify(rulesDir)}\nnext_hop: ${JSON.stringify(sink.address)}\nquarantine: { retention: 30d }\n`);
    const mv = await startMailveil({ nextHop: sink.address, rulesDir, stateDir, config });
    running.push(mv);
    return { sink, mv, stateDir, config };
  })();
  return envPromise;
}

function cli(e: Env, ...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--config', e.config], { encoding: 'utf8', timeout: 60_000, cwd: REPO_ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

let seq = 0;
function mail(testCase: string, subject: string, extraHeaders = ''): string {
  return (
    `From: Sender <${V.from}>\r\nTo: <${V.rcpt1}>, <${V.rcpt2}>\r\nSubject: ${subject}\r\n${extraHeaders}` +
    `Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <qops-${testCase}-${++seq}@mail.example.com>\r\n` +
    `X-Test-Case: ${testCase}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
    `Hello,\r\nthe reference is ${V.hold}.\r\n..leading dot line\r\n${V.bodyMarker}\r\n`
  );
}

async function hold(e: Env, testCase: string, subject = `case ${testCase}`, extraHeaders = ''): Promise<{ id: string; body: string }> {
  const body = mail(testCase, subject, extraHeaders);
  const r = await sendOne(e.mv.port, {
    from: V.from,
    to: [V.rcpt1, V.rcpt2],
    body,
    mailParams: 'BODY=8BITMIME ENVID=qops+2Benv',
    rcptParams: 'NOTIFY=SUCCESS,FAILURE',
  });
  const final = r.final as ClientReply;
  assert.equal(final?.code, 250, JSON.stringify(r));
  const m = /^2\.0\.0 Ok: held in quarantine as ([0-9A-Z]+)$/.exec(final.text);
  assert.ok(m, final.text);
  return { id: m[1], body };
}

function listJson(e: Env, ...args: string[]): { id: string; keyId: string; rules: string[] }[] {
  const r = cli(e, 'quarantine', 'list', '--json', ...args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}

function auditEvents(stateDir: string): AuditEvent[] {
  const dir = auditDir(stateDir);
  return readdirSync(dir)
    .filter((n) => /^audit-\d{4}-\d{2}-\d{2}\.jsonl$/.test(n))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent));
}

async function sinkCopies(sink: Sink, testCase: string): Promise<number> {
  return sink.messages().filter((m) => m.header('X-Test-Case')[0] === testCase).length;
}

const held: Record<string, { id: string; body: string }> = {};

test('serve purged the expired entry at start, audited as actor mailveil with the count', { skip }, async () => {
  const e = await env();
  await e.mv.waitForLog((l) => l.msg === 'retention purge', 'retention purge at start');
  assert.deepEqual(listJson(e), []);
  const purges = auditEvents(e.stateDir).filter((x) => x.event === 'purge');
  assert.equal(purges.length, 1);
  assert.equal(purges[0].actor, 'mailveil');
  assert.equal(purges[0].details?.quarantine_deleted, 1);
  assert.deepEqual(purges[0].details?.ids, ['EXPIRED1']);
});

test('messages held through SMTP are listed; --rule and --older-than filter', { skip }, async () => {
  const e = await env();
  held.a = await hold(e, 'qa');
  held.b = await hold(e, 'qb');
  held.s = await hold(e, 'qs', `Quarterly ${V.subject} report`, `Comments: see ${V.hdr}\r\n`);

  const all = listJson(e);
  assert.deepEqual(all.map((x) => x.id).sort(), [held.a.id, held.b.id, held.s.id].sort());
  assert.deepEqual(listJson(e, '--rule', 't-subject').map((x) => x.id), [held.s.id]);
  assert.deepEqual(listJson(e, '--rule', 't-hold').map((x) => x.id).sort(), [held.a.id, held.b.id, held.s.id].sort());
  assert.deepEqual(listJson(e, '--rule', 'no-such-rule'), []);
  assert.deepEqual(listJson(e, '--older-than', '1d'), []);
  assert.equal(listJson(e, '--older-than', '1ms').length, 3);

  let r = cli(e, 'quarantine', 'list', '--rule', 't-subject');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^${held.s.id}  \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  \\d+ B  quarantine  rules=[a-z,-]*t-subject[a-z,-]*  from=[0-9a-f]{16}  rcpts=2\\n$`));
  r = cli(e, 'quarantine', 'list', '--older-than', '1d');
  assert.equal(r.out, 'no matching messages in quarantine\n');
  r = cli(e, 'quarantine', 'list', '--older-than', 'soon');
  assert.equal(r.code, 1);
  assert.match(r.err, /^mailveil: --older-than: must be a duration/);
  assert.equal(r.err.split('\n').filter(Boolean).length, 1);
});

test('show prints the summary, the findings and the headers (Subject value masked), never the body', { skip }, async () => {
  const e = await env();
  const r = cli(e, 'quarantine', 'show', held.s.id);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^id:        ${held.s.id}\\n`));
  assert.match(r.out, /\nrules:     t-hold,t-subject,t-hdr\n/);
  assert.match(r.out, /\nfindings:\n(  rule=.*\n){3}headers:\n/);
  assert.match(r.out, /\n  rule=t-hdr detector=pattern count=1 part=0 scope=headers offset=\d+\n/);
  assert.match(r.out, /\n  rule=t-hold detector=pattern count=1 part=1 scope=body offset=\d+\n/);
  assert.match(r.out, /\n  rule=t-subject detector=pattern count=1 part=0 scope=subject offset=\d+\n/);
  assert.match(r.out, /\nheaders:\n/);
  assert.ok(r.out.includes('\n  Subject: [masked: t-subject]\n'), r.out);
  // A headers-scope finding masks the field the rule matches in, and only that one.
  assert.ok(r.out.includes('\n  Comments: [masked: t-hdr]\n'), r.out);
  assert.ok(r.out.includes(`\n  To: <${V.rcpt1}>, <${V.rcpt2}>\n`), r.out);
  assert.ok(r.out.includes('\n  X-Test-Case: qs\n'), r.out);
  // Other header lines are shown as they are (the operator may see who is involved).
  assert.ok(r.out.includes(`\n  From: Sender <${V.from}>\n`), r.out);
  for (const secret of [V.subject, V.hdr, V.hold, V.bodyMarker, 'leading dot line']) assert.ok(!r.out.includes(secret), `show printed ${secret}`);

  const j = cli(e, 'quarantine', 'show', held.a.id, '--json');
  assert.equal(j.code, 0, j.err);
  const s = JSON.parse(j.out);
  assert.equal(s.id, held.a.id);
  assert.deepEqual(s.rules, ['t-hold']);
  assert.equal(s.findings[0].rule, 't-hold');
  assert.equal(typeof s.headers, 'string');
  assert.match(s.headers, /^Subject: case qa$/m);
  assert.deepEqual(s.masked, []);
  assert.ok(!j.out.includes(V.hold) && !j.out.includes(V.bodyMarker));
  assert.ok(!('envelope' in s) && !('subjects' in s));
});

test('keys rotate: a new current key, audited; entries under the old key keep their key id', { skip }, async () => {
  const e = await env();
  const before = listJson(e);
  const oldKey = before[0].keyId;
  const r = cli(e, 'keys', 'rotate', '--json');
  assert.equal(r.code, 0, r.err);
  const k = JSON.parse(r.out);
  assert.match(k.keyId, /^[0-9a-f]{16}$/);
  assert.equal(k.previous, oldKey);
  assert.deepEqual(k.keys, [oldKey, k.keyId].sort());
  const t = cli(e, 'keys', 'rotate');
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /^new key [0-9a-f]{16} is current \(was [0-9a-f]{16}\); 3 keys on disk, 1 used by entries\n$/);
  // A message held now is under the newest key; the old ones still under the old key.
  held.c = await hold(e, 'qc');
  const after = new Map(listJson(e).map((x) => [x.id, x.keyId]));
  assert.equal(after.get(held.a.id), oldKey);
  assert.notEqual(after.get(held.c.id), oldKey);
  const show = cli(e, 'quarantine', 'show', held.a.id);
  assert.equal(show.code, 0, show.err);
});

test('release to a next hop that refuses the final dot, or is down, keeps the entry with a clear one-line error', { skip }, async () => {
  const e = await env();
  const refusing = await startSink({ flags: ['-f', '.'] });
  running.push(refusing);
  let r = cli(e, 'quarantine', 'release', held.a.id, '--next-hop', refusing.address);
  assert.equal(r.code, 1, r.out);
  assert.equal(r.err.split('\n').filter(Boolean).length, 1, r.err);
  assert.match(r.err, new RegExp(`^mailveil: next hop ${refusing.address} answered 5\\d\\d .*; entry ${held.a.id} kept\\n$`));
  assert.ok(listJson(e).some((x) => x.id === held.a.id));

  const down = await freePort();
  r = cli(e, 'quarantine', 'release', held.a.id, '--next-hop', `127.0.0.1:${down}`);
  assert.equal(r.code, 1, r.out);
  assert.match(r.err, new RegExp(`^mailveil: cannot deliver to next hop 127\\.0\\.0\\.1:${down}: .+\\n$`));
  assert.ok(listJson(e).some((x) => x.id === held.a.id));
  assert.equal(await sinkCopies(e.sink, 'qa'), 0);
});

test('release (entry under a rotated key) delivers the original once with its envelope, then the entry is gone', { skip }, async () => {
  const e = await env();
  const r = cli(e, 'quarantine', 'release', held.a.id);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^released ${held.a.id} to ${e.sink.address.replace(/\./g, '\\.')}: 250 .*\\n$`));
  const m = await waitFor(() => e.sink.messages().find((x) => x.header('X-Test-Case')[0] === 'qa'), { timeoutMs: 10_000, what: 'released message at the sink' });
  assert.equal(m.mailFrom, `<${V.from}> BODY=8BITMIME ENVID=qops+2Benv`);
  assert.deepEqual(m.rcptTo, [`<${V.rcpt1}> NOTIFY=SUCCESS,FAILURE`, `<${V.rcpt2}> NOTIFY=SUCCESS,FAILURE`]);
  // The held original, byte for byte: sent dot-stuffed on the wire ("..leading"), held
  // unstuffed, stuffed again by the release (the sink stores LF line ends and unstuffs).
  // Like every delivered message it went through the rewriters: this one has no
  // internal hop or host to anonymise, so only the verdict header is added
  // (test/system/release-rewriters.test.ts has the hops).
  const original = (held.a.body + '\r\n').replace(/\r\n\.\./g, '\r\n.');
  assert.ok(original.includes('\r\n.leading dot line\r\n'));
  assert.equal(m.data, ('X-Mailveil-Verdict: released; rules=t-hold\r\n' + original).replace(/\r\n/g, '\n'));
  assert.ok(!listJson(e).some((x) => x.id === held.a.id));
  await sleep(300);
  assert.equal(await sinkCopies(e.sink, 'qa'), 1);

  const again = cli(e, 'quarantine', 'release', held.a.id);
  assert.equal(again.code, 1);
  assert.equal(again.err, `mailveil: no quarantine entry ${held.a.id}\n`);

  const j = cli(e, 'quarantine', 'release', held.c.id, '--json');
  assert.equal(j.code, 0, j.err);
  const out = JSON.parse(j.out);
  assert.equal(out.id, held.c.id);
  assert.equal(out.released, true);
  assert.equal(out.rcpts, 2);
  assert.match(out.reply, /^250 /);
  await waitFor(() => e.sink.messages().find((x) => x.header('X-Test-Case')[0] === 'qc'), { timeoutMs: 10_000, what: 'qc at the sink' });
});

test('delete removes an entry; unknown and malformed ids are one-line errors, exit 1', { skip }, async () => {
  const e = await env();
  let r = cli(e, 'quarantine', 'delete', held.b.id);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `deleted ${held.b.id}\n`);
  assert.ok(!listJson(e).some((x) => x.id === held.b.id));
  for (const cmd of ['show', 'release', 'delete']) {
    r = cli(e, 'quarantine', cmd, held.b.id);
    assert.equal(r.code, 1, `${cmd}: ${r.out}`);
    assert.equal(r.err, `mailveil: no quarantine entry ${held.b.id}\n`);
    assert.equal(r.out, '');
    r = cli(e, 'quarantine', cmd, '../etc/passwd', '--json');
    assert.equal(r.code, 1);
    assert.equal(r.err, 'mailveil: invalid quarantine id "../etc/passwd"\n');
  }
  r = cli(e, 'quarantine', 'delete', held.s.id, '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { id: held.s.id, deleted: true });
  assert.equal(await sinkCopies(e.sink, 'qb'), 0);
});

test('purge on demand: nothing is past 30d, the counts are printed and audited', { skip }, async () => {
  const e = await env();
  const r = cli(e, 'quarantine', 'purge');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^purged 0 quarantine entries, 0 left; audit log: 0 days \(0 events\) removed; keys removed: none\n$/);
  const j = cli(e, 'quarantine', 'purge', '--json');
  assert.equal(j.code, 0, j.err);
  assert.deepEqual(JSON.parse(j.out), { quarantineDeleted: 0, unreadableDeleted: 0, ids: [], quarantineRemaining: 0, auditFilesDeleted: 0, auditEventsDeleted: 0, keysRemoved: [] });
});

test('the gauge follows CLI changes: mailveil_quarantine_messages drops to 0', { skip }, async () => {
  const e = await env();
  await waitFor(
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${e.mv.metricsPort}/metrics`)).text();
      return /^mailveil_quarantine_messages 0$/m.test(text);
    },
    { timeoutMs: 15_000, what: 'mailveil_quarantine_messages 0' },
  );
});

test('the audit log has one event per message and per action, with the right actor', { skip }, async () => {
  const e = await env();
  const events = auditEvents(e.stateDir);
  const of = (event: string, id?: string) => events.filter((x) => x.event === event && (id === undefined || x.id === id));
  // One verdict per message held (a, b, s, c), by smtp, with subjects and rule ids.
  for (const h of [held.a, held.b, held.s, held.c]) {
    const v = of('verdict', h.id);
    assert.equal(v.length, 1, `verdict events for ${h.id}`);
    assert.equal(v[0].actor, 'smtp');
    assert.equal(v[0].details?.verdict, 'quarantine');
    assert.equal(v[0].details?.reply, 250);
    assert.equal(v[0].details?.reply_class, '2xx');
    assert.ok(Array.isArray(v[0].details?.rules));
    assert.equal(v[0].subjects?.length, 3);
    for (const s of v[0].subjects ?? []) assert.match(s, /^[0-9a-f]{16}$/);
  }
  // Releases of a: two failed attempts, then one that worked; c: one.
  assert.deepEqual(of('release', held.a.id).map((x) => [x.actor, x.details?.result]), [[ACTOR, 'failed'], [ACTOR, 'failed'], [ACTOR, 'ok']]);
  assert.equal(of('release', held.a.id)[0].details?.reply_class, '5xx');
  assert.deepEqual(of('release', held.c.id).map((x) => [x.actor, x.details?.result, x.details?.reply_class]), [[ACTOR, 'ok', '2xx']]);
  // The release carries the same subjects as the verdict.
  assert.deepEqual(of('release', held.a.id)[2].subjects, of('verdict', held.a.id)[0].subjects);
  assert.deepEqual(of('delete').map((x) => [x.id, x.actor]), [[held.b.id, ACTOR], [held.s.id, ACTOR]]);
  assert.deepEqual(of('key_rotate').map((x) => x.actor), [ACTOR, ACTOR]);
  assert.deepEqual(of('purge').map((x) => x.actor), ['mailveil', ACTOR, ACTOR]);
  // Unknown ids are not actions: they left no event.
  assert.equal(events.filter((x) => x.id === '../etc/passwd').length, 0);
  for (const f of readdirSync(auditDir(e.stateDir))) assert.equal(statSync(join(auditDir(e.stateDir), f)).mode & 0o777, 0o600);
  assert.equal(statSync(auditDir(e.stateDir)).mode & 0o777, 0o700);
});

test('no file under state_dir holds an address, the body, the Subject value or a matched value in clear', { skip }, async () => {
  const e = await env();
  const needles = Object.values(V).map((v) => Buffer.from(v));
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)]));
  const files = walk(e.stateDir);
  assert.ok(files.some((f) => f.includes(`${auditDir(e.stateDir)}`)));
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const n of needles) assert.ok(!bytes.includes(n), `${f} holds ${n.toString()} in clear`);
    assert.ok(!/[^\s@"<>]+@[^\s@"<>]+\.[a-z]{2,}/i.test(bytes.toString('latin1')) || !f.includes('/audit/'), `${f} holds something shaped like an address`);
  }
});
