/*
 * Reads the YAML config, applies flag overrides and defaults, validates, and
 * converts to typed values. Any problem is one ConfigError whose message is a
 * single line naming the file and the key, so `serve` can print it and exit 1.
 *
 * Paths (PATH_KEYS) are resolved where they were written: a value in the
 * file against the file's directory, a flag against the working directory,
 * and a default against the file's directory when there is a file (so one
 * config names one instance from any working directory), else against the
 * working directory. Durations and sizes must carry a unit (duration.ts,
 * size.ts); a bare number is an error that says what to write instead.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import Ajv, { type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { configSchema, type NextHopTlsLevel } from './schema';
import { parseEndpoint, parseCidr, type Endpoint } from './address';
import { parseSize, sizeFix } from './size';
import { parseDuration, durationFix } from './duration';
import type { Action } from '../actions';
import type { MvCode } from '../errors';

export interface Config {
  listen: Endpoint;
  next_hop: Endpoint;
  clients: string[];
  rules_dir: string;
  /** The admin's rule layer, loaded after rules_dir (rules/load.ts); may not exist. */
  local_rules_dir: string;
  state_dir: string;
  metrics: Endpoint;
  admin: Endpoint;
  log_level: string;
  unscannable: Action;
  hostname: string;
  verdict_header: string | false;
  limits: {
    max_message_size: number;
    max_header_size: number;
    max_mime_depth: number;
    max_parts: number;
    spool_memory: number;
    max_recipients: number;
    max_connections: number;
  };
  timeouts: {
    next_hop_connect: number;
    next_hop_command: number;
    next_hop_write: number;
    next_hop_data: number;
    client_idle: number;
    /** Bytes per second. */
    client_min_data_rate: number;
    drain: number;
  };
  next_hop_pool: { max_idle: number; idle_timeout: number };
  inbound_tls?: { cert: string; key: string };
  /** TLS for the admin API (paths resolved like inbound_tls). */
  admin_tls?: { cert: string; key: string };
  /** Retention in milliseconds. */
  quarantine: { retention: number };
  audit: { retention: number };
  listen_protocol: 'smtp' | 'lmtp';
  delivery: { mode: 'relay' | 'mx'; max_mx: number; destination_concurrency: number };
  dns: { servers: Endpoint[]; timeout: number };
  tls: TlsConfig;
}

/** PEM text read from a configured file at load, with the path it came from. */
export interface PemFile {
  path: string;
  pem: string;
}

export interface TlsConfig {
  /** Relay mode: TLS to the fixed next hop (paths resolved, files read at load). */
  next_hop: {
    level: NextHopTlsLevel;
    ca_file: PemFile | null;
    servername: string | null;
    cert: PemFile | null;
    key: PemFile | null;
  };
  secure_next_hop: Endpoint | null;
  default_level: 'none' | 'may' | 'encrypt' | 'dane' | 'dane-only' | 'verify' | 'secure';
  ca_file: PemFile | null;
  dane: boolean;
  mta_sts: boolean;
  escalation_failure: 'defer' | 'bounce';
  tlsrpt: { submit: boolean; organization: string | null; contact: string | null };
}

/** Retention below this is refused: a typo such as `30` (ms) must not empty the quarantine. */
export const MIN_RETENTION_MS = 60_000;

/** Flag values, already named as config keys. */
export type ConfigOverrides = Partial<Record<'listen' | 'next_hop' | 'rules_dir' | 'local_rules_dir' | 'state_dir' | 'metrics' | 'admin' | 'log_level', string>>;

export class ConfigError extends Error {
  readonly code: MvCode = 'MV_CONFIG';
}

const FORMAT_HINTS: Record<string, string> = {
  endpoint: 'must be HOST:PORT, e.g. 127.0.0.1:10025 or [::1]:10025',
  size: 'must be a size, e.g. 50MiB, 512KB or 500B',
  duration: 'must be a duration, e.g. 500ms, 30s, 5m, 7d',
  cidr: 'must be an address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
};

/** Suggestions for a duration or size written without a unit. */
const UNIT_FIXES: Record<string, (n: number) => string> = { duration: durationFix, size: sizeFix };

