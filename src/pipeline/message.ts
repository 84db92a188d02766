/*
 * What the lifecycle's steps work on: one message, the services it may use,
 * and two ports the SMTP side provides (the client's data and the next-hop
 * transaction). The steps never see smtp-server or a socket, so the same
 * lifecycle can run behind another front end (LMTP, a release, a test).
 */
import type { Readable } from 'node:stream';
import type { Config } from '../config/load';
import type { Pseudonymiser } from '../privacy/pseudonym';
import type { Metrics } from '../observability/metrics';
import type { Logger } from '../observability/log';
import type { QuarantineStore } from '../quarantine/store';
import type { AuditLog } from '../audit/log';
import type { Reply } from './reply';
import type { MessageContext } from './context';
import type { Spool } from './spool';
import type { StageTimings } from './run';
import type { Outcome, StepName } from './lifecycle';
import type { ReplyCode } from '../errors';

/** The process-wide services a step may use (a subset of the Runtime). */
export interface Services {
  config: Config;
  pseudonyms: Pseudonymiser;
  metrics: Metrics;
  log: Logger;
  quarantine: QuarantineStore;
  audit: AuditLog;
}

/** How the next hop answered the transaction's DATA, or why it could not. */
export type DeliveryResult =
  | { ok: true; reply: Reply; bytes: number }
  /** `pass2`: a rewriter failed, so the transaction was aborted and `cause` says why. */
  | { ok: false; failure: 'timeout' | 'lost' | 'client_gone' | 'pass2'; cause?: unknown };

/** The next hop's open transaction for this message (the SMTP side owns the connection). */
export interface Delivery {
  /** False when there is no open transaction to send on (the envelope failed downstream, or the connection died before DATA). */
  usable(): boolean;
  send(body: Readable & AsyncIterable<Buffer>, signal: AbortSignal): Promise<DeliveryResult>;
}

/** What step `escalate` knows about the mirrored transaction before it picks a path. */
export interface EscalationFacts {
  /** The mirrored connection is at tls.next_hop level verify/secure and its certificate was verified. */
  mirroredVerified: boolean;
  /** The mirrored next hop advertises REQUIRETLS (RFC 8689). */
  mirroredOffersRequireTls: boolean;
  /** tls.secure_next_hop is configured. */
  secureNextHop: boolean;
  /**
   * mx mode: the name the certificate was checked against is vouched for by
   * DNSSEC, DANE or MTA-STS, which RFC 8689 4.2.1 asks of REQUIRETLS (not of
   * a require_tls rule). Absent in relay mode: the next hop is configured.
   */
  mirroredNameVouched?: boolean;
}

/** `if-offered`: REQUIRETLS on MAIL FROM where the hop advertises it; `required`: a hop that does not is no path (RFC 8689 4.2.1). */
export type RequireTlsMode = 'if-offered' | 'required';

export type EscalationOpen =
  | { ok: true; delivery: Delivery }
  /** tls: no verified handshake; no_requiretls: REQUIRETLS required and not advertised; lost: the connection failed. */
  | { ok: false; failure: 'tls' | 'no_requiretls' | 'lost' | 'client_gone' }
  /** The hop refused the replayed MAIL or one of the replayed RCPTs. */
  | { ok: false; failure: 'refused'; reply: Reply };

/**
 * The SMTP side's help for a message that needs verified TLS (step
 * `escalate`): the facts, and a transaction on the chosen path with the
 * envelope replayed (REQUIRETLS on MAIL FROM per `requireTls`). Choosing
 * `secure_next_hop` abandons the mirrored transaction (RSET; it never
 * reached DATA). Absent where there is no SMTP session (a release, a test):
 * such a message finds no verified path.
 */
export interface Escalation {
  facts(): EscalationFacts;
  open(path: 'mirrored' | 'secure_next_hop', requireTls: RequireTlsMode): Promise<EscalationOpen>;
}

/** The client side of the message. */
export interface Client {
  /** The message as the client sends it, up to its final dot. */
  data: AsyncIterable<Buffer>;
  /** Aborted when the client's connection closes. */
  gone: AbortSignal;
  /** Called with each chunk's size as it arrives (the DATA rate deadline). */
  onBytes?(n: number): void;
  /** Called once pass 1 has ended, however it ended. */
  onReceived?(): void;
  /** True once the client has left; checks the data stream too (smtp-server learns of a close late). */
  hasGone(): boolean;
  /** Facts for the log line and audit event: the client pseudonym, the envelope size, a deadline that fired. */
  facts(): { client: string; rcptCount: number; deadline?: string };
}

/**
 * mx mode over LMTP, several recipient domains: one transaction per domain.
 * Steps escalate and deliver run for each part; a part they end early
 * carries its outcome in `ended`.
 */
export interface DeliveryPart {
  /** The recipient domain. */
  label: string;
  /** Positions of its recipients in the envelope. */
  recipients: number[];
  delivery: Delivery;
  escalation?: Escalation;
  ended?: Exclude<Outcome, { kind: 'per_recipient' }>;
  /**
   * mx mode: the domain's DANE or MTA-STS policy could not be met when its
   * RCPTs came (they were accepted provisionally). The message goes there
   * only if it says `TLS-Required: No` (RFC 8689 5), over a connection at
   * level may opened by relax(); otherwise its recipients get `code`.
   */
  policyFailure?: { code: ReplyCode; relax(): Promise<RelaxOpen> };
}

/**
 * What relax() got. `refused`: recipients (envelope positions) the MX
 * refused while the others were taken (LMTP only: over SMTP a partial
 * refusal cannot be told to the client, so it is a refusal of the part);
 * `every`: the refusal covers every recipient of the part.
 */
export type RelaxOpen =
  | { ok: true; delivery: Delivery; refused: { recipient: number; reply: Reply }[] }
  | { ok: false; failure: 'tls' | 'lost' | 'client_gone' | 'no_requiretls' }
  | { ok: false; failure: 'refused'; reply: Reply; every: boolean };

export interface Message {
  ctx: MessageContext;
  services: Services;
  client: Client;
  delivery: Delivery;
  /** How a message that needs verified TLS gets it; step `escalate` may replace `delivery` with its transaction. */
  escalation?: Escalation;
  /** Set when the message has more than one transaction (see DeliveryPart); then `delivery` and `escalation` are unused. */
  parts?: DeliveryPart[];
  spool: Spool;
  timings: StageTimings;
  /** Steps taken, in order: the log's debug trail and the `after` steps' view of what ran. */
  trail: StepName[];
  /** Set by `receive` when more than max_message_size arrived. */
  tooBig: boolean;
}

/** Where a step goes next, or how the message ends. */
export type StepResult = { next: StepName } | { end: Outcome };
export type Step = (m: Message) => Promise<StepResult>;
/** An `after` step: runs once per message whatever its outcome; must not throw. */
export type AfterStep = (m: Message, outcome: Outcome) => Promise<void>;
