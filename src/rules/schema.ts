/*
 * JSON Schema for one rule file (rules.d/*.yaml). Every key is optional so
 * a file can hold just headers or just rules; an unknown key is an error with
 * its file:line:col, because a misspelt `action` must never mean "no action".
 * The same schema serves both layers (rules_dir and local_rules_dir).
 */
import { ACTIONS } from './types';

export const RECEIVED_MODES = ['keep', 'pseudonymise', 'strip-internal'] as const;

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
          reply: { type: 'string', pattern: '^[45][0-9][0-9] [245]\\.[0-9]{1,3}\\.[0-9]{1,3} [ -~]+$' },
        },
      },
    },
  },
} as const;
