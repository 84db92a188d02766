/*
 * TLS-RPT submission without a network: the `_smtp._tls` record parser
 * (RFC 8460 3) with a HIT and a MISS for each rule, the report message
 * (5.3) read back by an independent reader (test/helpers/report-mail.ts),
 * the attachment name (5.1), and submitDay() with fake transports: a second
 * run sends nothing, a temporary failure is retried, a permanent one is
 * given up, attempts are capped, a dry run leaves no trace, and no log line
 * carries a local part.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DayCounts, normalise } from '../../src/tlsrpt/counts';
import { buildReport, type Rfc8460Report } from '../../src/tlsrpt/report';
import { isTlsRptRecord, lookupRua, MAX_RUA, parseRua, parseTlsRptRecord, type TxtLookup } from '../../src/tlsrpt/rua';
import { composeReportMail, foldHeader, gzipReport, reportFileName } from '../../src/tlsrpt/report-mail';
import { submitDay, type DaySubmission, type Delivery, type SubmitDayOptions } from '../../src/tlsrpt/submit';
import { domainHash, lockDay, MAX_ATTEMPTS } from '../../src/tlsrpt/sent';
import { daysToSubmit, msUntilDaily, reportSender, startTlsRptSubmitter } from '../../src/operations/tlsrpt-submit';
import { loadConfig } from '../../src/config/load';
import { TlsRptStore } from '../../src/tlsrpt/store';
import { tlsrptDayDir, tlsrptSentName, TLSRPT_SEND_LOCK } from '../../src/state-layout';
import { parseReportMail } from '../helpers/report-mail';
import { rfc8460Errors } from '../helpers/rfc8460-schema';
import type { Config } from '../../src/config/load';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const DAY = '2026-01-31';
const ID = { organization: 'Ours Inc', contact: 'tlsrpt@ours.example', reporter: 'mx-out.ours.example' };
const STS = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: mx.b.example', 'max_age: 604800'], mxHosts: ['mx.b.example'] };

function reportFor(domain: string): Rfc8460Report {
  const c = new DayCounts(DAY);
  const ok = normalise({ day: DAY, policyDomain: domain, policy: STS, result: 'success' }, new Date());
  const bad = normalise({ day: DAY, policyDomain: domain, policy: STS, result: { type: 'certificate-expired', receivingMxHostname: 'mx.b.example', receivingIp: '203.0.113.25' } }, new Date());
  c.add(ok.domain, ok.policy, ok.failure, 7);
  c.add(bad.domain, bad.policy, bad.failure, 2);
  return buildReport(c, domain, ID)!;
}

/* ---------- the record (RFC 8460 3) ---------- */

test('rua: HIT: mailto and https, several URIs, several rua fields, spaces around ; and , and a trailing ;', () => {
  const r = parseTlsRptRecord('v=TLSRPTv1 ; rua=mailto:tls-reports@B.Example, https://reports.b.example/v1/tlsrpt ;rua=mailto:second%2Bbox@b.example; ');
  assert.equal(r.kind, 'ok');
  assert.deepEqual(
    r.kind === 'ok' && r.rua.map((x) => (x.kind === 'mailto' ? [x.kind, x.address, x.domain] : [x.kind, x.url.href, x.host])),
    [
      ['mailto', 'tls-reports@b.example', 'b.example'],
      ['https', 'https://reports.b.example/v1/tlsrpt', 'reports.b.example'],
      ['mailto', 'second+box@b.example', 'b.example'],
    ],
  );
  // Unknown extension fields are ignored (3: a superset of this version).
  const ext = parseTlsRptRecord('v=TLSRPTv1; ext.future=yes-1; rua=https://r.b.example/');
  assert.equal(ext.kind === 'ok' && ext.rua.length, 1);
});

