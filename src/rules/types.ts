/*
 * The compiled, immutable rule set. A reload builds a whole new RuleSet and
 * swaps one reference, so a message always sees exactly one consistent set.
 */

import type { CompiledRules } from './compile';

export type ReceivedMode = 'keep' | 'pseudonymise' | 'strip-internal';

export const ACTIONS = ['monitor', 'tag', 'redact', 'quarantine', 'reject', 'tempfail'] as const;
export type Action = (typeof ACTIONS)[number];

export interface HeaderPolicy {
  /** Header names to drop; `*` matches any run of characters, case-insensitive. */
  remove: string[];
  received: ReceivedMode;
  /** CIDRs whose hops are internal. */
  internal_networks: string[];
  /** DNS suffixes that name internal hosts (Message-ID hosts, Received names). */
  internal_domains: string[];
}

export interface RuleDefinition {
  id: string;
  description?: string;
  detector?: string;
  pattern?: string;
  validator?: string;
  keywords?: string[];
  within?: number;
  min_count?: number;
  scope?: string[];
  action: Action;
  replacement?: string;
  reply?: string;
  /** Where the rule was written, for messages that point an admin at it. */
  source: { file: string; line: number };
}

export interface RuleSet {
  headers: HeaderPolicy;
  rules: RuleDefinition[];
  /** The rules as the scanner runs them (RE2, keyword matchers). */
  compiled: CompiledRules;
  /** The files the set was built from, in load order. */
  files: string[];
  loadedAt: Date;
}
