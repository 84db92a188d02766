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

/** Where a rule came from: the shipped rules_dir, or the admin's local_rules_dir. */
export type RuleLayer = 'shipped' | 'local';

export interface RuleSource {
  file: string;
  line: number;
  /** Absent in hand-made definitions (tests); a loaded rule always has it. */
  layer?: RuleLayer;
  /** For a local rule that replaced a shipped one: where the shipped rule stood (`file:line`). */
  replaces?: string;
}

export interface RuleDefinition {
  id: string;
  /** `false` switches the rule off; a loaded RuleSet never holds a disabled rule (see RuleSet.disabled). */
  enabled?: boolean;
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
  source: RuleSource;
}

export interface RuleSet {
  headers: HeaderPolicy;
  rules: RuleDefinition[];
  /** The rules as the scanner runs them (RE2, keyword matchers). */
  compiled: CompiledRules;
  /** The files the set was built from, in load order (rules_dir's, then local_rules_dir's). */
  files: string[];
  /** The two layers: each directory and its files; `local.dir` is absent when no local dir was given. */
  layers?: { shipped: { dir: string; files: string[] }; local: { dir?: string; files: string[] } };
  /** Rules switched off with `enabled: false` (by id), with the place that switched them off. */
  disabled?: { id: string; source: RuleSource }[];
  loadedAt: Date;
}
