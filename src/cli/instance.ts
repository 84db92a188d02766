/*
 * How a command finds the instance it acts on: the config file from
 * --config, else $MAILVEIL_CONFIG, else /etc/mailveil/mailveil.yaml when it
 * exists (config/default-file.ts), so every command on a host reaches the
 * same state_dir as the running `serve` without being told.
 */
import { configFile, CONFIG_ENV, DEFAULT_CONFIG_FILE } from '../config/default-file';
import { loadConfig, type Config, type ConfigOverrides } from '../config/load';

/** The --config help text, the same on every command. */
export const CONFIG_HELP = `YAML config file (default: $${CONFIG_ENV}, else ${DEFAULT_CONFIG_FILE} if it exists)`;

export function loadInstanceConfig(flag: string | undefined, overrides: ConfigOverrides = {}): { config: Config; file: string | undefined } {
  const file = configFile(flag);
  return { config: loadConfig(file, overrides), file };
}
