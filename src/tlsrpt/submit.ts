/*
 * Submitting one finished UTC day's TLS-RPT reports (RFC 8460 section 5):
 * for each policy domain with a report, look up its rua (rua.ts), and give
 * the gzipped report to each target not yet done, recording what happened
 * (sent.ts) after each one.
 *
 *   mailto:  composeReportMail() and the injected `sendMail` (the next hop:
 *            operations/tlsrpt-submit.ts, as this layer is below smtp/);
 *   https:   the injected `post` (report-https.ts postReport).
 *
 * Per domain:
 *  - a record that is finished (sent or given up everywhere, or "no rua")
 *    is skipped without a DNS lookup;
 *  - a DNS failure writes nothing: the domain is looked up again next run;
 *  - no usable TLS-RPT record is recorded as `none`: not looked up again
 *    for that day;
 *  - each target that is not done is tried (at most MAX_ATTEMPTS times in
 *    all); the rua is read afresh each run, so a target added since is
 *    served and one removed since is no longer tried.
 *
 * The whole day runs under the day's lock, so `serve`'s timer and a manual
 * `mailveil tlsrpt send` never both send it. Dry run: looks up and says
 * what would be sent; sends, records and locks nothing.
 *
 * Logs name the day, the policy domain, the scheme and the rua's domain or
 * host: never a local part, never reply text (it may quote an address).
 */
import { composeReportMail, gzipReport } from './report-mail';
import type { Rfc8460Report } from './report';
import { finished, lockDay, MAX_ATTEMPTS, newSentRecord, readSent, targetId, writeSent, type SentRecord, type TargetRecord } from './sent';
import { lookupRua, ruaLabel, type Rua, type TxtLookup } from './rua';

/** The outcome of one delivery attempt, from a transport. */
export type Delivery =
  | { kind: 'sent'; result: string }
  /** `permanent`: will not be tried again (SMTP 5xx, HTTP 4xx). */
  | { kind: 'failed'; permanent: boolean; result: string };

export interface SubmitLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface SubmitDayOptions {
  stateDir: string;
  day: string;
  /** The day's reports, one per policy domain (operations/tlsrpt.ts). */
  reports: Rfc8460Report[];
  /** Our domain: TLS-Report-Submitter and the attachment name. */
  submitter: string;
  /** From: and MAIL FROM of report mail. */
  from: string;
  dns: TxtLookup;
  sendMail(to: string, message: Buffer): Promise<Delivery>;
  post(url: URL, gz: Buffer): Promise<Delivery>;
  log: SubmitLog;
  now?: () => Date;
  dryRun?: boolean;
}

export type TargetOutcome = 'sent' | 'failed' | 'given-up' | 'already-sent' | 'already-given-up' | 'would-send';

export interface DomainOutcome {
  domain: string;
  /** done: finished earlier, skipped; none: no usable record; dns-temp: lookup failed, retried next run. */
  status: 'targets' | 'done' | 'none' | 'dns-temp';
  detail?: string;
  targets: { target: 'mailto' | 'https'; host: string; outcome: TargetOutcome; result?: string }[];
}

export interface DaySubmission {
  day: string;
  /** Another process was submitting this day: nothing was done. */
  busy: boolean;
  domains: DomainOutcome[];
}

export async function submitDay(o: SubmitDayOptions): Promise<DaySubmission> {
  const out: DaySubmission = { day: o.day, busy: false, domains: [] };
  if (o.reports.length === 0) return out;
  const unlock = o.dryRun ? async () => undefined : await lockDay(o.stateDir, o.day);
  if (!unlock) {
    o.log.info({ event: 'tlsrpt_submit', day: o.day, result: 'busy' }, 'tlsrpt: another process is submitting this day');
    return { ...out, busy: true };
  }
  try {
    for (const report of o.reports) out.domains.push(await submitDomain(o, report));
  } finally {
    await unlock();
  }
  return out;
}

