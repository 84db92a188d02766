/*
 * Per-message state, in one object (Haraka's "notes"): every stage reads and
 * writes here instead of keeping state in closures. It never holds a matched
 * value, only what a finding may carry: detector, count, part path, offset.
 */
import type { Config } from '../config/load';
import type { RuleSet, Action } from '../rules/types';
import type { Pseudonymiser } from '../privacy/pseudonym';

export interface Finding {
  rule: string;
  detector: string;
  count: number;
  /** MIME part path ("0" is the top-level header fields). */
  part: string;
  scope: string;
  /** Byte offset of the first match in the part's decoded text. */
  offset: number;
}

export interface Verdict {
  action: Action | 'pass';
  rules: string[];
  /** SMTP reply for reject/tempfail, as the rule wrote it. */
  reply?: string;
}

export interface MessageContext {
  id: string;
  config: Config;
  /** The rule set that was live when the message arrived; reloads never change it mid-message. */
  rules: RuleSet;
  pseudonyms: Pseudonymiser;
  receivedAt: number;
  /** Bytes of the message as received, set when pass 1 ends. */
  size: number;
  headerBytes: number;
  /** Reasons the content could not be fully scanned; never treated as clean. */
  unscannable: string[];
  /** Parts that are not text and were not extracted: not scanned, never "clean". */
  notExtracted: number;
  findings: Finding[];
  verdict: Verdict;
  /**
   * Set when the message is a release from quarantine (src/release/): the
   * verdict header then says `released; rules=<these ids>`, whatever
   * `verdict.action` tells the other stages to do.
   */
  released?: { rules: string[] };
}

export function newContext(id: string, config: Config, rules: RuleSet, pseudonyms: Pseudonymiser): MessageContext {
  return {
    id,
    config,
    rules,
    pseudonyms,
    receivedAt: Date.now(),
    size: 0,
    headerBytes: 0,
    unscannable: [],
    notExtracted: 0,
    findings: [],
    verdict: { action: 'pass', rules: [] },
  };
}