test('rua: MISS: not a TLS-RPT record, no rua, bad syntax, unusable schemes', () => {
  for (const txt of ['v=TLSRPTv10; rua=mailto:a@b.example', 'v=tlsrptv1; rua=mailto:a@b.example', ' v=TLSRPTv1; rua=mailto:a@b.example', 'v=STSv1; id=1', 'v=TLSRPTv1 rua=mailto:a@b.example']) {
    assert.equal(isTlsRptRecord(txt), false, txt);
  }
  assert.equal(isTlsRptRecord('v=TLSRPTv1;rua=mailto:a@b.example'), true);
  assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1;'), { kind: 'invalid', reason: 'no field after the version' });
  assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1; ext=1'), { kind: 'invalid', reason: 'no rua field' });
  assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:a@b.example, ').kind, 'invalid', 'an empty URI in the list');
  assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua=reports at b.example').kind, 'invalid');
  assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua').kind, 'invalid');
  assert.equal(parseTlsRptRecord('v=TLSRPTv1; _bad=1; rua=mailto:a@b.example').kind, 'invalid', 'a field name starts with a letter or digit');
  assert.equal(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:a@b.example; ' + 'x'.repeat(5000) + '=1').kind, 'invalid', 'over the size limit');
  // Syntax is fine, but only mailto: and https: are used.
  assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1; rua=http://r.b.example/, ftp://r.b.example/'), { kind: 'ok', rua: [], skipped: 2 });
  for (const uri of ['mailto:', 'mailto:@b.example', 'mailto:a@', 'mailto:a@b.example%2Cc@d.example', 'mailto:%C3%A4@b.example', 'mailto:a..b@b.example', 'mailto:a@bad_host!', 'https://user:pw@r.b.example/', 'https://', 'http://r.b.example/']) {
    assert.equal(parseRua(uri), undefined, uri);
  }
  assert.deepEqual(parseRua('mailto:a@b.example?subject=x'), { kind: 'mailto', uri: 'mailto:a@b.example?subject=x', address: 'a@b.example', domain: 'b.example' });
  const many = parseTlsRptRecord(`v=TLSRPTv1; rua=${Array.from({ length: 15 }, (_, i) => `https://r${i}.b.example/`).join(',')}`);
  assert.equal(many.kind === 'ok' && many.rua.length, MAX_RUA);
});

function txtWorld(records: Record<string, string[] | 'nxdomain' | 'temp'>): TxtLookup & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async txt(owner: string) {
      asked.push(owner);
      const r = records[owner];
      if (r === 'temp') return { kind: 'temp', reason: 'servfail', detail: 'SERVFAIL' };
      if (r === undefined || r === 'nxdomain') return { kind: 'nxdomain', secure: false };
      return { kind: 'txt', records: r, secure: true };
    },
  };
}

test('rua lookup: one record is used; none, several or a broken one mean no TLS-RPT; a DNS failure is temp', async () => {
  const dns = txtWorld({
    '_smtp._tls.one.example': ['v=spf1 -all', 'v=TLSRPTv1; rua=mailto:r@one.example'],
    '_smtp._tls.two.example': ['v=TLSRPTv1; rua=mailto:r@two.example', 'v=TLSRPTv1; rua=https://r.two.example/'],
    '_smtp._tls.other.example': ['v=STSv1; id=1'],
    '_smtp._tls.broken.example': ['v=TLSRPTv1; ru a=mailto:r@broken.example'],
    '_smtp._tls.http.example': ['v=TLSRPTv1; rua=http://r.http.example/'],
    '_smtp._tls.temp.example': 'temp',
  });
  const one = await lookupRua(dns, 'one.example');
  assert.equal(one.kind, 'rua');
  assert.deepEqual(dns.asked, ['_smtp._tls.one.example']);
  assert.deepEqual(await lookupRua(dns, 'two.example'), { kind: 'none', reason: 'multiple', detail: '2 records' });
  assert.deepEqual(await lookupRua(dns, 'other.example'), { kind: 'none', reason: 'no-record' });
  assert.equal((await lookupRua(dns, 'broken.example')).kind, 'none');
  assert.deepEqual(await lookupRua(dns, 'http.example'), { kind: 'none', reason: 'no-usable-rua' });
  assert.deepEqual(await lookupRua(dns, 'nosuch.example'), { kind: 'none', reason: 'nxdomain' });
  assert.deepEqual(await lookupRua(dns, 'temp.example'), { kind: 'temp', detail: 'servfail: SERVFAIL' });
});

/* ---------- the message (RFC 8460 5.1, 5.3) ---------- */

