/* `mailveil rules check`: validate rules_dir as `serve` would load it. */
import type { Command } from 'commander';
import { loadRuleSet, RuleSetError, formatRuleError } from '../rules/load';
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { newContext } from '../pipeline/context';
import { analyse } from '../pipeline/run';
import { Pseudonymiser } from '../observability/pseudonym';
import { UserError } from './main';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

export function registerRules(program: Command): void {
  const rules = program.command('rules').description('check and test rule files');
  rules
    .command('check')
    .description('validate every rule file; prints file:line:col: message per error')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', 'rules directory (default from config, else ./rules.d)')
    .action((o) => {
      const { config } = loadInstanceConfig(o.config, { rules_dir: o.rules });
      try {
        const set = loadRuleSet(config.rules_dir);
        process.stdout.write(`ok: ${set.files.length} files, ${set.rules.length} rules\n`);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        process.stdout.write(err.errors.map(formatRuleError).join('\n') + '\n');
        process.exitCode = 1;
      }
    });

  rules
    .command('test')
    .description('run FILE.eml through detection and print the verdict and hits per rule (never the values)')
    .argument('<file>', 'message to test (.eml)')
    .option('--config <file>', CONFIG_HELP)
    .option('--rules <dir>', 'rules directory (default from config, else ./rules.d)')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o) => {
      const { config } = loadInstanceConfig(o.config, { rules_dir: o.rules });
      let set;
      try {
        set = loadRuleSet(config.rules_dir);
      } catch (err) {
        if (!(err instanceof RuleSetError)) throw err;
        throw new UserError(`rules: ${err.errors.map(formatRuleError).join('; ')}`);
      }
      // A throwaway key: nothing is written and nothing needs to correlate.
      const ctx = newContext('TEST', config, set, new Pseudonymiser(randomBytes(32)));
      try {
        await analyse(ctx, createReadStream(file));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(e.code === 'ENOENT' || e.code === 'EACCES' ? `${file}: cannot read: ${e.code}` : `${file}: ${e.message}`);
      }
      const hits = set.rules
        .map((r) => {
          const f = ctx.findings.filter((x) => x.rule === r.id);
          return { rule: r.id, action: r.action, count: f.reduce((n, x) => n + x.count, 0), parts: [...new Set(f.map((x) => x.part))], fired: ctx.verdict.rules.includes(r.id) };
        })
        .filter((h) => h.count > 0);
      const result = { verdict: ctx.verdict.action, rules: ctx.verdict.rules, hits, unscannable: ctx.unscannable, not_extracted: ctx.notExtracted, size: ctx.size };
      if (o.json) {
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        return;
      }
      const lines = [`verdict: ${result.verdict}${result.rules.length ? ` (rules: ${result.rules.join(', ')})` : ''}`];
      for (const h of hits) lines.push(`  ${h.rule} [${h.action}]: ${h.count} hit${h.count === 1 ? '' : 's'} in part${h.parts.length === 1 ? '' : 's'} ${h.parts.join(', ')}${h.fired ? '' : ' (below min_count)'}`);
      if (result.unscannable.length) lines.push(`  unscannable: ${result.unscannable.join(', ')}`);
      if (result.not_extracted) lines.push(`  not extracted (not scanned): ${result.not_extracted} part${result.not_extracted === 1 ? '' : 's'}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
