/*
 * Per-client-session state kept outside smtp-server's session object: the
 * next-hop connection that mirrors the client's open transaction, and what
 * the drain and the deadlines need to know about the session.
 *
 * Ownership of `hop`: the session's command handlers while no message is
 * being handled; handle-message.ts while `busy`. Whoever owns it hands it
 * back to the pool (which resets or closes it), so a client that leaves
 * mid-message never has its connection reset under a running DATA.
 */
import type { NextHopConnection } from './next-hop';
import type { MxTransaction } from './mx/session';

export interface SessionState {
  /** The next-hop connection holding the mirrored MAIL/RCPT, if a transaction is open. */
  hop?: NextHopConnection;
  /** mx mode: the envelope's transactions, one per recipient domain. */
  mx?: MxTransaction;
  /** Recipients the next hop accepted in this transaction. */
  accepted: number;
  /** The original client as a pseudonym, for logs. */
  clientPseudonym: string;
  /** Aborted when the client's connection closes, whatever it was doing. */
  gone: AbortController;
  /** True while handle-message.ts runs for this session. */
  busy: boolean;
  /** True once the client's data stream has ended (its final dot was read), until the reply. */
  received: boolean;
  /** Set when a deadline of ours ended the session. */
  deadline?: string;
}

export function newSessionState(clientPseudonym: string): SessionState {
  return { accepted: 0, clientPseudonym, gone: new AbortController(), busy: false, received: false };
}

/**
 * True from the client's final dot until our reply: the message is being
 * decided, delivered or held, the next hop may already be committing it, and
 * every remaining wait has its own deadline. The drain lets such a session
 * finish rather than answer 421 to a message the next hop may have taken.
 */
export function finishing(st: SessionState): boolean {
  return st.busy && st.received;
}