test('report mail: multipart/report; report-type="tlsrpt", the 5.3 headers and subject, and the gzipped report as application/tlsrpt+gzip', () => {
  const report = reportFor('b.example');
  const gz = gzipReport(report);
  const raw = composeReportMail({ report, gz, submitter: 'mx-out.ours.example', from: 'tlsrpt@ours.example', to: 'tls-reports@b.example', date: new Date('2026-02-01T00:10:00Z') });
  const m = parseReportMail(raw);
  assert.equal(m.type, 'multipart/report');
  assert.equal(m.params['report-type'], 'tlsrpt');
  assert.equal(m.fields.get('tls-report-domain'), 'b.example');
  assert.equal(m.fields.get('tls-report-submitter'), 'mx-out.ours.example');
  assert.equal(m.fields.get('subject'), 'Report Domain: b.example Submitter: mx-out.ours.example Report-ID: <2026-01-31T00:00:00Z_b.example@mx-out.ours.example>');
  assert.equal(m.fields.get('from'), '<tlsrpt@ours.example>');
  assert.equal(m.fields.get('to'), '<tls-reports@b.example>');
  assert.equal(m.fields.get('mime-version'), '1.0');
  assert.equal(m.fields.get('tls-required'), 'No');
  assert.equal(m.fields.get('date'), 'Sun, 01 Feb 2026 00:10:00 +0000');
  assert.match(m.fields.get('message-id') ?? '', /^<[^<>@\s]+@mx-out\.ours\.example>$/);
  assert.deepEqual(m.parts.map((p) => p.type), ['text/plain', 'application/tlsrpt+gzip']);
  assert.match(m.parts[0].body, /Report-ID: 2026-01-31T00:00:00Z_b\.example@mx-out\.ours\.example/);
  // 5.1: submitter!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz
  const begin = Date.parse('2026-01-31T00:00:00Z') / 1000;
  assert.match(m.attachmentName ?? '', new RegExp(`^mx-out\\.ours\\.example!b\\.example!${begin}!${begin + 86_399}![0-9a-f]{16}\\.json\\.gz$`));
  assert.equal(m.parts[1].params.name, m.attachmentName);
  assert.equal(m.parts[1].fields.get('content-disposition')?.split(';')[0], 'attachment');
  assert.deepEqual(m.report, report, 'gunzip of the attachment is the report');
  assert.deepEqual(JSON.parse(gunzipSync(gz).toString('utf8')), report);
  assert.equal(rfc8460Errors(m.report), undefined, rfc8460Errors(m.report));
  // Safe after DATA as it is: ASCII, CRLF only, no line over 998 octets, none starting with a dot.
  const text = raw.toString('latin1');
  assert.ok(/^[\x00-\x7f]*$/.test(text));
  for (const line of text.split('\r\n')) {
    assert.ok(line.length <= 998);
    assert.ok(!line.startsWith('.'), line);
  }
  assert.equal(reportFileName(report, 'mx-out.ours.example'), m.attachmentName, 'the same report names the same file');
});

test('report mail: a long subject is folded at spaces and unfolds to the same text', () => {
  const long = 'a'.repeat(60) + '.example';
  const f = foldHeader('Subject', `Report Domain: ${long} Submitter: ${long} Report-ID: <x@${long}>`);
  assert.ok(f.split('\r\n').length > 1);
  assert.ok(f.split('\r\n').slice(1).every((l) => l.startsWith(' ')));
  assert.equal(f.replace(/\r\n(?=[ \t])/g, ''), `Subject: Report Domain: ${long} Submitter: ${long} Report-ID: <x@${long}>`);
});

test('report sender: tls.tlsrpt.contact when it is an address (a mailto: prefix dropped), else postmaster@hostname', () => {
  const cfg = (contact: string | null) => ({ hostname: 'mx-out.ours.example', tls: { tlsrpt: { submit: true, organization: null, contact } } }) as unknown as Config;
  assert.equal(reportSender(cfg('tlsrpt@ours.example')), 'tlsrpt@ours.example');
  assert.equal(reportSender(cfg('mailto:tlsrpt@ours.example')), 'tlsrpt@ours.example');
  assert.equal(reportSender(cfg('TLS team <tlsrpt@ours.example>')), 'postmaster@mx-out.ours.example');
  assert.equal(reportSender(cfg(null)), 'postmaster@mx-out.ours.example');
});

