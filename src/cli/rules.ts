/* `mailveil rules check`: validate rules_dir as `serve` would load it. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load';
import { loadRuleSet, RuleSetError, formatRuleError } from '../rules/load';

export function registerRules(program: Command): void {
  const rules = program.command('rules').description('check and test rule files');
  rules
    .command('check')
    .description('validate every rule file; prints file:line:col: message per error')
    .option('--config <file>', 'YAML config file')
    .option('--rules <dir>', 'rules directory (default from config, else ./rules.d)')
    .action((o) => {
      const config = loadConfig(o.config, { rules_dir: o.rules });
      try {
        const set = loadRuleSet(config.rules_dir);
        process.stdout.write(`ok: ${set.files.length} files, ${set.rules.length} rules\n`);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        process.stdout.write(err.errors.map(formatRuleError).join('\n') + '\n');
        process.exitCode = 1;
      }
    });
}
