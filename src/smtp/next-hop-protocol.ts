/*
 * What a next hop may answer to each command we send (RFC 5321 4.2, 4.3.2),
 * and the phases of one next-hop connection. The connection checks every
 * reply against this table: a reply that cannot follow its command (a 2xx to
 * DATA, a 354 to RCPT, anything when nothing was asked) means the two sides
 * no longer agree on which reply answers which command, and a connection in
 * that state is destroyed, never reused (Postfix's smtp client does the same).
 */

/** The command a pending reply belongs to. "." is the end of the body, "greeting" the banner. */
export type Verb = 'greeting' | 'EHLO' | 'HELO' | 'STARTTLS' | 'XFORWARD' | 'MAIL' | 'RCPT' | 'DATA' | '.' | 'RSET' | 'NOOP';

/**
 * - ready: no transaction open at the next hop; reusable as it is;
 * - envelope: MAIL was sent; reusable only after RSET, with every reply in;
 * - data: DATA sent, 354 not yet read;
 * - body: the body is streaming;
 * - dot: the final dot is sent, its reply outstanding;
 * - closed: spent.
 * From `data` on, the connection can never be reset: it is closed instead,
 * so the next hop discards the half transaction (guarantee 2).
 */
export type Phase = 'ready' | 'envelope' | 'data' | 'body' | 'dot' | 'closed';

export function verbOf(line: string): Verb {
  const word = /^[A-Za-z]+/.exec(line)?.[0].toUpperCase();
  switch (word) {
    case 'EHLO':
    case 'HELO':
    case 'STARTTLS':
    case 'XFORWARD':
    case 'MAIL':
    case 'RCPT':
    case 'DATA':
    case 'RSET':
    case 'NOOP':
      return word;
  }
  throw new Error(`not a command mailveil sends: ${word ?? '(none)'}`);
}

/** True when `code` is a reply the next hop may give to `verb`. */
export function replyFits(verb: Verb, code: number): boolean {
  const cls = Math.floor(code / 100);
  if (cls === 4 || cls === 5) return true;
  switch (verb) {
    case 'greeting':
    case 'STARTTLS':
      return code === 220;
    case 'DATA':
      return code === 354;
    default:
      return cls === 2;
  }
}