/** Every key that names a file or directory. */
const PATH_KEYS: readonly (readonly string[])[] = [
  ['rules_dir'], ['local_rules_dir'], ['state_dir'], ['inbound_tls', 'cert'], ['inbound_tls', 'key'], ['admin_tls', 'cert'], ['admin_tls', 'key'],
  ['tls', 'next_hop', 'ca_file'], ['tls', 'next_hop', 'cert'], ['tls', 'next_hop', 'key'], ['tls', 'ca_file'],
];

/**
 * Values the schema knows but this version cannot act on. Each is refused
 * with one line: a policy that is written down and silently not applied is
 * worse than no policy (e.g. `delivery.mode: mx` would still relay).
 */
const NOT_YET: readonly { key: string; active(v: Record<string, any>): boolean; what: string }[] = [
];

// verbose: errors carry the offending value and its schema, for the hints below.
const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: true, allowUnionTypes: true, verbose: true });
ajv.addFormat('endpoint', (v: string) => parseEndpoint(v) !== undefined);
ajv.addFormat('cidr', (v: string) => parseCidr(v) !== undefined);
ajv.addFormat('size', { type: 'string', validate: (v: string) => parseSize(v) !== undefined });
ajv.addFormat('duration', { type: 'string', validate: (v: string) => parseDuration(v) !== undefined });
const validate = ajv.compile(configSchema);

function describe(err: ErrorObject): string {
  const path = err.instancePath.slice(1).replace(/\//g, '.');
  if (err.keyword === 'additionalProperties') {
    const key = (err.params as { additionalProperty: string }).additionalProperty;
    return `${path ? path + '.' : ''}${key}: unknown key`;
  }
  // A key with a format (endpoint, size, ...) explains the format, also when
  // the value has the wrong type: `listen: 10125` must say HOST:PORT.
  const format = (err.parentSchema as { format?: string } | undefined)?.format;
  const fix = format ? UNIT_FIXES[format] : undefined;
  const bare = typeof err.data === 'number' ? err.data : typeof err.data === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(err.data) ? Number(err.data) : undefined;
  if (fix && bare !== undefined && bare >= 0) return `${path}: ${String(err.data).trim()} has no unit; write ${fix(bare)}`;
  if (err.keyword === 'minLength' && (err.params as { limit: number }).limit === 1) return `${path}: must not be empty`;
  const hint = format && (err.keyword === 'format' || err.keyword === 'type') ? FORMAT_HINTS[format] : undefined;
  if (err.keyword === 'enum') return `${path}: must be equal to one of the allowed values: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  if (err.keyword === 'pattern' && path.endsWith('servername')) return `${path}: must be a DNS name, e.g. relay.example.com`;
  return `${path || '(top level)'}: ${hint ?? err.message}`;
}

/** The value at `keys` when it is a non-empty string, resolved against `base` in place. */
function resolveAt(obj: Record<string, unknown>, keys: readonly string[], base: string): void {
  let parent: Record<string, unknown> = obj;
  for (const k of keys.slice(0, -1)) {
    const next = parent[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) return;
    parent = next as Record<string, unknown>;
  }
  const last = keys[keys.length - 1];
  const value = parent[last];
  // An empty string stays empty, so the schema refuses it rather than it meaning `base`.
  if (typeof value === 'string' && value !== '') parent[last] = resolve(base, value);
}

export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}, cwd = process.cwd()): Config {
  let raw: unknown = {};
  const where = file ?? 'config';
  if (file) {
    let text: string;
    try {
      text = readFileSync(resolve(cwd, file), 'utf8');
    } catch (err) {
      throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: must be a YAML mapping`);
  }
  const base = file ? dirname(resolve(cwd, file)) : cwd;
  const obj = raw as Record<string, unknown>;
  // `tls: { next_hop: verify }` is short for `tls: { next_hop: { level: verify } }`.
  const tlsRaw = obj.tls as Record<string, unknown> | undefined;
  if (tlsRaw && typeof tlsRaw === 'object' && typeof tlsRaw.next_hop === 'string') tlsRaw.next_hop = { level: tlsRaw.next_hop };
  for (const keys of PATH_KEYS) resolveAt(obj, keys, base);
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) obj[key] = key.endsWith('_dir') && value !== '' ? resolve(cwd, value) : value;
  }
  if (!validate(obj)) {
    throw new ConfigError(`${where}: ${describe(validate.errors![0])}`);
  }
  // Defaults arrive with validation, still relative.
  for (const keys of PATH_KEYS) resolveAt(obj, keys, base);
  const v = obj as Record<string, any>;
  const cfg: Config = {
    ...v,
    listen: parseEndpoint(v.listen)!,
    next_hop: parseEndpoint(v.next_hop)!,
    metrics: parseEndpoint(v.metrics)!,
    admin: parseEndpoint(v.admin)!,
    limits: {
      ...v.limits,
      max_message_size: parseSize(v.limits.max_message_size)!,
      max_header_size: parseSize(v.limits.max_header_size)!,
      spool_memory: parseSize(v.limits.spool_memory)!,
    },
    timeouts: {
      ...(Object.fromEntries(Object.entries(v.timeouts).map(([k, d]) => [k, parseDuration(d)!])) as Config['timeouts']),
      client_min_data_rate: parseSize(v.timeouts.client_min_data_rate)!,
    },
    next_hop_pool: { ...v.next_hop_pool, idle_timeout: parseDuration(v.next_hop_pool.idle_timeout)! },
    quarantine: { retention: parseDuration(v.quarantine.retention)! },
    audit: { retention: parseDuration(v.audit.retention)! },
    dns: { servers: (v.dns.servers as string[]).map((e) => parseEndpoint(e)!), timeout: parseDuration(v.dns.timeout)! },
    tls: loadTls(where, v.tls),
  } as Config;
  for (const n of NOT_YET) if (n.active(v)) throw new ConfigError(`${where}: ${n.key}: ${n.what}`);
  for (const key of ['quarantine', 'audit'] as const) {
    if (cfg[key].retention < MIN_RETENTION_MS) throw new ConfigError(`${where}: ${key}.retention: must be at least 1m`);
  }
  if (cfg.limits.max_message_size < 1024) throw new ConfigError(`${where}: limits.max_message_size: must be at least 1KiB`);
  // A header can never be larger than the message that holds it.
  cfg.limits.max_header_size = Math.min(cfg.limits.max_header_size, cfg.limits.max_message_size);
  return cfg;
}

