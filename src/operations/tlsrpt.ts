/*
 * TLS-RPT reports (`mailveil tlsrpt report`): the RFC 8460 JSON for a UTC
 * day, one report per policy domain, from every writer's counters under
 * state_dir/tlsrpt/<day>/ (tlsrpt/store.ts readDay). It only reads: it
 * neither flushes a running serve's counters (up to one flush interval of
 * today's sessions may be missing) nor submits anything.
 *
 * Who reports (RFC 8460 4.4 organization-name, contact-info):
 *  1. the request's organization / contact (the CLI's flags);
 *  2. else config `tls.tlsrpt.organization` / `contact`, read through an
 *     optional typed view, as the config schema gains the key in another
 *     change and the operation must work with and without it;
 *  3. else `hostname` and `postmaster@<hostname>` (RFC 5321 4.5.1: every
 *     mail domain has a postmaster). A role address, never a user's.
 */
import type { Config } from '../config/load';
import type { MvCode } from '../errors';
import { normaliseName, parseDay } from '../tlsrpt/counts';
import { buildReport, reportDomains, type Rfc8460Report } from '../tlsrpt/report';
import { readDay } from '../tlsrpt/store';
import type { OperationContext } from './context';

export interface TlsRptReportRequest {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  /** Only this policy domain. */
  domain?: string;
  organization?: string;
  contact?: string;
}

export interface TlsRptReports {
  day: string;
  /** One per policy domain with sessions that day, in name order (one at most with `domain`). */
  reports: Rfc8460Report[];
  /** Counts files skipped (unreadable, corrupt), one line each. */
  warnings: string[];
  /** Sessions of the day not counted because a per-day limit was reached. */
  dropped: number;
}

/** A request that cannot be answered as asked (bad day or domain): a usage error, exit 2 / HTTP 400. */
export class TlsRptRequestError extends Error {
  readonly code: MvCode = 'MV_USAGE';
}

/** The keys the config may carry (`tls.tlsrpt`), whether or not this build's schema has them yet. */
interface TlsRptConfigView {
  tls?: { tlsrpt?: { organization?: unknown; contact?: unknown } | null } | null;
}

function configured(config: Config, key: 'organization' | 'contact'): string | undefined {
  const v = (config as Config & TlsRptConfigView).tls?.tlsrpt?.[key];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

export async function tlsrptReports(ctx: Pick<OperationContext, 'config'>, req: TlsRptReportRequest): Promise<TlsRptReports> {
  const day = parseDay(req.day);
  if (day === undefined) throw new TlsRptRequestError(`--date: must be a UTC day YYYY-MM-DD, e.g. 2026-01-31 (got ${JSON.stringify(req.day)})`);
  let domain: string | undefined;
  if (req.domain !== undefined) {
    domain = normaliseName(req.domain);
    if (domain === undefined) throw new TlsRptRequestError(`--domain: not a domain name (got ${JSON.stringify(req.domain)})`);
  }
  const { config } = ctx;
  const identity = {
    organization: req.organization ?? configured(config, 'organization') ?? config.hostname,
    contact: req.contact ?? configured(config, 'contact') ?? `postmaster@${config.hostname}`,
    reporter: config.hostname,
  };
  const read = await readDay(config.state_dir, day);
  const domains = domain !== undefined ? [domain] : reportDomains(read.counts);
  const reports = domains.map((d) => buildReport(read.counts, d, identity)).filter((r): r is Rfc8460Report => r !== undefined);
  return { day, reports, warnings: read.warnings, dropped: read.counts.dropped };
}
