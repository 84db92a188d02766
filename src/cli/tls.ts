/*
 * `mailveil tls check DOMAIN [--json]`: the TLS policy mx delivery would
 * apply to a recipient domain and a real STARTTLS handshake to each MX host
 * (operations/tls-check.ts). Never sends mail. Exit 0 when at least one MX
 * host meets the policy, 1 when none does (or the domain bounces or defers),
 * 2 for usage.
 */
import { Option, type Command } from 'commander';
import { canonicalHost } from '../dns/names';
import { loadRuleSet, RuleSetError, formatRuleError } from '../rules/load';
import { staticPolicy } from '../tls/levels';
import { tlsCheck, tlsCheckText } from '../operations/tls-check';
import { UserError } from './errors';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

export function registerTls(program: Command): void {
  const tls = program.command('tls').description('outbound TLS policy tools');
  tls
    .command('check')
    .description('print the MX hosts, DANE/TLSA (AD bit), MTA-STS policy and cache, static tls_policy entry and effective level of DOMAIN, and STARTTLS to each MX (never sends mail); exit 1 when no MX host meets the policy')
    .argument('<domain>', 'recipient domain')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', 'rules directory, for the static tls_policy map (default from config)')
    .option('--local-rules <dir>', 'local rules directory (default from config)')
    .option('--state-dir <dir>', 'state directory, for the MTA-STS cache (read only)')
    .option('--json', 'machine-readable output')
    .addOption(new Option('--port <n>', 'MX port (tests only)').hideHelp().argParser((v) => Number(v)))
    .action(async (domainArg: string, o) => {
      const domain = canonicalHost(domainArg.replace(/\.$/, ''));
      if (domain === undefined) throw new UserError(`${domainArg}: not a domain name`);
      const { config } = loadInstanceConfig(o.config, { rules_dir: o.rules, local_rules_dir: o.localRules, state_dir: o.stateDir });
      let set;
      try {
        set = loadRuleSet(config.rules_dir, config.local_rules_dir);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        throw new UserError(`rules: ${err.errors.map(formatRuleError).join('; ')}`);
      }
      const port = o.port === undefined ? undefined : Number(o.port);
      if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new UserError(`--port ${o.port}: not a port`);
      const report = await tlsCheck(domain, { config, staticPolicy: (d) => staticPolicy(set.tlsPolicy, d), port });
      process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : tlsCheckText(report));
      if (!report.ok) process.exitCode = 1;
    });
}
