/*
 * `mailveil serve`: run the relay until SIGTERM/SIGINT; SIGHUP reloads rules.
 * Before anything is created or cleaned, state_dir must be mailveil's
 * (config/state-dir.ts): new, empty, marked, or taken on purpose with --init.
 */
import type { Command } from 'commander';
import { prepareStateDir } from '../config/state-dir';
import { RuleSetError, formatRuleError } from '../rules/load';
import { describeLifecycle } from '../pipeline/lifecycle';
import { Service } from '../service';
import { UserError } from './errors';
import { sep } from 'node:path';
import { describeAccess } from '../access-error';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the SMTP filter (flags override the config file)')
    .option('--config <file>', CONFIG_HELP)
    .option('--listen <host:port>', 'SMTP listener (default 127.0.0.1:10025)')
    .option('--next-hop <host:port>', 'where filtered mail goes (default 127.0.0.1:10026)')
    .option('--rules <dir>', 'rules directory (default ./rules.d)')
    .option('--local-rules <dir>', "local rules directory, loaded after --rules; a rule there replaces the shipped rule of its id (default ./rules.local.d)")
    .option('--state-dir <dir>', 'state directory: keys, spool, quarantine (default ./var, beside the config file if there is one)')
    .option('--init', 'use a state directory that already holds other files (writes the state.json marker into it)')
    .option('--metrics <host:port>', '/metrics /healthz /readyz listener (default 127.0.0.1:9464)')
    .option('--admin <host:port>', 'admin API listener (default 127.0.0.1:9465)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--print-pipeline', 'print the message lifecycle (stages, steps and their branches, outcomes) and exit')
    .action(async (o) => {
      if (o.printPipeline) {
        process.stdout.write(describeLifecycle().join('\n') + '\n');
        return;
      }
      const { config } = loadInstanceConfig(o.config, {
        listen: o.listen,
        next_hop: o.nextHop,
        rules_dir: o.rules,
        local_rules_dir: o.localRules,
        state_dir: o.stateDir,
        metrics: o.metrics,
        admin: o.admin,
        log_level: o.logLevel,
      });
      prepareStateDir(config.state_dir, { init: o.init === true });
      let service: Service;
      try {
        service = new Service(config);
      } catch (err) {
        if (err instanceof RuleSetError) throw new UserError(`rules: ${err.errors.map(formatRuleError).join('; ')}`);
        throw err;
      }
      try {
        await service.start();
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
        // A listener's error names its address; an EACCES without one is a file (state_dir's, a TLS key...).
        if ((e.code === 'EADDRINUSE' || e.code === 'EACCES') && e.port !== undefined) throw new UserError(`cannot listen on ${e.address}:${e.port}: ${e.code}`);
        const inStateDir = typeof e.path === 'string' && (e.path === config.state_dir || e.path.startsWith(config.state_dir + sep));
        throw new UserError(describeAccess(err, undefined, undefined, inStateDir ? 'state_dir' : 'file') ?? e.message);
      }
      process.on('SIGHUP', () => service.reload('SIGHUP'));
      await new Promise<void>((resolve) => {
        const stop = () => {
          service.drain().then(resolve, (err) => {
            service.rt.log.error({ err: { message: (err as Error).message } }, 'drain failed');
            resolve();
          });
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      process.exit(0);
    });
}