/* ---------- submitDay: what is sent, once ---------- */

interface Harness {
  state: string;
  mails: { to: string; message: Buffer }[];
  posts: { url: string; gz: Buffer }[];
  logs: { level: string; obj: Record<string, unknown>; msg: string }[];
  mailAnswer: () => Delivery;
  postAnswer: () => Delivery;
  dns: ReturnType<typeof txtWorld>;
  run(extra?: Partial<SubmitDayOptions>): ReturnType<typeof submitDay>;
}

function harness(records: Record<string, string[] | 'nxdomain' | 'temp'>, reports = [reportFor('b.example')]): Harness {
  const state = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-submit-'));
  dirs.push(state);
  const h: Harness = {
    state,
    mails: [],
    posts: [],
    logs: [],
    mailAnswer: () => ({ kind: 'sent', result: '250 2.0.0' }),
    postAnswer: () => ({ kind: 'sent', result: 'HTTP 200' }),
    dns: txtWorld(records),
    run: (extra = {}) =>
      submitDay({
        stateDir: state,
        day: DAY,
        reports,
        submitter: 'mx-out.ours.example',
        from: 'tlsrpt@ours.example',
        dns: h.dns,
        now: () => new Date('2026-02-01T00:10:00Z'),
        log: {
          info: (obj, msg) => h.logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
          warn: (obj, msg) => h.logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
        },
        sendMail: async (to, message) => {
          h.mails.push({ to, message });
          return h.mailAnswer();
        },
        post: async (url, gz) => {
          h.posts.push({ url: url.href, gz });
          return h.postAnswer();
        },
        ...extra,
      }),
  };
  return h;
}

const B_RECORD = { '_smtp._tls.b.example': ['v=TLSRPTv1; rua=mailto:secret-local@rpt.b.example,https://r.b.example/tlsrpt'] };

test('submitDay: both targets get the report; a second run sends nothing and asks no DNS', async () => {
  const h = harness(B_RECORD);
  const first = await h.run();
  assert.deepEqual(first.domains[0].targets.map((t) => [t.target, t.host, t.outcome]), [['mailto', 'rpt.b.example', 'sent'], ['https', 'r.b.example', 'sent']]);
  assert.equal(h.mails.length, 1);
  assert.equal(h.mails[0].to, 'secret-local@rpt.b.example');
  assert.deepEqual(parseReportMail(h.mails[0].message).report, reportFor('b.example'));
  assert.deepEqual(JSON.parse(gunzipSync(h.posts[0].gz).toString('utf8')), reportFor('b.example'));
  const dir = tlsrptDayDir(h.state, DAY);
  assert.deepEqual(readdirSync(dir), [tlsrptSentName(domainHash('b.example'))], 'one record; the lock is gone');
  const rec = JSON.parse(readFileSync(join(dir, tlsrptSentName(domainHash('b.example'))), 'utf8'));
  assert.deepEqual(rec.targets.map((t: { target: string; host: string; state: string; attempts: number; result: string }) => [t.target, t.host, t.state, t.attempts, t.result]), [
    ['mailto', 'rpt.b.example', 'sent', 1, '250 2.0.0'],
    ['https', 'r.b.example', 'sent', 1, 'HTTP 200'],
  ]);
  assert.ok(!readFileSync(join(dir, tlsrptSentName(domainHash('b.example'))), 'utf8').includes('secret-local'), 'the record holds no local part');

  const second = await h.run();
  assert.equal(h.mails.length + h.posts.length, 2, 'nothing sent again');
  assert.equal(h.dns.asked.length, 1, 'a finished domain is not looked up again');
  assert.equal(second.domains[0].status, 'done');
  assert.deepEqual(second.domains[0].targets.map((t) => t.outcome), ['already-sent', 'already-sent']);
  for (const l of h.logs) assert.ok(!JSON.stringify(l).includes('secret-local'), `a log line names the local part: ${JSON.stringify(l)}`);
});

