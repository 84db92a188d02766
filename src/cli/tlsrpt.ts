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
 */
import type { Command } from 'commander';
import { checkStateDir } from '../config/state-dir';
import { tlsrptReports } from '../operations/tlsrpt';
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
}
