/*
 * JSON Schema for one rule file (rules.d/*.yaml). Every key is optional so
 * a file can hold just headers or just rules; an unknown key is an error with
 * its file:line:col, because a misspelt `action` must never mean "no action".
 * The same schema serves both layers (rules_dir and local_rules_dir).
 */
import { ACTIONS } from './types';
import { TLS_LEVELS, TLS_POLICY_KEY_RE } from '../tls/levels';

export const RECEIVED_MODES = ['keep', 'pseudonymise', 'strip-internal'] as const;

const CERT_NAME = '^(hostname|nexthop|dot-nexthop|\\.?([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?\\.)*[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)$';

export const ruleFileSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    headers: {
      type: 'object',
      additionalProperties: false,
      properties: {
        remove: { type: 'array', items: { type: 'string', pattern: '^[!-9;-~]+$' } },
        received: { enum: [...RECEIVED_MODES] },
        internal_networks: { type: 'array', items: { type: 'string', format: 'cidr' } },
        internal_domains: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.-]+$' } },
      },
    },
    /** Static TLS policy per recipient domain (Postfix's smtp_tls_policy_maps); checked in load.ts for precise messages. */
    tls_policy: {
      type: 'object',
      propertyNames: { pattern: TLS_POLICY_KEY_RE.source },
      additionalProperties: {
        anyOf: [
          { enum: [...TLS_LEVELS] },
          {
            type: 'object',
            additionalProperties: false,
            required: ['level'],
            properties: {
              level: { enum: [...TLS_LEVELS] },
              match: { type: 'array', minItems: 1, items: { type: 'string', pattern: CERT_NAME } },
            },
          },
        ],
      },
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        // `id` + `enabled: false` alone is a whole rule: it switches off the
        // rule of that id (a shipped one, from local_rules_dir). Any other
        // rule needs an action and exactly one of detector or pattern.
        if: { required: ['enabled'], properties: { enabled: { const: false } } },
        else: { required: ['action'], oneOf: [{ required: ['detector'] }, { required: ['pattern'] }] },
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9-]+$' },
          enabled: { type: 'boolean' },
          description: { type: 'string' },
          detector: { type: 'string', pattern: '^[a-z0-9_]+$' },
          pattern: { type: 'string', minLength: 1 },
          validator: { type: 'string', pattern: '^[a-z0-9_]+$' },
          keywords: { type: 'array', items: { type: 'string', minLength: 1 } },
          within: { type: 'integer', minimum: 1, maximum: 10000 },
          min_count: { type: 'integer', minimum: 1, maximum: 100000 },
          scope: { type: 'array', items: { enum: ['subject', 'headers', 'body', 'attachments'] } },
          action: { enum: [...ACTIONS] },
          replacement: { type: 'string' },
          /** Parsed so it is never silently ignored; load.ts refuses it (not available in this version). */
          require_tls: { enum: ['verified'] },
          reply: { type: 'string', pattern: '^[45][0-9][0-9] [245]\\.[0-9]{1,3}\\.[0-9]{1,3} [ -~]+$' },
        },
      },
    },
  },
} as const;