test('submitDay: a temporary failure is retried on the next run (only that target); a permanent one is given up', async () => {
  const h = harness(B_RECORD);
  h.postAnswer = () => ({ kind: 'failed', permanent: false, result: 'HTTP 500' });
  h.mailAnswer = () => ({ kind: 'failed', permanent: true, result: '550 5.1.1' });
  let r = await h.run();
  assert.deepEqual(r.domains[0].targets.map((t) => t.outcome), ['given-up', 'failed']);
  h.postAnswer = () => ({ kind: 'sent', result: 'HTTP 202' });
  h.mailAnswer = () => assert.fail('a given-up target is not tried again');
  r = await h.run();
  assert.deepEqual(r.domains[0].targets.map((t) => t.outcome), ['already-given-up', 'sent']);
  assert.equal(h.posts.length, 2);
  r = await h.run();
  assert.equal(r.domains[0].status, 'done');
  assert.equal(h.posts.length, 2);
  assert.ok(h.logs.some((l) => l.level === 'warn' && l.obj.result === 'given-up' && l.obj.host === 'rpt.b.example' && l.obj.answer === '550 5.1.1'));
});

test(`submitDay: a target that keeps failing is given up after ${MAX_ATTEMPTS} attempts; a thrown transport error is a retry, not a crash`, async () => {
  const h = harness({ '_smtp._tls.b.example': ['v=TLSRPTv1; rua=https://r.b.example/'] });
  h.postAnswer = () => {
    throw Object.assign(new Error('boom'), { code: 'ECONNRESET' });
  };
  for (let i = 1; i <= MAX_ATTEMPTS + 2; i++) await h.run();
  assert.equal(h.posts.length, MAX_ATTEMPTS);
  const rec = JSON.parse(readFileSync(join(tlsrptDayDir(h.state, DAY), tlsrptSentName(domainHash('b.example'))), 'utf8'));
  assert.deepEqual([rec.targets[0].state, rec.targets[0].attempts, rec.targets[0].result], ['given-up', MAX_ATTEMPTS, 'ECONNRESET']);
});

test('submitDay: no TLS-RPT record is recorded and not asked again; a DNS failure is asked again; a new rua target is served', async () => {
  const h = harness({ '_smtp._tls.a.example': 'nxdomain', '_smtp._tls.b.example': 'temp' }, [reportFor('a.example'), reportFor('b.example')]);
  let r = await h.run();
  assert.deepEqual(r.domains.map((d) => [d.domain, d.status]), [['a.example', 'none'], ['b.example', 'dns-temp']]);
  assert.equal(existsSync(join(tlsrptDayDir(h.state, DAY), tlsrptSentName(domainHash('b.example')))), false);
  h.dns.asked.length = 0;
  r = await h.run();
  assert.deepEqual(h.dns.asked, ['_smtp._tls.b.example']);
  // The record appears; its one target fails, then the domain adds a second one.
  (h.dns as unknown as { txt: TxtLookup['txt'] }).txt = txtWorld({ '_smtp._tls.b.example': ['v=TLSRPTv1; rua=https://r.b.example/'] }).txt;
  h.postAnswer = () => ({ kind: 'failed', permanent: false, result: 'HTTP 503' });
  await h.run();
  (h.dns as unknown as { txt: TxtLookup['txt'] }).txt = txtWorld({ '_smtp._tls.b.example': ['v=TLSRPTv1; rua=https://r.b.example/,https://r2.b.example/'] }).txt;
  h.postAnswer = () => ({ kind: 'sent', result: 'HTTP 200' });
  r = await h.run();
  assert.deepEqual(r.domains[1].targets.map((t) => [t.host, t.outcome]), [['r.b.example', 'sent'], ['r2.b.example', 'sent']]);
  assert.deepEqual([r.domains[0].status, r.domains[0].detail], ['none', 'nxdomain'], 'from the record, without a lookup');
});

test('submitDay: a dry run looks up and says what it would send; it sends, records and locks nothing', async () => {
  const h = harness(B_RECORD);
  const r = await h.run({ dryRun: true });
  assert.deepEqual(r.domains[0].targets.map((t) => t.outcome), ['would-send', 'would-send']);
  assert.equal(h.mails.length + h.posts.length, 0);
  assert.equal(existsSync(tlsrptDayDir(h.state, DAY)), false);
});

