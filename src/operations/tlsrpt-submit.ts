/*
 * TLS-RPT submission wired to this instance (`tls.tlsrpt.submit`, `mailveil
 * tlsrpt send`): the day's reports (operations/tlsrpt.ts), the rua lookups
 * through the configured resolver, report mail through the configured next
 * hop, and the HTTPS POST (tlsrpt/submit.ts does the rest).
 *
 * Report mail goes to `next_hop` with NextHopConnection at tls.next_hop's
 * level, as a release does: MAIL FROM the sender below, one RCPT, DATA.
 * The next hop's answer decides: 250 is sent; a 5xx to MAIL, RCPT or the
 * final dot is given up; a 4xx or a connection failure is retried on the
 * next run. The sender (From: and MAIL FROM) is tls.tlsrpt.contact when it
 * is an address (a `mailto:` prefix is dropped), else
 * postmaster@<hostname>: bounces reach a role mailbox, never a user.
 *
 * startTlsRptSubmitter() runs the submission once shortly after start and
 * then every day at a jittered time after 00:00 UTC (all timers unref'd).
 * Each run covers the last RETRY_DAYS finished days: yesterday's reports go
 * out, and what failed the day before is tried once more. Older days are
 * left (`mailveil tlsrpt send --date D` still sends one by hand).
 */
import type { Config } from '../config/load';
import type { AddressResult, TxtResult } from '../dns/lookups';
import { NextHopConnection, NextHopError, nextHopOptions } from '../smtp/next-hop';
import { SmtpEncoder } from '../pipeline/stages/smtp-encode';
import { replyStatus, type Reply } from '../pipeline/reply';
import { normaliseName, parseDay, utcDay } from '../tlsrpt/counts';
import { postReport } from '../tlsrpt/report-https';
import { submitDay, type DaySubmission, type Delivery, type SubmitLog } from '../tlsrpt/submit';
import { tlsrptReports, TlsRptRequestError } from './tlsrpt';

const DAY_MS = 86_400_000;
/** Days a report is tried for: yesterday and the day before. */
export const RETRY_DAYS = 2;
/** The first run after start: after STARTUP_DELAY_MS plus up to as much again. */
export const STARTUP_DELAY_MS = 60_000;
/** The daily run: between these many ms after 00:00 UTC (counters of the day before are flushed every 30 s). */
export const DAILY_MIN_MS = 5 * 60_000;
export const DAILY_SPREAD_MS = 30 * 60_000;

export interface SubmitDns {
  txt(owner: string): Promise<TxtResult>;
  addresses(host: string): Promise<AddressResult>;
}

export interface TlsRptSubmitOptions {
  config: Config;
  dns: SubmitDns;
  log: SubmitLog;
  now?: () => Date;
  dryRun?: boolean;
}

/** From: and MAIL FROM of report mail. */
export function reportSender(config: Config): string {
  const c = config.tls.tlsrpt.contact?.trim().replace(/^mailto:/i, '');
  if (c && /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]+$/.test(c) && normaliseName(c.split('@')[1]) !== undefined) return c;
  return `postmaster@${config.hostname}`;
}

/** One day's submission. `day` must be a finished UTC day (before today). */
export async function submitTlsRptDay(o: TlsRptSubmitOptions, day: string): Promise<DaySubmission & { warnings: string[] }> {
  const now = o.now ?? (() => new Date());
  if (parseDay(day) === undefined) throw new TlsRptRequestError(`--date: must be a UTC day YYYY-MM-DD, e.g. 2026-01-31 (got ${JSON.stringify(day)})`);
  if (day >= utcDay(now())) throw new TlsRptRequestError(`--date: ${day} is not over yet (UTC); reports are sent for finished days`);
  const { config } = o;
  const r = await tlsrptReports({ config }, { day });
  const submitter = normaliseName(config.hostname) ?? config.hostname;
  const from = reportSender(config);
  const hop = nextHopOptions(config);
  const ca = config.tls.ca_file?.pem;
  const result = await submitDay({
    stateDir: config.state_dir,
    day,
    reports: r.reports,
    submitter,
    from,
    dns: o.dns,
    log: o.log,
    now,
    dryRun: o.dryRun,
    sendMail: (to, message) => sendReportMail(hop, from, to, message),
    post: async (url, gz) => {
      const p = await postReport(url, gz, { lookup: (host) => firstAddress(o.dns, host), ca, userAgent: `mailveil (${submitter})` });
      return p.kind === 'sent' ? { kind: 'sent', result: `HTTP ${p.status}` } : { kind: 'failed', permanent: p.permanent, result: p.status ? `HTTP ${p.status}` : 'connection' };
    },
  });
  return { ...result, warnings: r.warnings };
}

