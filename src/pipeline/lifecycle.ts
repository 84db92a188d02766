/*
 * The life of one message, as data (after Postfix's cleanup state machine
 * and fastify's Lifecycle.md). Everything a message goes through is named
 * here, in order: the byte stages of each pass, the steps between them with
 * every branch they may take, the typed outcomes a message can end in, the
 * reply each outcome gives, and the `after` steps every message runs once.
 * `mailveil serve --print-pipeline` prints this file's contents.
 *
 *   receive ─► check-size ─► decide ─► route ─┬─► reply (reject, tempfail, header too big)
 *                                             ├─► hold ──────────────► held
 *                                             ├─► escalate ─┬─► deliver (over a verified path)
 *                                             │             └─► reply (no verified path: 451 4.7.5 / 550 5.7.10)
 *                                             └─► deliver ─┬─► delivered / next hop's refusal
 *                                                          └─► hold   (a value that could not be redacted)
 *   In mx mode over LMTP a message may have one transaction per recipient
 *   domain (message.ts, `parts`): escalate and deliver then run for each,
 *   and the message ends `per_recipient`, one reply per recipient.
 *   then, whatever the outcome: after = count ─► log ─► audit
 *
 * run-message.ts runs it and refuses a transition this table does not list,
 * so a new branch cannot be added without being declared (and printed).
 */
import { headerScan } from './stages/header-scan';
import { tlsHeaders } from './stages/tls-headers';
import { dlpScan } from './stages/dlp-scan';
import { subjectIndex } from './stages/subject-index';
import { decide } from './stages/decide';
import { redact } from './stages/redact';
import { anonymiseHeaders } from './stages/anonymise-headers';
import { verdictHeader } from './stages/verdict-header';
import { smtpEncode } from './stages/smtp-encode';
import type { Analyzer, Decider, Rewriter } from './stage';
import type { Reply } from './reply';
import type { ReplyCode } from '../errors';

/** The byte stages of each pass, in order. */
export const PIPELINE: { pass1: readonly Analyzer[]; decide: readonly Decider[]; pass2: readonly Rewriter[] } = {
  pass1: [headerScan, tlsHeaders, dlpScan, subjectIndex],
  decide: [decide],
  // redact first: it works on the original MIME structure.
  // smtp-encode must stay last: it makes the bytes safe for the wire.
  pass2: [redact, anonymiseHeaders, verdictHeader, smtpEncode],
};

/**
 * How a message ends. `delivered` and `held` are the two 250s; every other
 * kind is a refusal or a deferral, and `client_gone` is a message whose
 * client left before anything was committed (it gets no reply).
 */
export type Outcome =
  | { kind: 'delivered'; reply: Reply }
  | { kind: 'held' }
  | { kind: 'policy_reject'; ruleReply?: string }
  | { kind: 'policy_tempfail'; ruleReply?: string }
  | { kind: 'too_big' }
  | { kind: 'header_too_big' }
  | { kind: 'next_hop_refused'; reply: Reply }
  | { kind: 'next_hop_deferred'; reply: Reply }
  | { kind: 'next_hop_lost' }
  | { kind: 'next_hop_timeout' }
  | { kind: 'no_space' }
  | { kind: 'quarantine_unavailable' }
  | { kind: 'internal' }
  | { kind: 'tls_required_deferred' }
  | { kind: 'tls_required_bounced' }
  | { kind: 'client_gone' }
  /** mx mode: the recipient domain's TLS policy (DANE, MTA-STS) could not be met, and the message does not say TLS-Required: No. */
  | { kind: 'recipient_tls_policy'; code: ReplyCode }
  /** mx mode over LMTP: one transaction per recipient domain, each with its own outcome (one reply per recipient). */
  | { kind: 'per_recipient'; parts: PartOutcome[] };

