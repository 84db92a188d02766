/*
 * The one typed config schema. Defaults live here and nowhere else; the
 * README's reference is written from this file. An unknown key is an error,
 * because a misspelt key that is silently ignored is a policy that is not
 * applied.
 */
import { ACTIONS } from '../actions';


const endpoint = { type: 'string', format: 'endpoint' } as const;
// Strings only: a bare number has no unit and is refused with a suggestion (load.ts).
const size = { type: 'string', format: 'size' } as const;
const duration = { type: 'string', format: 'duration' } as const;
/** A file path, or null for none. */
const optionalPath = { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }] } as const;

/** Postfix's smtp_tls_security_level values that make sense for one fixed next hop (no DANE: no MX lookup). */
export const NEXT_HOP_TLS_LEVELS = ['none', 'may', 'encrypt', 'verify', 'secure'] as const;
export type NextHopTlsLevel = (typeof NEXT_HOP_TLS_LEVELS)[number];

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: { ...endpoint, default: '127.0.0.1:10025' },
    next_hop: { ...endpoint, default: '127.0.0.1:10026' },
    clients: {
      type: 'array',
      items: { type: 'string', format: 'cidr' },
      default: ['127.0.0.0/8', '::1/128'],
    },
    /** Shipped rules: never edited by the admin. */
    rules_dir: { type: 'string', minLength: 1, default: './rules.d' },
    /** The admin's layer, loaded after rules_dir: a rule here with a shipped id replaces it, `enabled: false` switches it off. Missing = no local rules. */
    local_rules_dir: { type: 'string', minLength: 1, default: './rules.local.d' },
    state_dir: { type: 'string', minLength: 1, default: './var' },
    metrics: { ...endpoint, default: '127.0.0.1:9464' },
    admin: { ...endpoint, default: '127.0.0.1:9465' },
    log_level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    unscannable: { enum: [...ACTIONS], default: 'quarantine' },
    hostname: { type: 'string', pattern: '^[A-Za-z0-9.-]+$', default: 'localhost' },
    verdict_header: {
      anyOf: [{ type: 'string', pattern: '^[!-9;-~]+$' }, { const: false }],
      default: 'X-Mailveil-Verdict',
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max_message_size: { ...size, default: '50MiB' },
        max_header_size: { ...size, default: '1MiB' },
        max_mime_depth: { type: 'integer', minimum: 1, maximum: 1000, default: 32 },
        max_parts: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
        spool_memory: { ...size, default: '1MiB' },
        max_recipients: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
        max_connections: { type: 'integer', minimum: 1, maximum: 100000, default: 200 },
      },
    },
    /*
     * Every wait mailveil makes, in one place (src/smtp/deadlines.ts applies
     * them). The next-hop side stays below Postfix's own smtp client limits
     * for the content_filter transport (smtp_data_xfer_timeout 180s,
     * smtp_data_done_timeout 600s), so Postfix never gives up on a message
     * mailveil may still acknowledge; `serve` warns when a value breaks that.
     */
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        next_hop_connect: { ...duration, default: '10s' },
        next_hop_command: { ...duration, default: '60s' },
        /** A next hop that stops reading the body: no write progress for this long. */
        next_hop_write: { ...duration, default: '60s' },
        /** The next hop's reply to the final dot. */
        next_hop_data: { ...duration, default: '5m' },
        /** A client command, and any silence inside DATA (Postfix's smtpd_timeout). */
        client_idle: { ...duration, default: '5m' },
        /** DATA must arrive at least this fast once client_idle has passed (Postfix's smtpd_min_data_rate). */
        client_min_data_rate: { ...size, default: '500B' },
        drain: { ...duration, default: '60s' },
      },
    },
    next_hop_pool: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max_idle: { type: 'integer', minimum: 0, maximum: 1000, default: 20 },
        idle_timeout: { ...duration, default: '30s' },
      },
    },
    quarantine: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Held messages older than this are deleted (serve's hourly purge, `mailveil quarantine purge`). */
        retention: { ...duration, default: '30d' },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Whole days of the audit log older than this are deleted, by the same purge. */
        retention: { ...duration, default: '180d' },
      },
    },
    /** TLS for the admin API; required when `admin` is not a loopback address. */
    admin_tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: {
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
      },
    },
    /** smtp | lmtp (LMTP gives Postfix one reply per recipient after DATA: mx mode's per-domain results). */
    listen_protocol: { enum: ['smtp', 'lmtp'], default: 'smtp' },
    delivery: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** relay: to next_hop | mx: straight to each recipient domain's MX under its TLS policy. */
        mode: { enum: ['relay', 'mx'], default: 'relay' },
        /** MX hosts tried per domain, in preference order. */
        max_mx: { type: 'integer', minimum: 1, maximum: 50, default: 5 },
        /** mx mode: open transactions per recipient domain at once (Postfix's default_destination_concurrency_limit). */
        destination_concurrency: { type: 'integer', minimum: 1, maximum: 1000, default: 20 },
      },
    },
    dns: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** A validating resolver (DANE trusts its AD bit); every lookup mailveil makes goes here. */
        servers: { type: 'array', minItems: 1, items: endpoint, default: ['127.0.0.1:53'] },
        timeout: { ...duration, default: '5s' },
      },
    },
    /*
     * Outbound TLS. Level names and meanings are Postfix's
     * smtp_tls_security_level. Files (ca_file, cert, key) are read and
     * checked at load (load.ts), so a bad path stops the start with one line.
     */
    tls: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Relay mode: TLS to the fixed next hop. `next_hop: verify` is short for `{ level: verify }` (load.ts). */
        next_hop: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            level: { enum: [...NEXT_HOP_TLS_LEVELS], default: 'may' },
            /** CAs the next hop's chain must lead to at verify/secure; only these (default: the system store plus tls.ca_file). */
            ca_file: { ...optionalPath, default: null },
            /** The name sent as SNI and matched against the certificate (default: the next_hop host). */
            servername: { anyOf: [{ type: 'string', pattern: '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$' }, { type: 'null' }], default: null },
            /** A client certificate (PEM, chain allowed) and its key: both or neither. */
            cert: { ...optionalPath, default: null },
            key: { ...optionalPath, default: null },
          },
        },
        /** Relay mode: HOST:PORT for messages that need verified TLS (a `require_tls: verified` rule fired, REQUIRETLS); level secure with tls.next_hop's ca_file, servername, cert, key. */
        secure_next_hop: { anyOf: [endpoint, { type: 'null' }], default: null },
        /** mx mode, when no static map, DANE or MTA-STS policy applies. */
        default_level: { enum: ['none', 'may', 'encrypt', 'dane', 'dane-only', 'verify', 'secure'], default: 'may' },
        /** Extra CAs for verify/secure/MTA-STS, added to the system store. */
        ca_file: { ...optionalPath, default: null },
        dane: { type: 'boolean', default: true },
        mta_sts: { type: 'boolean', default: true },
        /** defer (4xx) | bounce (5xx) when a flagged message finds no verified path. */
        escalation_failure: { enum: ['defer', 'bounce'], default: 'defer' },
        tlsrpt: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** Send each finished UTC day's RFC 8460 reports to every policy domain's rua (mailto: through the next hop, https: POST). */
            submit: { type: 'boolean', default: false },
            organization: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
            contact: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
          },
        },
      },
    },
    inbound_tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: {
        cert: { type: 'string', minLength: 1 },
        key: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;
