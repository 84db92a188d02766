/*
 * Per-message state, in one object (Haraka's "notes"): every stage reads and
 * writes here instead of keeping state in closures. It never holds a matched
 * value, only what a finding may carry: detector, count, part path, offset.
 */
import type { Config } from '../config/load';
import type { RuleSet, Action } from '../rules/types';
import type { Pseudonymiser } from '../privacy/pseudonym';
import { EXTRACT_REASONS } from '../mime/types';
import type { QuarantineEnvelope } from '../quarantine/meta';

/**
 * Every `reason` of mailveil_unscannable_total and of a held message's
 * `reasons`: the extractor's, plus not_extracted (a binary part mailveil does
 * not read) and redact_failed (a value pass 2 could not remove). The README
 * lists each; test/unit/readme-coverage.test.ts checks it.
 */
export const UNSCANNABLE_REASONS = [...EXTRACT_REASONS, 'not_extracted', 'redact_failed'] as const;

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
   * Set when the message is a release from quarantine (src/operations/release.ts): the
   * verdict header then says `released; rules=<these ids>`, whatever
   * `verdict.action` tells the other stages to do; `tlsRequired` adds
   * `; tls=verified-required` (the release keeps to a verified path).
   */
  released?: { rules: string[]; tlsRequired?: boolean };
  /**
   * The envelope as received (addresses, parameters, the original client), or
   * undefined where there is none (`rules test`, a release). Only the
   * quarantine's encrypted metadata stores it; logs get pseudonyms.
   */
  envelope?: QuarantineEnvelope;
  /** The subject index (gdpr/subjects.ts): envelope tokens, plus the header's once pass 1 ends. */
  subjects: string[];
  /** The header's addresses could not be read: the index holds the envelope's only. */
  subjectsPartial?: boolean;
  /** Postfix's queue id from XFORWARD IDENT, for the log line and the audit event. */
  queueId?: string;
  /**
   * RFC 8689 as received: `esmtp` REQUIRETLS on MAIL FROM (set by the SMTP
   * side), `header` a `Require-TLS-ESMTP: yes` field (Postfix 3.11 carries
   * REQUIRETLS through a content filter that way), `relaxed` a
   * `TLS-Required: No` field (section 5; recipient-side policy only).
   */
  requireTls: { esmtp: boolean; header: boolean; relaxed: boolean };
  /** Set by step `escalate`: the verified path the message left on (the log line's `tls_path`). */
  tlsPath?: 'mirrored' | 'secure_next_hop';
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
    subjects: [],
    requireTls: { esmtp: false, header: false, relaxed: false },
  };
}
