/*
 * The one error catalogue: every reply mailveil makes up itself, with a
 * stable code, the SMTP code and the enhanced status code (RFC 3463). Replies
 * never carry a matched value, an address or a host name.
 */
import type { Reply } from './reply';

export const REPLIES = {
  CLIENT_REJECTED: { code: 554, text: '5.7.1 Client host rejected: access denied' },
  TOO_BIG: { code: 552, text: '5.3.4 Message size exceeds fixed limit' },
  HEADER_TOO_BIG: { code: 552, text: '5.3.4 Message header size exceeds limit' },
  NEXT_HOP_DOWN: { code: 451, text: '4.4.1 Next hop unavailable, try again later' },
  NEXT_HOP_TIMEOUT: { code: 451, text: '4.4.2 Next hop timed out, try again later' },
  NEXT_HOP_LOST: { code: 451, text: '4.4.2 Next hop connection lost, try again later' },
  INTERNAL: { code: 451, text: '4.3.0 Internal error while filtering, try again later' },
  NO_SPACE: { code: 452, text: '4.3.1 Insufficient system storage, try again later' },
  CLIENT_TIMEOUT: { code: 421, text: '4.4.2 Error: timeout exceeded' },
  ENVELOPE_SYNTAX: { code: 501, text: '5.5.2 Syntax error: control character in command' },
  SHUTTING_DOWN: { code: 421, text: '4.3.2 Service shutting down, try again later' },
  POLICY_REJECT: { code: 550, text: '5.7.1 Message blocked by data-protection policy' },
  POLICY_TEMPFAIL: { code: 451, text: '4.7.1 Message deferred by data-protection policy' },
  QUARANTINE_UNAVAILABLE: { code: 451, text: '4.3.0 Quarantine is not available, try again later' },
} as const;

export type ReplyName = keyof typeof REPLIES;

export interface SmtpError extends Error {
  responseCode: number;
}

/** An error smtp-server turns into the reply `code text`. */
export function smtpError(code: number, text: string): SmtpError {
  return Object.assign(new Error(text), { responseCode: code });
}

export function replyError(name: ReplyName): SmtpError {
  const r = REPLIES[name];
  return smtpError(r.code, r.text);
}

/** The next hop's own refusal, passed back unchanged (guarantee 1). */
export function passThrough(reply: Reply): SmtpError {
  const enhanced = reply.enhanced ?? `${Math.floor(reply.code / 100)}.0.0`;
  return smtpError(reply.code, `${enhanced} ${reply.text}`.trim());
}

/** A rule's reply text ("550 5.7.1 ..."), validated by the rule schema. */
export function ruleReply(reply: string | undefined, fallback: ReplyName): SmtpError {
  const m = reply ? /^([45]\d\d) (.+)$/.exec(reply) : null;
  return m ? smtpError(Number(m[1]), m[2]) : replyError(fallback);
}
