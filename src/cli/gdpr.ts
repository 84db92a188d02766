/*
 * `mailveil gdpr report`: prints the Art. 30 record of processing for this
 * instance (operations/art30.ts, shared with the admin API) from the same
 * config and rules `serve` uses. This file parses flags and prints.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { art30Report } from '../operations/art30';
import { loadRuleSet, RuleSetError, formatRuleError } from '../rules/load';
import { UserError } from './errors';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

export function registerGdpr(program: Command): void {
  const gdpr = program.command('gdpr').description('GDPR records for this instance');
  gdpr
    .command('report')
    .description('print the record of processing activities (GDPR Art. 30) as Markdown, from the live config and rules')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', 'rules directory (default from config, else ./rules.d)')
    .option('--local-rules <dir>', 'local rules directory (default from config, else ./rules.local.d)')
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)')
    .action((o: { config?: string; rules?: string; localRules?: string; stateDir?: string }) => {
      // The report only names state_dir; it reads nothing there, so no state_dir check.
      const { config, file } = loadInstanceConfig(o.config, { rules_dir: o.rules, local_rules_dir: o.localRules, state_dir: o.stateDir });
      let rules;
      try {
        rules = loadRuleSet(config.rules_dir, config.local_rules_dir);
      } catch (err) {
        if (err instanceof RuleSetError) throw new UserError(`rules: ${err.errors.map(formatRuleError).join('; ')}`);
        throw err;
      }
      process.stdout.write(art30Report({ config, now: () => new Date() }, rules, file ? resolve(file) : undefined));
    });
}