/** One recipient domain's share of a per_recipient outcome. */
export interface PartOutcome {
  /** The recipient domain (domains may be logged; addresses never). */
  label: string;
  /** Positions of its recipients in the envelope: the order of LMTP's replies. */
  recipients: number[];
  outcome: Exclude<Outcome, { kind: 'per_recipient' }>;
}

export type OutcomeKind = Outcome['kind'];

/** The steps between the passes; each names where it may go and how it may end. */
export const STEPS = {
  receive: { does: 'pass 1: client -> analyzers -> spool, under the DATA deadline', next: ['check-size'], ends: ['no_space', 'internal', 'client_gone'] },
  'check-size': { does: 'over max_message_size: the spool stopped at the limit, the rest was read and dropped', next: ['decide'], ends: ['too_big'] },
  decide: { does: 'deciders: findings and unscannable reasons -> one verdict', next: ['route'], ends: [] },
  route: {
    does: 'the verdict picks the branch; a header too big to anonymise is never delivered',
    next: ['hold', 'escalate', 'deliver'],
    ends: ['policy_reject', 'policy_tempfail', 'header_too_big', 'client_gone'],
  },
  escalate: {
    does: 'verified TLS required (a require_tls rule fired, REQUIRETLS or Require-TLS-ESMTP): the mirrored hop if verified, else tls.secure_next_hop with the envelope replayed',
    next: ['deliver'],
    ends: ['tls_required_deferred', 'tls_required_bounced', 'next_hop_deferred', 'next_hop_lost', 'client_gone', 'per_recipient', 'recipient_tls_policy'],
  },
  hold: { does: 'the original into the quarantine; 250 once the entry is durable', next: [], ends: ['held', 'no_space', 'quarantine_unavailable'] },
  deliver: {
    does: "pass 2: spool -> rewriters -> next hop; its answer to the final '.' is ours (mx: a domain whose DANE/MTA-STS policy failed at RCPT goes at level may only with TLS-Required: No)",
    next: ['hold'],
    ends: ['delivered', 'next_hop_refused', 'next_hop_deferred', 'next_hop_lost', 'next_hop_timeout', 'internal', 'client_gone', 'per_recipient', 'recipient_tls_policy'],
  },
} as const satisfies Record<string, { does: string; next: readonly string[]; ends: readonly OutcomeKind[] }>;

export type StepName = keyof typeof STEPS;
export const FIRST_STEP: StepName = 'receive';

/** Side effects every message runs once, after its outcome, in this order. */
export const AFTER = {
  count: 'messages_total, bytes, stage durations, rule hits (under the rule set the message was judged by), unscannable reasons',
  log: "one `event: message` log line, pseudonyms only",
  audit: 'one `verdict` audit event with the subject index; a failed write is logged and does not change the reply',
} as const;

export type AfterName = keyof typeof AFTER;

/**
 * What an outcome answers. `code` names an entry of the reply catalogue;
 * `rule` is the firing rule's own reply with that entry as fallback;
 * `next-hop` passes the next hop's refusal back (guarantee 1); `deferred`
 * turns its 4xx into our 451; `queued` and `held` are our 250s.
 */
export type ReplySource =
  | { from: 'queued' }
  | { from: 'held' }
  | { from: 'catalogue'; code: ReplyCode }
  | { from: 'rule'; fallback: ReplyCode }
  | { from: 'next-hop' }
  | { from: 'deferred' }
  | { from: 'per-recipient' }
  | { from: 'outcome-code' };

