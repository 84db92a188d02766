/*
 * How a command finds the instance it acts on: the config file from
 * --config, else $MAILVEIL_CONFIG, else /etc/mailveil/mailveil.yaml when it
 * exists (config/default-file.ts), so every command on a host reaches the
 * same state_dir as the running `serve` without being told. A command then
 * acts through the operations (src/operations/) with the context
 * operationContext() makes: that state_dir's store and audit log, as the OS
 * user running it.
 */
import { osActor } from '../audit/actor';
import { AuditLog } from '../audit/log';
import { configFile, CONFIG_ENV, DEFAULT_CONFIG_FILE } from '../config/default-file';
import { loadConfig, type Config, type ConfigOverrides } from '../config/load';
import type { OperationContext } from '../operations/context';
import { QuarantineStore } from '../quarantine/store';

/** The --config help text, the same on every command. */
export const CONFIG_HELP = `YAML config file (default: $${CONFIG_ENV}, else ${DEFAULT_CONFIG_FILE} if it exists)`;

export function loadInstanceConfig(flag: string | undefined, overrides: ConfigOverrides = {}): { config: Config; file: string | undefined } {
  const file = configFile(flag);
  return { config: loadConfig(file, overrides), file };
}

/** The context a command's operations run in; opens nothing on disk yet. */
export function operationContext(config: Config): OperationContext {
  return { config, store: new QuarantineStore(config.state_dir), audit: new AuditLog(config.state_dir), actor: osActor(), now: () => new Date() };
}