async function firstAddress(dns: SubmitDns, host: string): Promise<string> {
  const a = await dns.addresses(host);
  if (a.kind === 'addresses' && (a.ipv4.length || a.ipv6.length)) return a.ipv4[0] ?? a.ipv6[0];
  throw Object.assign(new Error(`no address for ${host}`), { code: a.kind === 'temp' ? `dns-${a.reason}` : 'no-address' });
}

function byReply(r: Reply): Delivery {
  if (r.code >= 200 && r.code < 300) return { kind: 'sent', result: replyStatus(r) };
  return { kind: 'failed', permanent: r.code >= 500, result: replyStatus(r) };
}

/** One report message to one recipient through the next hop. */
export async function sendReportMail(hop: ReturnType<typeof nextHopOptions>, from: string, to: string, message: Buffer): Promise<Delivery> {
  let conn: NextHopConnection;
  try {
    conn = await NextHopConnection.open(hop);
  } catch (err) {
    const reply = (err as { reply?: Reply }).reply;
    if (reply) return byReply(reply);
    return { kind: 'failed', permanent: false, result: err instanceof NextHopError ? err.kind : 'connect' };
  }
  try {
    const [mail, rcpt] = await conn.commands([`MAIL FROM:<${from}>`, `RCPT TO:<${to}>`]);
    if (mail.code !== 250) return byReply(mail);
    if (rcpt.code < 200 || rcpt.code >= 300) {
      await conn.reset();
      return byReply(rcpt);
    }
    // Already CRLF and without leading dots (report-mail.ts); the encoder makes sure of it.
    const body = new SmtpEncoder();
    body.end(message);
    return byReply(await conn.data(body));
  } catch (err) {
    return { kind: 'failed', permanent: false, result: err instanceof NextHopError ? err.kind : 'error' };
  } finally {
    conn.quit();
  }
}

/** The finished days a run covers, oldest first. */
export function daysToSubmit(now: Date): string[] {
  const days: string[] = [];
  for (let i = RETRY_DAYS; i >= 1; i--) days.push(utcDay(new Date(now.getTime() - i * DAY_MS)));
  return days;
}

/** ms from `now` to the next daily run: 00:00 UTC of tomorrow plus `offset`. */
export function msUntilDaily(now: Date, offsetMs: number): number {
  const t = now.getTime();
  const midnight = t - (((t % DAY_MS) + DAY_MS) % DAY_MS) + DAY_MS;
  return midnight + offsetMs - t;
}

export interface SubmitterOptions extends Omit<TlsRptSubmitOptions, 'dryRun'> {
  /** Random in [0, 1); tests pass a fixed one. */
  random?: () => number;
  /** Told when a run ends (tests). */
  onRun?: (days: DaySubmission[]) => void;
  /** The first run's delay; default STARTUP_DELAY_MS plus up to as much again. */
  firstRunMs?: number;
}

/**
 * Starts the daily submission when `tls.tlsrpt.submit` is true (else does
 * nothing). Returns stop(): no run starts after it (one under way finishes).
 */
export function startTlsRptSubmitter(o: SubmitterOptions): () => void {
  if (!o.config.tls.tlsrpt.submit) return () => undefined;
  const now = o.now ?? (() => new Date());
  const random = o.random ?? Math.random;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void tick(), Math.max(0, ms));
    timer.unref();
  };
  const tick = async (): Promise<void> => {
    const done: DaySubmission[] = [];
    for (const day of daysToSubmit(now())) {
      if (stopped) break;
      try {
        done.push(await submitTlsRptDay(o, day));
      } catch (err) {
        o.log.warn({ event: 'tlsrpt_submit', day, result: 'error', error: (err as Error).message }, 'tlsrpt: submission run failed; retried next run');
      }
    }
    o.onRun?.(done);
    schedule(msUntilDaily(now(), DAILY_MIN_MS + Math.floor(random() * DAILY_SPREAD_MS)));
  };
  schedule(o.firstRunMs ?? STARTUP_DELAY_MS + Math.floor(random() * STARTUP_DELAY_MS));
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