/** Reads one PEM file named by `key`; any failure is one line naming the key and the path. */
function readPem(where: string, key: string, path: string | null, what: 'certificate' | 'key'): PemFile | null {
  if (path === null) return null;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where}: ${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    if (what === 'key') createPrivateKey(pem);
    else {
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
      if (!blocks) throw new Error('no PEM certificate in it');
      for (const b of blocks) new X509Certificate(b);
    }
  } catch (err) {
    throw new ConfigError(`${where}: ${key}: ${path} is not a PEM ${what}: ${(err as Error).message.split('\n')[0]}`);
  }
  return { path, pem };
}

/** The tls section with its files read and checked: a start never fails later on a missing CA or key. */
function loadTls(where: string, t: Record<string, any>): TlsConfig {
  const hop = t.next_hop;
  if ((hop.cert === null) !== (hop.key === null)) {
    throw new ConfigError(`${where}: tls.next_hop.${hop.cert === null ? 'cert' : 'key'}: a client certificate needs both cert and key`);
  }
  const cert = readPem(where, 'tls.next_hop.cert', hop.cert, 'certificate');
  const key = readPem(where, 'tls.next_hop.key', hop.key, 'key');
  if (cert && key) {
    const leaf = new X509Certificate(cert.pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]);
    if (!leaf.checkPrivateKey(createPrivateKey(key.pem))) {
      throw new ConfigError(`${where}: tls.next_hop.key: ${key.path} is not the key of the certificate in ${cert.path}`);
    }
  }
  return {
    ...t,
    next_hop: { level: hop.level, servername: hop.servername, ca_file: readPem(where, 'tls.next_hop.ca_file', hop.ca_file, 'certificate'), cert, key },
    secure_next_hop: t.secure_next_hop === null ? null : parseEndpoint(t.secure_next_hop)!,
    ca_file: readPem(where, 'tls.ca_file', t.ca_file, 'certificate'),
  } as TlsConfig;
}