/** Each outcome's reply and the `verdict` label messages_total and the log carry for it (`action` = the verdict's action). */
export const OUTCOMES: Record<OutcomeKind, { reply: ReplySource; verdict: string | 'action' }> = {
  delivered: { reply: { from: 'queued' }, verdict: 'action' },
  held: { reply: { from: 'held' }, verdict: 'quarantine' },
  policy_reject: { reply: { from: 'rule', fallback: 'MV_POLICY_REJECT' }, verdict: 'reject' },
  policy_tempfail: { reply: { from: 'rule', fallback: 'MV_POLICY_TEMPFAIL' }, verdict: 'tempfail' },
  too_big: { reply: { from: 'catalogue', code: 'MV_TOO_BIG' }, verdict: 'too_big' },
  header_too_big: { reply: { from: 'catalogue', code: 'MV_HEADER_TOO_LARGE' }, verdict: 'too_big' },
  next_hop_refused: { reply: { from: 'next-hop' }, verdict: 'error' },
  next_hop_deferred: { reply: { from: 'deferred' }, verdict: 'error' },
  next_hop_lost: { reply: { from: 'catalogue', code: 'MV_NEXT_HOP_LOST' }, verdict: 'error' },
  next_hop_timeout: { reply: { from: 'catalogue', code: 'MV_NEXT_HOP_TIMEOUT' }, verdict: 'error' },
  no_space: { reply: { from: 'catalogue', code: 'MV_NO_SPACE' }, verdict: 'error' },
  quarantine_unavailable: { reply: { from: 'catalogue', code: 'MV_QUARANTINE_UNAVAILABLE' }, verdict: 'error' },
  internal: { reply: { from: 'catalogue', code: 'MV_INTERNAL' }, verdict: 'error' },
  tls_required_deferred: { reply: { from: 'catalogue', code: 'MV_TLS_REQUIRED_DEFER' }, verdict: 'error' },
  tls_required_bounced: { reply: { from: 'catalogue', code: 'MV_TLS_REQUIRED_BOUNCE' }, verdict: 'error' },
  // Never sent: the client has gone. The catalogue entry is what a reply would have said.
  client_gone: { reply: { from: 'catalogue', code: 'MV_NEXT_HOP_LOST' }, verdict: 'aborted' },
  per_recipient: { reply: { from: 'per-recipient' }, verdict: 'action' },
  recipient_tls_policy: { reply: { from: 'outcome-code' }, verdict: 'error' },
};

function describeReply(r: ReplySource): string {
  switch (r.from) {
    case 'queued':
      return "250 queued, with the next hop's reply";
    case 'held':
      return '250 held in quarantine';
    case 'catalogue':
      return r.code;
    case 'rule':
      return `the rule's reply, else ${r.fallback}`;
    case 'next-hop':
      return "the next hop's 5xx, unchanged";
    case 'deferred':
      return "MV_NEXT_HOP_DEFERRED, with the next hop's reply";
    case 'outcome-code':
      return 'the catalogue entry the outcome names (MV_MX_TLS_POLICY, MV_TLS_*)';
    case 'per-recipient':
      return "LMTP: each recipient its domain's outcome's reply (mx mode, several recipient domains)";
  }
}

/** The whole lifecycle as text, for `--print-pipeline` and the startup log. */
export function describeLifecycle(): string[] {
  const lines = [
    `pass 1: client -> ${[...PIPELINE.pass1.map((s) => s.name), 'spool'].join(' -> ')}`,
    `decide: ${PIPELINE.decide.map((s) => s.name).join(' -> ')}`,
    `pass 2: spool -> ${[...PIPELINE.pass2.map((s) => s.name), 'next-hop'].join(' -> ')}`,
    'steps:',
  ];
  for (const [name, s] of Object.entries(STEPS)) {
    const to = [...s.next, ...s.ends.map((e) => `end:${e}`)];
    lines.push(`  ${name}: ${s.does}${to.length ? ` => ${to.join(' | ')}` : ''}`);
  }
  lines.push(`after: ${Object.keys(AFTER).join(' -> ')}`);
  lines.push('outcomes:');
  for (const [kind, o] of Object.entries(OUTCOMES)) lines.push(`  ${kind}: ${kind === 'client_gone' ? 'no reply: the client has gone' : describeReply(o.reply)}`);
  return lines;
}

/** The three pass lines only (the startup log's `pipeline` field). */
export function describePipeline(): string[] {
  return describeLifecycle().slice(0, 3);
}
