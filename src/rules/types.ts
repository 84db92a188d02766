/*
 * The compiled, immutable rule set. A reload builds a whole new RuleSet and
 * swaps one reference, so a message always sees exactly one consistent set.
 */

import type RE2 from 're2';
import type { Action } from '../actions';
import type { StaticTlsEntry, StaticTlsMap } from '../tls/levels';

// Re-exported: rules files and their users take the actions from here.
export { ACTIONS, type Action } from '../actions';

export type { StaticTlsEntry, StaticTlsMap };

export type ReceivedMode = 'keep' | 'pseudonymise' | 'strip-internal';

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
  /** `verified`: a hit lets the message leave only over a verified TLS path. Refused at load in this version. */
  require_tls?: 'verified';
  /** Where the rule was written, for messages that point an admin at it. */
  source: RuleSource;
}

export interface RuleSet {
  headers: HeaderPolicy;
  rules: RuleDefinition[];
  /**
   * The static `tls_policy:` map of both layers (a local entry replaces the
   * shipped entry of the same key); look a domain up with staticPolicy().
   * Absent in hand-made sets (tests): no static entries.
   */
  tlsPolicy?: StaticTlsMap;
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

/* What compile.ts builds from RuleDefinitions: here so RuleSet can name it without importing the compiler. */

export type Scope = 'subject' | 'headers' | 'body' | 'attachments';

export interface CompiledRule {
  def: RuleDefinition;
  detectorName: string;
  re: RE2;
  /** Capture group holding the value (0 = the whole match). */
  group: number;
  validate: (value: string) => boolean;
  requiresKeyword: (value: string) => boolean;
  /** Matches any keyword (detector's and rule's), or undefined when there are none. */
  keywords?: RE2;
  /**
   * The same keywords without the boundary test around them: what `keywords`
   * needs somewhere in any stretch of text it could match. A text without it
   * holds no keyword anywhere, which the scanner checks once per window
   * instead of once per match when many matches need a keyword.
   */
  keywordPhrases?: RE2;
  /** Rule gave its own keywords: only matches near a keyword count. */
  keywordsRequired: boolean;
  within: number;
  /** Longest match, in characters (the detector's, or CUSTOM_MAX_LENGTH). */
  maxLength: number;
  /** The same in bytes of UTF-8, which is what the scanner cuts text by (maxBytes). */
  maxBytes: number;
  scope: ReadonlySet<Scope>;
}

type RE2Set = InstanceType<typeof RE2.Set>;

export interface CompiledRules {
  rules: CompiledRule[];
  /** All rule patterns, index-aligned with `rules`. Undefined when there are no rules. */
  set?: RE2Set;
  /** Longest context any rule needs past a match start, in bytes: maxBytes + within. */
  horizon: number;
  /** Longest match of any rule, in bytes. */
  maxBytes: number;
}
