/*
 * `mailveil keys rotate`: makes a new quarantine data key and switches new
 * entries to it (quarantine/keys.ts rotateKey). Entries written before keep
 * naming their old key and stay readable; rotate never deletes a key. A key
 * no entry needs any more is deleted by the next purge (serve's hourly timer
 * or `mailveil quarantine purge`) once it has been retired for an hour.
 * Audited as `key_rotate` with the old and new key ids (ids, not keys).
 */
import type { Command } from 'commander';
import { AuditLog } from '../audit/log';
import { osActor } from '../audit/actor';
import { checkStateDir } from '../config/state-dir';
import { currentKeyId, listKeyIds, rotateKey } from '../quarantine/keys';
import { QuarantineStore } from '../quarantine/store';
import { isQuarantineError } from '../quarantine/errors';
import { CONFIG_HELP, loadInstanceConfig } from './instance';

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
      const dir = config.state_dir;
      let previous: string | undefined;
      try {
        previous = await currentKeyId(dir);
      } catch (err) {
        // A broken `current` is exactly what a rotation repairs; say so in the event.
        if (!isQuarantineError(err, 'MV_QUARANTINE_KEY_INVALID')) throw err;
      }
      const id = await rotateKey(dir);
      const inUse = await new QuarantineStore(dir).keyIdsInUse();
      const keys = await listKeyIds(dir);
      await new AuditLog(dir).append({
        event: 'key_rotate',
        actor: osActor(),
        details: { new_key: id, previous_key: previous ?? null, keys: keys.length, keys_in_use: [...inUse].filter((x) => keys.includes(x)).length },
      });
      const json = { keyId: id, previous: previous ?? null, keys, inUse: [...inUse].sort() };
      if (o.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
      else process.stdout.write(`new key ${id} is current${previous ? ` (was ${previous})` : ''}; ${keys.length} key${keys.length === 1 ? '' : 's'} on disk, ${inUse.size} used by entries\n`);
    });
}
