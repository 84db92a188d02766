/*
 * Per-client-session state kept outside smtp-server's session object: the
 * next-hop connection that mirrors the client's open transaction.
 */
import type { NextHopConnection } from './next-hop';

export interface SessionState {
  /** The next-hop connection holding the mirrored MAIL/RCPT, if a transaction is open. */
  hop?: NextHopConnection;
  /** Recipients the next hop accepted in this transaction. */
  accepted: number;
  /** The original client as a pseudonym, for logs. */
  clientPseudonym: string;
}
