/*
 * What smtp-server does not offer as options, added to its SMTPConnection
 * the way enhanced-codes.ts adds one (applied once, at import):
 *  1. A control character anywhere in a MAIL or RCPT line gets 501 5.5.2.
 *     smtp-server splits parameters on whitespace, CR included, so
 *     "MAIL FROM:<a@example.com>\rRCPT TO:<b@example.net>" would pass with
 *     its tail silently dropped (RFC 5321 2.3.8: a bare CR is not a line
 *     ending, and nothing may be dropped without a word).
 *  2. The idle timeout that ends a session is reported, so a deadline hit
 *     is visible in logs and metrics, not only to the client.
 *  3. Each command verb (never its arguments) is reported, for debug logs.
 *  4. The connection of a session can be found: deadlines and the drain
 *     answer a client and close it.
 * These rely on smtp-server 3.21's connection internals (typed in its .d.ts);
 * test/unit/connection-hooks.test.ts fails if an upgrade changes them.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import { smtpReplyOf } from '../errors';

export interface ConnectionEvents {
  /** The client stayed silent for client_idle while it owed us input. */
  idleTimeout(session: SMTPServerSession): void;
  /** A command line arrived (the verb only: arguments may hold addresses). */
  command(session: SMTPServerSession, verb: string): void;
}

const observers = new WeakMap<object, ConnectionEvents>();

export function observeConnections(server: SMTPServer, events: ConnectionEvents): void {
  observers.set(server, events);
}

/** The open connection of a session, if it is still open. */
export function connectionOf(server: SMTPServer, sessionId: string): SMTPConnection | undefined {
  for (const c of server.connections) if (c.id === sessionId) return c;
  return undefined;
}

const CONTROL = /[\x00-\x1f\x7f]/;
const VERB = /^[A-Za-z]{1,12}/;

const onCommand = SMTPConnection.prototype._onCommand;
SMTPConnection.prototype._onCommand = function (this: SMTPConnection, command: Buffer, callback?: () => void) {
  const line = (command ?? Buffer.alloc(0)).toString('latin1');
  const verb = (VERB.exec(line)?.[0] ?? '').toUpperCase();
  observers.get(this._server)?.command(this.session, verb || '(junk)');
  if ((verb === 'MAIL' || verb === 'RCPT') && CONTROL.test(line) && this._ready && !this._upgrading) {
    const r = smtpReplyOf('MV_ENVELOPE_SYNTAX');
    this.send(r.code, r.text);
    // As smtp-server's own replies do: read on only once the client has
    // taken its replies, so a client that never reads cannot grow our buffer.
    this._whenWritable(callback ?? (() => false));
    return;
  }
  return onCommand.call(this, command, callback);
};

const onTimeout = SMTPConnection.prototype._onTimeout;
SMTPConnection.prototype._onTimeout = function (this: SMTPConnection) {
  // The same test smtp-server makes: only a client that owes us input times out.
  const waitsForUs = this._handlerPending || Boolean(this._dataStream && this._parser && !this._parser._dataMode);
  if (!this._closing && !waitsForUs) observers.get(this._server)?.idleTimeout(this.session);
  return onTimeout.call(this);
};
