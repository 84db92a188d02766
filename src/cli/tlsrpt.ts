/*
 * `mailveil tlsrpt report --date YYYY-MM-DD [--domain D]`: prints the RFC
 * 8460 JSON report(s) for a UTC day from the counters under
 * state_dir/tlsrpt/ (operations/tlsrpt.ts). This file parses flags and
 * prints.
 *
 *  - with --domain: that domain's report, one JSON object; no sessions for
 *    it that day is exit 1 with one line (there is no report to print).
 *  - without: a JSON array, one report per policy domain in name order; a
 *    day without data is `[]`, exit 0, so a daily job need not tell a quiet
 *    day from an error.
 *  - a bad --date or --domain is a usage error: one line, exit 2.
 *  - a counts file that cannot be read is skipped: one warning line on
 *    stderr each, the report still printed, exit 0.
 *
 * `mailveil tlsrpt send --date YYYY-MM-DD [--dry-run]`: one submission of a
 * finished day's reports to each policy domain's rua
 * (operations/tlsrpt-submit.ts), whether or not tls.tlsrpt.submit is on.
 * One line per policy domain and target; what was sent is recorded, so a
 * second run sends nothing again. Exit 0 when nothing failed, 1 when a
 * target failed (retried by the next run) or was given up, or another
 * process was sending that day; 2 for a bad or unfinished --date.
 */
import type { Command } from 'commander';
import { checkStateDir } from '../config/state-dir';
import { DnsClient } from '../dns/client';
import { DnsLookups } from '../dns/lookups';
import { tlsrptReports } from '../operations/tlsrpt';
import { submitTlsRptDay } from '../operations/tlsrpt-submit';
import type { DomainOutcome } from '../tlsrpt/submit';
import { UserError } from './errors';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

interface ReportOpts {
  date: string;
  domain?: string;
  organization?: string;
  contact?: string;
  config?: string;
  stateDir?: string;
}

export function registerTlsRpt(program: Command): void {
  const t = program.command('tlsrpt').description('SMTP TLS reporting (RFC 8460) of outbound deliveries');
  t.command('report')
    .description('print the RFC 8460 JSON report of a UTC day: one object with --domain, else an array with one report per policy domain')
    .requiredOption('--date <YYYY-MM-DD>', 'the UTC day')
    .option('--domain <domain>', 'only this policy domain (prints one object; exit 1 when it has no data that day)')
    .option('--organization <name>', 'organization-name (default: config tls.tlsrpt.organization, else hostname)')
    .option('--contact <address>', 'contact-info (default: config tls.tlsrpt.contact, else postmaster@<hostname>)')
    .option('--config <file>', CONFIG_HELP)
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)')
    .action(async (o: ReportOpts) => {
      const { config } = loadInstanceConfig(o.config, { state_dir: o.stateDir });
      // Read-only, but a mistyped --state-dir must not look like a day without data.
      checkStateDir(config.state_dir);
      // A bad --date or --domain throws TlsRptRequestError (MV_USAGE): one line, exit 2.
      const r = await tlsrptReports({ config }, { day: o.date, domain: o.domain, organization: o.organization, contact: o.contact });
      for (const w of r.warnings) process.stderr.write(`mailveil: warning: ${w}\n`);
      if (r.dropped > 0) process.stderr.write(`mailveil: warning: ${r.dropped} sessions on ${r.day} were not counted (per-day limits reached)\n`);
      if (o.domain !== undefined) {
        if (r.reports.length === 0) throw new UserError(`no TLS-RPT data for ${o.domain} on ${r.day}`);
        process.stdout.write(JSON.stringify(r.reports[0], null, 2) + '\n');
      } else process.stdout.write(JSON.stringify(r.reports, null, 2) + '\n');
    });
  t.command('send')
    .description('send the RFC 8460 reports of a finished UTC day to each policy domain\'s rua (mailto: through the next hop, https: POST); what was sent is recorded and not sent again')
    .requiredOption('--date <YYYY-MM-DD>', 'the UTC day (before today)')
    .option('--dry-run', 'look up each rua and print what would be sent; send and record nothing')
    .option('--config <file>', CONFIG_HELP)
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)')
    .action(async (o: SendOpts) => {
      const { config } = loadInstanceConfig(o.config, { state_dir: o.stateDir });
      checkStateDir(config.state_dir);
      const dns = new DnsLookups(new DnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout }));
      const log = {
        info: () => undefined,
        warn: (obj: object, msg: string) => {
          if ((obj as { result?: string }).result === 'bad-record') process.stderr.write(`mailveil: warning: ${msg.replace(/^tlsrpt: /, '')}\n`);
        },
      };
      // A bad or unfinished --date throws TlsRptRequestError (MV_USAGE): one line, exit 2.
      const r = await submitTlsRptDay({ config, dns, log, dryRun: o.dryRun === true }, o.date);
      for (const w of r.warnings) process.stderr.write(`mailveil: warning: ${w}\n`);
      if (r.busy) throw new UserError(`another process is sending the TLS reports of ${r.day}; try again later`);
      let bad = 0;
      for (const d of r.domains) {
        for (const line of outcomeLines(d)) process.stdout.write(line + '\n');
        bad += d.status === 'dns-temp' ? 1 : d.targets.filter((t) => t.outcome === 'failed' || t.outcome === 'given-up').length;
      }
      if (r.domains.length === 0) process.stdout.write(`no TLS-RPT data on ${r.day}\n`);
      if (bad > 0) throw new UserError(`${bad} of the TLS reports of ${r.day} were not delivered`);
    });
}

interface SendOpts {
  date: string;
  dryRun?: boolean;
  config?: string;
  stateDir?: string;
}

const SAYS: Record<string, string> = {
  sent: 'sent',
  failed: 'failed, retried by the next run',
  'given-up': 'refused, given up',
  'already-sent': 'already sent',
  'already-given-up': 'given up earlier',
  'would-send': 'would send',
};

/** `<domain> <scheme> <host>: <outcome> (<answer>)`; a target's local part is never printed. */
function outcomeLines(d: DomainOutcome): string[] {
  if (d.status === 'none') return [`${d.domain}: no usable TLS-RPT record (${d.detail}); nothing to send`];
  if (d.status === 'dns-temp') return [`${d.domain}: TLS-RPT record lookup failed (${d.detail}); retried by the next run`];
  return d.targets.map((t) => `${d.domain} ${t.target} ${t.host}: ${SAYS[t.outcome]}${t.result ? ` (${t.result})` : ''}`);
}