async function submitDomain(o: SubmitDayOptions, report: Rfc8460Report): Promise<DomainOutcome> {
  const domain = report.policies[0].policy['policy-domain'];
  const now = o.now ?? (() => new Date());
  const base = { event: 'tlsrpt_submit', day: o.day, domain };
  const prior = await readSent(o.stateDir, o.day, domain);
  if (typeof prior === 'string') o.log.warn({ ...base, result: 'bad-record' }, `tlsrpt: ${prior}; treated as not sent`);
  let rec: SentRecord = prior && typeof prior !== 'string' ? prior : newSentRecord(o.day, domain, report['report-id']);
  if (rec.rua === 'none') return { domain, status: 'none', detail: rec.none_reason, targets: [] };
  if (finished(rec)) return { domain, status: 'done', targets: rec.targets.map((t) => ({ target: t.target, host: t.host, outcome: t.state === 'sent' ? 'already-sent' : 'already-given-up', result: t.result })) };

  const found = await lookupRua(o.dns, domain);
  if (found.kind === 'temp') {
    o.log.warn({ ...base, result: 'dns-temp' }, 'tlsrpt: TLS-RPT record lookup failed; retried next run');
    return { domain, status: 'dns-temp', detail: found.detail, targets: [] };
  }
  if (found.kind === 'none') {
    if (!o.dryRun) {
      rec = { ...rec, rua: 'none', none_reason: found.reason };
      await writeSent(o.stateDir, rec);
    }
    o.log.info({ ...base, result: 'no-rua', reason: found.reason }, 'tlsrpt: no usable TLS-RPT record; nothing sent');
    return { domain, status: 'none', detail: found.reason, targets: [] };
  }

  const gz = gzipReport(report);
  const targets: DomainOutcome['targets'] = [];
  for (const rua of found.rua) {
    const label = ruaLabel(rua);
    const id = targetId(rua.uri);
    const entry = rec.targets.find((t) => t.id === id);
    if (entry && entry.state !== 'failed') {
      targets.push({ ...label, outcome: entry.state === 'sent' ? 'already-sent' : 'already-given-up', result: entry.result });
      continue;
    }
    if (o.dryRun) {
      targets.push({ ...label, outcome: 'would-send' });
      continue;
    }
    const attempts = (entry?.attempts ?? 0) + 1;
    const d = await deliver(o, rua, report, gz);
    const state = d.kind === 'sent' ? 'sent' : d.permanent || attempts >= MAX_ATTEMPTS ? 'given-up' : 'failed';
    const next: TargetRecord = { id, ...label, state, attempts, last: now().toISOString(), result: d.result };
    // In place: the record keeps the rua's order.
    rec = { ...rec, rua: 'found', targets: entry ? rec.targets.map((t) => (t.id === id ? next : t)) : [...rec.targets, next] };
    await writeSent(o.stateDir, rec);
    const line = { ...base, ...label, result: state, answer: d.result, attempts };
    if (state === 'sent') o.log.info(line, 'tlsrpt: report sent');
    else o.log.warn(line, state === 'failed' ? 'tlsrpt: report not delivered; retried next run' : 'tlsrpt: report not delivered; given up');
    targets.push({ ...label, outcome: state, result: d.result });
  }
  return { domain, status: 'targets', targets };
}

async function deliver(o: SubmitDayOptions, rua: Rua, report: Rfc8460Report, gz: Buffer): Promise<Delivery> {
  try {
    if (rua.kind === 'https') return await o.post(rua.url, gz);
    const message = composeReportMail({ report, gz, submitter: o.submitter, from: o.from, to: rua.address, date: (o.now ?? (() => new Date()))() });
    return await o.sendMail(rua.address, message);
  } catch (err) {
    // A transport that throws is a bug or an environment failure: retried, never a crash of the run.
    return { kind: 'failed', permanent: false, result: (err as { code?: string })?.code ?? 'error' };
  }
}