test('submitDay: a day another live process is sending is left alone; a lock left by a dead process is taken over', async () => {
  const h = harness(B_RECORD);
  const unlock = await lockDay(h.state, DAY);
  assert.ok(unlock);
  assert.equal((await h.run()).busy, true);
  assert.equal(h.mails.length + h.posts.length, 0);
  await unlock();
  writeFileSync(join(tlsrptDayDir(h.state, DAY), TLSRPT_SEND_LOCK), '999999999\n');
  const r = await h.run();
  assert.equal(r.busy, false);
  assert.equal(h.mails.length + h.posts.length, 2);
});

test('submitDay: a sent record that does not check out is a warning and counts as not sent', async () => {
  const h = harness(B_RECORD);
  await h.run();
  writeFileSync(join(tlsrptDayDir(h.state, DAY), tlsrptSentName(domainHash('b.example'))), '{"kind":');
  await h.run();
  assert.equal(h.mails.length + h.posts.length, 4);
  assert.ok(h.logs.some((l) => l.obj.result === 'bad-record'));
});

/* ---------- scheduling ---------- */

test('schedule: a run covers yesterday and the day before; the daily run is the next 00:00 UTC plus its offset', () => {
  assert.deepEqual(daysToSubmit(new Date('2026-02-01T00:10:00Z')), ['2026-01-30', '2026-01-31']);
  assert.deepEqual(daysToSubmit(new Date('2026-03-01T23:59:59Z')), ['2026-02-27', '2026-02-28']);
  assert.equal(msUntilDaily(new Date('2026-02-01T00:10:00Z'), 15 * 60_000), (23 * 60 + 50 + 15) * 60_000);
  assert.equal(msUntilDaily(new Date('2026-02-01T23:59:00Z'), 0), 60_000);
});

test('startTlsRptSubmitter: nothing with submit: false; with submit: true one run of the last two days, then stop() ends it', async () => {
  const state = mkdtempSync(join(tmpdir(), 'mv-tlsrpt-timer-'));
  dirs.push(state);
  const now = new Date('2026-02-01T00:10:00Z');
  const w = new TlsRptStore(state, { now: () => new Date(`${DAY}T08:00:00Z`), flushIntervalMs: 0 });
  w.record({ policyDomain: 'b.example', policy: STS, result: 'success' });
  await w.close();
  const file = join(state, 'mailveil.yaml');
  const asked: string[] = [];
  const dns = {
    txt: async (owner: string) => {
      asked.push(owner);
      return { kind: 'nxdomain' as const, secure: false };
    },
    addresses: async () => ({ kind: 'nxdomain' as const, secure: false }),
  };
  const log = { info: () => undefined, warn: () => undefined };
  writeFileSync(file, `state_dir: ${state}\nhostname: mx-out.ours.example\n`);
  let runs = 0;
  const keepOff = setInterval(() => undefined, 1000);
  const off = startTlsRptSubmitter({ config: loadConfig(file), dns, log, now: () => now, firstRunMs: 0, onRun: () => runs++ });
  await new Promise((r) => setTimeout(r, 50));
  off();
  clearInterval(keepOff);
  assert.equal(runs, 0, 'submit: false starts nothing');

  writeFileSync(file, `state_dir: ${state}\nhostname: mx-out.ours.example\ntls: { tlsrpt: { submit: true } }\n`);
  const done = new Promise<DaySubmission[]>((resolve) => {
    const stop = startTlsRptSubmitter({ config: loadConfig(file), dns, log, now: () => now, firstRunMs: 0, random: () => 0, onRun: (d) => (stop(), resolve(d)) });
  });
  // The submitter's timers are unref'd: something else must keep the loop alive, as serve's listener does.
  const keep = setInterval(() => undefined, 1000);
  const days = await done.finally(() => clearInterval(keep));
  assert.deepEqual(days.map((d) => [d.day, d.domains.map((x) => [x.domain, x.status])]), [['2026-01-30', []], ['2026-01-31', [['b.example', 'none']]]]);
  assert.deepEqual(asked, ['_smtp._tls.b.example']);
});
