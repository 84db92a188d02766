/*
 * `mailveil keys rotate`: makes a new quarantine data key and switches new
 * entries to it (operations/keys.ts, shared with the admin API). Entries
 * written before keep naming their old key and stay readable; rotate never
 * deletes a key. A key no entry needs any more is deleted by the next purge
 * (serve's hourly timer or `mailveil quarantine purge`) once it has been
 * retired for an hour. Audited as `key_rotate` with the old and new key ids
 * (ids, not keys). This file parses flags and prints.
 */
import type { Command } from 'commander';
import { checkStateDir } from '../config/state-dir';
import { rotateKeys, type KeyRotation } from '../operations/keys';
import { CONFIG_HELP, loadInstanceConfig, operationContext } from './instance';

export function registerKeys(program: Command): void {
  const k = program.command('keys').description('manage the quarantine encryption keys');
  k.command('rotate')
    .description('make a new data key for new quarantine entries; old keys stay until no entry needs them')
    .option('--json', 'print JSON')
    .option('--config <file>', CONFIG_HELP)
    .option('--state-dir <dir>', 'state directory (default from config, else ./var)')
    .action(async (o: { json?: boolean; config?: string; stateDir?: string }) => {
      const { config } = loadInstanceConfig(o.config, { state_dir: o.stateDir });
      // A rotation writes keys: never into a directory that is not mailveil's.
      checkStateDir(config.state_dir);
      const r = await rotateKeys(operationContext(config));
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(formatRotation(r) + '\n');
    });
}

/** `new key <id> is current (was <id>); N keys on disk, M used by entries` */
export function formatRotation(r: KeyRotation): string {
  const keys = r.keys.length;
  return `new key ${r.keyId} is current${r.previous ? ` (was ${r.previous})` : ''}; ${keys} key${keys === 1 ? '' : 's'} on disk, ${r.inUse.length} used by entries`;
}
