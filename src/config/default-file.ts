/*
 * Which config file a command reads when --config is not given, so that
 * `mailveil quarantine list` on a host acts on the instance `serve` runs:
 * --config FILE, else $MAILVEIL_CONFIG, else /etc/mailveil/mailveil.yaml
 * when it exists, else none (built-in defaults, paths relative to the
 * working directory). A MAILVEIL_CONFIG that names a missing file is an
 * error when it is read, not a silent fall-through to the defaults.
 *
 * The environment and the file check are injectable so that tests never
 * depend on what the test host has under /etc.
 */
import { existsSync } from 'node:fs';

export const DEFAULT_CONFIG_FILE = '/etc/mailveil/mailveil.yaml';
export const CONFIG_ENV = 'MAILVEIL_CONFIG';

export interface ConfigLookup {
  env: NodeJS.ProcessEnv;
  defaultFile: string;
  exists(path: string): boolean;
}

export const HOST_LOOKUP: ConfigLookup = { env: process.env, defaultFile: DEFAULT_CONFIG_FILE, exists: existsSync };

/** The config file to read, or undefined for none. */
export function configFile(flag: string | undefined, lookup: ConfigLookup = HOST_LOOKUP): string | undefined {
  if (flag !== undefined) return flag;
  const fromEnv = lookup.env[CONFIG_ENV];
  if (fromEnv) return fromEnv;
  return lookup.exists(lookup.defaultFile) ? lookup.defaultFile : undefined;
}
